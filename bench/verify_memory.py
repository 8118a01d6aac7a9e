"""Peak memory (and time) of ``remote-reindex verify`` on a large index.

Starts a throwaway sandbox (TLS source ES 7.17.29 + ES 7.17.29 destination), loads the
same N sample documents into both (deterministic by seed), optionally spoils K documents
in the destination so the drill-down runs too, then runs the real CLI in a child process
and reports its peak RSS (``ru_maxrss`` of the waited-for child). Stops its nodes at the end.

    python bench/verify_memory.py --docs 200000 --differences 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from remote_reindex.sandbox import Sandbox, load_sample_index, new_home
from remote_reindex.sandbox.data import sample_id
from run import run_child  # bench/run.py, beside this script


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--differences", type=int, default=3, help="documents to delete/change/add in the destination")
    ap.add_argument("--parallel", type=int, default=None)
    args = ap.parse_args()

    home = new_home("bench-verify-")
    sb = Sandbox(home)
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        t0 = time.monotonic()
        sb.up(docs=args.docs, progress=lambda m: print(m, file=sys.stderr))
        assert sb.source and sb.destination
        with sb.destination.client(timeout=300) as dst:
            load_sample_index(dst, args.docs, index="products", seed=sb.source.seed)
            k = args.differences
            for i in range(k):  # thirds: deleted, changed, added
                if i % 3 == 0:
                    dst.call("DELETE", f"/products/_doc/{sample_id(i * 7919 % args.docs)}")
                elif i % 3 == 1:
                    dst.call("POST", f"/products/_update/{sample_id(i * 7919 % args.docs)}", body={"doc": {"stock": -1}})
                else:
                    dst.call("PUT", f"/products/_doc/bench-extra-{i}", body={"sku": "extra"})
            dst.call("POST", "/products/_refresh")
        print(f"loaded {args.docs:,} documents on both sides in {time.monotonic() - t0:.0f} s", file=sys.stderr)

        body = {"source": {"remote": {"host": sb.source.url, "username": sb.source.username, "password": "${BENCH_SOURCE_PASSWORD}"},
                           "index": "products"}, "dest": {"index": "products"}}
        body_path = work / "body.json"
        body_path.write_text(json.dumps(body))
        env = {**os.environ, "BENCH_SOURCE_PASSWORD": sb.source.password_file.read_text().strip()}
        cmd = [sys.executable, "-m", "remote_reindex.cli.main", "verify", str(body_path), "--dest", sb.destination.url,
               "--source-ca", str(sb.source.ca_file), "--json", "--report", str(work / "ids.ndjson")]
        if args.parallel:
            cmd += ["--parallel", str(args.parallel)]
        # peak RSS polled from the child's VmHWM (run.py's run_child): ru_maxrss of a waited-for
        # child carries this process's own high-water mark (it generated the documents) across exec
        child = run_child(cmd, env, work)
        took = child.wall_s
        out = json.loads(child.stdout) if child.stdout.strip() else {}
        r = (out.get("indices") or [{}])[0]
        print(json.dumps({
            "docs": args.docs, "exit_code": child.code, "seconds": round(took, 1),
            "docs_per_second_per_side": round(args.docs / took) if took else None, "peak_rss_mb": round(child.rss_mb, 1),
            "rss_mb_each_tenth": child.rss_timeline, "cpu_s": round(child.cpu_s, 1),
            "buckets_unequal": r.get("buckets_unequal"), "missing": r.get("missing_count"), "extra": r.get("extra_count"),
            "different": r.get("different_count"),
        }, indent=2))
        if child.code not in (0, 11):
            print(child.stderr.decode(errors="replace"), file=sys.stderr)
        return 0 if child.code in (0, 11) else 1
    finally:
        sb.down()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
