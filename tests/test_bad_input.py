"""Bad input, through the real CLI: one line saying what is wrong, one saying what to do,
a non-zero exit, no traceback, and nothing written anywhere.

Every case runs against the sandbox's real source and destination: the body names the
real TLS source with its real password, so a case that slipped through validation would
actually copy. After each case the destination must not have the index, and no state
file, dead-letter file or anything else may have appeared.
"""

from __future__ import annotations

import copy as copy_module
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
import trustme
from typer.testing import CliRunner

from remote_reindex.cli.main import app

pytestmark = pytest.mark.nodes

DEST_INDEX = "h9-bad-input"
PASSWORD_VAR = "H9_BAD_INPUT_PASSWORD"
UNSET_VAR = "H9_SURELY_UNSET_VAR"
BODY_FIX = "Fix the body file; see 'remote-reindex run --help' for the supported fields."
Body = dict[str, Any]


def set_in(path: str, value: Any) -> Callable[[Body], Body]:
    def change(b: Body) -> Body:
        *parents, last = path.split(".")
        node = b
        for key in parents:
            node = node[key]
        node[last] = value
        return b
    return change


def drop(path: str) -> Callable[[Body], Body]:
    def change(b: Body) -> Body:
        *parents, last = path.split(".")
        node = b
        for key in parents:
            node = node[key]
        del node[last]
        return b
    return change


@dataclass
class Case:
    id: str
    args: list[str]  # {body} {tmp} {dest} are filled in
    message: str  # the exact first stderr line, after "error: "
    fix: str  # the exact second line, after "fix: "
    body: Callable[[Body], Body] | str | None = None  # a change to the good body, raw text, or None: the good body
    code: int = 2
    files: dict[str, str] = field(default_factory=dict)  # more files to write into tmp


RUN = ["run", "{body}", "--dest", "{dest}"]
CLIENT = RUN + ["--engine", "client"]
VERIFY = ["verify", "{body}", "--dest", "{dest}"]

