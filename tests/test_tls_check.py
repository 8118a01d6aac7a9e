"""``ca check``: every diagnosis comes from a real handshake with a loopback server."""

from __future__ import annotations

import datetime as dt
import os
import ssl

import orjson
import pytest
import trustme
from typer.testing import CliRunner

from remote_reindex.cli.main import app
from remote_reindex.tls.diagnose import EXIT_CODES
from tls_servers import NOW, Behaviour, Server, SilentServer, closed_port, s_client_output, self_signed_pki, trustme_pki

runner = CliRunner()
PASSWORD = "s3cret-Pa55"


def check(*args: str, env: dict | None = None):
    result = runner.invoke(app, ["ca", "check", *args, "--json"], env=env)
    data = orjson.loads(result.stdout)
    assert result.exit_code == data["exit_code"] == EXIT_CODES[data["cause"]]
    assert "Traceback" not in result.output
    return data


def test_environment_points_at_the_system_bundle():
    """The explicit CA must win over these; the tests are only meaningful with them set."""
    assert os.environ.get("SSL_CERT_FILE") and os.environ.get("REQUESTS_CA_BUNDLE")


def test_ok_with_root_reports_cluster_and_anchor(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki, Behaviour(user="elastic", password=PASSWORD)) as server:
        data = check(server.url(), "--ca", str(pki.root_file), "--user", "elastic", "--password-env", "SRC_PW", env={"SRC_PW": PASSWORD})
        plain = runner.invoke(app, ["ca", "check", server.url(), "--ca", str(pki.root_file), "--user", "elastic", "--password-env", "SRC_PW"], env={"SRC_PW": PASSWORD})
    assert data["ok"] is True and data["cause"] == "ok"
    assert (data["version"], data["flavor"], data["cluster_name"]) == ("7.17.29", "elasticsearch", "private-ca-source")
    assert data["anchor"]["self_signed"] is True
    assert data["message"].startswith(f"https://127.0.0.1:{server.port} is Elasticsearch 7.17.29 (cluster private-ca-source); TLS verified with")
    assert plain.exit_code == 0
    assert PASSWORD not in plain.output and PASSWORD not in orjson.dumps(data).decode()


def test_guide_s_client_file_works_as_ca(tmp_path):
    """Leaf + intermediate with text around them: Java and curl accept it, so must we."""
    pki = trustme_pki(tmp_path)
    sclient = pki.write("s_client.txt", s_client_output(pki))
    with Server(pki) as server:
        data = check(server.url("localhost"), "--ca", str(sclient))
    assert data["ok"] is True
    assert data["anchor"]["is_ca"] is True  # the intermediate anchored, not the leaf
    assert data["warnings"] == []


def test_leaf_as_ca_file_warns_about_renewal(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.leaf_file))
    assert data["ok"] is True
    assert any(w.startswith("the CA file anchors trust at the server's own certificate (the leaf)") for w in data["warnings"])


def test_untrusted_issuer(tmp_path):
    pki = trustme_pki(tmp_path)
    other = pki.write("other.pem", trustme.CA().cert_pem.bytes())
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(other))
    assert data["cause"] == "untrusted_issuer" and data["exit_code"] == 20
    assert data["message"].startswith(f"TLS: the chain of 127.0.0.1:{server.port} (top: OU=Testing CA")
    assert f"is not anchored by any certificate in {other}" in data["message"]
    assert data["fix"].startswith("Give the CA that issued OU=Testing CA")


def test_server_sends_leaf_only_intermediate_missing(tmp_path):
    pki = trustme_pki(tmp_path, send="leaf")
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["cause"] == "untrusted_issuer"
    assert data["message"].startswith(f"TLS: 127.0.0.1:{server.port} sent only its own certificate, issued by OU=Testing CA")
    assert data["message"].endswith("(intermediate CA missing)")
    assert "make the server send its full chain" in data["fix"]


def test_root_not_sent_but_root_given_is_ok(tmp_path):
    pki = trustme_pki(tmp_path, send="leaf+inter")
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["ok"] is True
    assert len(data["chain"]) == 2


