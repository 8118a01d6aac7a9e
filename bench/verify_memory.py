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
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from remote_reindex.sandbox import Sandbox, load_sample_index, new_home
from remote_reindex.sandbox.data import sample_id


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
        t1 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        took = time.monotonic() - t1
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        r = (out.get("indices") or [{}])[0]
        print(json.dumps({
            "docs": args.docs, "exit_code": proc.returncode, "seconds": round(took, 1),
            "docs_per_second_per_side": round(args.docs / took) if took else None, "peak_rss_mb": round(peak_mb, 1),
            "buckets_unequal": r.get("buckets_unequal"), "missing": r.get("missing_count"), "extra": r.get("extra_count"),
            "different": r.get("different_count"),
        }, indent=2))
        if proc.returncode not in (0, 11):
            print(proc.stderr, file=sys.stderr)
        return 0 if proc.returncode in (0, 11) else 1
    finally:
        sb.down()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