CASES = [
    # -- the body -------------------------------------------------------------------------
    Case("body-not-json", RUN, "body file {tmp}/body.json is not valid JSON (line 1, column 2)",
         "Check the JSON syntax there (quotes, commas, braces).", body="{not json"),
    Case("body-a-list", RUN, "body file {tmp}/body.json must be a JSON object", 'Give the _reindex body: {"source": {...}, "dest": {...}}.', body="[1, 2]"),
    Case("body-no-source", RUN, "body file {tmp}/body.json has no 'source' object",
         'Add "source": {"remote": {"host": "https://HOST:PORT", ...}, "index": "NAME"}.', body=drop("source")),
    Case("body-no-dest", RUN, "body file {tmp}/body.json has no 'dest' object", 'Add "dest": {"index": "NAME"}.', body=drop("dest")),
    Case("body-script-client", CLIENT, "the body's 'script' runs on the destination (server engine); the client engine cannot run it",
         "Use --engine server (or auto), or drop 'script' and give --transform module:function (a Python function called per document) with --engine client.",
         body=set_in("script", {"source": "ctx._source.x = 1"})),
    Case("body-slice", RUN, "'source.slice' cannot be used with a remote source (remote reindex cannot slice)",
         "Use --parallel N with --engine client, or --partitions K with --engine server.", body=set_in("source.slice", {"id": 0, "max": 2})),
    Case("body-tls-keys-in-remote", RUN,
         "TLS settings do not belong in source.remote: ssl (the destination answers 'Unsupported fields in [remote]')",
         "Remove them: the CA goes into the destination's reindex.ssl.* settings (steps 3-4: 'remote-reindex bundle', 'remote-reindex settings'); --source-ca for --engine client.",
         body=set_in("source.remote.ssl", {"certificate_authorities": "ca.pem"})),
    Case("host-without-port", RUN, "source.remote.host 'https://localhost' has no port",
         "Add the port, e.g. https://localhost:9200 (the destination requires it).", body=set_in("source.remote.host", "https://localhost")),
    Case("host-without-scheme", RUN, "source.remote.host 'localhost:9200' has no scheme",
         "Write it as https://localhost:9200 (the destination needs scheme, host and port).", body=set_in("source.remote.host", "localhost:9200")),
    Case("host-ftp-scheme", RUN, "source.remote.host 'ftp://localhost:9200' has scheme 'ftp'",
         "Use https:// (or http:// for a plain-HTTP source).", body=set_in("source.remote.host", "ftp://localhost:9200")),
    Case("username-without-password", RUN, "source.remote.username is set without a password",
         'Add "password": "${SOURCE_PASSWORD}" and export SOURCE_PASSWORD.', body=drop("source.remote.password")),
    Case("password-without-username", RUN, "source.remote.password is set without a username", 'Add "username": "...".',
         body=drop("source.remote.username")),
    Case("unknown-top-level-field", RUN, "unsupported field in the body: bogus",
         "Supported in the body: conflicts, dest, max_docs, script, size, source.", body=set_in("bogus", 1)),
    Case("unknown-source-field", RUN, "unsupported field in source: bogus",
         "Supported in source: _source, index, query, remote, size, slice, sort.", body=set_in("source.bogus", 1)),
    Case("env-var-unset", RUN, f"body file {{tmp}}/body.json refers to ${{{UNSET_VAR}}}, but the environment variable {UNSET_VAR} is not set",
         f"export {UNSET_VAR}=... before running.", body=set_in("source.remote.password", "${%s}" % UNSET_VAR)),
    Case("source-index-missing", RUN, "source.index is missing or empty",
         'Set source.index to an index name, a list of names, or a pattern like "logs-*".', body=drop("source.index")),
    Case("dest-op-type-bogus", RUN, "dest.op_type must be 'index' or 'create', got 'upsert'", BODY_FIX, body=set_in("dest.op_type", "upsert")),
    Case("conflicts-bogus", RUN, "conflicts must be 'abort' or 'proceed', got 'ignore'", BODY_FIX, body=set_in("conflicts", "ignore")),
    Case("max-docs-negative", RUN, "max_docs must be a positive whole number, got -5", BODY_FIX, body=set_in("max_docs", -5)),
    # -- the body file ----------------------------------------------------------------------
    Case("body-file-missing", ["run", "{tmp}/nope.json", "--dest", "{dest}"], "body file not found: {tmp}/nope.json",
         "Give the path of a JSON file with the _reindex body, or '-' for standard input."),
    Case("body-file-a-directory", ["run", "{tmp}/adir", "--dest", "{dest}"], "body file is a directory: {tmp}/adir",
         "Give the path of a JSON file with the _reindex body."),
    Case("body-file-empty", RUN, "body file {tmp}/body.json is empty",
         'Give the _reindex body as JSON, e.g. {"source": {"remote": {...}, "index": "..."}, "dest": {"index": "..."}}.', body=""),
    # -- the destination and its login ---------------------------------------------------------
    Case("dest-missing", ["run", "{body}"], "--dest is missing", "Add --dest URL of the destination cluster, e.g. --dest https://dest.example:9200."),
    Case("dest-without-scheme", ["run", "{body}", "--dest", "localhost:9200"], "URL has no scheme: 'localhost:9200'",
         "Write it as https://HOST:PORT (or http:// for a plain-HTTP cluster)."),
    Case("dest-port-out-of-range", ["run", "{body}", "--dest", "http://localhost:99999"], "URL has an invalid port: 'http://localhost:99999'",
         "Write it as https://HOST:PORT with a port from 1 to 65535."),
    Case("dest-port-not-a-number", ["run", "{body}", "--dest", "http://localhost:92oo"], "URL has an invalid port: 'http://localhost:92oo'",
         "Write it as https://HOST:PORT with a port from 1 to 65535."),
    Case("dest-password-env-unset", RUN + ["--dest-user", "elastic", "--dest-password-env", UNSET_VAR],
         f"environment variable {UNSET_VAR} is not set (it should hold the password)",
         f"export {UNSET_VAR}=... before running, or use another way to pass the password."),
    Case("both-password-options", RUN + ["--dest-user", "elastic", "--dest-password-env", PASSWORD_VAR, "--dest-password-file", "{tmp}/pw.txt"],
         "both --dest-password-env and --dest-password-file given", "Pass only one of them.", files={"pw.txt": "pw\n"}),
    Case("dest-user-without-password", RUN + ["--dest-user", "elastic"], "dest user 'elastic' given without a password",
         "Add --dest-password-env VAR or --dest-password-file FILE."),
    Case("dest-password-without-user", RUN + ["--dest-password-env", PASSWORD_VAR], "dest password given without a user", "Add --dest-user NAME."),
    Case("dest-password-file-missing", RUN + ["--dest-user", "elastic", "--dest-password-file", "{tmp}/nope.txt"],
         "password file not found: {tmp}/nope.txt", "Give the path of a file that holds only the password."),
    # -- flags --------------------------------------------------------------------------------
    Case("engine-bogus", RUN + ["--engine", "turbo"], "--engine must be one of auto, server, client, got 'turbo'",
         "Use --engine server, --engine client or --engine auto."),
    Case("read-mode-bogus", CLIENT + ["--read-mode", "cursor"], "--read-mode must be one of auto, pit, scroll, got 'cursor'",
         "Use --read-mode pit or --read-mode scroll."),
    Case("parallel-zero", RUN + ["--parallel", "0"], "Invalid value for '--parallel': Input should be greater than or equal to 1",
         "Run 'remote-reindex run --help' to see what it takes."),
    Case("parallel-not-a-number", RUN + ["--parallel", "two"],
         "Invalid value for '--parallel': Input should be a valid integer, unable to parse string as an integer",
         "Run 'remote-reindex run --help' to see what it takes."),
    Case("unknown-option", RUN + ["--dest-pasword-env", "X"], "No such option: --dest-pasword-env (Possible options: --dest-bearer-env, --dest-password-env, --dest-password-file)",
         "Run 'remote-reindex run --help' to see what it takes."),
    Case("source-ca-missing", CLIENT + ["--source-ca", "{tmp}/nope.pem"], "CA file not found: {tmp}/nope.pem",
         "Give the path of a PEM file with the source's CA certificate."),
    Case("source-ca-a-directory", CLIENT + ["--source-ca", "{tmp}/adir"], "CA file is a directory: {tmp}/adir", "Give the path of a PEM file, not a folder."),
    Case("source-ca-not-pem", CLIENT + ["--source-ca", "{tmp}/notes.txt"], "no PEM certificate in {tmp}/notes.txt",
         "The CA file must hold '-----BEGIN CERTIFICATE-----' blocks (run 'remote-reindex ca fetch HOST:PORT -o ca.pem').",
         files={"notes.txt": "this is the CA, trust me\n"}),
    Case("source-ca-a-private-key", CLIENT + ["--source-ca", "{tmp}/key.pem"], "{tmp}/key.pem holds a private key, not a CA certificate",
         "Give the CA's certificate ('-----BEGIN CERTIFICATE-----'; 'remote-reindex ca fetch HOST:PORT -o ca.pem' writes it), never a key."),
    Case("transform-bad-spec", CLIENT + ["--transform", "h9tx.fix"], "--transform must look like module:function, got 'h9tx.fix'",
         "E.g. --transform my_transforms:rename_fields (my_transforms.py in the current directory)."),
    Case("transform-module-missing", CLIENT + ["--transform", "h9_no_such_module:fix"],
         "--transform: cannot import module 'h9_no_such_module': No module named 'h9_no_such_module'",
         "Run from the directory that holds the module, or install it."),
    Case("transform-function-missing", CLIENT + ["--transform", "h9_bad_input_tx:missing"], "--transform: 'h9_bad_input_tx' has no function 'missing'",
         "Name a function defined in that module.", files={"h9_bad_input_tx.py": "def fix(doc):\n    return doc\n"}),
    Case("state-is-a-directory", CLIENT + ["--state", "{tmp}/adir"], "--state {tmp}/adir is a directory",
         "Give a file name for the job's state, e.g. --state job.sqlite."),
    Case("dead-letter-folder-missing", CLIENT + ["--dead-letter", "{tmp}/no-such-dir/d.ndjson"],
         "the folder of --dead-letter {tmp}/no-such-dir/d.ndjson does not exist: {tmp}/no-such-dir",
         "Create the folder first, or give --dead-letter a file in an existing folder."),
    Case("dead-letter-is-a-directory", CLIENT + ["--dead-letter", "{tmp}/adir"], "--dead-letter {tmp}/adir is a directory",
         "Give a file name, e.g. --dead-letter rejected.ndjson."),
    # -- verify: the same mistakes ------------------------------------------------------------------
    Case("verify-body-not-json", VERIFY, "body file {tmp}/body.json is not valid JSON (line 1, column 2)",
         "Check the JSON syntax there (quotes, commas, braces).", body="{not json"),
    Case("verify-dest-missing", ["verify", "{body}"], "--dest is missing", "Add --dest URL of the destination cluster, e.g. --dest https://dest.example:9200."),
    Case("verify-dest-without-scheme", ["verify", "{body}", "--dest", "localhost:9200"], "URL has no scheme: 'localhost:9200'",
         "Write it as https://HOST:PORT (or http:// for a plain-HTTP cluster)."),
    Case("verify-env-var-unset", VERIFY, f"body file {{tmp}}/body.json refers to ${{{UNSET_VAR}}}, but the environment variable {UNSET_VAR} is not set",
         f"export {UNSET_VAR}=... before running.", body=set_in("source.remote.password", "${%s}" % UNSET_VAR)),
    Case("verify-source-ca-missing", VERIFY + ["--source-ca", "{tmp}/nope.pem"], "CA file not found: {tmp}/nope.pem",
         "Give the path of a PEM file with the source's CA certificate."),
    Case("verify-report-a-directory", VERIFY + ["--report", "{tmp}/adir"], "--report {tmp}/adir is a directory",
         "Give a file name, e.g. --report verify-ids.ndjson."),
    Case("verify-sample-zero", VERIFY + ["--sample", "0"], "--sample must be from 1 to 10,000, got 0",
         "Pick a smaller sample, or leave --sample out to compare every document."),
    Case("verify-host-without-port", VERIFY, "source.remote.host 'https://localhost' has no port",
         "Add the port, e.g. https://localhost:9200 (the destination requires it).", body=set_in("source.remote.host", "https://localhost")),
]