def test_self_signed_not_in_ca_file(tmp_path):
    pki = self_signed_pki(tmp_path)
    other = pki.write("other.pem", trustme.CA().cert_pem.bytes())
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(other))
        ok = check(server.url(), "--ca", str(pki.leaf_file))
    assert data["cause"] == "untrusted_issuer"
    assert data["message"] == f"TLS: 127.0.0.1:{server.port} uses a self-signed certificate (CN=self-signed-node) that is not in {other}"
    assert ok["ok"] is True


def test_expired(tmp_path):
    pki = trustme_pki(tmp_path, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["cause"] == "expired" and data["exit_code"] == 22
    assert data["message"].startswith("TLS: the certificate OU=Testing cert")
    assert f"of 127.0.0.1:{server.port} expired on " in data["message"]


def test_not_yet_valid(tmp_path):
    pki = trustme_pki(tmp_path, not_before=NOW + dt.timedelta(days=2), not_after=NOW + dt.timedelta(days=30))
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["cause"] == "not_yet_valid" and data["exit_code"] == 23
    assert "is not valid before" in data["message"]


def test_hostname_not_in_sans(tmp_path):
    pki = trustme_pki(tmp_path, "es.internal.example")
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["cause"] == "hostname_mismatch" and data["exit_code"] == 21
    assert data["message"] == "TLS: 127.0.0.1 is not in the server certificate's SANs (DNS:es.internal.example)"
    assert "verification_mode: certificate" in data["fix"]


def test_hostname_mismatch_names_the_servername_checked(tmp_path):
    pki = trustme_pki(tmp_path, "es.internal.example")
    with Server(pki) as server:
        data = check(server.url(), "--servername", "other.example", "--ca", str(pki.root_file))
    assert data["cause"] == "hostname_mismatch"
    assert data["message"] == "TLS: other.example is not in the server certificate's SANs (DNS:es.internal.example)"


def test_untrusted_issuer_with_a_big_ca_file_stays_one_line(tmp_path):
    pki = trustme_pki(tmp_path)
    many = pki.write("many.pem", b"".join(trustme.CA(organization_name=f"other {i}").cert_pem.bytes() for i in range(10)))
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(many))
    assert data["cause"] == "untrusted_issuer"
    assert data["message"].count("O=other ") == 3 and data["message"].endswith("; and 7 more)")


@pytest.mark.parametrize("key_type", [trustme.KeyType.RSA, trustme.KeyType.ECDSA])
def test_rsa_and_ecdsa(tmp_path, key_type):
    pki = trustme_pki(tmp_path, key_type=key_type)
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["ok"] is True
    assert data["chain"][0]["key"] == ("RSA 2048" if key_type == trustme.KeyType.RSA else "EC secp256r1")


def test_tls12_only(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki, tls_max=ssl.TLSVersion.TLSv1_2) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["ok"] is True


