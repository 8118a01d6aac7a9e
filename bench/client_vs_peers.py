"""Client engine vs. the destination's ceiling and server-side ``_reindex``, in one run.

    python bench/client_vs_peers.py [--docs 200000] [--home DIR] [--keep]

Brings up a sandbox (source ES 7.17.29 over TLS with the private CA, destination ES
7.17.29 with the reindex module, configured as the guide's steps 3-4 say), loads
``--docs`` sample documents, then measures, each into a fresh index created with the
source's mappings and settings:

1. the destination's bulk ceiling: pre-built ~5 MB ``_bulk`` bodies, 2 in flight
   (the best any copier can do on this machine);
2. server-side ``POST _reindex`` from remote, one stream, ``size`` 5000;
3. the client engine, as a child process (``remote-reindex run --engine client``), with
   its CPU seconds (``os.wait4``) and peak RSS (its VmHWM, polled);
4. the hot path alone: orjson parse of search pages + re-serialising each ``_source``.

Prints docs/s and ratios to the ceiling. Only compare figures within one run: other
load on the machine moves all of them (see /work/shared/reference/test-infra.md §6).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import run_child  # noqa: E402

from remote_reindex.bundle import build_bundle
from remote_reindex.cluster import ClusterClient
from remote_reindex.engines.metadata import copy_index_metadata
from remote_reindex.sandbox import SAMPLE_INDEX, Sandbox, new_home, sample_documents


def fresh_index(src: ClusterClient, dst: ClusterClient, name: str) -> None:
    dst.request("DELETE", f"/{name}")
    copy_index_metadata(src, dst, SAMPLE_INDEX, name)


def count(dst: ClusterClient, name: str) -> int:
    dst.call("POST", f"/{name}/_refresh")
    return int(dst.call("GET", f"/{name}/_count")["count"])


def bench_ceiling(src: ClusterClient, dst: ClusterClient, docs: int, in_flight: int = 2, body_bytes: int = 5 * 1024 * 1024) -> float:
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
        resp = dst.call("POST", "/_bulk", body=body, content_type="application/x-ndjson", timeout=300)
        assert not resp["errors"], "ceiling bulk had errors"

    started = time.monotonic()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(send, bodies))
    took = time.monotonic() - started
    assert count(dst, name) == docs
    return took


def bench_server(sandbox: Sandbox, src: ClusterClient, dst: ClusterClient, docs: int, password: str) -> float:
    name = "bench-server"
    fresh_index(src, dst, name)
    assert sandbox.source is not None
    body = {
        "source": {"remote": {"host": f"https://localhost:{sandbox.source.node.http_port}", "username": sandbox.source.username, "password": password},
                   "index": SAMPLE_INDEX, "size": 5000},
        "dest": {"index": name},
    }
    started = time.monotonic()
    resp = dst.call("POST", "/_reindex", body=body, params={"wait_for_completion": "true"}, timeout=3600)
    took = time.monotonic() - started
    assert resp["created"] == docs and not resp["failures"], resp
    return took


def bench_client(sandbox: Sandbox, src: ClusterClient, dst: ClusterClient, docs: int, password: str, workdir: Path, extra: list[str]) -> dict[str, Any]:
    name = "bench-client"
    fresh_index(src, dst, name)
    assert sandbox.source is not None and sandbox.destination is not None
    body_file = workdir / "body.json"
    body_file.write_text(orjson.dumps({
        "source": {"remote": {"host": f"https://localhost:{sandbox.source.node.http_port}", "username": sandbox.source.username, "password": "${BENCH_SOURCE_PASSWORD}"},
                   "index": SAMPLE_INDEX},
        "dest": {"index": name},
    }).decode())
    cmd = [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body_file), "--dest", sandbox.destination.url,
           "--engine", "client", "--source-ca", str(sandbox.source.ca_file), "--json", *extra]
    env = {**os.environ, "BENCH_SOURCE_PASSWORD": password}
    # peak RSS polled from the child's VmHWM: ru_maxrss would carry this process's own
    # high-water mark (the ceiling's bodies) into the child across fork + exec
    r = run_child(cmd, env, workdir)
    took, out, err_ = r.wall_s, r.stdout, r.stderr
    if r.code != 0:
        raise SystemExit(f"client engine failed ({r.code}): {err_.decode()[-2000:]}")
    usage_cpu, usage_rss = r.cpu_s, r.rss_mb
    summary = orjson.loads(out)
    assert summary["created"] == docs, summary
    return {"took": took, "cpu": usage_cpu, "rss_mb": usage_rss, "retries": summary["retries"]}


def bench_hot_path(src: ClusterClient, pages: int = 20, size: int = 1000) -> dict[str, float]:
    """The per-document CPU of the read path: parse a search page, re-serialise each _source."""
    raw = src.request("POST", f"/{SAMPLE_INDEX}/_search", body={"size": size, "sort": ["_doc"]},
                      params={"filter_path": "hits.hits._id,hits.hits._source,hits.hits._routing,hits.hits.sort"}).data
    started = time.process_time()
    for _ in range(pages):
        data = orjson.loads(raw)
        for h in data["hits"]["hits"]:
            orjson.dumps(h["_source"])
    cpu = time.process_time() - started
    return {"page_bytes": len(raw), "us_per_doc": cpu / (pages * size) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--home", help="sandbox home (default: a new one under the sandbox base dir)")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards")
    ap.add_argument("--client-args", default="", help="extra arguments for the client engine, e.g. '--parallel 4 --bulk-mb 5'")
    args = ap.parse_args()

    home = Path(args.home) if args.home else new_home("bench-")
    sandbox = Sandbox(home)
    workdir = Path(tempfile.mkdtemp(prefix="bench-work-"))
    try:
        print(f"sandbox in {home}: bringing it up with {args.docs:,} docs...", flush=True)
        sandbox.up(docs=args.docs, progress=lambda m: print("  " + m, flush=True))
        assert sandbox.source is not None and sandbox.destination is not None
        password = sandbox.source.password_file.read_text().strip()
        # Steps 3-4 of the guide, so the destination can pull (server-side _reindex)
        bundle = build_bundle([str(sandbox.source.ca_file)], name="my_source_ca", out_dir=workdir, target="self-managed")
        settings_file = workdir / "settings.yml"
        settings_file.write_text(
            f'reindex.remote.whitelist: ["localhost:{sandbox.source.node.http_port}"]\n'
            'reindex.ssl.certificate_authorities: ["my_source_ca/cacert.pem"]\nreindex.ssl.verification_mode: full\n')
        sandbox.configure_destination(bundle.zip_path, settings_file)

        src = sandbox.source.client(timeout=600)
        dst = sandbox.destination.client(timeout=600)
        n = args.docs
        results: dict[str, Any] = {}
        print("measuring the destination's bulk ceiling...", flush=True)
        results["ceiling"] = bench_ceiling(src, dst, n)
        print("measuring server-side _reindex (size 5000)...", flush=True)
        results["server"] = bench_server(sandbox, src, dst, n, password)
        print("measuring the client engine...", flush=True)
        client = bench_client(sandbox, src, dst, n, password, workdir, args.client_args.split())
        results["client"] = client["took"]
        hot = bench_hot_path(src)

        ceiling_rate = n / results["ceiling"]
        print()
        print(f"{'method':<52} {'docs/s':>9} {'x ceiling':>10} {'CPU s':>7} {'RSS MB':>7}")
        rows = [
            ("destination bulk ceiling (5 MB bodies, 2 in flight)", results["ceiling"], "", ""),
            ("server-side _reindex from remote (size 5000)", results["server"], "(dest)", ""),
            ("client engine (remote-reindex run --engine client)", results["client"], f"{client['cpu']:.1f}", f"{client['rss_mb']:.0f}"),
        ]
        for label, took, cpu, rss in rows:
            rate = n / took
            print(f"{label:<52} {rate:>9,.0f} {rate / ceiling_rate:>10.2f} {cpu:>7} {rss:>7}")
        print(f"\nclient retries: {client['retries']}; hot path: {hot['us_per_doc']:.1f} µs CPU per document "
              f"(orjson parse of a {hot['page_bytes'] / 1e6:.1f} MB page of 1000 hits + one dumps per _source)")
        print(orjson.dumps({"docs": n, **{k: round(n / v) for k, v in results.items()}, "client_cpu_s": round(client["cpu"], 2),
                            "client_rss_mb": round(client["rss_mb"]), "hot_path_us_per_doc": round(hot["us_per_doc"], 2)}).decode())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            sandbox.down()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
