"""``lint-settings``: every problem with its line and the fixed line."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from remote_reindex.bundle import build_bundle
from remote_reindex.cli.main import app
from remote_reindex.settings import lint_text
from tls_servers import trustme_pki

runner = CliRunner()


def problems(text: str, **kw) -> list[tuple[int, str, str, str | None]]:
    return [(p.line, p.severity, p.message, p.fixed) for p in lint_text(text, **kw).problems]


def test_clean_file():
    text = 'reindex.remote.whitelist: ["es1:9200", "10.0.0.*:9200"]\nreindex.ssl.certificate_authorities: "/app/config/my_source_ca/cacert.pem"\nreindex.ssl.verification_mode: certificate\n'
    assert problems(text) == []


def test_scheme_path_and_port_in_block_list():
    text = "reindex.remote.whitelist:\n  - es1:9200\n  - https://es2:9243/\n  - es3\n"
    assert problems(text) == [
        (3, "error", "'https://es2:9243/' has a scheme: entries are HOST:PORT only (the destination never matches it)", '  - "es2:9243"'),
        (3, "error", "'https://es2:9243/' has a path: entries are HOST:PORT only", '  - "es2:9243"'),
        (4, "error", "'es3' has no port: the destination matches host AND port (9200 assumed in the fixed line)", '  - "es3:9200"'),
    ]


def test_comma_string():
    assert problems('reindex.remote.whitelist: "a:9200, b:9200"\n') == [
        (1, "error", "reindex.remote.whitelist is a comma-separated string where a YAML list is expected", 'reindex.remote.whitelist: ["a:9200", "b:9200"]'),
    ]


def test_wrong_key_for_flavor_and_version():
    es = problems('reindex.remote.allowlist: ["a:9200"]\n', flavor="elasticsearch")
    assert es == [(1, "error", "Elasticsearch does not know reindex.remote.allowlist (that is OpenSearch's name): use reindex.remote.whitelist", 'reindex.remote.whitelist: ["a:9200"]')]
    os2 = problems('reindex.remote.whitelist: ["a:9200"]\n', flavor="opensearch", version="2.19.6")
    assert [(p[0], p[1], p[3]) for p in os2] == [(1, "warning", 'reindex.remote.allowlist: ["a:9200"]')]
    os3 = problems('reindex.remote.whitelist: ["a:9200"]\n', flavor="opensearch", version="3.0")
    assert os3[0][:3] == (1, "error", "OpenSearch 3 removed reindex.remote.whitelist: use reindex.remote.allowlist")


def test_ca_path_must_match_bundle(tmp_path):
    pki = trustme_pki(tmp_path)
    zip_path = build_bundle([pki.root_file], name="src_ca", out_dir=tmp_path).zip_path
    bad = tmp_path / "s.yml"
    bad.write_text("reindex.remote.whitelist: [\"a:9200\"]\nreindex.ssl.certificate_authorities:\n  - my_source_ca/ca.crt\n")
    result = runner.invoke(app, ["lint-settings", str(bad), "--bundle", str(zip_path), "--json"])
    assert result.exit_code == 1
    data = orjson.loads(result.stdout)
    assert data["problems"] == [
        {"line": 3, "severity": "error", "key": "reindex.ssl.certificate_authorities", "message": "CA path 'my_source_ca/ca.crt' does not match: the bundle holds src_ca/cacert.pem", "fixed": '  - "src_ca/cacert.pem"'}
    ]
    cloud = lint_text('reindex.remote.whitelist: ["a:9200"]\nreindex.ssl.certificate_authorities: "/app/config/other/cacert.pem"\n', bundle=__import__("remote_reindex.bundle", fromlist=["x"]).read_bundle(zip_path))
    assert [(p.line, p.fixed) for p in cloud.problems] == [(2, 'reindex.ssl.certificate_authorities: "/app/config/src_ca/cacert.pem"')]
    good = tmp_path / "good.yml"
    good.write_text('reindex.remote.whitelist: ["a:9200"]\nreindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]\n')
    ok = runner.invoke(app, ["lint-settings", str(good), "--bundle", str(zip_path)])
    assert ok.exit_code == 0 and ok.stdout.strip() == "0 error(s), 0 warning(s)"


def test_self_managed_target_with_the_cloud_folder(tmp_path):
    """A Cloud path pasted into a self-managed node's settings: the fix is the relative path."""
    from remote_reindex.bundle import read_bundle

    pki = trustme_pki(tmp_path)
    zip_path = build_bundle([pki.root_file], name="src_ca", out_dir=tmp_path).zip_path
    p = problems('reindex.remote.whitelist: ["a:9200"]\nreindex.ssl.certificate_authorities: ["/app/config/src_ca/cacert.pem"]\n', bundle=read_bundle(zip_path), target="self-managed")
    assert p == [(2, "error", "CA path '/app/config/src_ca/cacert.pem' does not match: the bundle holds src_ca/cacert.pem", 'reindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]')]


