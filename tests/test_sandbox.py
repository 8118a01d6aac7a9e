"""The sandbox on real nodes: what the rest of the project's tests stand on."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from remote_reindex.cluster import Auth, ClusterClient
from remote_reindex.errors import AuthError, TLSError
from remote_reindex.sandbox import Sandbox, new_home, port_is_free, processes_under, sample_document, sample_id


pytestmark = pytest.mark.nodes

CLI = [sys.executable, "-m", "remote_reindex.cli.main"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def password_of(source) -> str:
    return source.password_file.read_text().strip()


# -- the source: HTTPS with the private CA + basic auth --------------------------------


def test_source_answers_over_https_with_the_sandbox_ca_and_user(source):
    with ClusterClient(source.url, ca_file=str(source.ca_file), auth=Auth.basic(source.username, password_of(source))) as client:
        info = client.info()
        assert (info.flavor, info.version, info.cluster_name) == ("elasticsearch", "7.17.29", "rr-source")
        assert client.call("GET", f"/{source.index}/_count")["count"] == source.docs
        doc = client.call("GET", f"/{source.index}/_doc/{sample_id(17)}")
        assert doc["_source"] == sample_document(17, source.seed)
        mapping = client.call("GET", f"/{source.index}/_mapping")[source.index]["mappings"]
        assert mapping["properties"]["reviews"]["type"] == "nested"
        settings = client.call("GET", f"/{source.index}/_settings")[source.index]["settings"]["index"]
        assert (settings["number_of_shards"], settings["number_of_replicas"]) == ("2", "0")


def test_source_presents_leaf_and_intermediate_but_not_the_root(source):
    import socket
    import ssl

    from cryptography import x509

    from remote_reindex.tls.context import make_ssl_context

    ctx = make_ssl_context(source.ca_file)
    with socket.create_connection(("localhost", source.node.http_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            chain = [x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER)) for c in tls._sslobj.get_unverified_chain()]  # type: ignore[attr-defined]
    root = x509.load_pem_x509_certificate(source.ca_file.read_bytes())
    intermediate = x509.load_pem_x509_certificate(source.intermediate_file.read_bytes())
    assert len(chain) == 2
    assert chain[1] == intermediate and root not in chain
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)


def test_source_without_the_ca_fails_verification_even_with_the_system_bundle(source, monkeypatch):
    # The machine points these at the system bundle; the private CA is not in it.
    system_bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(system_bundle):
        monkeypatch.setenv("SSL_CERT_FILE", system_bundle)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle)
    with ClusterClient(source.url, auth=Auth.basic(source.username, password_of(source))) as client:
        with pytest.raises(TLSError) as caught:
            client.info()
    assert caught.value.cause == "untrusted_issuer"
    assert caught.value.exit_code == 4


def test_source_with_a_wrong_password_is_401(source):
    with ClusterClient(source.url, ca_file=str(source.ca_file), auth=Auth.basic(source.username, "not-the-password")) as client:
        with pytest.raises(AuthError) as caught:
            client.info()
    assert caught.value.status == 401
    assert caught.value.cause == "auth_failed"
    assert "not-the-password" not in caught.value.message


def test_source_password_file_is_private(source):
    st = source.password_file.stat()
    assert st.st_mode & 0o777 == 0o600
    assert len(password_of(source)) >= 20


# -- the destination: the guide's starting point ---------------------------------------


def test_destination_has_the_reindex_module_but_no_allowlist(source, destination):
    with destination.client() as client:
        info = client.info()
        assert (info.flavor, info.version) == ("elasticsearch", "7.17.29")
        body = {"source": {"remote": {"host": source.url, "username": source.username, "password": password_of(source)}, "index": source.index}, "dest": {"index": "never-written"}}
        resp = client.request("POST", "/_reindex", body=body)
        assert resp.status == 400
        assert resp.json()["error"]["reason"] == f"[localhost:{source.node.http_port}] not whitelisted in reindex.remote.whitelist"
        assert client.request("HEAD", "/never-written").status == 404


def test_configure_destination_makes_remote_reindex_work(sandbox, source, extra_destination, tmp_path):
    side = extra_destination("elasticsearch", name="configured")
    bundle_dir = tmp_path / "my_source_ca"
    bundle_dir.mkdir()
    (bundle_dir / "cacert.pem").write_bytes(source.ca_file.read_bytes())
    bundle = tmp_path / "my_source_ca.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.write(bundle_dir / "cacert.pem", "my_source_ca/cacert.pem")
    settings = tmp_path / "settings.yml"
    settings.write_text(
        f'reindex.remote.whitelist: ["{source.node.host_port}"]\n'
        # Elastic Cloud's path for an uploaded bundle: the sandbox maps it to its config dir.
        'reindex.ssl.certificate_authorities: ["/app/config/my_source_ca/cacert.pem"]\n'
        "reindex.ssl.verification_mode: full\n"
    )
    result = sandbox.configure_destination(bundle, settings, target="configured")
    assert (side.config_dir / "my_source_ca" / "cacert.pem").read_bytes() == source.ca_file.read_bytes()
    config = side.node.read_config()
    assert config["reindex.remote.whitelist"] == [source.node.host_port]
    assert config["reindex.ssl.certificate_authorities"] == [str(side.config_dir / "my_source_ca" / "cacert.pem")]
    assert result["settings"]["reindex.ssl.verification_mode"] == "full"
    with side.client(timeout=300) as client:
        body = {"source": {"remote": {"host": source.url, "username": source.username, "password": password_of(source)}, "index": source.index}, "dest": {"index": "copied"}}
        answer = client.call("POST", "/_reindex", body=body, params={"refresh": "true"})
        assert (answer["created"], answer["failures"]) == (source.docs, [])
        assert client.call("GET", f"/copied/_doc/{sample_id(3)}")["_source"] == sample_document(3, source.seed)

    # Settings the node refuses: rolled back, restarted with the previous (working) config.
    before = side.config_file.read_text()
    bad = tmp_path / "bad.yml"
    bad.write_text("reindex.ssl.verification_mode: bogus\n")
    from remote_reindex.errors import SandboxError

    with pytest.raises(SandboxError) as caught:
        sandbox.configure_destination(bundle, bad, target="configured")
    assert caught.value.cause == "settings_rejected"
    assert "unknown value [bogus], recognised values are [none,certificate,full]" in caught.value.message
    assert side.config_file.read_text() == before
    with side.client() as client:
        assert client.call("GET", "/copied/_count")["count"] == source.docs


# -- the CLI -----------------------------------------------------------------------------


def test_status_json_shape_and_no_password(sandbox, source, destination):
    proc = run_cli("sandbox", "status", "--json", "--home", str(sandbox.home))
    assert proc.returncode == 0, proc.stderr
    status = orjson.loads(proc.stdout)
    s, d = status["source"], status["destination"]
    assert s["url"] == f"https://localhost:{source.node.http_port}"
    assert (s["version"], s["username"], s["index"], s["docs"], s["running"]) == ("7.17.29", "reindexer", "products", source.docs, True)
    assert Path(s["password_file"]) == source.password_file and Path(s["ca_file"]).read_bytes() == source.ca_file.read_bytes()
    assert d["url"] == f"http://localhost:{destination.node.http_port}"
    assert (d["version"], d["flavor"], d["reindex_module"], d["running"]) == ("7.17.29", "elasticsearch", True, True)
    assert Path(d["config_dir"], "elasticsearch.yml").is_file()
    assert password_of(source) not in proc.stdout + proc.stderr
    assert password_of(source) not in sandbox.state_file.read_text()


def test_status_text_is_readable_and_has_no_password(sandbox, source):
    proc = run_cli("sandbox", "status", "--home", str(sandbox.home))
    assert proc.returncode == 0, proc.stderr
    assert source.url in proc.stdout and str(source.password_file) in proc.stdout
    assert password_of(source) not in proc.stdout + proc.stderr


def test_up_twice_reuses_the_running_sandbox(sandbox, source, destination):
    pids = (source.node.pid, destination.node.pid)
    proc = run_cli("sandbox", "up", "--docs", "5", "--home", str(sandbox.home), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "already up: reusing it" in proc.stderr
    status = orjson.loads(proc.stdout)
    assert status["source"]["url"] == source.url and status["source"]["docs"] == source.docs
    assert (status["source"]["pid"], status["destination"]["pid"]) == pids


def test_up_with_another_setup_on_a_running_home_is_refused(sandbox):
    proc = run_cli("sandbox", "up", "--destination", "opensearch", "--home", str(sandbox.home))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: a sandbox with source 7.17.29 and destination elasticsearch is already up in {sandbox.home}",
        "fix: Run 'remote-reindex sandbox down' first, or use another --home.",
    ]


def test_cli_up_then_down_leaves_no_process_and_frees_every_port():
    home = new_home("pytest-updown-")
    try:
        proc = run_cli("sandbox", "up", "--docs", "10", "--home", str(home), "--json")
        assert proc.returncode == 0, proc.stderr
        assert "loading 10 documents" in proc.stderr
        status = orjson.loads(proc.stdout)
        sb = Sandbox(home)
        nodes = sb.all_nodes()
        ports = [p for n in nodes for p in (n.http_port, n.transport_port)]
        assert status["source"]["docs"] == 10 and len(nodes) == 2
        assert all(processes_under(n.home) for n in nodes)
        assert not any(port_is_free(p) for p in ports)

        proc = run_cli("sandbox", "down", "--home", str(home))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"stopped 2 node(s); removed their folders from {home}"
        assert not any(processes_under(n.dir) for n in nodes)
        assert all(port_is_free(p) for p in ports)
        assert not (home / "nodes").exists() and not (home / "state.json").exists()
        assert not list(home.glob("*-password"))

        proc = run_cli("sandbox", "status", "--home", str(home))
        assert proc.returncode == 0 and "no sandbox is up" in proc.stdout
    finally:
        Sandbox(home).down()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


# -- the other destinations, started on demand ---------------------------------------------


def test_opensearch_destination_has_the_module_and_no_allowlist(source, opensearch_destination):
    with opensearch_destination.client() as client:
        info = client.info()
        assert (info.flavor, info.version) == ("opensearch", "2.19.6")
        body = {"source": {"remote": {"host": source.url}, "index": source.index}, "dest": {"index": "x"}}
        resp = client.request("POST", "/_reindex", body=body)
        assert resp.status == 400
        assert resp.json()["error"]["reason"] == f"[localhost:{source.node.http_port}] not allowlisted in reindex.remote.allowlist"


def test_es9_destination_runs_without_a_reindex_module(es9_destination):
    with es9_destination.client() as client:
        info = client.info()  # GET / is 405 on this zip: the client falls back to _nodes
        assert (info.flavor, info.version) == ("elasticsearch", "9.2.0")
        client.call("PUT", "/t", body={"settings": {"number_of_replicas": 0}})
        client.call("PUT", "/t/_doc/1", body={"a": 1}, params={"refresh": "true"})
        assert client.call("GET", "/t/_count")["count"] == 1
        assert client.request("POST", "/_reindex", body={"source": {"index": "t"}, "dest": {"index": "u"}}).status in (400, 404, 405)


def test_throttled_destination_rejects_concurrent_bulks_per_item(throttled_destination):
    from concurrent.futures import ThreadPoolExecutor

    with throttled_destination.client(maxsize=16) as client:
        client.call("PUT", "/load", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
        lines = b"".join(orjson.dumps({"index": {"_index": "load"}}) + b"\n" + orjson.dumps({"n": i, "pad": "x" * 200}) + b"\n" for i in range(500))

        def bulk(_: int):
            return client.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson", timeout=120)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(bulk, range(16)))
    statuses = [next(iter(item.values()))["status"] for answer in answers for item in answer["items"]]
    assert 429 in statuses
    assert set(statuses) <= {201, 429}


def test_second_source_has_its_own_ca(source, second_source):
    assert second_source.ca_file.read_bytes() != source.ca_file.read_bytes()
    auth = Auth.basic(second_source.username, password_of(second_source))
    with ClusterClient(second_source.url, ca_file=str(second_source.ca_file), auth=auth) as client:
        assert client.call("GET", f"/{second_source.index}/_count")["count"] == 200
        assert client.call("GET", f"/{second_source.index}/_doc/{sample_id(0)}")["_source"] == sample_document(0, 7)
    with ClusterClient(second_source.url, ca_file=str(source.ca_file), auth=auth) as client:
        with pytest.raises(TLSError) as caught:
            client.info()
    assert caught.value.cause == "untrusted_issuer"


def test_a_node_that_cannot_start_reports_its_log_and_leaves_nothing_running(sandbox):
    from remote_reindex.errors import SandboxError

    with pytest.raises(SandboxError) as caught:
        sandbox.start_extra_destination("elasticsearch", name="broken", settings={"no.such.setting": 1})
    exc = caught.value
    assert exc.cause == "node_start_failed" and exc.exit_code == 10
    assert exc.message.startswith("Elasticsearch 7.17.29 node 'broken' did not start: the node process exited")
    assert "unknown setting [no.such.setting]" in exc.message
    assert exc.fix.startswith("Read the node's log: tail -n 50 ") and Path(exc.fix.split()[-1]).is_file()
    assert not processes_under(sandbox.home / "nodes" / "broken")
    assert "broken" not in sandbox.extra_destinations
    assert "broken" not in Sandbox(sandbox.home).status().get("extra_destinations", {})


def test_multi_node_destination_forms_one_cluster(extra_destination):
    side = extra_destination("elasticsearch", name="pair", nodes=2)
    assert len(side.nodes) == 2 and len({n.http_port for n in side.nodes}) == 2
    for node in side.nodes:
        with node.client() as client:
            health = client.call("GET", "/_cluster/health")
            assert (health["cluster_name"], health["number_of_nodes"]) == ("rr-pair", 2)
