"""Faults inside one client-engine run, on real nodes: nothing is lost, or the run stops
with one clear line.

- the source connection is cut mid-copy (a TCP proxy between the engine and the TLS
  source, cutting mid-response): PIT retries are idempotent; a scroll slice restarts with
  a fresh scroll and skips what it already handed out (proved by the exact ``created``);
- a 429 storm with ``op_type: create`` (a retried create must not turn into conflicts);
- the destination node is stopped and started mid-copy: bulks wait for it;
- a write block on the destination index, before and during the copy: the job stops
  with "the destination index X is write-blocked" and its fix, nothing is dead-lettered,
  and the summary counts exactly what the destination holds.

Each run is stopped at a known point by the engine's own progress callback (no sleeps):
the callback blocks the writer that reached the point until the fault is in place.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, Callable, Iterator

import orjson
import pytest

from remote_reindex.cluster import ClusterClient
from remote_reindex.engines.client import copy
from remote_reindex.engines.client.source import IndexReader
from remote_reindex.engines.options import ClientOptions
from remote_reindex.engines.progress import Progress
from remote_reindex.engines.summary import RunSummary
from remote_reindex.plan.body import ReindexBody, parse_body
from remote_reindex.plan.source import source_client
from remote_reindex.sandbox import SAMPLE_INDEX
from remote_reindex.verify import VerifyOptions, verify

from tcp_proxy import TcpProxy

pytestmark = pytest.mark.nodes

SYSTEM_BUNDLE = next((p for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt") if os.path.exists(p)), None)
PASSWORD_VAR = "H9_SOURCE_PASSWORD"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, source) -> None:
    """The machine's environment (system bundle everywhere); the source password only in an env var."""
    if SYSTEM_BUNDLE:
        for var in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(var, SYSTEM_BUNDLE)
    monkeypatch.setenv(PASSWORD_VAR, source.password_file.read_text().strip())


def body_for(source, dest_index: str, *, port: int | None = None, **dest_extra: Any) -> ReindexBody:
    raw = {
        "source": {"remote": {"host": f"https://localhost:{port or source.node.http_port}", "username": source.username,
                              "password": "${%s}" % PASSWORD_VAR}, "index": SAMPLE_INDEX},
        "dest": {"index": dest_index, **dest_extra},
    }
    return parse_body(orjson.dumps(raw).decode())


def docs_of(client: ClusterClient, index: str) -> dict[str, Any]:
    client.call("POST", f"/{index}/_refresh")
    answer = client.call("POST", f"/{index}/_search", body={"size": 10_000, "sort": ["_doc"]})
    return {h["_id"]: h["_source"] for h in answer["hits"]["hits"]}


def count_of(client: ClusterClient, index: str) -> int:
    client.call("POST", f"/{index}/_refresh")
    return client.call("GET", f"/{index}/_count")["count"]


def assert_verified_equal(source, dest: ClusterClient, dest_index: str) -> None:
    """``remote_reindex.verify`` (counts + content digests) against the source itself."""
    body = body_for(source, dest_index)
    assert body.remote is not None
    with source_client(body.remote, ca_file=str(source.ca_file)) as src:
        result = verify(body, src, dest, VerifyOptions())
    assert result.equal, result.to_dict()


class FaultAt(Progress):
    """Calls ``fault`` once, in the writer thread whose batch brought the copy to
    ``after`` acknowledged documents; that writer waits until ``fault`` returns, so the
    fault is in place while the rest of the copy still has to run."""

    def __init__(self, after: int, fault: Callable[[], None]) -> None:
        self.after = after
        self.fault = fault
        self.done = 0
        self.fired = threading.Event()  # the point was reached
        self.applied = threading.Event()  # ``fault`` returned: the fault is in place
        self._lock = threading.Lock()

    def advance(self, index: str, docs: int) -> None:
        with self._lock:
            self.done += docs
            fire = self.done >= self.after and not self.fired.is_set()
            if fire:
                self.fired.set()
        if fire:
            try:
                self.fault()
            finally:
                self.applied.set()


@pytest.fixture(scope="module")
def source_docs(source) -> dict[str, Any]:
    with source.client(timeout=120) as sc:
        return docs_of(sc, SAMPLE_INDEX)


@pytest.fixture
def dest(destination) -> Iterator[ClusterClient]:
    with destination.client(timeout=120, maxsize=16) as c:
        yield c


