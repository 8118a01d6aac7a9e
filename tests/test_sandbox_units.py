"""Fast tests of the sandbox's pure logic (no nodes)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest
from cryptography import x509

from remote_reindex.errors import SandboxError, UsageError
from remote_reindex.sandbox import Distribution, Sandbox, issue_node_certificates, new_home, sample_document, sample_documents, validate_bundle
from remote_reindex.sandbox.distributions import find_java_home, install_reindex_module
from remote_reindex.sandbox.node import Node, flatten_settings, free_port, port_is_free
from remote_reindex.sandbox.sandbox import read_settings_yaml
from remote_reindex.sandbox.users import write_file_realm_user, write_password_file
from remote_reindex.tls.context import make_ssl_context

CLI = [sys.executable, "-m", "remote_reindex.cli.main"]


# -- sample data ---------------------------------------------------------------------------


def test_sample_documents_are_deterministic_and_about_one_kilobyte():
    assert sample_document(5, 42) == sample_document(5, 42)
    assert sample_document(5, 42) != sample_document(5, 43)
    sizes = [len(orjson.dumps(doc)) for _, doc in sample_documents(200)]
    assert 700 <= sum(sizes) / len(sizes) <= 1400
    ids = [doc_id for doc_id, _ in sample_documents(3, start=10)]
    assert ids == ["p00000010", "p00000011", "p00000012"]
    doc = sample_document(0)
    assert isinstance(doc["reviews"], list) and {"user", "stars", "text", "at"} <= set(doc["reviews"][0])
    assert doc["created_at"].endswith("Z") and isinstance(doc["price"], float)


# -- certificates --------------------------------------------------------------------------


def test_certificates_chain_root_intermediate_leaf(tmp_path):
    certs = issue_node_certificates(tmp_path)
    chain = x509.load_pem_x509_certificates(certs.chain_file.read_bytes())
    root = x509.load_pem_x509_certificate(certs.ca_file.read_bytes())
    intermediate = x509.load_pem_x509_certificate(certs.intermediate_file.read_bytes())
    assert len(chain) == 2 and chain[1] == intermediate
    assert chain[0].issuer == intermediate.subject and intermediate.issuer == root.subject
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert certs.key_file.stat().st_mode & 0o777 == 0o600
    make_ssl_context(certs.ca_file)  # the user's CA file loads as a trust store


def test_two_sandboxes_get_different_cas(tmp_path):
    a = issue_node_certificates(tmp_path / "a")
    b = issue_node_certificates(tmp_path / "b")
    assert a.ca_file.read_bytes() != b.ca_file.read_bytes()


# -- users and secrets -----------------------------------------------------------------------


def test_password_file_is_created_private(tmp_path):
    path = write_password_file(tmp_path / "pw", "s3cret")
    assert path.read_text() == "s3cret\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_file_realm_user_is_a_bcrypt_hash_not_the_password(tmp_path):
    import bcrypt

    write_file_realm_user(tmp_path, "reindexer", "pw-123")
    name, hashed = (tmp_path / "users").read_text().strip().split(":", 1)
    assert name == "reindexer" and hashed.startswith("$2") and "pw-123" not in hashed
    assert bcrypt.checkpw(b"pw-123", hashed.encode())
    assert (tmp_path / "users_roles").read_text() == "superuser:reindexer\n"


# -- node configuration ----------------------------------------------------------------------


def test_flatten_settings():
    assert flatten_settings({"reindex": {"remote": {"whitelist": ("a:1",)}}, "x.y": 1}) == {"reindex.remote.whitelist": ["a:1"], "x.y": 1}


def test_secured_elasticsearch_8_node_config(tmp_path):
    certs = issue_node_certificates(tmp_path / "pki")
    from remote_reindex.sandbox.node import NodeLogin, NodeTLS

    node = Node("src", Distribution("elasticsearch", "8.8.2"), tmp_path / "n", tls=NodeTLS(certs), login=NodeLogin("u", tmp_path / "pw"))
    s = node.base_settings()
    assert s["xpack.security.enabled"] is True and s["xpack.security.transport.ssl.enabled"] is False
    assert s["xpack.security.http.ssl.certificate"] == "certs/node.crt"
    assert s["discovery.type"] == "single-node" and s["network.host"] == "127.0.0.1"
    assert node.url == f"https://localhost:{node.http_port}"


def test_plain_destination_configs():
    es9 = Node("d", Distribution("elasticsearch", "9.2.0"), Path("/nonexistent/d"))
    assert es9.base_settings()["xpack.security.enabled"] is False and "xpack.ml.enabled" not in es9.base_settings()
    os_node = Node("o", Distribution("opensearch", "2.19.6"), Path("/nonexistent/o"), seed_hosts=["127.0.0.1:1"], initial_masters=["o"])
    s = os_node.base_settings()
    assert "xpack.security.enabled" not in s and s["cluster.initial_cluster_manager_nodes"] == ["o"] and "discovery.type" not in s
    assert os_node.config_file.name == "opensearch.yml" and os_node.url.startswith("http://")


def test_node_state_round_trip(tmp_path):
    node = Node("d", Distribution("opensearch", "2.19.6"), tmp_path, settings={"a.b": 1}, reindex_module=True)
    again = Node.from_state(orjson.loads(orjson.dumps(node.to_state())))
    assert again.to_state() == node.to_state()


def test_free_port_is_free():
    port = free_port()
    assert port_is_free(port)


def test_java_homes():
    assert (find_java_home(Distribution("elasticsearch", "9.2.0")) / "bin" / "java").exists()
    java17 = find_java_home(Distribution("elasticsearch", "7.17.29"))
    assert 'JAVA_VERSION="17' in (java17 / "release").read_text() or 'JAVA_VERSION="21' in (java17 / "release").read_text()


def test_reindex_module_skips_jars_already_in_lib(tmp_path):
    home = tmp_path / "es"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "elasticsearch-core-7.17.29.jar").write_bytes(b"x")
    jars = tmp_path / "jars"
    jars.mkdir()
    for name in ("reindex-client-7.17.29.jar", "elasticsearch-core-7.17.29.jar", "httpclient-4.5.14.jar"):
        (jars / name).write_bytes(b"x")
    module = install_reindex_module(Distribution("elasticsearch", "7.17.29"), home, jars)
    assert sorted(p.name for p in module.glob("*.jar")) == ["httpclient-4.5.14.jar", "reindex-client-7.17.29.jar"]
    props = (module / "plugin-descriptor.properties").read_text()
    assert "elasticsearch.version=7.17.29\n" in props and "classname=org.elasticsearch.reindex.ReindexPlugin\n" in props
    assert 'SocketPermission "*", "connect"' in (module / "plugin-security.policy").read_text()


def test_unknown_flavor_is_refused():
    with pytest.raises(SandboxError):
        Distribution("solr", "9")


# -- bundle and settings validation (configure-destination) --------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_bundle_validation(tmp_path):
    pem = issue_node_certificates(tmp_path / "pki").ca_file.read_bytes()
    assert validate_bundle(_zip(tmp_path / "ok.zip", {"my_ca/cacert.pem": pem}))[0] == "my_ca"
    cases = {
        "flat.zip": ({"cacert.pem": pem}, "must hold exactly one folder NAME with NAME/cacert.pem"),
        "two.zip": ({"a/cacert.pem": pem, "b/cacert.pem": pem}, "must hold exactly one folder"),
        "named.zip": ({"my_ca/ca.crt": pem}, "has no my_ca/cacert.pem"),
        "nopem.zip": ({"my_ca/cacert.pem": b"hello"}, "holds no PEM certificate"),
        "evil.zip": ({"../x/cacert.pem": pem}, "unsafe paths"),
    }
    for name, (members, text) in cases.items():
        with pytest.raises(UsageError) as caught:
            validate_bundle(_zip(tmp_path / name, members))
        assert text in caught.value.message, name
    (tmp_path / "not.zip").write_text("nope")
    with pytest.raises(UsageError, match="is not a zip file"):
        validate_bundle(tmp_path / "not.zip")
    with pytest.raises(UsageError, match="bundle not found"):
        validate_bundle(tmp_path / "missing.zip")


def test_settings_yaml_validation(tmp_path):
    good = tmp_path / "s.yml"
    good.write_text('reindex.remote.whitelist: ["localhost:9200"]\nreindex.ssl.verification_mode: full\n')
    assert read_settings_yaml(good) == {"reindex.remote.whitelist": ["localhost:9200"], "reindex.ssl.verification_mode": "full"}
    for text, message in [("", "is empty"), ("- a\n- b\n", "must be a mapping"), ("a: [b\n", "is not valid YAML at line")]:
        (tmp_path / "bad.yml").write_text(text)
        with pytest.raises(UsageError) as caught:
            read_settings_yaml(tmp_path / "bad.yml")
        assert message in caught.value.message


# -- CLI bad input: two lines, an exit code, no traceback, nothing written -------------------


def test_cli_rejects_unknown_destination_without_writing(tmp_path):
    home = new_home("pytest-bad-")
    try:
        proc = subprocess.run([*CLI, "sandbox", "up", "--destination", "solr", "--home", str(home)], capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == ["error: unknown destination 'solr'", "fix: Use one of: elasticsearch, opensearch, elasticsearch-9."]
        assert list(home.iterdir()) == []
    finally:
        home.rmdir()


def test_cli_configure_destination_with_a_bad_bundle(tmp_path):
    (tmp_path / "s.yml").write_text("a: 1\n")
    _zip(tmp_path / "b.zip", {"cacert.pem": b"x"})
    proc = subprocess.run(
        [*CLI, "sandbox", "configure-destination", "--bundle", str(tmp_path / "b.zip"), "--settings", str(tmp_path / "s.yml"), "--home", str(tmp_path / "none")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: the bundle b.zip must hold exactly one folder") and lines[1].startswith("fix: ")
    assert "Traceback" not in proc.stderr and not (tmp_path / "none").exists()


def test_cli_configure_destination_without_a_sandbox(tmp_path):
    pem = issue_node_certificates(tmp_path / "pki").ca_file.read_bytes()
    _zip(tmp_path / "ca.zip", {"ca/cacert.pem": pem})
    (tmp_path / "s.yml").write_text("a: 1\n")
    home = new_home("pytest-empty-")
    try:
        proc = subprocess.run([*CLI, "sandbox", "configure-destination", "--bundle", str(tmp_path / "ca.zip"), "--settings", str(tmp_path / "s.yml"), "--home", str(home)], capture_output=True, text=True)
        assert proc.returncode == 10
        assert proc.stderr.splitlines() == [f"error: no sandbox is up in {home}", f"fix: Run 'remote-reindex sandbox up --home {home}' first."]
    finally:
        import shutil

        shutil.rmtree(home)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs nodes as another user")
def test_home_under_a_closed_folder_is_refused():
    proc = subprocess.run([*CLI, "sandbox", "up", "--home", "/root/rr-sandbox-test"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith("error: the sandbox home /root/rr-sandbox-test is inside /root, which the node user 'esnode' cannot enter")
    assert not Path("/root/rr-sandbox-test").exists()


def test_status_of_an_empty_home(tmp_path):
    home = new_home("pytest-status-")
    try:
        status = Sandbox(home).status()
        assert (status["up"], status["source"], status["destination"]) == (False, None, None)
    finally:
        home.rmdir()


def test_status_and_down_of_a_missing_home_create_nothing(tmp_path):
    home = tmp_path / "nosuch"
    status = subprocess.run([*CLI, "sandbox", "status", "--home", str(home)], capture_output=True, text=True)
    assert (status.returncode, status.stdout, status.stderr) == (0, f"no sandbox in {home} (start one with 'remote-reindex sandbox up --home {home}')\n", "")
    down = subprocess.run([*CLI, "sandbox", "down", "--home", str(home)], capture_output=True, text=True)
    assert (down.returncode, down.stdout, down.stderr) == (0, f"no sandbox in {home}: nothing to stop\n", "")
    assert Sandbox(home).down() == 0
    assert not home.exists()