def test_cloud_target_without_app_config():
    p = problems('reindex.ssl.certificate_authorities: "my_source_ca/cacert.pem"\n', target="cloud")
    assert p == [(1, "error", "CA path 'my_source_ca/cacert.pem' does not match: Elastic Cloud unpacks bundles under /app/config/", 'reindex.ssl.certificate_authorities: "/app/config/my_source_ca/cacert.pem"')]


def test_verification_modes():
    assert problems("reindex.ssl.verification_mode: ful\n") == [(1, "error", "unknown verification mode 'ful': use full, certificate or none", "reindex.ssl.verification_mode: full")]
    none = problems("reindex.ssl.verification_mode: none\n")
    assert none[0][1] == "warning" and "trusts ANY certificate" in none[0][2]


def test_ca_and_truststore_both():
    text = 'reindex.ssl.certificate_authorities: ["a/cacert.pem"]\nreindex.ssl.truststore.path: "truststore.p12"\n'
    assert problems(text)[0][:2] == (2, "error")
    assert problems(text)[0][2].startswith("both reindex.ssl.certificate_authorities and reindex.ssl.truststore.path are set")


def test_tls_keys_in_the_wrong_place_nested_yaml():
    text = "reindex:\n  remote:\n    whitelist: [\"a:9200\"]\n    ssl.certificate_authorities: x/cacert.pem\n  ssl:\n    verfication_mode: full\nxpack.security.http.ssl.certificate_authorities: [\"my_source_ca/cacert.pem\"]\npersistent.reindex.remote.whitelist: [\"a:1\"]\n"
    got = problems(text)
    assert got == [
        (4, "error", "reindex.remote.ssl.certificate_authorities is not a setting: TLS for remote reindex lives under reindex.ssl.*", None),
        (6, "error", "unknown setting reindex.ssl.verfication_mode (did you mean reindex.ssl.verification_mode?)", None),
        (7, "warning", "xpack.security.http.ssl.certificate_authorities configures this cluster's own TLS, not its connection to the remote: remote reindex reads reindex.ssl.certificate_authorities", 'reindex.ssl.certificate_authorities: ["my_source_ca/cacert.pem"]'),
        (8, "error", "reindex.remote.whitelist is a static node setting: it cannot be a persistent cluster setting", None),
    ]


def test_flat_misplaced_key_gets_a_fixed_line():
    assert problems("reindex.remote.certificate_authorities: a/cacert.pem\n") == [
        (1, "error", "reindex.remote.certificate_authorities is not a setting: TLS for remote reindex lives under reindex.ssl.*", "reindex.ssl.certificate_authorities: a/cacert.pem")
    ]


def test_yaml_syntax_error_line():
    got = problems('reindex.remote.whitelist: ["a:9200",\nreindex.ssl.verification_mode: full\n')
    assert got[0][0] == 1 and got[0][2].startswith("YAML syntax error:")
    dup = problems("a: 1\na: 2\n")
    assert dup[0][:2] == (2, "error")