def run_copy(source, body: ReindexBody, dest: ClusterClient, progress: Progress | None = None, **opts: Any) -> RunSummary:
    opts.setdefault("source_ca", str(source.ca_file))
    summary = copy(body, dest, ClientOptions(**opts), progress)
    assert isinstance(summary, RunSummary)
    return summary


# -- the source connection is cut mid-copy ----------------------------------------------------

@pytest.mark.parametrize("mode", ["pit", "scroll"])
def test_source_connections_cut_mid_response_lose_nothing(mode, source, source_docs, dest, tmp_path, monkeypatch) -> None:
    index = f"h9-cut-{mode}"
    dest.request("DELETE", f"/{index}")
    restarts: list[int] = []  # scroll slices restarted with a fresh scroll (observed, not changed)
    forget = IndexReader._forget_scroll
    monkeypatch.setattr(IndexReader, "_forget_scroll", lambda self, slice_id: (restarts.append(slice_id), forget(self, slice_id))[1])
    with TcpProxy(source.node.http_port) as proxy:
        def faults() -> None:
            # First a cut on command, then three cuts in the middle of later answers
            # (a scroll page the server already advanced past, whose bytes never arrive).
            assert proxy.cut() >= 1
            proxy.cut_after(30_000, times=3)

        progress = FaultAt(300, faults)
        try:
            s = run_copy(source, body_for(source, index, port=proxy.port), dest, progress, read_mode=mode, parallel=2,
                         read_size=100, bulk_docs=100, dead_letter_file=str(tmp_path / "dead.ndjson"))
            d = s.to_dict()
            assert progress.fired.is_set()
            assert proxy.cuts == 4, proxy.cuts  # the command + every armed cut happened mid-copy
            # every armed cut broke an answer in flight (the command may find only idle pooled connections)
            assert d["retries"]["search"] >= 3
            # Exactly once each: a skipped page would show as fewer, a replayed one as updates.
            assert (d["complete"], d["total"], d["created"], d["updated"], d["failed"], d["failures"]) == \
                (True, source.docs, source.docs, 0, 0, [])
            assert count_of(dest, index) == source.docs
            assert docs_of(dest, index) == source_docs
            assert_verified_equal(source, dest, index)
            assert not (tmp_path / "dead.ndjson").exists()
            if mode == "scroll":
                assert len(restarts) >= 1  # lost continuations were restarted with a fresh scroll, never re-sent
            else:
                assert restarts == []
        finally:
            dest.request("DELETE", f"/{index}")


# -- the destination pushes back: a 429 storm with op_type create ----------------------------------

def test_429_storm_with_op_type_create_retries_without_conflicts(source, source_docs, throttled_destination, tmp_path) -> None:
    """Complements test_client_engine's 429 test (op_type index, PIT): here scroll reads and
    create actions, whose retried items must be created, not reported as conflicts."""
    index = "h9-429-create"
    with throttled_destination.client(timeout=120, maxsize=32) as dest:
        dest.request("DELETE", f"/{index}")
        try:
            s = run_copy(source, body_for(source, index, op_type="create"), dest, read_mode="scroll", parallel=4,
                         bulk_docs=100, bulk_in_flight=8, read_size=200, max_retries=15, dead_letter_file=str(tmp_path / "dead.ndjson"))
            d = s.to_dict()
            assert d["retries"]["bulk"] > 0  # real per-item 429s were retried and counted
            assert d["indices"][0]["retries"]["bulk"] == d["retries"]["bulk"]
            assert (d["complete"], d["total"], d["created"], d["updated"], d["version_conflicts"], d["failed"]) == \
                (True, source.docs, source.docs, 0, 0, 0)
            assert docs_of(dest, index) == source_docs
            assert_verified_equal(source, dest, index)
            assert not (tmp_path / "dead.ndjson").exists()
        finally:
            dest.request("DELETE", f"/{index}")


# -- the destination node restarts mid-copy ------------------------------------------------------