def test_plain_http_on_the_port(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(None) as server:
        data = check(f"https://127.0.0.1:{server.port}", "--ca", str(pki.root_file))
    assert data["cause"] == "not_tls" and data["exit_code"] == 24
    assert data["message"] == f"127.0.0.1:{server.port} does not speak TLS (plain HTTP on this port?)"


def test_https_but_not_elasticsearch(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki, Behaviour(kind="html")) as server:
        data = check(server.url(), "--ca", str(pki.root_file))
    assert data["cause"] == "not_elasticsearch" and data["exit_code"] == 25
    assert data["message"] == f"https://127.0.0.1:{server.port} answered, but not as Elasticsearch or OpenSearch"


def test_auth_failed(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki, Behaviour(user="elastic", password=PASSWORD)) as server:
        data = check(server.url(), "--ca", str(pki.root_file), "--user", "elastic", "--password-env", "SRC_PW", env={"SRC_PW": "wrong-password"})
    assert data["cause"] == "auth_failed" and data["exit_code"] == 26
    assert data["message"] == f"127.0.0.1:{server.port} refused the credentials (401) for GET /"
    assert "wrong-password" not in orjson.dumps(data).decode()


def test_api_key_auth(tmp_path):
    pki = trustme_pki(tmp_path)
    with Server(pki, Behaviour(api_key="a2V5OnNlY3JldA==")) as server:
        data = check(server.url(), "--ca", str(pki.root_file), "--api-key-env", "SRC_KEY", env={"SRC_KEY": "a2V5OnNlY3JldA=="})
    assert data["ok"] is True


def test_missing_read_privilege_is_forbidden(tmp_path):
    pki = trustme_pki(tmp_path)
    behaviour = Behaviour(user="reader", password=PASSWORD, privileges={"logs": True, "metrics": False})
    with Server(pki, behaviour) as server:
        env = {"SRC_PW": PASSWORD}
        bad = check(server.url(), "--ca", str(pki.root_file), "--user", "reader", "--password-env", "SRC_PW", "--index", "logs", "--index", "metrics", env=env)
        good = check(server.url(), "--ca", str(pki.root_file), "--user", "reader", "--password-env", "SRC_PW", "--index", "logs", env=env)
    assert bad["cause"] == "forbidden" and bad["exit_code"] == 27
    assert bad["message"] == "reader lacks privileges remote reindex needs on the source: 'read' on index metrics"
    assert good["ok"] is True and good["privileges"]["has_all_requested"] is True
    assert ("POST", "/_security/user/_has_privileges") in behaviour.requests


def test_connection_refused(tmp_path):
    pki = trustme_pki(tmp_path)
    port = closed_port()
    data = check(f"https://127.0.0.1:{port}", "--ca", str(pki.root_file))
    assert data["cause"] == "connection_refused" and data["exit_code"] == 28
    assert data["message"] == f"connection refused by 127.0.0.1:{port}"


def test_handshake_timeout(tmp_path):
    pki = trustme_pki(tmp_path)
    with SilentServer() as silent:
        data = check(f"https://127.0.0.1:{silent.port}", "--ca", str(pki.root_file), "--timeout", "0.5")
    assert data["cause"] == "timeout" and data["exit_code"] == 29
    assert data["message"] == f"127.0.0.1:{silent.port} accepted the connection but did not complete a TLS handshake in 0.5s"


def test_dns(tmp_path):
    pki = trustme_pki(tmp_path)
    data = check("https://no-such-host.invalid:9200", "--ca", str(pki.root_file))
    assert data["cause"] == "dns" and data["exit_code"] == 30
    assert data["message"] == "cannot resolve the host 'no-such-host.invalid'"


def test_human_output_two_lines(tmp_path):
    pki = trustme_pki(tmp_path, "es.internal.example")
    with Server(pki) as server:
        result = runner.invoke(app, ["ca", "check", server.url(), "--ca", str(pki.root_file)])
    assert result.exit_code == 21
    assert result.stderr.splitlines() == [
        "error: TLS: 127.0.0.1 is not in the server certificate's SANs (DNS:es.internal.example)",
        "fix: Use a name from the SANs in the URL and in reindex.remote.whitelist, or set reindex.ssl.verification_mode: certificate (checks the chain, not the name).",
    ]


# -- bad input ------------------------------------------------------------------------


def _bad(args: list[str], env: dict | None = None):
    result = runner.invoke(app, ["ca", "check", *args], env=env)
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr.splitlines()


def test_check_bad_url_without_scheme(tmp_path):
    code, lines = _bad(["localhost:9200", "--ca", "x.pem"])
    assert (code, lines[0]) == (2, "error: URL has no scheme: 'localhost:9200'")


def test_check_ca_file_missing():
    code, lines = _bad(["https://localhost:9200", "--ca", "/nonexistent/ca.pem"])
    assert (code, lines[0]) == (2, "error: CA file not found: /nonexistent/ca.pem")


def test_check_ca_file_is_a_private_key(tmp_path):
    key = tmp_path / "key.pem"
    key.write_bytes(trustme.CA().private_key_pem.bytes())
    code, lines = _bad(["https://localhost:9200", "--ca", str(key)])
    assert (code, lines[0]) == (2, f"error: {key} holds a private key, not a CA certificate")


def test_check_https_without_ca():
    code, lines = _bad(["https://localhost:9200"])
    assert (code, lines[0]) == (2, "error: ca check needs --ca FILE for an https:// URL")


def test_check_password_env_unset(tmp_path):
    code, lines = _bad(["https://localhost:9200", "--ca", "x.pem", "--user", "elastic", "--password-env", "NO_SUCH_VAR_XYZ"], env={"NO_SUCH_VAR_XYZ": None})
    assert (code, lines[0]) == (2, "error: environment variable NO_SUCH_VAR_XYZ is not set (it should hold the password)")


def test_check_two_auth_methods():
    code, lines = _bad(["https://localhost:9200", "--ca", "x.pem", "--user", "a", "--api-key-env", "K"])
    assert (code, lines[0]) == (2, "error: choose one authentication: --user, --api-key-env or --bearer-env")


def test_check_user_without_password_and_no_terminal_does_not_prompt():
    """CliRunner's stdin is not a terminal: no getpass warnings, no 'Aborted.', two lines."""
    code, lines = _bad(["http://127.0.0.1:1", "--user", "reindexer"])
    assert (code, lines) == (2, ["error: no password for user reindexer (no terminal to ask)", "fix: Pass --password-env VAR or --password-file FILE."])


def test_check_user_without_password_real_binary_stdin_closed():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "remote_reindex.cli.main", "ca", "check", "http://127.0.0.1:1", "--user", "reindexer"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: no password for user reindexer (no terminal to ask)", "fix: Pass --password-env VAR or --password-file FILE."]
    assert proc.stdout == ""


def test_index_that_does_not_exist_fails(tmp_path):
    """Privileges are granted on names (a superuser 'has' read on any name): existence is checked apart."""
    pki = trustme_pki(tmp_path)
    behaviour = Behaviour(user="reader", password=PASSWORD, privileges={"logs": True, "nosuchindex": True}, indices={"logs"})
    with Server(pki, behaviour) as server:
        args = [server.url(), "--ca", str(pki.root_file), "--user", "reader", "--password-env", "SRC_PW"]
        data = check(*args, "--index", "nosuchindex", env={"SRC_PW": PASSWORD})
        text = runner.invoke(app, ["ca", "check", *args, "--index", "nosuchindex"], env={"SRC_PW": PASSWORD})
    assert data["ok"] is False and data["cause"] == "index_not_found" and data["exit_code"] == 34
    assert data["message"] == "index nosuchindex does not exist on the source"
    assert text.exit_code == 34
    assert text.stderr.splitlines() == [
        "error: index nosuchindex does not exist on the source",
        "fix: Check the name against the source's indices (GET /_cat/indices?v on the source), or leave out --index to check only the connection.",
    ]


def test_text_output_names_the_privileges_checked(tmp_path):
    pki = trustme_pki(tmp_path)
    behaviour = Behaviour(user="reader", password=PASSWORD, privileges={"logs": True})
    with Server(pki, behaviour) as server:
        result = runner.invoke(app, ["ca", "check", server.url(), "--ca", str(pki.root_file), "--user", "reader", "--password-env", "SRC_PW", "--index", "logs"], env={"SRC_PW": PASSWORD})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "privileges checked for reader: cluster 'monitor' yes, 'read' on index logs yes"


def test_untrusted_issuer_json_has_the_chain(tmp_path):
    pki = trustme_pki(tmp_path)
    other = pki.write("other.pem", trustme.CA().cert_pem.bytes())
    with Server(pki) as server:
        data = check(server.url(), "--ca", str(other))
    assert data["cause"] == "untrusted_issuer"
    assert len(data["chain"]) == 2
    assert data["chain"][1]["subject"] in data["message"]
