"""Units of the run/verify CLI without nodes: option checks made before anything connects,
URLs with credentials, fix lines naming the command's own flags, plan and summary text."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import orjson
import pytest
import urllib3
from typer.testing import CliRunner

from remote_reindex.cli.main import app
from remote_reindex.cli.run import first_failure_lines, plan_fields, print_summary
from remote_reindex.cli.verify import mismatch_fix
from remote_reindex.cluster.client import ClusterClient, map_transport_error, redact_url
from remote_reindex.engines.server.engine import Job, _summarize, task_body
from remote_reindex.engines.server.tasks import TaskStatus
from remote_reindex.engines.summary import IndexSummary, RunSummary
from remote_reindex.errors import UsageError
from remote_reindex.plan.body import body_from_dict
from remote_reindex.settings.generate import cloud_steps
from remote_reindex.verify.compare import IdList, IndexResult, VerifyResult

runner = CliRunner()
DEST = "http://127.0.0.1:1"  # nothing listens: every case must stop before connecting
BODY = {"source": {"remote": {"host": "https://localhost:1"}, "index": "a"}, "dest": {"index": "b"}}


@pytest.fixture
def body(tmp_path: Path) -> Path:
    p = tmp_path / "body.json"
    p.write_bytes(orjson.dumps(BODY))
    return p


def two_lines(args: list[str]) -> list[str]:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    return lines


# -- 1. engine-specific options ---------------------------------------------------------------


def test_client_only_options_with_engine_server_are_an_error(body: Path) -> None:
    assert two_lines(["run", str(body), "--dest", DEST, "--engine", "server", "--transform", "m:f"]) == [
        "error: --transform only works with the client engine, but --engine server was given",
        "fix: Use --engine client (or auto), or drop --transform.",
    ]
    assert two_lines(["run", str(body), "--dest", DEST, "--engine", "server", "--dead-letter", "x.ndjson", "--bulk-mb", "4"]) == [
        "error: --bulk-mb, --dead-letter only work with the client engine, but --engine server was given",
        "fix: Use --engine client (or auto), or drop --bulk-mb, --dead-letter.",
    ]


def test_server_only_options_with_engine_client_are_an_error(body: Path) -> None:
    assert two_lines(["run", str(body), "--dest", DEST, "--engine", "client", "--partitions", "3", "--requests-per-second", "10"]) == [
        "error: --partitions, --requests-per-second only work with the server engine, but --engine client was given",
        "fix: Use --engine server (or auto), or drop --partitions, --requests-per-second.",
    ]


def test_options_of_both_engines_are_an_error(body: Path) -> None:
    assert two_lines(["run", str(body), "--dest", DEST, "--transform", "m:f", "--partition-field", "n"]) == [
        "error: --transform (client engine) and --partition-field (server engine) cannot be combined",
        "fix: Keep the options of one engine: drop one of them.",
    ]


def test_auto_with_transform_picks_the_client_engine_and_says_why(tmp_path: Path, body: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "h_tx.py").write_text("def f(doc):\n    return doc\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["run", str(body), "--dest", DEST, "--transform", "h_tx:f", "--plan"])
    lines = result.stderr.splitlines()
    assert lines[0] == "engine: client (--transform is a client-engine option)", result.stderr
    assert lines[1].startswith("error: ")  # then the source (nothing listens) is not reachable


def test_script_with_engine_client_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "body.json"
    p.write_bytes(orjson.dumps({**BODY, "script": {"source": "ctx._source.x = 1"}}))
    assert two_lines(["run", str(p), "--dest", DEST, "--engine", "client"]) == [
        "error: the body's 'script' runs on the destination (server engine); the client engine cannot run it",
        "fix: Use --engine server (or auto), or drop 'script' and give --transform module:function "
        "(a Python function called per document) with --engine client.",
    ]
    assert two_lines(["run", str(p), "--dest", DEST, "--transform", "m:f"]) == [
        "error: the body's 'script' needs the server engine, but --transform needs the client engine",
        "fix: Drop 'script' from the body and do the change with --transform module:function, or drop --transform.",
    ]


# -- 4. the server engine passes script through -----------------------------------------------


def test_the_server_task_body_carries_the_script() -> None:
    # only a unit test: the sandbox's test distributions have no painless, a real task would fail there
    script = {"source": "ctx._source.copied = true", "lang": "painless"}
    body = body_from_dict({**BODY, "script": script})
    assert task_body(body, "a", "b", 500, None)["script"] == script


# -- 2. credentials in --dest ----------------------------------------------------------------


def test_credentials_in_dest_are_refused_and_never_shown(body: Path) -> None:
    for cmd in ("run", "verify"):
        result = runner.invoke(app, [cmd, str(body), "--dest", "http://reindexer:S3cretXYZ@localhost:1"])
        assert result.exit_code == 2
        assert result.stderr.splitlines() == [
            "error: --dest http://localhost:1 has a user name or password in it (not sent, not shown)",
            "fix: Remove USER:PASSWORD@ from --dest: give the user with --dest-user and put the password in "
            "--dest-password-env VAR (or --dest-password-file FILE).",
        ]
        assert "S3cretXYZ" not in result.stdout + result.stderr


def test_cluster_client_refuses_userinfo_without_showing_it() -> None:
    assert redact_url("https://u:p@h:9200/x") == "https://h:9200/x"
    with pytest.raises(UsageError) as e:
        ClusterClient("https://u:S3cret@h:9200")
    assert e.value.message == "the URL https://h:9200 has a user name or password in it (not sent, not shown)"
    assert "S3cret" not in e.value.message + e.value.fix


# -- 6. the TLS fix names the command's flag -------------------------------------------------


def test_tls_fix_names_the_flag_of_the_command() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code, exc.verify_message = 20, "unable to get local issuer certificate"
    fixes = {flag: map_transport_error(exc, "https://h:9200", flag).fix for flag in ("--ca", "--source-ca", "--dest-ca")}
    assert fixes["--dest-ca"] == "Give the CA that issued the server's certificate with --dest-ca (get it with 'remote-reindex ca fetch HOST:PORT -o ca.pem')."
    assert " with --source-ca " in fixes["--source-ca"] and " with --ca " in fixes["--ca"]


def test_cloud_steps_name_the_plan_flag() -> None:
    console, _ = cloud_steps("b", "x: y\n")
    assert console[-1] == "5. Check it: remote-reindex run BODY.json --dest URL --engine server --plan (writes nothing), or a remote _reindex whose query matches nothing."


# -- 7. --insecure ----------------------------------------------------------------------------


def test_insecure_and_ca_together_are_an_error(body: Path, tmp_path: Path) -> None:
    assert two_lines(["run", str(body), "--dest", DEST, "--source-insecure", "--source-ca", str(tmp_path / "ca.pem")]) == [
        "error: --source-insecure and --source-ca contradict each other (no verification vs. verify with this CA)",
        f"fix: Keep --source-ca {tmp_path / 'ca.pem'} to verify the source's certificate, and drop --source-insecure.",
    ]


def test_dest_ca_with_a_plain_http_dest_is_warned(body: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(body), "--dest", DEST, "--dest-ca", "ca.pem", "--plan"])
    assert result.stderr.splitlines()[0] == f"warning: --dest-ca ca.pem is not used: --dest {DEST} is plain HTTP (no TLS)"


def test_an_insecure_client_silences_urllib3s_warning_per_request() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        ClusterClient("https://127.0.0.1:1", verify=False).close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("x", urllib3.exceptions.InsecureRequestWarning)
    assert caught == []


# -- 10. --plan text, --resume --restart ---------------------------------------------------------


def test_plan_fields_are_key_value_pairs() -> None:
    assert plan_fields({"size": 5000, "dest_docs": 20000}) == "size=5000 dest_docs=20000"
    assert plan_fields({"partitions": ["n [.., 5)", "n [5, ..)"]}) == "partitions=n [.., 5) | n [5, ..)"


def test_resume_and_restart_are_refused_before_connecting(body: Path) -> None:
    assert two_lines(["run", str(body), "--dest", DEST, "--resume", "--restart"]) == [
        "error: --restart and --resume contradict each other",
        "fix: Use --resume to continue the job, or --restart to copy everything again.",
    ]


# -- 9. the summary is not cut when not a terminal ----------------------------------------------


def test_summary_is_plain_lines_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    name = "products-with-a-rather-long-name-2026"
    s = RunSummary("server", [IndexSummary(name, "created-" + name, "server", took_ms=1500, total=20000, created=20000)], took_ms=1500)
    print_summary(s)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["copied with the server engine:",
                         f"  {name} -> created-{name}: total 20,000, created 20,000, updated 0, conflicts 0, failed 0, retries 0, took 1.5s"]


# -- 3. failures with their cause; conflicts counted alike by both engines ------------------------


CONFLICT = {"index": "b", "id": "p1", "status": 409,
            "cause": {"type": "version_conflict_engine_exception", "reason": "[p1]: version conflict, document already exists"}}


def test_server_conflicts_are_not_counted_as_failed() -> None:
    status = TaskStatus("n:1", completed=True, total=5000, created=2251, version_conflicts=2749, failures=[CONFLICT] * 2749)
    s = _summarize("a", "b", [Job("a", "b", {}, status=status)], False)
    assert (s.version_conflicts, s.failed, s.complete) == (2749, 0, False)


def test_first_failure_is_printed_with_how_many_more() -> None:
    s = IndexSummary("a", "b", "server", version_conflicts=2749, failures=[CONFLICT] * 20)
    assert first_failure_lines(RunSummary("server", [s])) == [
        "first failure: index b, id p1: version_conflict_engine_exception: [p1]: version conflict, document already exists",
        "and 2,748 more (all kept failures: --json; rejected documents: the dead-letter file)",
    ]
    dead = {"index": "b", "id": "x", "status": 400, "cause": {"type": "mapper_parsing_exception", "reason": "failed to parse field [n]"}}
    c = IndexSummary("a", "b", "client", failed=3, failures=[dead] * 3, dead_letter_file="dl.ndjson")
    assert first_failure_lines(RunSummary("client", [c])) == [
        "first failure: index b, id x: mapper_parsing_exception: failed to parse field [n]",
        "and 2 more (all kept failures: --json; rejected documents: the dead-letter file)",
    ]


# -- 5. verify's fix works ----------------------------------------------------------------------


def _result(missing: int = 0, extra: int = 0, source: int = 10, dest: int = 10) -> VerifyResult:
    ids = lambda n: IdList(10, [f"i{k}" for k in range(n)], n)  # noqa: E731
    return VerifyResult([IndexResult("a", "b", source, dest, "full", ids(missing), ids(extra), ids(0))])


def test_verify_fix_names_restart_and_deleting_extras() -> None:
    assert mismatch_fix(_result(missing=1)) == ("Copy again with 'remote-reindex run BODY --dest URL --restart' (without --restart a finished job "
                                                "is not run again), then verify again; --report FILE lists every differing id.")
    assert mismatch_fix(_result(extra=1)) == ("Delete the extra documents from the destination (a copy never removes documents), "
                                              "then verify again; --report FILE lists every differing id.")
    assert mismatch_fix(_result(source=10, dest=12)).startswith("Delete the extra documents")


def test_output_consoles_print_fingerprints_and_names_as_text() -> None:
    """Rich would turn ":CD:" of a SHA-256 fingerprint into an emoji."""
    from remote_reindex.cli.common import out

    with out.capture() as captured:
        out.print("6D:CD:2C:AB:FE", markup=False)
    assert captured.get().strip() == "6D:CD:2C:AB:FE"


# -- 8. --skip-preflight: a refusal after the metadata step wrote is a copy failure ------------------


def test_skip_preflight_refusal_after_creating_the_index_is_a_copy_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from remote_reindex.cluster import ClusterInfo
    from remote_reindex.engines.options import ServerOptions
    from remote_reindex.engines.server import engine
    from remote_reindex.engines.server.batch import BatchChoice
    from remote_reindex.errors import CopyError, PreflightError
    from remote_reindex.plan.indices import IndexInfo

    info = ClusterInfo("elasticsearch", "7.17.29")
    dest = SimpleNamespace(info=lambda: info, host_port="dest:9200")
    monkeypatch.setattr(engine, "_source_from_here", lambda body, options: (SimpleNamespace(close=lambda: None), info))
    monkeypatch.setattr(engine, "expand", lambda *a, **k: SimpleNamespace(indices=[IndexInfo("a", 10, 1)], notes=[]))
    monkeypatch.setattr(engine, "_plan_index", lambda src, i, body, options, progress: engine.IndexPlan(i, "b", BatchChoice(1000, None, None)))
    monkeypatch.setattr(engine, "dest_index_state", lambda d, name: SimpleNamespace(exists=False, docs=0))
    monkeypatch.setattr(engine.metadata, "copy_index_metadata", lambda *a: SimpleNamespace(created=True, dropped_settings=[], notes=[]))
    monkeypatch.setattr(engine.metadata, "copy_aliases", lambda *a: [])
    refusal = PreflightError("the destination may not pull from localhost:1", "Add it to reindex.remote.whitelist.", cause="not_allowlisted")

    def run(self, jobs):
        jobs[0].error = refusal
        return False

    monkeypatch.setattr(engine._Runner, "run", run)
    with pytest.raises(CopyError) as e:
        engine.copy(body_from_dict(BODY), dest, ServerOptions(skip_preflight=True, spread_over_nodes=False))
    assert e.value.exit_code == 9 and e.value.cause == "not_allowlisted"
    assert e.value.message == "the destination may not pull from localhost:1 (no document was copied; already created on the destination: b)"
    # nothing written (no metadata step): still the preflight error, exit 8
    with pytest.raises(PreflightError):
        engine.copy(body_from_dict(BODY), dest, ServerOptions(skip_preflight=True, spread_over_nodes=False, copy_metadata=False))