def test_destination_restart_mid_copy_waits_and_completes(source, source_docs, extra_destination, tmp_path) -> None:
    side = extra_destination("elasticsearch", name="h9-restart")
    node = side.node
    index = "h9-restart"
    with side.client(timeout=60, connect_timeout=2, maxsize=16) as dest:
        dest.request("DELETE", f"/{index}")

        def stop_node() -> None:
            node.stop()  # the bulks of the other slices now meet refused connections

        progress = FaultAt(500, stop_node)
        result: dict[str, Any] = {}

        def copy_in_thread() -> None:
            try:
                result["summary"] = run_copy(source, body_for(source, index), dest, progress, read_mode="pit", parallel=2,
                                             read_size=100, bulk_docs=100, dead_letter_file=str(tmp_path / "dead.ndjson"))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

        t = threading.Thread(target=copy_in_thread, name="h9-restart-copy")
        t.start()
        try:
            assert progress.applied.wait(180), "the copy never reached 500 documents"
            # The node is down now (stop_node returned); the copy must still be waiting.
            assert t.is_alive()
            assert not node.is_running()
            node.start()
            t.join(300)
            assert not t.is_alive(), "the copy did not finish after the destination came back"
        finally:
            if not node.is_running():
                node.start()
            t.join(300)
        assert "error" not in result, result.get("error")
        d = result["summary"].to_dict()
        assert d["retries"]["bulk"] >= 1  # refused / reset bulks were retried
        # A bulk whose answer was lost to the stop may have been written: it is then an update.
        assert (d["complete"], d["total"], d["created"] + d["updated"], d["failed"], d["failures"]) == \
            (True, source.docs, source.docs, 0, [])
        assert count_of(dest, index) == source.docs
        assert docs_of(dest, index) == source_docs
        assert_verified_equal(source, dest, index)
        assert not (tmp_path / "dead.ndjson").exists()
        dest.request("DELETE", f"/{index}")


# -- a write block on the destination index --------------------------------------------------

WRITE_BLOCKED = "the destination index {0} is write-blocked"
LIFT_IT = 'Lift it with PUT {0}/_settings {{"index.blocks.write": false}}, then run again.'


def unblock_and_delete(dest: ClusterClient, index: str) -> None:
    dest.request("PUT", f"/{index}/_settings", body={"index.blocks.write": False})
    dest.request("DELETE", f"/{index}")


def test_write_block_mid_copy_stops_the_job_with_exact_counts(source, dest, tmp_path) -> None:
    index = "h9-blocked-mid"
    dest.request("DELETE", f"/{index}")

    def block() -> None:
        dest.call("PUT", f"/{index}/_settings", body={"index.blocks.write": True})

    progress = FaultAt(600, block)
    dead = tmp_path / "dead.ndjson"
    try:
        s = run_copy(source, body_for(source, index), dest, progress, read_mode="pit", parallel=2, read_size=100,
                     bulk_docs=100, dead_letter_file=str(dead))
        d = s.to_dict()
        assert progress.fired.is_set()
        assert d["complete"] is False
        held = count_of(dest, index)
        assert 600 <= held < source.docs
        assert d["created"] == held  # the summary counts exactly what the destination holds
        assert d["total"] == held  # the refused bulks' documents are not counted as processed
        assert (d["failed"], d["updated"]) == (0, 0)  # an index condition, not document errors
        assert not dead.exists()
        reasons = {(f["cause"]["type"], f["cause"]["reason"], f["cause"]["fix"]) for f in d["failures"]}
        assert reasons == {("write_blocked", WRITE_BLOCKED.format(index), LIFT_IT.format(index))}
        assert all("id" not in f for f in d["failures"])
    finally:
        unblock_and_delete(dest, index)


def test_write_block_before_the_copy_fails_cleanly_in_the_cli(source, destination, dest, tmp_path) -> None:
    index = "h9-blocked-before"
    dest.request("DELETE", f"/{index}")
    dest.call("PUT", f"/{index}", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    dest.call("PUT", f"/{index}/_settings", body={"index.blocks.write": True})
    body_file = tmp_path / "body.json"
    body_file.write_text(orjson.dumps({
        "source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username,
                              "password": "${%s}" % PASSWORD_VAR}, "index": SAMPLE_INDEX},
        "dest": {"index": index},
    }).decode())
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body_file), "--dest", destination.url, "--engine", "client",
             "--source-ca", str(source.ca_file), "--read-mode", "scroll"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=os.environ.copy(),
        )
        assert proc.returncode != 0
        lines = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "fix:"))]
        assert lines == [f"error: {WRITE_BLOCKED.format(index)}", f"fix: {LIFT_IT.format(index)}"], proc.stderr
        assert "Traceback" not in proc.stderr
        assert count_of(dest, index) == 0
        assert list(tmp_path.glob("remote-reindex-dead-letter-*")) == []  # nothing dead-lettered
        assert source.password_file.read_text().strip() not in proc.stdout + proc.stderr
    finally:
        unblock_and_delete(dest, index)
