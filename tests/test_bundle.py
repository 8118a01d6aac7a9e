"""``bundle``: validation before writing, deterministic zip, the path the settings must use."""

from __future__ import annotations

import datetime as dt
import os
import zipfile

import orjson
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from remote_reindex.bundle import build_bundle, ca_path_for, read_bundle
from remote_reindex.cli.main import app
from tls_servers import NOW, self_signed_pki, trustme_pki

runner = CliRunner()


def bundle(*args: str):
    return runner.invoke(app, ["bundle", *args])


def test_default_bundle_layout_and_cloud_path(tmp_path):
    pki = trustme_pki(tmp_path)
    result = bundle("--ca", str(pki.root_file), "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    zpath = tmp_path / "my_source_ca.zip"
    assert data["zip"] == str(zpath)
    assert data["certificate_authorities"] == "/app/config/my_source_ca/cacert.pem"
    with zipfile.ZipFile(zpath) as zf:
        assert zf.namelist() == ["my_source_ca/", "my_source_ca/cacert.pem"]
        pem = zf.read("my_source_ca/cacert.pem")
    certs = x509.load_pem_x509_certificates(pem)
    assert [c.public_bytes(serialization.Encoding.PEM) for c in certs] == [pki.root_pem]


def test_self_managed_path_is_relative_to_config(tmp_path):
    pki = trustme_pki(tmp_path)
    result = bundle("--ca", str(pki.root_file), "-o", str(tmp_path), "--target", "self-managed", "--name", "src-ca_2")
    assert result.exit_code == 0, result.output
    assert '  reindex.ssl.certificate_authorities: ["src-ca_2/cacert.pem"]' in result.stdout.splitlines()
    assert (tmp_path / "src-ca_2.zip").exists()
    assert ca_path_for("src-ca_2", "self-managed") == "src-ca_2/cacert.pem"


def test_deterministic_zip(tmp_path):
    pki = trustme_pki(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    build_bundle([pki.root_file], out_dir=a)
    os.utime(pki.root_file, (1, 1))  # a different mtime on the input must not matter
    build_bundle([pki.root_file], out_dir=b)
    assert (a / "my_source_ca.zip").read_bytes() == (b / "my_source_ca.zip").read_bytes()
    with zipfile.ZipFile(a / "my_source_ca.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_several_sources_combined_and_deduplicated(tmp_path):
    one, two = trustme_pki(tmp_path), trustme_pki(tmp_path)
    f1 = one.write("one.pem", one.root_pem)
    f2 = two.write("two.pem", two.root_pem + two.inter_pem)
    result = build_bundle([f1, f2, f1], out_dir=tmp_path)
    with zipfile.ZipFile(result.zip_path) as zf:
        certs = x509.load_pem_x509_certificates(zf.read("my_source_ca/cacert.pem"))
    assert [c.public_bytes(serialization.Encoding.PEM) for c in certs] == [one.root_pem, two.root_pem, two.inter_pem]
    assert read_bundle(result.zip_path).relative_path == "my_source_ca/cacert.pem"
    assert read_bundle(result.zip_path).certificates == 3


def test_s_client_text_is_stripped(tmp_path):
    from tls_servers import s_client_output

    pki = trustme_pki(tmp_path)
    f = pki.write("s_client.txt", s_client_output(pki))
    result = build_bundle([f], out_dir=tmp_path)
    with zipfile.ZipFile(result.zip_path) as zf:
        pem = zf.read("my_source_ca/cacert.pem")
    assert b"CONNECTED" not in pem and b"Verify return code" not in pem
    assert len(x509.load_pem_x509_certificates(pem)) == 2


def test_warns_on_non_ca_certificate(tmp_path):
    pki = trustme_pki(tmp_path)
    result = bundle("--ca", str(pki.leaf_file), "-o", str(tmp_path))
    assert result.exit_code == 0
    assert "is not a CA certificate: it trusts only that one server certificate and breaks at its next renewal" in result.stderr


def test_self_signed_leaf_is_not_warned_as_non_ca(tmp_path):
    pki = self_signed_pki(tmp_path)
    result = bundle("--ca", str(pki.leaf_file), "-o", str(tmp_path))
    assert result.exit_code == 0
    assert "is not a CA certificate" not in result.stderr


def test_warns_on_expired(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old-ca")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - dt.timedelta(days=400)).not_valid_after(NOW - dt.timedelta(days=5))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256())
    )
    f = tmp_path / "old.pem"
    f.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "out"
    out.mkdir()
    refused = bundle("--ca", str(f), "-o", str(out))
    assert refused.exit_code == 2
    until = cert.not_valid_after_utc.isoformat()
    assert refused.stderr.splitlines() == [
        f"error: every certificate is expired (CN=old-ca expired on {until}): the destination would refuse the source",
        "fix: Bundle the source's current CA (remote-reindex ca fetch HOST:PORT -o ca.pem), or pass --allow-expired to write it anyway.",
    ]
    assert list(out.iterdir()) == []
    result = bundle("--ca", str(f), "-o", str(out), "--allow-expired")
    assert result.exit_code == 0
    assert f"warning: {f}: CN=old-ca expired on" in result.stderr
    assert (out / "my_source_ca.zip").is_file()


def test_der_with_flag_is_converted(tmp_path):
    pki = trustme_pki(tmp_path)
    der = tmp_path / "root.der"
    der.write_bytes(x509.load_pem_x509_certificate(pki.root_pem).public_bytes(serialization.Encoding.DER))
    result = bundle("--ca", str(der), "--der", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "my_source_ca.zip") as zf:
        assert zf.read("my_source_ca/cacert.pem").endswith(pki.root_pem)


# -- bad input: exact message, exit 2, nothing written ---------------------------------


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _der(tmp_path) -> bytes:
    return x509.load_pem_x509_certificate(trustme.CA().cert_pem.bytes()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    "case,content,extra,message",
    [
        ("private-key", lambda t: trustme.CA().private_key_pem.bytes(), [], "error: {f} holds a private key: refusing to bundle it"),
        ("cert-plus-key", lambda t: trustme.CA().cert_pem.bytes() + trustme.CA().private_key_pem.bytes(), [], "error: {f} holds a private key: refusing to bundle it"),
        ("csr", lambda t: _csr(), [], "error: {f} is a certificate signing request (CSR), not a certificate"),
        ("der-without-flag", _der, [], "error: {f} is a DER (binary) certificate; the bundle must be PEM"),
        ("empty", lambda t: b"", [], "error: CA file is empty: {f}"),
        ("garbage", lambda t: b"hello\n", [], "error: no PEM certificate in {f}"),
        ("uppercase-name", lambda t: trustme.CA().cert_pem.bytes(), ["--name", "My_CA"], "error: invalid bundle name 'My_CA': use only lowercase letters, digits, '_' and '-'"),
        ("dot-in-name", lambda t: trustme.CA().cert_pem.bytes(), ["--name", "ca.v2"], "error: invalid bundle name 'ca.v2': use only lowercase letters, digits, '_' and '-'"),
        ("bad-target", lambda t: trustme.CA().cert_pem.bytes(), ["--target", "aws"], "error: unknown target 'aws': use 'cloud' or 'self-managed'"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("error") else "",
)
def test_bundle_bad_input(tmp_path, case, content, extra, message):
    f = tmp_path / "input.pem"
    f.write_bytes(content(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    result = bundle("--ca", str(f), "-o", str(out), *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == message.format(f=f)
    assert lines[1].startswith("fix: ")
    assert list(out.iterdir()) == []  # nothing written
    assert "Traceback" not in result.output


def test_bundle_missing_file(tmp_path):
    result = bundle("--ca", str(tmp_path / "nope.pem"), "-o", str(tmp_path))
    assert (result.exit_code, result.stderr.splitlines()[0]) == (2, f"error: CA file not found: {tmp_path / 'nope.pem'}")


def test_bundle_output_folder_missing(tmp_path):
    pki = trustme_pki(tmp_path)
    result = bundle("--ca", str(pki.root_file), "-o", str(tmp_path / "missing"))
    assert (result.exit_code, result.stderr.splitlines()[0]) == (2, f"error: output folder does not exist: {tmp_path / 'missing'}")


def test_bundle_no_ca(tmp_path):
    result = bundle("-o", str(tmp_path))
    assert (result.exit_code, result.stderr.splitlines()[0]) == (2, "error: no CA file given")


def test_one_bad_file_among_good_writes_nothing(tmp_path):
    pki = trustme_pki(tmp_path)
    bad = tmp_path / "key.pem"
    bad.write_bytes(trustme.CA().private_key_pem.bytes())
    out = tmp_path / "out"
    out.mkdir()
    result = bundle("--ca", str(pki.root_file), "--ca", str(bad), "-o", str(out))
    assert result.exit_code == 2
    assert list(out.iterdir()) == []