@pytest.fixture(scope="module")
def good_body(source) -> Body:
    """A body that would copy: the real source, its real user and (via ${VAR}) password."""
    return {
        "source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username,
                              "password": "${%s}" % PASSWORD_VAR}, "index": "products"},
        "dest": {"index": DEST_INDEX},
    }


@pytest.fixture(scope="module")
def dest_client(destination):
    with destination.client(timeout=60) as c:
        yield c


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source) -> Path:
    """A clean current directory; state files would land under it; the password in an env var."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    monkeypatch.setenv(PASSWORD_VAR, source.password_file.read_text().strip())
    monkeypatch.delenv(UNSET_VAR, raising=False)
    (tmp_path / "adir").mkdir()
    (tmp_path / "key.pem").write_bytes(trustme.CA().private_key_pem.bytes())
    return tmp_path


def filled(text: str, values: dict[str, str]) -> str:
    """{body} {tmp} {dest} replaced; every other brace (JSON in a message) left alone."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def write_case_files(case: Case, tmp: Path, good_body: Body) -> None:
    if isinstance(case.body, str):
        (tmp / "body.json").write_text(case.body)
    else:
        body = copy_module.deepcopy(good_body)
        if case.body is not None:
            body = case.body(body)
        (tmp / "body.json").write_bytes(orjson.dumps(body))
    for name, text in case.files.items():
        (tmp / name).write_text(text)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_says_what_and_how_and_writes_nothing(case: Case, workdir: Path, good_body: Body, destination, dest_client, source) -> None:
    write_case_files(case, workdir, good_body)
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    fill = {"body": str(workdir / "body.json"), "tmp": str(workdir), "dest": destination.url}
    args = [filled(a, fill) for a in case.args]

    result = CliRunner().invoke(app, args)

    lines = result.stderr.splitlines()
    assert result.exit_code == case.code, (result.exit_code, result.stderr, result.exception)
    assert lines[:2] == [f"error: {filled(case.message, fill)}", f"fix: {filled(case.fix, fill)}"], result.stderr
    assert len(lines) == 2, result.stderr  # nothing but the two lines
    assert "Traceback" not in result.stderr + result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert dest_client.request("HEAD", f"/{DEST_INDEX}").status == 404  # nothing written to the destination
    after = sorted(p.relative_to(workdir) for p in workdir.rglob("*") if "__pycache__" not in p.parts)
    assert after == [p for p in before if "__pycache__" not in p.parts]  # no state, dead-letter or report file
    assert source.password_file.read_text().strip() not in result.stdout + result.stderr


def test_there_are_at_least_30_named_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_real_binary_prints_two_lines_and_no_traceback(workdir: Path, good_body: Body, destination, dest_client) -> None:
    """Through the installed entry point, in a fresh process: a click-level mistake and a
    body mistake, each exactly two lines on stderr, exit 2."""
    (workdir / "body.json").write_bytes(orjson.dumps({**good_body, "script": {"source": "x"}}))
    env = {**os.environ}
    for argv, first in (
        (["run", "body.json", "--dest", destination.url, "--parallel", "0"], "error: Invalid value for '--parallel': Input should be greater than or equal to 1"),
        (["run", "body.json", "--dest", destination.url, "--engine", "client"], "error: the body's 'script' runs on the destination (server engine); the client engine cannot run it"),
    ):
        proc = subprocess.run([sys.executable, "-m", "remote_reindex.cli.main", *argv], capture_output=True, text=True, timeout=120, cwd=workdir, env=env)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 2 and lines[0] == first and lines[1].startswith("fix: "), proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""
    assert dest_client.request("HEAD", f"/{DEST_INDEX}").status == 404
