"""``settings``: generated YAML checked by parsing it back."""

from __future__ import annotations

import orjson
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from remote_reindex.cli.main import app
from remote_reindex.errors import UsageError
from remote_reindex.settings import generate_settings, lint_text, normalize_remote

runner = CliRunner()


def parse(text: str) -> dict:
    return dict(YAML(typ="safe").load(text))


def test_cloud_default():
    plan = generate_settings(["https://es1.internal:9200/some/path"])
    assert parse(plan.yaml_text) == {
        "reindex.remote.whitelist": ["es1.internal:9200"],
        "reindex.ssl.certificate_authorities": ["/app/config/my_source_ca/cacert.pem"],
        "reindex.ssl.verification_mode": "full",
    }
    assert "# STATIC node settings" in plan.yaml_text and "'PUT _cluster/settings' cannot set them." in plan.yaml_text
    assert "REPLACES the default trust" in plan.yaml_text
    assert plan.console_steps and any("user_bundles" in line for line in plan.api_calls)
    assert plan.api_calls[0].startswith("# DRY RUN - nothing was sent.")
    assert lint_text(plan.yaml_text).problems == []  # what we generate, we accept


def test_self_managed_opensearch_ipv6_dedup_and_default_port():
    plan = generate_settings(
        ["[::1]:9200", "http://[::1]:9200", "https://es2.example", "es3:*", "ES3:*"],
        bundle_name="src_ca",
        flavor="opensearch",
        target="self-managed",
        verification_mode="certificate",
    )
    data = parse(plan.yaml_text)
    assert data["reindex.remote.allowlist"] == ["[::1]:9200", "es2.example:443", "es3:*", "ES3:*"]
    assert data["reindex.ssl.certificate_authorities"] == ["src_ca/cacert.pem"]
    assert data["reindex.ssl.verification_mode"] == "certificate"
    assert plan.notices == ["https://es2.example has no port: using 443, the https default (Elasticsearch usually listens on 9200)"]
    assert plan.console_steps == [] and plan.api_calls == []


def test_none_warns_loudly():
    plan = generate_settings(["a:9200"], verification_mode="none")
    assert plan.warnings[0].startswith("verification_mode 'none' trusts ANY certificate")
    result = runner.invoke(app, ["settings", "--remote", "a:9200", "--verification-mode", "none"])
    assert result.exit_code == 0
    assert "WARNING: verification_mode 'none' trusts ANY certificate" in result.stderr


def test_cli_writes_file_and_stdout_is_yaml(tmp_path):
    out = tmp_path / "s.yml"
    result = runner.invoke(app, ["settings", "--remote", "es:9200", "--target", "self-managed", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert parse(out.read_text())["reindex.ssl.certificate_authorities"] == ["my_source_ca/cacert.pem"]
    piped = runner.invoke(app, ["settings", "--remote", "es:9200"])
    assert parse(piped.stdout)["reindex.remote.whitelist"] == ["es:9200"]  # guidance went to stderr
    assert "Elastic Cloud console steps:" in piped.stderr
    data = orjson.loads(runner.invoke(app, ["settings", "--remote", "es:9200", "--json"]).stdout)
    assert data["settings"]["reindex.ssl.verification_mode"] == "full"


def test_normalize_remote_keeps_wildcards():
    assert normalize_remote("*.example.com:9200").entry == "*.example.com:9200"
    assert normalize_remote("https://[2001:db8::1]").entry == "[2001:db8::1]:443"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--remote", "es.internal"], "error: no port in 'es.internal'"),
        (["--remote", "ftp://es:21"], "error: unsupported scheme 'ftp' in 'ftp://es:21'"),
        (["--remote", "es:http"], "error: invalid port 'http' in 'es:http'"),
        (["--remote", "2001:db8::1:9200"], "error: IPv6 address without brackets in '2001:db8::1:9200'"),
        (["--remote", "https://user:pw@es:9200"], "error: credentials in the remote 'es:9200'"),
        ([], "error: no remote given"),
        (["--remote", "es:9200", "--verification-mode", "strict"], "error: unknown verification mode 'strict': use full, certificate or none"),
        (["--remote", "es:9200", "--bundle-name", "My CA"], "error: invalid bundle name 'My CA': use only lowercase letters, digits, '_' and '-'"),
        (["--remote", "es:9200", "--flavor", "opensearch"], "error: Elastic Cloud runs Elasticsearch, not OpenSearch"),
        (["--remote", "es:9200", "--flavor", "solr"], "error: unknown flavor 'solr': use elasticsearch or opensearch"),
    ],
    ids=["bare-host", "ftp-scheme", "port-not-number", "ipv6-no-brackets", "credentials", "no-remote", "bad-mode", "bad-name", "opensearch-on-cloud", "bad-flavor"],
)
def test_settings_bad_input(tmp_path, args, message):
    out = tmp_path / "s.yml"
    result = runner.invoke(app, ["settings", *args, "-o", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == message
    assert lines[1].startswith("fix: ")
    assert not out.exists()
    assert "pw@" not in result.output


def test_settings_output_folder_missing(tmp_path):
    result = runner.invoke(app, ["settings", "--remote", "es:9200", "-o", str(tmp_path / "no" / "s.yml")])
    assert (result.exit_code, result.stderr.splitlines()[0]) == (2, f"error: output folder does not exist: {tmp_path / 'no'}")


def test_library_raises_usage_error():
    with pytest.raises(UsageError):
        generate_settings(["es"])


@pytest.mark.parametrize(
    "remote,fix",
    [
        ("::1:9200", "fix: Write it as [::1]:9200 (the address in brackets, then :PORT)."),
        ("2001:db8::1:9200", "fix: Write it as [2001:db8::1]:9200 (the address in brackets, then :PORT)."),
        ("fe80::1", "fix: Write it as [fe80::1]:PORT, e.g. [fe80::1]:9200."),
    ],
)
def test_ipv6_without_brackets_gets_the_bracketed_fix(tmp_path, remote, fix):
    result = runner.invoke(app, ["settings", "--remote", remote, "-o", str(tmp_path / "s.yml")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: IPv6 address without brackets in '{remote}'", fix]


@pytest.mark.parametrize("group,commands", [("ca", "fetch, check"), ("sandbox", "up, status, down, configure-destination")])
def test_a_group_without_a_command_says_which_commands_exist(group, commands):
    result = runner.invoke(app, [group])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: 'remote-reindex {group}' needs a command: {commands}",
        f"fix: Run 'remote-reindex {group} COMMAND --help' for what one takes.",
    ]
