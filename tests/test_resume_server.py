"""Resume of the server engine from the state file, on real nodes.

An Elasticsearch 7.17.29 destination of its own, configured as the guide says (bundle +
allowlist + CA), pulls from the sandbox's TLS source with ``_reindex`` tasks, one per
query-range partition, one at a time, throttled so that each takes a few seconds. Our
process is killed with SIGKILL while a task runs; the task lives on in the destination:
- rerun after that task FINISHED: its result is read from ``.tasks``, not run again;
- rerun while a task is still RUNNING: the run re-attaches and follows it;
and the partitions done before are never run again: the destination's own indexing
counter shows each document written exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from remote_reindex.cluster import ClusterClient

from test_server_engine_support import configure, full_settings

pytestmark = pytest.mark.nodes

NAME = "resume-srv"
SRC_INDEX = "resume-srv-src"
SRC_DOCS = 3000
PASSWORD_VAR = "H8_SRV_PASSWORD"


@pytest.fixture(scope="module")
def dest(sandbox, source, extra_destination, tmp_path_factory):
    side = extra_destination("elasticsearch", name=NAME)
    host_ports = [f"localhost:{source.node.http_port}"]
    configure(sandbox, side, NAME, tmp_path_factory.mktemp("resume-srv"), full_settings("reindex.remote.whitelist", host_ports), [source.ca_file])
    return side


@pytest.fixture(scope="module")
def dc(dest) -> Iterator[ClusterClient]:
    with dest.client(timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def src(source) -> Iterator[ClusterClient]:
    with source.client(timeout=120) as c:
        c.request("DELETE", f"/{SRC_INDEX}")
        c.call("PUT", f"/{SRC_INDEX}", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                             "mappings": {"properties": {"n": {"type": "integer"}, "text": {"type": "keyword"}}}})
        lines = b"".join(orjson.dumps({"index": {"_index": SRC_INDEX, "_id": f"s{i:05d}"}}) + b"\n" + orjson.dumps({"n": i, "text": f"doc {i}"}) + b"\n"
                         for i in range(SRC_DOCS))
        c.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson", params={"refresh": "true"})
        yield c
        c.request("DELETE", f"/{SRC_INDEX}")


@pytest.fixture(scope="module")
def env(source) -> dict[str, str]:
    return {**os.environ, PASSWORD_VAR: source.password_file.read_text().strip()}


def rows(state: Path) -> dict[str, tuple[str, str | None]]:
    if not state.exists():
        return {}
    try:
        db = sqlite3.connect(str(state), timeout=5)
        try:
            return {r[0]: (r[1], r[2]) for r in db.execute("SELECT part, status, task_id FROM cursor WHERE part LIKE 'task-%'")}
        finally:
            db.close()
    except sqlite3.OperationalError:
        return {}


def wait_for(cond, what: str, timeout: float = 120, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {err.decode()[-3000:]} {out.decode()[-1500:]}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def task_state(dc: ClusterClient, task_id: str) -> dict[str, Any]:
    return dc.call("GET", f"/_tasks/{task_id}")


def test_kill9_reattaches_to_tasks_and_reruns_only_unfinished_partitions(tmp_path, source, dest, dc, src, env) -> None:
    body = tmp_path / "body.json"
    body.write_text(orjson.dumps({
        "source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username, "password": "${%s}" % PASSWORD_VAR},
                   "index": SRC_INDEX, "size": 100},
        "dest": {"index": "resume-srv-dst"},
    }).decode())
    state = tmp_path / "srv.sqlite"
    args = [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body), "--dest", dest.url, "--engine", "server",
            "--source-ca", str(source.ca_file), "--partitions", "3", "--partition-field", "n", "--parallel", "1",
            "--requests-per-second", "400", "--state", str(state), "--json"]

    # run 1: killed while the second partition's task runs
    proc = start(args, env)
    try:
        r = wait_for(lambda: (lambda rs: rs if sum(s == "done" for s, _ in rs.values()) == 1 and any(s == "running" for s, _ in rs.values()) else None)(rows(state)),
                     "one partition done and the next one running", proc=proc)
    finally:
        kill(proc)
    running = next(t for s, t in r.values() if s == "running")
    # the task lives on in the destination without us; let it finish
    wait_for(lambda: task_state(dc, running)["completed"], f"task {running} to finish")

    # run 2: reads that finished task's result, starts the third partition; killed while it runs
    proc = start(args, env)
    try:
        r2 = wait_for(lambda: (lambda rs: rs if sum(s == "done" for s, _ in rs.values()) == 2 and any(s == "running" for s, _ in rs.values()) else None)(rows(state)),
                      "two partitions done and the third running", proc=proc)
    finally:
        kill(proc)
    run2_err = " ".join(proc.stderr.read().decode().split())
    assert f"re-attached to task {running} (finished, reading its result)" in run2_err
    third = next(t for s, t in r2.values() if s == "running")
    assert third != running
    assert task_state(dc, third)["completed"] is False  # still running when run 3 starts

    # run 3: re-attaches to the running task, follows it to the end, runs what is left
    last = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr
    text = " ".join(last.stderr.split())
    assert f"re-attached to task {third} (still running, following it)" in text
    assert "resuming job server copy of resume-srv-src" in text
    s = orjson.loads(last.stdout)
    assert s["complete"] is True
    assert (s["total"], s["created"], s["updated"], s["failed"], s["version_conflicts"]) == (SRC_DOCS, SRC_DOCS, 0, 0, 0)
    assert 0 < s["resumed_docs"] < SRC_DOCS
    assert all(st == "done" for st, _ in rows(state).values())
    dc.call("POST", "/resume-srv-dst/_refresh")
    assert dc.call("GET", "/resume-srv-dst/_count")["count"] == SRC_DOCS
    # every document was written exactly once: no partition ran twice
    indexing = dc.call("GET", "/resume-srv-dst/_stats/indexing")["_all"]["primaries"]["indexing"]
    assert indexing["index_total"] == SRC_DOCS
    assert source.password_file.read_text().strip().encode() not in state.read_bytes()

    # run 4: the job is complete; nothing is started
    again = subprocess.run(args[:-1], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "job already complete" in again.stdout
    assert dc.call("GET", "/resume-srv-dst/_stats/indexing")["_all"]["primaries"]["indexing"]["index_total"] == SRC_DOCS
