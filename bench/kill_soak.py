"""Kill-cycle soak of the client engine's resume: SIGKILL ``remote-reindex run`` at random
moments, over and over, and check after every cycle that nothing was lost.

Starts its own sandbox (TLS source ES 7.17.29 with a private CA + ES 7.17.29 destination,
512 MB heaps), writes a test index on the source, then per cycle: start the copy, wait
until the state file shows new acknowledged documents, wait a random moment, SIGKILL.
When the copy finishes on its own, the destination is checked (count, unique ids,
``remote-reindex verify``), the destination index and the state file are deleted, and a
new copy starts — until ``--cycles`` kills have happened. Reported:

- cycles survived (kills), copies completed;
- lost: source documents missing on the destination after a completed copy (expect 0);
- duplicates: destination documents beyond the source count (expect 0: writes go by _id);
- summary mismatches: completed runs whose summary did not add up to the source count;
- time to resume: from the restart to the first newly acknowledged document.

    python bench/kill_soak.py --cycles 40 --docs 5000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from remote_reindex.cluster import ClusterClient
from remote_reindex.sandbox import Sandbox, new_home

INDEX = "soak-src"
DEST_INDEX = "soak-dst"
PASSWORD_VAR = "SOAK_SOURCE_PASSWORD"


def acked(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        db = sqlite3.connect(str(state), timeout=5)
        try:
            return int(db.execute("SELECT COALESCE(SUM(docs_done), 0) FROM cursor WHERE part LIKE 'slice-%'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def load_source(src: ClusterClient, docs: int) -> None:
    src.request("DELETE", f"/{INDEX}")
    src.call("PUT", f"/{INDEX}", body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}})
    rng = random.Random(42)
    for start in range(0, docs, 1000):
        lines = b"".join(orjson.dumps({"index": {"_index": INDEX, "_id": f"k{i:06d}"}}) + b"\n"
                         + orjson.dumps({"n": i, "text": " ".join(rng.choice(["alpha", "beta", "gamma"]) for _ in range(40))}) + b"\n"
                         for i in range(start, min(start + 1000, docs)))
        src.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson")
    src.call("POST", f"/{INDEX}/_refresh")
    src.call("POST", f"/{INDEX}/_forcemerge", params={"max_num_segments": 1})


def unique_ids(dst: ClusterClient) -> int:
    answer = dst.call("POST", f"/{DEST_INDEX}/_search", body={"size": 0, "aggs": {"ids": {"cardinality": {"field": "n", "precision_threshold": 40000}}}})
    return int(answer["aggregations"]["ids"]["value"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=40, help="kills to survive")
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--max-delay", type=float, default=0.5, help="random wait (s) after progress before the kill")
    ap.add_argument("--read-mode", default="pit", choices=["pit", "scroll"])
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    home = new_home("soak-")
    work = Path(tempfile.mkdtemp(prefix="kill-soak-"))
    sb = Sandbox(home)
    t0 = time.monotonic()
    try:
        sb.up(docs=10)
        assert sb.source is not None and sb.destination is not None
        source, destination = sb.source, sb.destination
        print(f"sandbox up in {time.monotonic() - t0:.0f}s (source {source.url}, destination {destination.url})", flush=True)
        src, dst = source.client(timeout=120), destination.client(timeout=120)
        load_source(src, args.docs)
        body = work / "body.json"
        body.write_text(orjson.dumps({
            "source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username, "password": "${%s}" % PASSWORD_VAR},
                       "index": INDEX},
            "dest": {"index": DEST_INDEX},
        }).decode())
        env = {**os.environ, PASSWORD_VAR: source.password_file.read_text().strip()}
        state = work / "state.sqlite"
        run = [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body), "--dest", destination.url, "--engine", "client",
               "--source-ca", str(source.ca_file), "--state", str(state), "--json", "--read-mode", args.read_mode,
               "--read-size", "100", "--bulk-docs", "25", "--parallel", "2"]
        verify = [sys.executable, "-m", "remote_reindex.cli.main", "verify", str(body), "--dest", destination.url, "--source-ca", str(source.ca_file), "--json"]

        kills = copies = lost = duplicates = mismatches = verify_failures = 0
        resume_times: list[float] = []
        killed_before = False
        while kills < args.cycles:
            before = acked(state)
            started = time.monotonic()
            proc = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            while proc.poll() is None and acked(state) <= before:
                time.sleep(0.005)
            if proc.poll() is None and killed_before:
                resume_times.append(time.monotonic() - started)
            if proc.poll() is None:
                time.sleep(rng.uniform(0, args.max_delay))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                killed_before = True
                continue
            out, err = proc.communicate()
            if proc.returncode != 0:
                print(f"run failed (exit {proc.returncode}): {err.decode()[-800:]}", flush=True)
                return 1
            copies += 1
            summary = orjson.loads(out)
            dst.call("POST", f"/{DEST_INDEX}/_refresh")
            n = int(dst.call("GET", f"/{DEST_INDEX}/_count")["count"])
            ids = unique_ids(dst)
            lost += max(0, args.docs - ids)
            duplicates += max(0, n - args.docs)
            # (killed after it saved "done" but before it exited: this run found the job complete and wrote nothing)
            if not summary.get("already_complete") and (summary["total"], summary["created"] + summary["updated"], summary["failed"]) != (args.docs, args.docs, 0):
                mismatches += 1
            v = subprocess.run(verify, env=env, capture_output=True, text=True)
            if v.returncode != 0:
                verify_failures += 1
            print(f"copy {copies} complete after {kills} kill(s) so far: dest count {n}, unique {ids}, summary total {summary.get('total', 'already complete')} "
                  f"created {summary.get('created')} updated {summary.get('updated')} resumed {summary.get('resumed_docs', 0)}; verify exit {v.returncode}", flush=True)
            dst.request("DELETE", f"/{DEST_INDEX}")
            for p in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
                p.unlink(missing_ok=True)
            killed_before = False
        # the last copy: to the end
        last = subprocess.run(run, env=env, capture_output=True, text=True)
        if last.returncode == 0:
            copies += 1
            summary = orjson.loads(last.stdout)
            dst.call("POST", f"/{DEST_INDEX}/_refresh")
            n = int(dst.call("GET", f"/{DEST_INDEX}/_count")["count"])
            ids = unique_ids(dst)
            lost += max(0, args.docs - ids)
            duplicates += max(0, n - args.docs)
            if not summary.get("already_complete") and (summary["total"], summary["created"] + summary["updated"], summary["failed"]) != (args.docs, args.docs, 0):
                mismatches += 1
            verify_failures += subprocess.run(verify, env=env, capture_output=True, text=True).returncode != 0
        report: dict[str, Any] = {
            "cycles_survived": kills, "copies_completed": copies, "docs_per_copy": args.docs, "read_mode": args.read_mode,
            "lost": lost, "duplicates": duplicates, "summary_mismatches": mismatches, "verify_failures": int(verify_failures),
            "time_to_resume_s": {"median": round(statistics.median(resume_times), 2), "max": round(max(resume_times), 2), "n": len(resume_times)} if resume_times else None,
            "wall_s": round(time.monotonic() - t0),
        }
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0 if lost == duplicates == mismatches == verify_failures == 0 and last.returncode == 0 else 1
    finally:
        if not args.keep:
            sb.down()
            shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
