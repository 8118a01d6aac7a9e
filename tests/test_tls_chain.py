"""``ca fetch``: the chain as a real loopback TLS server presents it, and what to trust."""

from __future__ import annotations

import datetime as dt
import ssl

import orjson
import pytest
import trustme
from cryptography import x509
from typer.testing import CliRunner

from remote_reindex.cli.main import app
from remote_reindex.errors import UsageError
from remote_reindex.tls.chain import fingerprint, host_matches, parse_host_port
from tls_servers import NOW, Server, closed_port, s_client_output, self_signed_pki, trustme_pki

runner = CliRunner()


def fetch(*args: str):
    return runner.invoke(app, ["ca", "fetch", *args])


def fetch_json(*args: str) -> dict:
    result = fetch(*args, "--json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_root_not_sent_writes_the_intermediate_with_a_warning(tmp_path):
    pki = trustme_pki(tmp_path)  # leaf + intermediate: the usual server
    with Server(pki) as server:
        out = tmp_path / "ca.pem"
        result = fetch(server.host_port, "-o", str(out))
        assert result.exit_code == 0, result.output
        data = fetch_json(server.host_port)
    assert out.read_bytes() == pki.inter_pem
    assert data["root_sent"] is False
    assert [c["is_ca"] for c in data["chain"]] == [False, True]
    inter = x509.load_pem_x509_certificate(pki.inter_pem)
    assert data["chain"][1]["sha256"] == fingerprint(inter)
    assert data["trust"][0]["subject"] == inter.subject.rfc4514_string()
    assert data["trust_reason"].startswith("the root was not sent (the usual case): writing the top-most certificate the server sent")
    assert any(w.startswith("the root CA was not sent: the destination (Java) and curl accept this intermediate") for w in data["warnings"])
    assert "--from-file" in result.stderr
    assert data["chain"][0]["sans"] == ["DNS:localhost", "IP:127.0.0.1"]
    assert data["verification_mode"] == "full"


def test_root_sent_writes_the_root(tmp_path):
    pki = trustme_pki(tmp_path, send="leaf+inter+root")
    with Server(pki) as server:
        data = fetch_json(server.host_port)
    assert data["root_sent"] is True
    assert data["pem"].encode() == pki.root_pem
    assert data["trust"][0]["self_signed"] is True
    assert data["warnings"] == []


def test_leaf_only_says_intermediate_missing(tmp_path):
    pki = trustme_pki(tmp_path, send="leaf")
    with Server(pki) as server:
        data = fetch_json(server.host_port)
    assert len(data["chain"]) == 1
    assert data["pem"].encode() == pki.leaf_pem
    assert data["trust_reason"] == "the server sent only its own certificate (no CA): writing the leaf, the only certificate available"
    assert "the server did not send its intermediate CA: Java (the destination) does not download missing intermediates either" in data["warnings"]


def test_self_signed_leaf_is_its_own_ca(tmp_path):
    pki = self_signed_pki(tmp_path, key="rsa")
    with Server(pki) as server:
        data = fetch_json(f"localhost:{server.port}")
    assert data["chain"][0]["self_signed"] is True
    assert data["chain"][0]["is_ca"] is False
    assert data["chain"][0]["key"] == "RSA 2048"
    assert data["trust_reason"] == "the server's certificate is self-signed: it is its own CA, so it is the certificate to trust"
    assert data["pem"].encode() == pki.leaf_pem


@pytest.mark.parametrize("key_type,expected", [(trustme.KeyType.RSA, "RSA 2048"), (trustme.KeyType.ECDSA, "EC secp256r1")])
def test_key_types(tmp_path, key_type, expected):
    pki = trustme_pki(tmp_path, key_type=key_type)
    with Server(pki) as server:
        data = fetch_json(server.host_port)
    assert [c["key"] for c in data["chain"]] == [expected, expected]


def test_host_not_in_sans_recommends_certificate_and_names_the_sans(tmp_path):
    pki = trustme_pki(tmp_path, "es.internal.example")
    with Server(pki) as server:
        data = fetch_json(server.host_port)
        by_name = fetch_json(server.host_port, "--servername", "es.internal.example")
    assert data["verification_mode"] == "certificate"
    assert data["verification_reason"].startswith("127.0.0.1 is not in the certificate's SANs (SANs: DNS:es.internal.example): 'full' would fail.")
    assert "any server holding a certificate from the same CA could then pose as the source" in data["verification_reason"]
    assert by_name["verification_mode"] == "full"


def test_tls12_only_server(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki, tls_max=ssl.TLSVersion.TLSv1_2) as server:
        data = fetch_json(server.host_port)
    assert data["tls_version"] == "TLSv1.2"
    assert len(data["chain"]) == 2


def test_expired_leaf_is_reported(tmp_path):
    pki = trustme_pki(tmp_path, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    with Server(pki) as server:
        data = fetch_json(server.host_port)
    assert data["chain"][0]["expired"] is True
    assert any("expired on" in w and "the destination will refuse it" in w for w in data["warnings"])


def test_from_file_s_client_output_anchors_at_the_intermediate(tmp_path):
    """The guide's step-1 file: s_client text around leaf + intermediate, no root."""
    pki = trustme_pki(tmp_path)
    sclient = pki.write("s_client.txt", s_client_output(pki))
    out = tmp_path / "ca.pem"
    with Server(pki) as server:
        data = fetch_json(server.host_port, "--from-file", str(sclient), "-o", str(out))
    inter = x509.load_pem_x509_certificate(pki.inter_pem)
    assert data["anchor"]["subject"] == inter.subject.rfc4514_string()
    assert out.read_bytes() == pki.leaf_pem + pki.inter_pem  # PEM blocks only, text dropped
    assert not any("(the leaf)" in w for w in data["warnings"])


def test_from_file_with_only_the_leaf_warns_about_renewal(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki) as server:
        data = fetch_json(server.host_port, "--from-file", str(pki.leaf_file))
    assert data["anchor"]["subject"] == data["chain"][0]["subject"]
    assert any(w.startswith("the CA file anchors trust at the server's own certificate (the leaf): trust breaks at its next renewal") for w in data["warnings"])


def test_from_file_with_the_root(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki) as server:
        data = fetch_json(server.host_port, "--from-file", str(pki.root_file))
    assert data["anchor"]["self_signed"] is True
    assert data["pem"].encode() == pki.root_pem
    assert data["warnings"] == []


def test_from_file_that_does_not_anchor(tmp_path):
    pki = trustme_pki(tmp_path)
    other = trustme.CA()
    wrong = pki.write("other.pem", other.cert_pem.bytes())
    with Server(pki) as server:
        result = fetch(server.host_port, "--from-file", str(wrong), "-o", str(tmp_path / "x.pem"))
    assert result.exit_code == 4
    assert f"error: no certificate in {wrong} anchors the chain of 127.0.0.1:{server.port}" in result.stderr
    assert not (tmp_path / "x.pem").exists()


def test_from_file_without_server(tmp_path):
    pki = trustme_pki(tmp_path)
    data = fetch_json("--from-file", str(pki.inter_file))
    assert data["chain"][0]["is_ca"] is True
    assert data["pem"].encode() == pki.inter_pem


def test_plain_http_port_is_not_tls(tmp_path):
    with Server(None) as server:
        result = fetch(server.host_port)
    assert result.exit_code == 4
    assert result.stderr.splitlines()[0] == f"error: 127.0.0.1:{server.port} does not speak TLS (plain HTTP on this port?)"


def test_connection_refused():
    port = closed_port()
    result = fetch(f"127.0.0.1:{port}")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: connection refused by 127.0.0.1:{port}",
        "fix: Check the host and port, and that the cluster is running and reachable from here.",
    ]


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (["localhost"], "error: no port in 'localhost'"),
        (["localhost:99999"], "error: invalid port '99999' in 'localhost:99999'"),
        (["::1:9200"], "error: IPv6 address without brackets in '::1:9200'"),
        ([], "error: give HOST:PORT (the source's HTTPS endpoint) or --from-file FILE"),
        (["--from-file", "/nonexistent/ca.pem"], "error: CA file not found: /nonexistent/ca.pem"),
    ],
    ids=["no-port", "bad-port", "ipv6-no-brackets", "nothing-given", "from-file-missing"],
)
def test_fetch_bad_input(args, message):
    result = fetch(*args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message
    assert result.stderr.splitlines()[1].startswith("fix: ")
    assert "Traceback" not in result.output


def test_fetch_from_file_without_certificate(tmp_path):
    key = tmp_path / "key.pem"
    key.write_bytes(trustme.CA().private_key_pem.bytes())
    result = fetch("--from-file", str(key), "-o", str(tmp_path / "out.pem"))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: {key} holds a private key, not a CA certificate"
    assert not (tmp_path / "out.pem").exists()


# -- pure logic -----------------------------------------------------------------------


def test_parse_host_port():
    assert parse_host_port("es.example.com:9243") == ("es.example.com", 9243)
    assert parse_host_port("https://es:9200/some/path") == ("es", 9200)
    assert parse_host_port("[::1]:9200") == ("::1", 9200)
    with pytest.raises(UsageError, match="no port"):
        parse_host_port("https://es")


def test_host_matches_wildcards_and_ips(tmp_path):
    leaf = x509.load_pem_x509_certificate(trustme_pki(tmp_path, "*.example.com", "10.0.0.1").leaf_pem)
    assert host_matches(leaf, "es1.example.com")
    assert not host_matches(leaf, "a.b.example.com")
    assert not host_matches(leaf, "example.com")
    assert host_matches(leaf, "10.0.0.1")
    assert not host_matches(leaf, "10.0.0.2")