def test_cli_text_output_and_exit(tmp_path):
    f = tmp_path / "s.yml"
    f.write_text("reindex.remote.whitelist:\n  - https://es:9200\n")
    result = runner.invoke(app, ["lint-settings", str(f)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{f}:2: error: 'https://es:9200' has a scheme: entries are HOST:PORT only (the destination never matches it)",
        '    fixed:   - "es:9200"',
        "1 error(s), 0 warning(s)",
    ]


def test_warnings_only_exit_zero(tmp_path):
    f = tmp_path / "s.yml"
    f.write_text('reindex.remote.whitelist: ["a:9200"]\nreindex.ssl.verification_mode: none\n')
    assert runner.invoke(app, ["lint-settings", str(f)]).exit_code == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["/nonexistent/s.yml"], "error: settings file not found: /nonexistent/s.yml"),
        (["{ok}", "--flavor", "solr"], "error: unknown flavor 'solr': use elasticsearch or opensearch"),
        (["{ok}", "--bundle", "/nonexistent/b.zip"], "error: bundle not found: /nonexistent/b.zip"),
        (["{ok}", "--bundle", "{ok}"], "error: {ok} is not a zip file"),
        (["{ok}", "--target", "aws"], "error: unknown target 'aws': use 'cloud' or 'self-managed'"),
    ],
    ids=["missing-file", "bad-flavor", "missing-bundle", "bundle-not-zip", "bad-target"],
)
def test_lint_bad_input(tmp_path, args, message):
    ok = tmp_path / "ok.yml"
    ok.write_text('reindex.remote.whitelist: ["a:9200"]\n')
    args = [a.replace("{ok}", str(ok)) for a in args]
    result = runner.invoke(app, ["lint-settings", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[0] == message.replace("{ok}", str(ok))
    assert result.stderr.splitlines()[1].startswith("fix: ")


def test_lint_bundle_without_pem(tmp_path):
    import zipfile

    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "x")
    ok = tmp_path / "ok.yml"
    ok.write_text("a: 1\n")
    result = runner.invoke(app, ["lint-settings", str(ok), "--bundle", str(z)])
    assert (result.exit_code, result.stderr.splitlines()[0]) == (2, f"error: {z} does not hold exactly one FOLDER/FILE.pem (found: readme.txt)")


# -- trial findings: what a file written for --bundle must hold, and whitelist entries --


@pytest.fixture
def src_bundle(tmp_path):
    from remote_reindex.bundle import read_bundle

    pki = trustme_pki(tmp_path)
    return read_bundle(build_bundle([pki.root_file], name="src_ca", out_dir=tmp_path).zip_path)


def test_no_whitelist_with_a_bundle_is_an_error(src_bundle):
    p = problems('reindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]\n', bundle=src_bundle, target="self-managed")
    assert p == [(0, "error", "no reindex.remote.whitelist: the destination will refuse every remote", 'reindex.remote.whitelist: ["HOST:PORT"]')]


def test_bundle_not_referenced_is_an_error(src_bundle):
    p = problems('reindex.remote.whitelist: ["a:9200"]\n', bundle=src_bundle, target="self-managed")
    assert p == [
        (0, "error", "no reindex.ssl.certificate_authorities: the bundle (src_ca/cacert.pem) is not referenced, the destination will not trust the source", 'reindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]')
    ]


def test_whitelist_any_host_spaces_bad_ports_and_duplicate_fixes(src_bundle):
    text = (
        'reindex.remote.whitelist: ["*:*", "localhost:56139 ", "LOCALHOST:56139", "localhost:0", "localhost:99999", "*"]\n'
        'reindex.ssl.certificate_authorities: ["src_ca/cacert.pem", "other/ca.pem"]\n'
    )
    wl = 'reindex.remote.whitelist: ["*:*", "localhost:56139", "LOCALHOST:56139", "*"]'
    any_host = "allows any host: the destination will reindex from any server it can reach; list the source's HOST:PORT instead"
    assert problems(text, bundle=src_bundle, target="self-managed") == [
        (1, "error", "'localhost:56139 ' has spaces around it: the destination matches entries literally", wl),
        (1, "error", "'localhost:0' has an invalid port: a port is a number from 1 to 65535 or * (left out of the fixed line)", wl),
        (1, "error", "'localhost:99999' has an invalid port: a port is a number from 1 to 65535 or * (left out of the fixed line)", wl),
        (1, "warning", f"'*:*' {any_host}", wl),
        (1, "warning", f"'*' {any_host}", wl),
        (2, "error", "CA path 'other/ca.pem' does not match: the bundle holds src_ca/cacert.pem", 'reindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]'),
    ]


def test_bad_port_in_a_block_list_is_deleted_not_kept():
    assert problems("reindex.remote.whitelist:\n  - a:9200\n  - a:0\n") == [
        (3, "error", "'a:0' has an invalid port: a port is a number from 1 to 65535 or * (left out of the fixed line)", None),
    ]


def test_missing_settings_print_without_a_line_number(tmp_path):
    pki = trustme_pki(tmp_path)
    zip_path = build_bundle([pki.root_file], name="src_ca", out_dir=tmp_path).zip_path
    f = tmp_path / "s.yml"
    f.write_text('reindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]\n')
    result = runner.invoke(app, ["lint-settings", str(f), "--bundle", str(zip_path), "--target", "self-managed"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{f}: error: no reindex.remote.whitelist: the destination will refuse every remote",
        '    add: reindex.remote.whitelist: ["HOST:PORT"]',
        "1 error(s), 0 warning(s)",
    ]


def test_block_list_ca_path_that_would_repeat_an_earlier_one_is_deleted(src_bundle):
    text = 'reindex.remote.whitelist: ["a:9200"]\nreindex.ssl.certificate_authorities:\n  - src_ca/cacert.pem\n  - other/ca.pem\n'
    assert problems(text, bundle=src_bundle, target="self-managed") == [
        (4, "error", "CA path 'other/ca.pem' does not match: the bundle holds src_ca/cacert.pem", None),
    ]


def test_absolute_ca_path_is_fixed_to_the_bundle_path_in_the_config_folder(tmp_path):
    """Not one folder up from the CA: the config folder cannot be told from the path."""
    from remote_reindex.bundle import read_bundle

    zip_path = build_bundle([trustme_pki(tmp_path).root_file], name="src_ca", out_dir=tmp_path).zip_path
    for wrong in ("/etc/elasticsearch/ca.pem", "/etc/ca.pem", "/etc/elasticsearch/certs/ca.pem"):
        p = problems(f'reindex.remote.whitelist: ["a:9200"]\nreindex.ssl.certificate_authorities: ["{wrong}"]\n', bundle=read_bundle(zip_path), target="self-managed")
        assert p == [(2, "error", f"CA path '{wrong}' does not match: the bundle holds src_ca/cacert.pem", 'reindex.ssl.certificate_authorities: ["src_ca/cacert.pem"]')]
