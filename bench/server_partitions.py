"""Does splitting an index into partitions (parallel remote ``_reindex`` tasks) cost or gain
anything against one plain remote ``_reindex``? Measured against the destination's bulk ceiling.

    REMOTE_REINDEX_SANDBOX_HOME=/var/tmp/h7-bench python bench/server_partitions.py [--docs 200000] [--keep]

On a sandbox (source ES 7.17.29 over TLS with the private CA, destination ES 7.17.29 with
the reindex module, configured as the guide's steps 3-4 say; reused when already up):

1. destination bulk ceiling: pre-built ~5 MB ``_bulk`` bodies, 1 / 2 / 4 in flight; the best is the ceiling;
2. one plain ``POST _reindex`` from remote (started async, followed from its task), ``size`` 1000 and 5000;
3. the server engine (``engines.server.copy``) with 2 and 4 partitions, as many tasks at once.

Each copy goes into a fresh index created with the source's mappings and settings, is
verified (destination count == source count, then ``remote_reindex.verify``: bucketed
content digests of every document) before its figure counts, and is deleted after.
While copies run, ``_tasks`` is sampled every 0.5 s: each task's docs/s while it ran
alone and while it ran together with other tasks.

Prints a table and writes bench/results/server_partitions-<time>.json. Compare figures
only within one run: other load on the machine moves all of them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from remote_reindex.bundle import build_bundle
from remote_reindex.cluster import ClusterClient
from remote_reindex.engines.metadata import copy_index_metadata
from remote_reindex.engines.options import ServerOptions
from remote_reindex.engines.server import copy as server_copy
from remote_reindex.engines.server.preflight import probe_trust
from remote_reindex.engines.server.tasks import get_status, remove_result
from remote_reindex.plan.body import ReindexBody, body_from_dict
from remote_reindex.sandbox import SAMPLE_INDEX, Sandbox, SourceSide, default_home, sample_documents
from remote_reindex.verify.compare import verify

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BAR = 0.9  # partitions must keep at least this share of one plain _reindex's rate
SAMPLE_EVERY = 0.5


# -- per-task rates from _tasks ------------------------------------------------------------


@dataclass
class TaskRates:
    docs_alone: int = 0
    secs_alone: float = 0.0
    docs_together: int = 0
    secs_together: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "alone_docs_per_s": round(self.docs_alone / self.secs_alone) if self.secs_alone > 1 else None,
            "together_docs_per_s": round(self.docs_together / self.secs_together) if self.secs_together > 1 else None,
            "secs_alone": round(self.secs_alone, 1), "secs_together": round(self.secs_together, 1),
        }


class TaskSampler:
    """Polls the destination's running reindex tasks; between two samples, every task seen
    in both advanced by (created + updated) docs, alone or together with the others."""

    def __init__(self, dest: ClusterClient) -> None:
        self.dest = dest
        self.rates: dict[str, TaskRates] = {}
        self.max_running = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-sampler", daemon=True)

    def _sample(self) -> dict[str, int]:
        answer = self.dest.call("GET", "/_tasks", params={"actions": "*reindex", "detailed": "true"}, timeout=30)
        done: dict[str, int] = {}
        for node_id, node in (answer.get("nodes") or {}).items():
            for task_id, task in (node.get("tasks") or {}).items():
                if task.get("parent_task_id"):
                    continue  # only the top-level reindex task of each copy
                status = task.get("status") or {}
                done[task_id] = int(status.get("created") or 0) + int(status.get("updated") or 0)
        return done

    def _run(self) -> None:
        prev_t, prev = time.monotonic(), self._sample()
        while not self._stop.wait(SAMPLE_EVERY):
            now_t, now = time.monotonic(), self._sample()
            both = [t for t in now if t in prev]
            self.max_running = max(self.max_running, len(now))
            together = len(both) > 1
            for t in both:
                r = self.rates.setdefault(t, TaskRates())
                docs = now[t] - prev[t]
                if together:
                    r.docs_together += docs
                    r.secs_together += now_t - prev_t
                else:
                    r.docs_alone += docs
                    r.secs_alone += now_t - prev_t
            prev_t, prev = now_t, now

    def __enter__(self) -> "TaskSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> list[dict[str, Any]]:
        return [{"task": t, **r.to_dict()} for t, r in self.rates.items() if r.secs_alone + r.secs_together > 1]


# -- the measurements ----------------------------------------------------------------------


@dataclass
class Result:
    method: str
    docs: int
    wall_s: float  # what the user waits for (engine: checks + planning + metadata + copy)
    copy_s: float  # first task start to last task end (plain: the same as wall)
    verified: str = ""
    verify_s: float | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.docs / self.copy_s


def fresh_index(src: ClusterClient, dst: ClusterClient, name: str) -> None:
    dst.request("DELETE", f"/{name}")
    copy_index_metadata(src, dst, SAMPLE_INDEX, name)


def count(client: ClusterClient, name: str) -> int:
    client.call("POST", f"/{name}/_refresh")
    return int(client.call("GET", f"/{name}/_count")["count"])


def check_copy(src: ClusterClient, dst: ClusterClient, body: ReindexBody | None, name: str, expected: int, deep: bool) -> tuple[str, float | None]:
    """Count first (cheap), then every document's content digest. Raises when not equal:
    a figure only counts for a complete, exact copy."""
    got = count(dst, name)
    if got != expected:
        raise SystemExit(f"{name}: {got:,} documents on the destination, expected {expected:,}: the figure does not count")
    if not deep or body is None:
        return "count", None
    t0 = time.monotonic()
    result = verify(body, src, dst)
    took = time.monotonic() - t0
    if not result.equal:
        raise SystemExit(f"{name}: verify found differences: {orjson.dumps(result.to_dict()).decode()[:500]}")
    return "count+digests", took


def bench_ceiling(src: ClusterClient, dst: ClusterClient, docs: int, in_flight: int, body_bytes: int = 5 * 1024 * 1024) -> Result:
    name = "bench-ceiling"
    fresh_index(src, dst, name)
    bodies: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for doc_id, doc in sample_documents(docs):
        line = orjson.dumps({"index": {"_index": name, "_id": doc_id}}) + b"\n" + orjson.dumps(doc) + b"\n"
        if size + len(line) > body_bytes and cur:
            bodies.append(b"".join(cur))
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        bodies.append(b"".join(cur))

    def send(body: bytes) -> None:
        answer = dst.call("POST", "/_bulk", body=body, content_type="application/x-ndjson", timeout=600)
        if answer.get("errors"):
            raise SystemExit("a ceiling _bulk had item errors: the figure does not count")

    started = time.monotonic()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(send, bodies))
    dst.call("POST", f"/{name}/_refresh")  # the copies refresh at the end too
    took = time.monotonic() - started
    verified, _ = check_copy(src, dst, None, name, docs, deep=False)
    dst.call("DELETE", f"/{name}")
    return Result(f"bulk ceiling, 5 MB bodies, {in_flight} in flight", docs, took, took, verified,
                  extra={"bodies": len(bodies), "in_flight": in_flight})


def remote_body(source: SourceSide, password: str, dest_index: str, size: int | None) -> dict[str, Any]:
    src: dict[str, Any] = {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username, "password": password},
                           "index": SAMPLE_INDEX}
    if size is not None:
        src["size"] = size
    return {"source": src, "dest": {"index": dest_index}}


def bench_plain(source: SourceSide, src: ClusterClient, dst: ClusterClient, docs: int, password: str, size: int, deep: bool) -> Result:
    name = f"bench-plain-{size}"
    fresh_index(src, dst, name)
    raw = remote_body(source, password, name, size)
    with TaskSampler(dst) as sampler:
        started = time.monotonic()
        answer = dst.call("POST", "/_reindex", body=raw, params={"wait_for_completion": "false", "refresh": "true"})
        task_id = str(answer["task"])
        while True:
            status = get_status(dst, task_id)
            if status.completed:
                break
            time.sleep(0.1)
        wall = time.monotonic() - started
    remove_result(dst, task_id)
    if status.error is not None or status.failures or status.created != docs:
        raise SystemExit(f"plain _reindex size {size} did not copy everything: created {status.created}, error {status.error}")
    verified, vtook = check_copy(src, dst, body_from_dict(raw), name, docs, deep)
    dst.call("DELETE", f"/{name}")
    return Result(f"plain remote _reindex, size {size}", docs, wall, wall, verified, vtook, sampler.summary(),
                  extra={"size": size, "task_took_s": status.took_ms / 1000})


def bench_engine(source: SourceSide, src: ClusterClient, dst: ClusterClient, docs: int, password: str, partitions: int, size: int | None, deep: bool) -> Result:
    name = f"bench-engine-{partitions}p"
    dst.request("DELETE", f"/{name}")  # the engine creates it with the source's mappings and settings
    body = body_from_dict(remote_body(source, password, name, size))
    options = ServerOptions(source_ca=str(source.ca_file), partitions=partitions, parallel=partitions, poll_interval=0.25)
    with TaskSampler(dst) as sampler:
        started = time.monotonic()
        summary = server_copy(body, dst, options)
        wall = time.monotonic() - started
    assert not isinstance(summary, dict)
    [s] = summary.indices
    if not summary.complete or s.created != docs:
        raise SystemExit(f"server engine, {partitions} partitions, did not copy everything: {orjson.dumps(summary.to_dict()).decode()[:500]}")
    verified, vtook = check_copy(src, dst, body, name, docs, deep)
    dst.call("DELETE", f"/{name}")
    label = f"server engine, {partitions} partitions" + (f", size {size}" if size else "")
    return Result(label, docs, wall, s.took_ms / 1000, verified, vtook, sampler.summary(),
                  extra={"partitions": partitions, "tasks": len(s.task_ids), "size": size, "max_tasks_at_once": sampler.max_running})


# -- setup ----------------------------------------------------------------------------------


def ensure_configured(sandbox: Sandbox, workdir: Path) -> None:
    """Steps 3-4 of the guide (bundle + settings + restart), unless the destination can pull already."""
    assert sandbox.source is not None and sandbox.destination is not None
    password = sandbox.source.password_file.read_text().strip()
    body = body_from_dict(remote_body(sandbox.source, password, "bench-probe", None))
    with sandbox.destination.client(timeout=120) as dst:
        if probe_trust(dst, body, SAMPLE_INDEX, "bench-probe") is None:
            return
    bundle = build_bundle([str(sandbox.source.ca_file)], name="my_source_ca", out_dir=workdir, target="self-managed")
    settings_file = workdir / "settings.yml"
    settings_file.write_text(
        f'reindex.remote.whitelist: ["localhost:{sandbox.source.node.http_port}"]\n'
        'reindex.ssl.certificate_authorities: ["my_source_ca/cacert.pem"]\nreindex.ssl.verification_mode: full\n')
    sandbox.configure_destination(bundle.zip_path, settings_file)


def print_table(results: list[Result], ceiling: float, plain: dict[int, float], compare_to: int) -> None:
    header = f"{'method':<42} {'docs/s':>8} {'copy s':>7} {'wall s':>7} {'x ceil':>7} {'x plain':>8}  {'verified':<14} per-task docs/s (alone / together)"
    print(header)
    print("-" * len(header))
    for r in results:
        x_plain = f"{r.rate / plain[compare_to]:.2f}" if plain.get(compare_to) and not r.method.startswith("bulk") else ""
        per_task = ", ".join(f"{t['alone_docs_per_s'] or '-'}/{t['together_docs_per_s'] or '-'}" for t in r.tasks)
        print(f"{r.method:<42} {r.rate:>8,.0f} {r.copy_s:>7.1f} {r.wall_s:>7.1f} {r.rate / ceiling:>7.2f} {x_plain:>8}  {r.verified:<14} {per_task}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--home", help=f"sandbox home (default: $REMOTE_REINDEX_SANDBOX_HOME or {default_home()})")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards (it is reused by the next run)")
    ap.add_argument("--size", type=int, default=None, help="source.size for the engine runs (default: the engine picks it by bytes)")
    ap.add_argument("--no-verify", action="store_true", help="check counts only, not every document's digest")
    args = ap.parse_args()

    home = Path(args.home) if args.home else default_home()
    sandbox = Sandbox(home)
    workdir = Path(tempfile.mkdtemp(prefix="bench-work-"))
    deep = not args.no_verify
    try:
        print(f"sandbox in {home}: {args.docs:,} docs...", flush=True)
        sandbox.up(docs=args.docs, progress=lambda m: print("  " + m, flush=True))
        assert sandbox.source is not None and sandbox.destination is not None
        if sandbox.source.docs != args.docs:
            raise SystemExit(f"the sandbox in {home} holds {sandbox.source.docs:,} docs, not {args.docs:,}: use another --home")
        ensure_configured(sandbox, workdir)
        password = sandbox.source.password_file.read_text().strip()
        src = sandbox.source.client(timeout=600)
        dst = sandbox.destination.client(timeout=600)
        n = args.docs
        load_before = os.getloadavg()
        results: list[Result] = []
        for k in (1, 2, 4):
            print(f"bulk ceiling, {k} in flight...", flush=True)
            results.append(bench_ceiling(src, dst, n, k))
        plain: dict[int, float] = {}
        for size in (1000, 5000):
            print(f"plain remote _reindex, size {size}...", flush=True)
            r = bench_plain(sandbox.source, src, dst, n, password, size, deep)
            plain[size] = r.rate
            results.append(r)
        engine_size = args.size
        for k in (2, 4):
            print(f"server engine, {k} partitions...", flush=True)
            results.append(bench_engine(sandbox.source, src, dst, n, password, k, engine_size, deep))
        # the engine picks size 1000 by bytes for these documents unless --size says otherwise
        compare_to = engine_size if engine_size in plain else 1000
        ceiling = max(r.rate for r in results if r.method.startswith("bulk"))
        print()
        print_table(results, ceiling, plain, compare_to)
        engine_ratios = {r.extra["partitions"]: r.rate / plain[compare_to] for r in results if "partitions" in r.extra}
        verdict = "PASS" if all(v >= BAR for v in engine_ratios.values()) else "FAIL"
        print(f"\nbar: partitions >= {BAR} x one plain _reindex (size {compare_to}): "
              + ", ".join(f"{k} partitions {v:.2f}" for k, v in engine_ratios.items()) + f" -> {verdict}")
        print(f"load average before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} (2 cores; other load moves every figure)")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"server_partitions-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_bytes(orjson.dumps({
            "docs": n, "ceiling_docs_per_s": round(ceiling), "compare_to_plain_size": compare_to, "bar": BAR, "verdict": verdict,
            "load_before": load_before, "load_after": os.getloadavg(),
            "results": [{"method": r.method, "docs_per_s": round(r.rate), "copy_s": round(r.copy_s, 2), "wall_s": round(r.wall_s, 2),
                         "x_ceiling": round(r.rate / ceiling, 3),
                         "x_plain": round(r.rate / plain[compare_to], 3) if not r.method.startswith("bulk") else None,
                         "verified": r.verified, "verify_s": round(r.verify_s, 1) if r.verify_s else None, "tasks": r.tasks, **r.extra}
                        for r in results],
        }, option=orjson.OPT_INDENT_2))
        print(f"written: {out}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            sandbox.down()


if __name__ == "__main__":
    main()
