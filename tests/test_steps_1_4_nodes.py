"""Steps 1-4 of the guide through the real CLI, on real nodes, ending with a destination
that pulls from the private-CA source.

Every step runs ``remote-reindex ...`` as a user would (a subprocess, with the machine's
``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` pointing at the system bundle: the explicit CA must
still win). The output of one step is the input of the next: ``ca fetch -o ca.pem`` ->
``ca check --ca ca.pem`` -> ``bundle --ca ca.pem`` -> ``settings`` -> ``lint-settings`` ->
``sandbox configure-destination`` -> a plain remote ``POST _reindex`` on the destination.

Destinations: the shared sandbox destination must stay unconfigured for other tests, so each
class starts a destination of its own and stops it when the class ends (at most one of
them runs at a time: the machine is shared).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
import trustme
from cryptography import x509
from ruamel.yaml import YAML

from remote_reindex.cluster import ClusterClient
from remote_reindex.sandbox import DestinationSide, Sandbox, SourceSide
from remote_reindex.tls.context import load_certificates, pem_blocks

pytestmark = pytest.mark.nodes

BUNDLE = "my_source_ca"
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


# -- helpers --------------------------------------------------------------------------


def _cli_path() -> list[str]:
    script = Path(sys.executable).parent / "remote-reindex"
    if script.exists():
        return [str(script)]
    found = shutil.which("remote-reindex")
    assert found, "the remote-reindex script is not installed (pip install -e '.[test]')"
    return [found]


def cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI. The system bundle stays in the environment on purpose."""
    env = dict(os.environ)
    if Path(SYSTEM_BUNDLE).exists():
        env.update(REQUESTS_CA_BUNDLE=SYSTEM_BUNDLE, SSL_CERT_FILE=SYSTEM_BUNDLE, CURL_CA_BUNDLE=SYSTEM_BUNDLE)
    env["COLUMNS"] = "200"
    return subprocess.run([*_cli_path(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return orjson.loads(proc.stdout)


def der_set(certs: list[x509.Certificate]) -> set[bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding

    return {c.public_bytes(Encoding.DER) for c in certs}


def subject_of(pem_file: Path) -> str:
    return load_certificates(pem_file)[0].subject.rfc4514_string()


def docs_of(client: ClusterClient, index: str) -> dict[str, Any]:
    """Every document of a small index: ``{_id: _source}``."""
    client.call("POST", f"/{index}/_refresh")
    answer = client.call("POST", f"/{index}/_search", body={"size": 10_000, "query": {"match_all": {}}})
    return {h["_id"]: h["_source"] for h in answer["hits"]["hits"]}


def remote_reindex(dest: DestinationSide, source: SourceSide, dest_index: str, *, host: str = "localhost") -> tuple[int, dict[str, Any]]:
    """A plain remote ``POST _reindex`` on the destination, as the guide's step 5 sends it."""
    body = {
        "source": {
            "remote": {"host": f"https://{host}:{source.node.http_port}", "username": source.username, "password": source.password_file.read_text().strip()},
            "index": source.index,
            "size": 500,
        },
        "dest": {"index": dest_index},
    }
    with dest.client(timeout=300) as client:
        resp = client.request("POST", "/_reindex", params={"refresh": "true"}, body=body)
        return resp.status, resp.json()


def assert_copied(dest: DestinationSide, source: SourceSide, dest_index: str, answer: dict[str, Any]) -> None:
    assert answer["failures"] == []
    assert answer["created"] == source.docs
    assert answer["total"] == source.docs
    with source.client(timeout=60) as sc, dest.client(timeout=60) as dc:
        src, dst = docs_of(sc, source.index), docs_of(dc, dest_index)
    assert len(src) == len(dst) == source.docs
    sample = sorted(src)[:: max(1, len(src) // 50)]  # ~50 ids spread over the index
    assert sample
    for _id in sample:
        assert dst[_id] == src[_id], _id
    assert dst == src  # small index: the whole content, by _id and _source


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("steps14")


@pytest.fixture(scope="module")
def port(source: SourceSide) -> int:
    return source.node.http_port


@pytest.fixture(scope="module")
def fetched(source: SourceSide, port: int, work: Path) -> subprocess.CompletedProcess[str]:
    """Step 1 as a user runs it: ``ca fetch localhost:PORT -o ca.pem``."""
    return cli("ca", "fetch", f"localhost:{port}", "-o", "ca.pem", cwd=work)


@pytest.fixture(scope="module")
def ca_pem(fetched: subprocess.CompletedProcess[str], work: Path) -> Path:
    assert fetched.returncode == 0, fetched.stderr
    return work / "ca.pem"


@pytest.fixture(scope="module")
def bundle_zip(ca_pem: Path, work: Path) -> Path:
    out = work / "bundle"
    out.mkdir(exist_ok=True)
    proc = cli("bundle", "--ca", ca_pem, "--name", BUNDLE, "-o", out, "--target", "self-managed", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return out / f"{BUNDLE}.zip"


@pytest.fixture(scope="module")
def settings_yml(port: int, work: Path) -> Path:
    proc = cli(
        "settings", "--remote", f"https://localhost:{port}", "--remote", "other-a:9200", "--remote", "[::1]:9201",
        "--bundle-name", BUNDLE, "--target", "self-managed", "-o", "settings.yml", cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    return work / "settings.yml"


def own_destination(sandbox: Sandbox, kind: str, name: str) -> Iterator[DestinationSide]:
    side = sandbox.start_extra_destination(kind, name=name)
    try:
        yield side
    finally:
        sandbox.stop_extra(name)


# -- step 1: ca fetch -----------------------------------------------------------------


def test_ca_fetch_writes_the_intermediate_not_the_root(source: SourceSide, fetched: subprocess.CompletedProcess[str], ca_pem: Path, port: int) -> None:
    written = load_certificates(ca_pem)
    # The node sends leaf + intermediate; the root is not sent, so the intermediate is what can be written.
    assert der_set(written) == der_set(load_certificates(source.intermediate_file))
    assert not der_set(written) & der_set(load_certificates(source.ca_file))
    assert f"Certificates sent by localhost:{port}" in fetched.stdout
    assert "[0] leaf: CN=localhost,OU=node,O=remote-reindex sandbox source" in fetched.stdout
    assert "SANs:     DNS:localhost, IP:127.0.0.1" in fetched.stdout
    assert f"[1] CA: {subject_of(source.intermediate_file)}" in fetched.stdout
    assert "Trust: the root was not sent (the usual case)" in fetched.stdout
    assert "reindex.ssl.verification_mode: full - localhost is in the certificate's SANs (DNS:localhost, IP:127.0.0.1)" in fetched.stdout
    assert f"Wrote 1 certificate(s) to ca.pem. Next: remote-reindex ca check https://localhost:{port} --ca ca.pem" in fetched.stdout
    assert "warning: the root CA was not sent: the destination (Java) and curl accept this intermediate as a trust anchor" in fetched.stderr


def test_ca_fetch_json_report(source: SourceSide, port: int, work: Path) -> None:
    proc = cli("ca", "fetch", f"localhost:{port}", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    report = as_json(proc)
    assert report["root_sent"] is False
    assert [c["subject"] for c in report["chain"]] == ["CN=localhost,OU=node,O=remote-reindex sandbox source", subject_of(source.intermediate_file)]
    assert report["chain"][0]["sans"] == ["DNS:localhost", "IP:127.0.0.1"]
    assert report["chain"][1]["is_ca"] is True
    assert [c["subject"] for c in report["trust"]] == [subject_of(source.intermediate_file)]
    assert report["verification_mode"] == "full"
    assert report["tls_version"] in ("TLSv1.2", "TLSv1.3")


def test_ca_fetch_with_the_root_from_the_pki_team_anchors_at_the_root(source: SourceSide, port: int, work: Path) -> None:
    proc = cli("ca", "fetch", f"localhost:{port}", "--from-file", source.ca_file, "-o", "root.pem", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    report = as_json(proc)
    assert report["anchor"]["subject"] == "OU=root CA,O=remote-reindex sandbox source"
    assert report["anchor"]["self_signed"] is True
    assert der_set(load_certificates(work / "root.pem")) == der_set(load_certificates(source.ca_file))


# -- step 2: ca check -----------------------------------------------------------------


def test_ca_check_ok(source: SourceSide, ca_pem: Path, port: int, work: Path) -> None:
    with source.client(timeout=30) as c:
        info = c.info()
    proc = cli("ca", "check", f"https://localhost:{port}", "--ca", ca_pem, "--user", source.username, "--password-file", source.password_file, "--json", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = as_json(proc)
    assert (result["ok"], result["cause"], result["exit_code"]) == (True, "ok", 0)
    assert result["version"] == "7.17.29" == info.version
    assert result["flavor"] == "elasticsearch"
    assert result["cluster_name"] == info.cluster_name and info.cluster_name
    assert result["anchor"]["subject"] == subject_of(source.intermediate_file)
    assert result["message"] == (
        f"https://localhost:{port} is Elasticsearch 7.17.29 (cluster {info.cluster_name}); "
        f"TLS verified with {ca_pem}, anchored at {subject_of(source.intermediate_file)}"
    )
    password = source.password_file.read_text().strip()
    assert password not in proc.stdout + proc.stderr


def test_ca_check_privileges_on_the_index(source: SourceSide, ca_pem: Path, port: int, work: Path) -> None:
    proc = cli(
        "ca", "check", f"https://localhost:{port}", "--ca", ca_pem, "--user", source.username, "--password-file", source.password_file,
        "--index", source.index, "--json", cwd=work,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    privileges = as_json(proc)["privileges"]
    assert privileges["has_all_requested"] is True
    assert privileges["cluster"] == {"monitor": True}
    assert privileges["index"] == {source.index: {"read": True}}


def test_ca_check_index_that_does_not_exist(source: SourceSide, ca_pem: Path, port: int, work: Path) -> None:
    proc = cli(
        "ca", "check", f"https://localhost:{port}", "--ca", ca_pem, "--user", source.username, "--password-file", source.password_file,
        "--index", "nosuchindex", cwd=work,
    )
    assert proc.returncode == 34, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        "error: index nosuchindex does not exist on the source",
        "fix: Check the name against the source's indices (GET /_cat/indices?v on the source), or leave out --index to check only the connection.",
    ]
    ok = cli(
        "ca", "check", f"https://localhost:{port}", "--ca", ca_pem, "--user", source.username, "--password-file", source.password_file,
        "--index", source.index, cwd=work,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[1] == f"privileges checked for {source.username}: cluster 'monitor' yes, 'read' on index {source.index} yes"


def test_ca_check_wrong_password(source: SourceSide, ca_pem: Path, port: int, work: Path) -> None:
    wrong = work / "wrong-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    proc = cli("ca", "check", f"https://localhost:{port}", "--ca", ca_pem, "--user", source.username, "--password-file", wrong, "--json", cwd=work)
    assert proc.returncode == 26
    result = as_json(proc)
    assert (result["ok"], result["cause"], result["exit_code"]) == (False, "auth_failed", 26)
    assert result["message"] == f"localhost:{port} refused the credentials (401) for GET /"
    assert "not-the-password" not in proc.stdout + proc.stderr
    human = cli("ca", "check", f"https://localhost:{port}", "--ca", ca_pem, "--user", source.username, "--password-file", wrong, cwd=work)
    assert human.returncode == 26
    assert human.stderr.splitlines() == [
        f"error: localhost:{port} refused the credentials (401) for GET /",
        "fix: Check the user name and password (or API key) for this cluster.",
    ]
    assert "Traceback" not in human.stderr


def test_ca_check_wrong_ca_and_wrong_host(source: SourceSide, ca_pem: Path, port: int, work: Path) -> None:
    other = work / "other-ca.pem"
    other.write_bytes(trustme.CA(organization_name="some other PKI").cert_pem.bytes())
    proc = cli("ca", "check", f"https://localhost:{port}", "--ca", other, "--user", source.username, "--password-file", source.password_file, cwd=work)
    assert proc.returncode == 20
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"error: TLS: the chain of localhost:{port} (top: {subject_of(source.intermediate_file)}, issued by OU=root CA,O=remote-reindex sandbox source) is not anchored by any certificate in {other}")
    assert lines[1] == f"fix: Give the CA that issued OU=root CA,O=remote-reindex sandbox source with --ca (see 'remote-reindex ca fetch localhost:{port}')."

    # The system bundle (~150 roots) as --ca: still one line, a few names and a count.
    if Path(SYSTEM_BUNDLE).exists():
        proc = cli("ca", "check", f"https://localhost:{port}", "--ca", SYSTEM_BUNDLE, "--user", source.username, "--password-file", source.password_file, cwd=work)
        assert proc.returncode == 20
        assert len(proc.stderr.splitlines()) == 2, proc.stderr
        assert " more)" in proc.stderr and "Warning" not in proc.stderr

    proc = cli(
        "ca", "check", f"https://localhost:{port}", "--servername", "es-source.example", "--ca", ca_pem,
        "--user", source.username, "--password-file", source.password_file, cwd=work,
    )
    assert proc.returncode == 21
    assert proc.stderr.splitlines() == [
        "error: TLS: es-source.example is not in the server certificate's SANs (DNS:localhost, IP:127.0.0.1)",
        "fix: Use a name from the SANs in the URL and in reindex.remote.whitelist, or set reindex.ssl.verification_mode: certificate (checks the chain, not the name).",
    ]


# -- steps 3 and 4: bundle, settings, lint-settings -----------------------------------


def test_bundle_holds_the_fetched_ca(bundle_zip: Path, ca_pem: Path) -> None:
    with zipfile.ZipFile(bundle_zip) as zf:
        assert zf.namelist() == [f"{BUNDLE}/", f"{BUNDLE}/cacert.pem"]
        cacert = zf.read(f"{BUNDLE}/cacert.pem")
    # The same certificate, PEM, with a comment naming it above the block.
    assert der_set([x509.load_pem_x509_certificate(b) for b in pem_blocks(cacert)]) == der_set(load_certificates(ca_pem))
    assert cacert.decode().startswith(f"# {subject_of(ca_pem)}\n-----BEGIN CERTIFICATE-----\n")


def test_settings_for_three_remotes_and_lint_is_clean(settings_yml: Path, bundle_zip: Path, port: int, work: Path) -> None:
    data = YAML(typ="safe").load(settings_yml.read_text())
    assert data == {
        "reindex.remote.whitelist": [f"localhost:{port}", "other-a:9200", "[::1]:9201"],
        "reindex.ssl.certificate_authorities": [f"{BUNDLE}/cacert.pem"],
        "reindex.ssl.verification_mode": "full",
    }
    lint = cli("lint-settings", settings_yml, "--bundle", bundle_zip, cwd=work)
    assert lint.returncode == 0, lint.stdout
    assert lint.stdout.strip().splitlines()[-1] == "0 error(s), 0 warning(s)"


# -- the destination pulls: Elasticsearch 7.17.29 -------------------------------------

ES_NAME = "steps14-es"


@pytest.fixture(scope="class")
def es_dest(sandbox: Sandbox) -> Iterator[DestinationSide]:
    yield from own_destination(sandbox, "elasticsearch", ES_NAME)


@pytest.fixture(scope="class")
def es_configured(sandbox: Sandbox, es_dest: DestinationSide, bundle_zip: Path, settings_yml: Path, work: Path) -> subprocess.CompletedProcess[str]:
    return cli("sandbox", "configure-destination", "--home", sandbox.home, "--destination", ES_NAME, "--bundle", bundle_zip, "--settings", settings_yml, cwd=work)


class TestElasticsearchDestination:
    def test_before_configuring_the_source_is_not_allowlisted(self, source: SourceSide, es_dest: DestinationSide) -> None:
        status, answer = remote_reindex(es_dest, source, "never-created")
        assert status == 400
        assert answer["error"]["reason"] == f"[localhost:{source.node.http_port}] not whitelisted in reindex.remote.whitelist"

    def test_configure_destination_applies_bundle_and_settings(self, es_configured: subprocess.CompletedProcess[str], es_dest: DestinationSide, port: int) -> None:
        assert es_configured.returncode == 0, es_configured.stderr
        config = es_dest.config_dir
        assert f"unpacked {BUNDLE}/ into {config / BUNDLE}" in es_configured.stdout
        assert f"set reindex.remote.whitelist: ['localhost:{port}', 'other-a:9200', '[::1]:9201']" in es_configured.stdout
        assert f"set reindex.ssl.certificate_authorities: ['{BUNDLE}/cacert.pem']" in es_configured.stdout
        assert "set reindex.ssl.verification_mode: full" in es_configured.stdout
        assert "it is healthy" in es_configured.stdout
        assert (config / BUNDLE / "cacert.pem").is_file()
        with es_dest.client(timeout=30) as c:
            nodes = c.call("GET", "/_nodes/settings", params={"filter_path": "nodes.*.settings.reindex"})
        (node_settings,) = nodes["nodes"].values()
        assert node_settings["settings"]["reindex"]["remote"]["whitelist"] == [f"localhost:{port}", "other-a:9200", "[::1]:9201"]

    def test_remote_reindex_copies_every_document(self, es_configured: subprocess.CompletedProcess[str], source: SourceSide, es_dest: DestinationSide) -> None:
        assert es_configured.returncode == 0, es_configured.stderr
        status, answer = remote_reindex(es_dest, source, "products-copy")
        assert status == 200, answer
        assert_copied(es_dest, source, "products-copy", answer)

    def test_openssl_showcerts_output_works_as_the_bundle(self, sandbox: Sandbox, source: SourceSide, es_dest: DestinationSide, es_configured: subprocess.CompletedProcess[str], port: int, work: Path) -> None:
        """The guide's own way to get the CA: the raw 's_client -showcerts' text (leaf +
        intermediate, text around them) bundled as it is. Last in the class: it reconfigures."""
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl is not installed")
        shown = subprocess.run([openssl, "s_client", "-showcerts", "-connect", f"localhost:{port}"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        sclient = work / "sclient.txt"
        sclient.write_text(shown.stdout)
        assert shown.stdout.count("-----BEGIN CERTIFICATE-----") == 2

        fetch = cli("ca", "fetch", f"localhost:{port}", "--from-file", sclient, "--json", cwd=work)
        assert fetch.returncode == 0, fetch.stderr
        report = as_json(fetch)
        # The highest certificate of the chain that is in the file anchors it: the intermediate.
        assert report["anchor"]["subject"] == subject_of(source.intermediate_file)
        assert report["trust_reason"] == f"{sclient} anchors the chain at {subject_of(source.intermediate_file)}"
        human = cli("ca", "fetch", f"localhost:{port}", "--from-file", sclient, cwd=work)
        assert f"Anchor: {subject_of(source.intermediate_file)}" in human.stdout

        check = cli("ca", "check", f"https://localhost:{port}", "--ca", sclient, "--user", source.username, "--password-file", source.password_file, "--json", cwd=work)
        assert check.returncode == 0, check.stdout + check.stderr

        out = work / "sclient-bundle"
        out.mkdir(exist_ok=True)
        bundle = cli("bundle", "--ca", sclient, "--name", "sclient_ca", "-o", out, "--target", "self-managed", cwd=work)
        assert bundle.returncode == 0, bundle.stderr
        assert "is not a CA certificate" in bundle.stderr  # the leaf in it is named, not silently kept
        settings = cli("settings", "--remote", f"localhost:{port}", "--bundle-name", "sclient_ca", "--target", "self-managed", "-o", "sclient-settings.yml", cwd=work)
        assert settings.returncode == 0, settings.stderr
        lint = cli("lint-settings", "sclient-settings.yml", "--bundle", out / "sclient_ca.zip", cwd=work)
        assert lint.returncode == 0, lint.stdout
        configured = cli("sandbox", "configure-destination", "--home", sandbox.home, "--destination", ES_NAME, "--bundle", out / "sclient_ca.zip", "--settings", "sclient-settings.yml", cwd=work)
        assert configured.returncode == 0, configured.stderr
        assert "set reindex.ssl.certificate_authorities: ['sclient_ca/cacert.pem']" in configured.stdout

        status, answer = remote_reindex(es_dest, source, "products-from-sclient")
        assert status == 200, answer
        assert_copied(es_dest, source, "products-from-sclient", answer)


# -- the destination pulls: OpenSearch 2.19.6 -----------------------------------------

OS_NAME = "steps14-os"


@pytest.fixture(scope="class")
def os_dest(sandbox: Sandbox) -> Iterator[DestinationSide]:
    yield from own_destination(sandbox, "opensearch", OS_NAME)


class TestOpenSearchDestination:
    def test_settings_lint_configure_and_pull(self, sandbox: Sandbox, source: SourceSide, os_dest: DestinationSide, bundle_zip: Path, port: int, work: Path) -> None:
        settings = cli(
            "settings", "--remote", f"https://localhost:{port}", "--remote", "other-a:9200", "--remote", "[::1]:9201",
            "--bundle-name", BUNDLE, "--flavor", "opensearch", "--target", "self-managed", "-o", "os-settings.yml", cwd=work,
        )
        assert settings.returncode == 0, settings.stderr
        data = YAML(typ="safe").load((work / "os-settings.yml").read_text())
        assert data["reindex.remote.allowlist"] == [f"localhost:{port}", "other-a:9200", "[::1]:9201"]
        assert "reindex.remote.whitelist" not in data
        assert "Put these in opensearch.yml on every destination node" in settings.stdout

        lint = cli("lint-settings", "os-settings.yml", "--bundle", bundle_zip, "--flavor", "opensearch", "--dest-version", "2.19.6", cwd=work)
        assert lint.returncode == 0, lint.stdout
        assert lint.stdout.strip().splitlines()[-1] == "0 error(s), 0 warning(s)"

        status, answer = remote_reindex(os_dest, source, "never-created")
        assert status == 400
        assert answer["error"]["reason"] == f"[localhost:{port}] not allowlisted in reindex.remote.allowlist"

        configured = cli("sandbox", "configure-destination", "--home", sandbox.home, "--destination", OS_NAME, "--bundle", bundle_zip, "--settings", "os-settings.yml", cwd=work)
        assert configured.returncode == 0, configured.stderr
        assert f"set reindex.remote.allowlist: ['localhost:{port}', 'other-a:9200', '[::1]:9201']" in configured.stdout

        status, answer = remote_reindex(os_dest, source, "products-copy")
        assert status == 200, answer
        assert_copied(os_dest, source, "products-copy", answer)
