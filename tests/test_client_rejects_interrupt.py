"""The client engine after rejected documents and after Ctrl-C, on real nodes (and verify's
Ctrl-C against a destination that never answers, no nodes).

- Documents the destination rejected (dead-lettered) are not "copied": once the cause is
  fixed, the same command sends them again, the counts add up, and the re-run names the
  dead-letter file the earlier run actually used (kept in the state file).
- SIGINT stops the copy: in-flight bulks are awaited, cursors saved, the summary printed,
  then ``error: interrupted: N of M documents copied`` / ``fix: run the same command
  again: it resumes from STATE``, exit 130; the re-run finishes the job.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from remote_reindex.cluster import ClusterClient

PASSWORD_VAR = "H8_SOURCE_PASSWORD"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "remote_reindex.cli.main", *args]


@pytest.fixture(scope="module")
def env(source) -> dict[str, str]:
    return {**os.environ, PASSWORD_VAR: source.password_file.read_text().strip()}


def write_body(tmp_path: Path, source, src_index: str, dest_index: str) -> Path:
    body = {"source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username,
                                  "password": "${%s}" % PASSWORD_VAR}, "index": src_index},
            "dest": {"index": dest_index}}
    p = tmp_path / f"{dest_index}.json"
    p.write_text(orjson.dumps(body).decode())
    return p


def fill(c: ClusterClient, index: str, docs: int, bad: set[int] = frozenset(), shards: int = 2) -> None:
    c.request("DELETE", f"/{index}")
    c.call("PUT", f"/{index}", body={"settings": {"number_of_shards": shards, "number_of_replicas": 0},
                                     "mappings": {"properties": {"v": {"type": "keyword"}, "text": {"type": "text"}}}})
    for start in range(0, docs, 1000):
        lines = b"".join(
            orjson.dumps({"index": {"_index": index, "_id": f"d{i:05d}"}}) + b"\n"
            + orjson.dumps({"v": f"bad-{i}" if i in bad else str(i), "text": "alpha beta gamma delta " * 10}) + b"\n"
            for i in range(start, min(start + 1000, docs)))
        c.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson")
    c.call("POST", f"/{index}/_refresh")


def count(c: ClusterClient, index: str) -> int:
    c.call("POST", f"/{index}/_refresh")
    return int(c.call("GET", f"/{index}/_count")["count"])


def acked(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        db = sqlite3.connect(str(state), timeout=5)
        try:
            row = db.execute("SELECT COALESCE(SUM(docs_done), 0) FROM cursor WHERE part LIKE 'slice-%'").fetchone()
        finally:
            db.close()
        return int(row[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.nodes
def test_rejected_documents_are_sent_again_by_the_rerun(tmp_path, source, destination, env) -> None:
    bad = set(range(7, 400, 13))  # in both slices
    with source.client(timeout=120) as sc, destination.client(timeout=120) as dc:
        try:
            fill(sc, "rj-src", 400, bad)
            dc.request("DELETE", "/rj-dst")
            dc.call("PUT", "/rj-dst", body={"mappings": {"dynamic": "strict", "properties": {"v": {"type": "integer"}, "text": {"type": "text"}}}})
            body = write_body(tmp_path, source, "rj-src", "rj-dst")
            state, dead = tmp_path / "job.sqlite", tmp_path / "dl.ndjson"
            args = cli("run", str(body), "--dest", destination.url, "--engine", "client", "--source-ca", str(source.ca_file),
                       "--state", str(state), "--parallel", "2", "--json")
            first = subprocess.run([*args, "--dead-letter", str(dead)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
            assert first.returncode == 9, first.stderr
            s1 = orjson.loads(first.stdout)
            assert (s1["total"], s1["failed"], s1["created"]) == (400, len(bad), 400 - len(bad))
            assert len(dead.read_bytes().splitlines()) == len(bad)
            assert f"fix: Fix the cause shown, then run the same command again: it resumes from {state}." in first.stderr

            dc.call("DELETE", "/rj-dst")  # the cause: the conflicting mapping
            again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
            assert again.returncode == 0, again.stderr
            s2 = orjson.loads(again.stdout)
            assert (s2["complete"], s2["total"], s2["created"] + s2["updated"], s2["failed"]) == (True, 400, 400, 0), again.stderr + again.stdout
            assert s2.get("resumed_docs", 0) == 0  # both slices had rejected documents: nothing counted as copied before
            err = " ".join(again.stderr.split())
            assert "0 of 400 documents already copied" in err
            assert f"rj-src: {len(bad)} document(s) rejected by an earlier run (dead letter: {dead}) are sent again: 2 slice(s) read again from their start" in err
            assert "were not written" not in err
            assert not (tmp_path / "remote-reindex-dead-letter-rj-src.ndjson").exists()
            assert count(dc, "rj-dst") == 400
        finally:
            sc.request("DELETE", "/rj-src")
            dc.request("DELETE", "/rj-dst")


@pytest.mark.nodes
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_sigint_stops_the_copy_saves_cursors_and_the_rerun_finishes(sig, tmp_path, source, destination, env) -> None:
    docs = 3000
    with source.client(timeout=120) as sc, destination.client(timeout=120) as dc:
        try:
            fill(sc, "int-src", docs)
            dc.request("DELETE", "/int-dst")
            body = write_body(tmp_path, source, "int-src", "int-dst")
            state = tmp_path / "job.sqlite"
            args = cli("run", str(body), "--dest", destination.url, "--engine", "client", "--source-ca", str(source.ca_file),
                       "--state", str(state), "--json", "--read-size", "100", "--bulk-docs", "25", "--parallel", "2")
            proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 120
                while proc.poll() is None and acked(state) == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert proc.poll() is None, "the copy ended before it could be interrupted"
                proc.send_signal(sig)  # SIGTERM (timeout, systemd) stops as cleanly as Ctrl-C
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err_text = err.decode()
            assert proc.returncode == 130, err_text
            s = orjson.loads(out)
            copied = s["created"] + s["updated"]
            assert (s["interrupted"], s["complete"]) == (True, False)
            assert 0 < copied < docs
            # total adds up: documents read but dropped by the stop are not in it (the re-run reads them)
            assert s["total"] == copied + s["version_conflicts"] + s["noops"] + s["failed"]
            assert "interrupted: stopping; waiting up to 30 s for the writes in flight (Ctrl-C again to quit at once)" in err_text
            lines = err_text.strip().splitlines()
            assert lines[-2:] == [f"error: interrupted: {copied:,} of {docs:,} documents copied",
                                  f"fix: run the same command again: it resumes from {state}"]
            assert acked(state) == copied  # every acknowledged batch is in the state file
            assert count(dc, "int-dst") == copied  # in-flight writes finished before the exit; nothing unaccounted

            again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
            assert again.returncode == 0, again.stderr
            s2 = orjson.loads(again.stdout)
            assert (s2["complete"], s2["total"], s2["created"] + s2["updated"], s2["failed"], s2["resumed_docs"]) == (True, docs, docs, 0, copied)
            assert count(dc, "int-dst") == docs
        finally:
            sc.request("DELETE", "/int-src")
            dc.request("DELETE", "/int-dst")


@pytest.fixture()
def silent_server() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    connected = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conns.append(conn)
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1], connected
    srv.close()
    for c in conns:
        c.close()


def test_verify_interrupted_prints_two_lines_and_exits_130(tmp_path, silent_server) -> None:
    port, connected = silent_server
    body = tmp_path / "body.json"
    body.write_text('{"source": {"index": "a"}, "dest": {"index": "b"}}')
    proc = subprocess.Popen(cli("verify", str(body), "--dest", f"http://127.0.0.1:{port}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert connected.wait(60), "verify never connected"  # verify() is running: its handler is installed
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.decode().splitlines() == [
        "error: interrupted: verify stopped before it finished comparing",
        "fix: run the same command again: verify only reads, so it starts over and nothing needs cleaning up",
    ]
    assert "Traceback" not in err.decode()
