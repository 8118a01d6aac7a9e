"""Resume of the client engine from the SQLite state file, on real nodes.

Our process (``remote-reindex run ... --engine client``) is killed with SIGKILL at random
moments of a copy — after the state file shows progress, plus a random delay — and run
again, over and over; then ``remote-reindex verify`` must find source and destination
equal, the destination count must equal the source count (nothing lost, nothing
duplicated) and the final summary's counts must add up to the source count.

Source: the sandbox's Elasticsearch 7.17.29 over TLS with a private CA; a test index of a
few thousand documents in 2 shards. Destination: the sandbox's Elasticsearch 7.17.29. The
copy is slowed with small pages and small bulks so that it is mid-way when killed.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from remote_reindex.cluster import ClusterClient

pytestmark = pytest.mark.nodes

PASSWORD_VAR = "H8_SOURCE_PASSWORD"
SRC_INDEX = "resume-src"
SRC_DOCS = 3000
BULK_DOCS = 10
SLOW = ["--read-size", "50", "--bulk-docs", str(BULK_DOCS), "--parallel", "2"]  # many small acknowledged steps


# -- helpers ---------------------------------------------------------------------------

def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "remote_reindex.cli.main", *args]


@pytest.fixture(scope="module")
def password(source) -> str:
    return source.password_file.read_text().strip()


@pytest.fixture(scope="module")
def env(password) -> dict[str, str]:
    system = next((p for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt") if os.path.exists(p)), None)
    e = {**os.environ, PASSWORD_VAR: password}
    if system:
        e.update(REQUESTS_CA_BUNDLE=system, SSL_CERT_FILE=system)
    return e


@pytest.fixture(scope="module")
def src(source) -> Iterator[ClusterClient]:
    """``resume-src``: SRC_DOCS documents of ~300 bytes in 2 shards on the TLS source."""
    with source.client(timeout=120) as c:
        c.request("DELETE", f"/{SRC_INDEX}")
        c.call("PUT", f"/{SRC_INDEX}", body={"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                                             "mappings": {"properties": {"n": {"type": "integer"}, "text": {"type": "text"}}}})
        rng = random.Random(8)
        for start in range(0, SRC_DOCS, 1000):
            lines = b"".join(
                orjson.dumps({"index": {"_index": SRC_INDEX, "_id": f"d{i:05d}"}}) + b"\n"
                + orjson.dumps({"n": i, "text": " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(40))}) + b"\n"
                for i in range(start, min(start + 1000, SRC_DOCS)))
            c.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson")
        c.call("POST", f"/{SRC_INDEX}/_refresh")
        c.call("POST", f"/{SRC_INDEX}/_forcemerge", params={"max_num_segments": 1})  # no background merge changes doc ids later
        yield c
        c.request("DELETE", f"/{SRC_INDEX}")


@pytest.fixture(scope="module")
def dst(destination) -> Iterator[ClusterClient]:
    with destination.client(timeout=120) as c:
        yield c
        c.request("DELETE", "/resume-*")


def write_body(tmp_path: Path, source, dest_index: str, **extra: Any) -> Path:
    body = {"source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username,
                                  "password": "${%s}" % PASSWORD_VAR}, "index": SRC_INDEX},
            "dest": {"index": dest_index, **extra.pop("dest", {})}, **extra}
    p = tmp_path / f"{dest_index}.json"
    p.write_text(orjson.dumps(body).decode())
    return p


def run_args(body: Path, destination, source, state: Path, *more: str) -> list[str]:
    return cli("run", str(body), "--dest", destination.url, "--engine", "client", "--source-ca", str(source.ca_file),
               "--state", str(state), "--json", *more)


def acked(state: Path) -> int:
    """Documents the state file says the destination acknowledged (0 before it exists)."""
    if not state.exists():
        return 0
    try:
        db = sqlite3.connect(str(state), timeout=5)
        try:
            row = db.execute("SELECT COALESCE(SUM(docs_done), 0) FROM cursor WHERE part LIKE 'slice-%'").fetchone()
        finally:
            db.close()
        return int(row[0])
    except sqlite3.OperationalError:  # schema not written yet
        return 0


def count(c: ClusterClient, index: str) -> int:
    c.call("POST", f"/{index}/_refresh")
    return int(c.call("GET", f"/{index}/_count")["count"])


def kill_cycles(args: list[str], state: Path, env: dict[str, str], *, min_kills: int, rng: random.Random,
                max_steps: int = 4, max_delay: float = 0.02, timeout: float = 600,
                total: int = SRC_DOCS) -> tuple[int, subprocess.CompletedProcess]:
    """Start, wait until the state shows 1..``max_steps`` new acknowledged bulks, wait a random
    moment, SIGKILL; again, until ``min_kills`` kills happened; then one run to the end.
    Returns (kills, last run).

    The kill moment is counted in acknowledged progress, not in seconds: a faster machine then
    copies no more per cycle than a slow one, and the number of kills a copy allows does not
    depend on the machine (a time-based wait let a quiet CI machine finish after 7 kills)."""
    kills = 0
    deadline = time.monotonic() + timeout
    while kills < min_kills:
        assert time.monotonic() < deadline, f"only {kills} kills in {timeout}s"
        target = acked(state) + BULK_DOCS * rng.randint(1, max_steps)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None and acked(state) < target:
                time.sleep(0.002)
            if proc.poll() is None:
                time.sleep(rng.uniform(0, max_delay))  # land at different moments between two saves
            # not once everything is acknowledged: a kill after the run saved "complete" would leave
            # the next run nothing to do, and this test no final summary to check
            if proc.poll() is None and acked(state) < total:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode == 0 and kills < min_kills:
            pytest.fail(f"the copy finished after {kills} kill(s): make it slower (stderr: {err.decode()[-500:]})")
    last = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return kills, last


def verify_equal(body: Path, destination, source, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(cli("verify", str(body), "--dest", destination.url, "--source-ca", str(source.ca_file), "--json"),
                          env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return orjson.loads(proc.stdout)


def assert_no_secret(state: Path, password: str) -> None:
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    for f in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        if f.exists():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
            assert password.encode() not in f.read_bytes(), f"password found in {f}"


# -- kill -9 at random moments ---------------------------------------------------------

def test_kill9_cycles_pit_lose_and_duplicate_nothing(tmp_path, source, destination, src, dst, env, password) -> None:
    body = write_body(tmp_path, source, "resume-pit")
    state = tmp_path / "job.sqlite"
    kills, last = kill_cycles(run_args(body, destination, source, state, *SLOW), state, env, min_kills=10, rng=random.Random(1))
    assert kills >= 10
    assert last.returncode == 0, last.stderr
    summary = orjson.loads(last.stdout)
    assert summary["complete"] is True
    # the summary of the last run covers every run: it adds up to the source count exactly
    assert summary["total"] == SRC_DOCS
    assert summary["created"] + summary["updated"] == SRC_DOCS
    assert (summary["failed"], summary["version_conflicts"], summary["failures"]) == (0, 0, [])
    assert 0 < summary["resumed_docs"] < SRC_DOCS
    assert re.search(r"resuming job client copy of resume-src .* from state .*job\.sqlite: [\d,]+ of 3,000 documents already copied", " ".join(last.stderr.split()))
    assert count(dst, "resume-pit") == SRC_DOCS  # nothing duplicated (ids), nothing lost
    assert verify_equal(body, destination, source, env)["equal"] is True
    assert_no_secret(state, password)

    # a finished job run again: says so, writes nothing, exit 0
    dst.call("POST", "/resume-pit/_refresh")
    seq_before = dst.call("GET", "/resume-pit/_stats/indexing")["_all"]["primaries"]["indexing"]["index_total"]
    again = subprocess.run(run_args(body, destination, source, state)[:-1], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "job already complete" in again.stdout and "remote-reindex verify" in again.stdout and "--restart" in again.stdout
    assert dst.call("GET", "/resume-pit/_stats/indexing")["_all"]["primaries"]["indexing"]["index_total"] == seq_before

    # --restart: copies everything again (all updates now)
    restart = subprocess.run(run_args(body, destination, source, state, "--restart"), env=env, capture_output=True, text=True, timeout=300)
    assert restart.returncode == 0, restart.stderr
    r = orjson.loads(restart.stdout)
    assert (r["total"], r["updated"], r.get("resumed_docs", 0)) == (SRC_DOCS, SRC_DOCS, 0)


def test_kill9_cycles_op_type_create_counts_replays_as_copied(tmp_path, source, destination, src, dst, env) -> None:
    body = write_body(tmp_path, source, "resume-create", dest={"op_type": "create"})
    state = tmp_path / "job.sqlite"
    kills, last = kill_cycles(run_args(body, destination, source, state, *SLOW), state, env, min_kills=5, rng=random.Random(2))
    assert last.returncode == 0, last.stderr
    s = orjson.loads(last.stdout)
    assert s["complete"] is True
    # replayed documents conflict (create) but were written by this job: counted as created, not as failures
    assert (s["total"], s["created"], s["updated"], s["version_conflicts"], s["failed"]) == (SRC_DOCS, SRC_DOCS, 0, 0, 0)
    assert count(dst, "resume-create") == SRC_DOCS
    assert verify_equal(body, destination, source, env)["equal"] is True


def test_kill9_scroll_slices_replay_from_their_start(tmp_path, source, destination, src, dst, env) -> None:
    body = write_body(tmp_path, source, "resume-scroll")
    state = tmp_path / "job.sqlite"
    kills, last = kill_cycles(run_args(body, destination, source, state, *SLOW, "--read-mode", "scroll", "--parallel", "3"),
                              state, env, min_kills=3, rng=random.Random(3))
    assert last.returncode == 0, last.stderr
    s = orjson.loads(last.stdout)
    assert (s["complete"], s["total"], s["created"] + s["updated"], s["failed"]) == (True, SRC_DOCS, SRC_DOCS, 0)
    assert "scroll cannot rewind" in " ".join(last.stderr.split())
    assert count(dst, "resume-scroll") == SRC_DOCS
    assert verify_equal(body, destination, source, env)["equal"] is True
    src.request("DELETE", "/_search/scroll/_all")  # the killed runs' scrolls would live on for their keep-alive


# -- the point in time expired meanwhile -----------------------------------------------

def saved_pit(state: Path) -> str:
    db = sqlite3.connect(str(state))
    try:
        rows = db.execute("SELECT position FROM cursor WHERE part LIKE 'slice-%'").fetchall()
    finally:
        db.close()
    ids = [orjson.loads(r[0]).get("pit_id") for r in rows if r[0]]
    return next(i for i in ids if i)


def kill_once(args: list[str], state: Path, env: dict[str, str], at_least: int) -> None:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        while proc.poll() is None and acked(state) < at_least:
            time.sleep(0.01)
        assert proc.poll() is None, "the copy ended before it could be killed: " + proc.stderr.read().decode()[-500:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until_pit_gone(c: ClusterClient, pit_id: str, timeout: float = 180) -> None:
    """Until the source holds no search context on the index (the keep-alive ran out and the
    reaper freed them), then a search on the PIT must fail. Polling the PIT itself would
    keep it alive (every use restarts its keep-alive)."""
    c.request("DELETE", "/_search/scroll/_all")  # scroll contexts other tests' killed runs left behind
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = c.call("GET", f"/{SRC_INDEX}/_stats/search")
        if stats["_all"]["total"]["search"]["open_contexts"] == 0:
            resp = c.request("POST", "/_search", body={"size": 0, "pit": {"id": pit_id}})
            assert resp.status != 200 or (resp.json().get("_shards") or {}).get("failed"), "no open context, yet the PIT answers"
            return
        time.sleep(0.5)
    pytest.fail("the point in time did not expire")


def test_pit_expired_source_unchanged_continues_on_a_new_pit(tmp_path, source, destination, src, dst, env) -> None:
    body = write_body(tmp_path, source, "resume-expired")
    state = tmp_path / "job.sqlite"
    args = run_args(body, destination, source, state, *SLOW, "--keep-alive", "2s")
    kill_once(args, state, env, at_least=600)
    before = acked(state)
    wait_until_pit_gone(src, saved_pit(state))
    last = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr
    text = " ".join(last.stderr.split())
    assert "continuing on a new point in time (the saved one expired; the source's segments are unchanged)" in text
    s = orjson.loads(last.stdout)
    assert s["resumed_docs"] == before  # nothing re-read from the slice starts
    assert (s["total"], s["created"] + s["updated"], s["failed"]) == (SRC_DOCS, SRC_DOCS, 0)
    assert count(dst, "resume-expired") == SRC_DOCS
    assert verify_equal(body, destination, source, env)["equal"] is True


def test_pit_expired_source_changed_replays_slices(tmp_path, source, destination, src, dst, env) -> None:
    body = write_body(tmp_path, source, "resume-changed")
    state = tmp_path / "job.sqlite"
    args = run_args(body, destination, source, state, *SLOW, "--keep-alive", "2s")
    try:
        kill_once(args, state, env, at_least=600)
        wait_until_pit_gone(src, saved_pit(state))
        # the source changes while nobody holds a PIT: doc ids may move, the saved positions mean nothing now
        src.call("PUT", f"/{SRC_INDEX}/_doc/late-1", body={"n": -1, "text": "late"}, params={"refresh": "true"})
        last = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert last.returncode == 0, last.stderr
        assert "the saved point in time expired and the source changed" in " ".join(last.stderr.split())
        s = orjson.loads(last.stdout)
        assert (s["total"], s["created"] + s["updated"], s["failed"], s.get("resumed_docs", 0)) == (SRC_DOCS + 1, SRC_DOCS + 1, 0, 0)
        assert count(dst, "resume-changed") == SRC_DOCS + 1
        assert verify_equal(body, destination, source, env)["equal"] is True
    finally:
        src.request("DELETE", f"/{SRC_INDEX}/_doc/late-1", params={"refresh": "true"})
        src.call("POST", f"/{SRC_INDEX}/_forcemerge", params={"max_num_segments": 1})


# -- bad state files -------------------------------------------------------------------

def one_line(text: str) -> str:
    return " ".join(text.split())


def test_state_of_another_job_and_corrupted_state_write_nothing(tmp_path, source, destination, src, dst, env, password) -> None:
    other = tmp_path / "other.sqlite"
    first = subprocess.run(run_args(write_body(tmp_path, source, "resume-other", max_docs=10), destination, source, other), env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    body = write_body(tmp_path, source, "resume-never")
    proc = subprocess.run(run_args(body, destination, source, other), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and password not in proc.stderr + proc.stdout
    assert f"error: state file {other} belongs to another job (client copy of resume-src" in one_line(proc.stderr)
    assert "fix: Give a different --state file for this job, or delete that one to start over." in one_line(proc.stderr)
    assert dst.request("HEAD", "/resume-never").status == 404

    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    proc = subprocess.run(run_args(body, destination, source, broken), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"error: state file {broken} is not a remote-reindex state file or is corrupted" in one_line(proc.stderr)
    assert "fix: Delete it to start the job over, or give another --state file." in one_line(proc.stderr)
    assert dst.request("HEAD", "/resume-never").status == 404

    proc = subprocess.run(run_args(body, destination, source, tmp_path / "none.sqlite", "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "error: nothing to resume: there is no state file" in one_line(proc.stderr)
    assert not (tmp_path / "none.sqlite").exists()
    assert dst.request("HEAD", "/resume-never").status == 404
