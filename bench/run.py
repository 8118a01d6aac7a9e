"""The benchmark: every way of copying one index, on the same source and destination.

    python bench/run.py [--docs 200000] [--only ceiling,server,engine,client,elasticdump,espy]
                        [--verify full|sample|count] [--home DIR] [--keep]

Starts a sandbox (its own home under /var/tmp/rr-bench: source ES 7.17.29 over TLS with
the private CA, destination ES 7.17.29 with the reindex module, configured with the
guide's bundle + settings through the library) holding ``--docs`` sample documents, then
copies the index once per method, each into a fresh index:

1. ceiling      pre-built ~5 MB ``_bulk`` bodies posted at 1, 2 and 4 in flight (best = the ceiling)
2. server       the destination's own remote ``_reindex``, one stream, size 1000 and 5000
3. engine       our server engine (``engines.server.copy``), 2 partitions
4. client       our client engine, as a child process (``remote-reindex run --engine client --json``)
5. elasticdump  elasticdump 6.125.1 (npm, installed into bench/.node), ``NODE_EXTRA_CA_CERTS``
6. espy         elasticsearch-py ``helpers.reindex`` (client line matching the source) in bench/.venv-espy

Per method: docs/s, wall time, the copying process's CPU seconds (``os.wait4`` rusage)
and peak RSS (its VmHWM, polled), the ratio to the ceiling, CPU seconds per 100,000
documents, and the destination JVM's CPU during the copy (/proc/<pid>/stat; for the
server-side methods the only CPU figure, shown only). Every copy is checked (count +
``remote_reindex.verify``); an unequal copy is marked NOT EQUAL; each copy is deleted after.

Writes a table to the terminal, bench/results/run-<docs>-<time>.json and a PNG next to it
(matplotlib, in bench/.venv-espy; ``--png`` copies it elsewhere, e.g. docs/bench/).
Compare figures only within one run: other load on the machine moves all of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_partitions import bench_ceiling, bench_engine, bench_plain, count, ensure_configured, fresh_index  # noqa: E402

from remote_reindex.cluster import ClusterClient  # noqa: E402
from remote_reindex.plan.body import body_from_dict  # noqa: E402
from remote_reindex.sandbox import SAMPLE_INDEX, Sandbox, SourceSide  # noqa: E402
from remote_reindex.verify.compare import VerifyOptions, verify  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
NODE_DIR = BENCH_DIR / ".node"
VENV_DIR = BENCH_DIR / ".venv-espy"
BASE_HOME = Path(os.environ.get("RR_BENCH_HOME", "/var/tmp/rr-bench"))
ELASTICDUMP_VERSION = "6.125.1"
MATPLOTLIB = "matplotlib>=3.7"
METHODS = ("ceiling", "server", "engine", "client", "elasticdump", "espy")
CHUNK = 5000  # documents per bulk for the peers (what test-infra.md measured them with)
CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL_RSS_MB = 256
SOURCE_VERSION = "7.17.29"  # the peers' client lines follow it (elasticsearch-py 7.17 here)


@dataclass
class Row:
    method: str
    kind: str  # ceiling | server | ours | peer
    docs: int
    wall_s: float
    cpu_s: float | None = None  # the copying process (None: it runs inside the destination)
    rss_mb: float | None = None
    dest_cpu_s: float | None = None  # the destination JVM during the copy
    verified: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.docs / self.wall_s

    def to_dict(self, ceiling: float) -> dict[str, Any]:
        per = (lambda v: round(v / self.docs * 100_000, 2) if v is not None else None)
        return {"method": self.method, "kind": self.kind, "docs": self.docs, "docs_per_s": round(self.rate), "wall_s": round(self.wall_s, 2),
                "x_ceiling": round(self.rate / ceiling, 3), "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 2),
                "cpu_s_per_100k": per(self.cpu_s), "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
                "dest_cpu_s": None if self.dest_cpu_s is None else round(self.dest_cpu_s, 2), "dest_cpu_s_per_100k": per(self.dest_cpu_s),
                "verified": self.verified, **self.extra}


# -- measuring processes -------------------------------------------------------------------


def proc_cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class DestCpu:
    """CPU the destination JVM spends between enter and exit."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.used: float | None = None

    def __enter__(self) -> "DestCpu":
        self._start = proc_cpu_s(self.pid)
        return self

    def __exit__(self, *exc: Any) -> None:
        end = proc_cpu_s(self.pid)
        self.used = end - self._start if end is not None and self._start is not None else None


@dataclass
class ChildRun:
    wall_s: float
    cpu_s: float
    rss_mb: float
    stdout: bytes
    stderr: bytes
    code: int
    rss_timeline: list[float] = field(default_factory=list)  # RSS at each tenth of the run (does it grow?)


def vm_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a running process's current address space, in MB."""
    found: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        return None
    return (found["VmRSS"], found["VmHWM"]) if len(found) == 2 else None


def run_child(cmd: list[str], env: dict[str, str], workdir: Path) -> ChildRun:
    """Run one copier as a direct child: CPU from ``wait4``'s rusage (this child only; each
    copier here is one process), peak RSS from polling its VmHWM. Not ``ru_maxrss``: the
    kernel carries the parent's high-water mark into a child across fork/vfork + exec, so
    a child of this (large) bench process would report the bench's own peak."""
    out_path, err_path = workdir / "child.out", workdir / "child.err"
    peak = 0.0
    samples: list[tuple[float, float]] = []
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=workdir)
        while True:
            vm = vm_mb(proc.pid)  # read before the reap: a zombie has no address space
            if vm is not None:
                samples.append((time.monotonic() - started, vm[0]))
                peak = max(peak, vm[1])
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    timeline = [round(next((rss for t, rss in samples if t >= wall * k / 10), samples[-1][1] if samples else 0.0)) for k in range(1, 11)]
    return ChildRun(wall, usage.ru_utime + usage.ru_stime, peak, out_path.read_bytes(), err_path.read_bytes(), proc.returncode, timeline)


def redact(text: bytes, secret: str) -> str:
    return text.decode("utf-8", "replace").replace(secret, "***")[-1500:]


# -- checking a copy -----------------------------------------------------------------------


def check(src: ClusterClient, dst: ClusterClient, name: str, docs: int, mode: str) -> tuple[str, bool]:
    """Count, then ``remote_reindex.verify`` (every document's digest, or a random sample).
    Returns (what was checked or what differs, equal); an unequal copy's figure does not count."""
    got = count(dst, name)
    if got != docs:
        return f"NOT EQUAL: {got:,} of {docs:,} documents", False
    if mode == "count":
        return "count", True
    body = body_from_dict({"source": {"index": SAMPLE_INDEX}, "dest": {"index": name}})
    result = verify(body, src, dst, VerifyOptions(sample=1000 if mode == "sample" else None)).to_dict()
    if not result["equal"]:
        r = result["indices"][0]
        different = r.get("different") or []
        why = first_difference(src, dst, name, different[0]) if different else ""
        return (f"NOT EQUAL: {r.get('missing_count', len(r.get('missing') or []))} missing, {r.get('extra_count', len(r.get('extra') or []))} extra, "
                f"{r.get('different_count', len(different))} different{'; e.g. ' + why if why else ''}"), False
    return "count+" + ("sample 1000" if mode == "sample" else "all digests"), True


def first_difference(src: ClusterClient, dst: ClusterClient, name: str, doc_id: str) -> str:
    """What differs in one document: the top-level fields whose JSON is not the same."""
    a = src.call("GET", f"/{SAMPLE_INDEX}/_source/{doc_id}")
    b = dst.call("GET", f"/{name}/_source/{doc_id}")
    fields = [f"{k}: {orjson.dumps(a.get(k)).decode()[:60]} -> {orjson.dumps(b.get(k)).decode()[:60]}"
              for k in sorted(set(a) | set(b)) if orjson.dumps(a.get(k)) != orjson.dumps(b.get(k))]
    return f"{doc_id} " + "; ".join(fields[:3])


# -- the copiers that are not in server_partitions.py -------------------------------------


def remote_body(source: SourceSide, dest_index: str, password_ref: str) -> dict[str, Any]:
    return {"source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username, "password": password_ref},
                       "index": SAMPLE_INDEX}, "dest": {"index": dest_index}}


def bench_client(sb: Sandbox, password: str, workdir: Path, docs: int, extra_args: list[str]) -> Row:
    assert sb.source and sb.destination
    name = "bench-client"
    with sb.destination.client(timeout=120) as dst:
        dst.request("DELETE", f"/{name}")  # the engine creates it with the source's mappings and settings
    body_file = workdir / "client-body.json"
    body_file.write_bytes(orjson.dumps(remote_body(sb.source, name, "${BENCH_SOURCE_PASSWORD}")))  # the secret stays in the environment
    # a fresh state file per run: with the default one, a second run on a kept sandbox is the same
    # job, found complete, and copies nothing
    state = workdir / "client-state.sqlite"
    for f in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        f.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body_file), "--dest", sb.destination.url, "--engine", "client",
           "--source-ca", str(sb.source.ca_file), "--state", str(state), "--json", *extra_args]
    with DestCpu(sb.destination.node.pid) as dcpu:
        r = run_child(cmd, {**os.environ, "BENCH_SOURCE_PASSWORD": password}, workdir)
    if r.code != 0:
        raise SystemExit(f"client engine failed ({r.code}): {redact(r.stderr, password)}")
    summary = orjson.loads(r.stdout)
    if summary.get("created") != docs:
        raise SystemExit(f"client engine created {summary.get('created')} of {docs}: {redact(r.stdout, password)}")
    return Row("our client engine", "ours", docs, r.wall_s, r.cpu_s, r.rss_mb, dcpu.used,
               extra={"retries": summary.get("retries"), "args": " ".join(extra_args), "rss_timeline_mb": r.rss_timeline,
                      # the engine's own time (as _reindex's took): no process start-up; index creation included
                      "took_s": round(summary.get("took", 0) / 1000, 2)})


def ensure_elasticdump(progress: Callable[[str], None]) -> Path:
    script = NODE_DIR / "node_modules" / "elasticdump" / "bin" / "elasticdump"
    pkg = NODE_DIR / "node_modules" / "elasticdump" / "package.json"
    if script.exists() and orjson.loads(pkg.read_bytes()).get("version") == ELASTICDUMP_VERSION:
        return script
    if not shutil.which("npm"):
        raise SystemExit("npm is not installed: install Node.js (apt-get install nodejs npm) or leave elasticdump out with --only")
    progress(f"installing elasticdump {ELASTICDUMP_VERSION} into {NODE_DIR} (npm)...")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error",
                    f"elasticdump@{ELASTICDUMP_VERSION}"], check=True)
    return script


def bench_elasticdump(sb: Sandbox, src: ClusterClient, dst: ClusterClient, password: str, workdir: Path, docs: int, script: Path) -> Row:
    assert sb.source and sb.destination
    name = "bench-elasticdump"
    fresh_index(src, dst, name)
    auth_file = workdir / "elasticdump-auth.ini"  # elasticdump reads the credentials from a file, not argv
    auth_file.touch(mode=0o600)
    auth_file.write_text(f"user={sb.source.username}\npassword={password}\n")
    cmd = [shutil.which("node") or "node", str(script), f"--input=https://localhost:{sb.source.node.http_port}/{SAMPLE_INDEX}",
           f"--output={sb.destination.url}/{name}", "--type=data", f"--limit={CHUNK}", f"--httpAuthFile={auth_file}"]
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(sb.source.ca_file)}
    try:
        with DestCpu(sb.destination.node.pid) as dcpu:
            r = run_child(cmd, env, workdir)
    finally:
        auth_file.unlink(missing_ok=True)
    if r.code != 0:
        raise SystemExit(f"elasticdump failed ({r.code}): {redact(r.stdout + r.stderr, password)}")
    dst.call("POST", f"/{name}/_refresh")
    return Row(f"elasticdump {ELASTICDUMP_VERSION}, limit {CHUNK}", "peer", docs, r.wall_s, r.cpu_s, r.rss_mb, dcpu.used)


def espy_requirement(source_version: str) -> str:
    major = int(source_version.split(".")[0])
    return f"elasticsearch>={major}.{17 if major == 7 else 0},<{major + 1}"


def ensure_venv(source_version: str, progress: Callable[[str], None]) -> Path:
    """bench/.venv-espy with the elasticsearch-py line of the source (and matplotlib for the chart)."""
    python = VENV_DIR / "bin" / "python"
    requirement = espy_requirement(source_version)
    marker = VENV_DIR / "bench-requirements.txt"
    wanted = f"{requirement}\n{MATPLOTLIB}\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    progress(f"creating {VENV_DIR} with {requirement} and {MATPLOTLIB} (pip)...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV_DIR)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement, MATPLOTLIB], check=True)
    marker.write_text(wanted)
    return python


def bench_espy(sb: Sandbox, src: ClusterClient, dst: ClusterClient, password: str, workdir: Path, docs: int, python: Path) -> Row:
    assert sb.source and sb.destination
    name = "bench-espy"
    fresh_index(src, dst, name)
    cmd = [str(python), str(BENCH_DIR / "espy_copy.py"), f"https://localhost:{sb.source.node.http_port}", str(sb.source.ca_file),
           sb.source.username, SAMPLE_INDEX, sb.destination.url, name, str(CHUNK)]
    with DestCpu(sb.destination.node.pid) as dcpu:
        r = run_child(cmd, {**os.environ, "BENCH_SOURCE_PASSWORD": password}, workdir)
    if r.code != 0:
        raise SystemExit(f"elasticsearch-py failed ({r.code}): {redact(r.stderr, password)}")
    dst.call("POST", f"/{name}/_refresh")
    version = subprocess.run([str(python), "-c", "import elasticsearch; print(elasticsearch.__versionstr__)"], capture_output=True, text=True).stdout.strip()
    return Row(f"elasticsearch-py {version} helpers.reindex, chunk {CHUNK}", "peer", docs, r.wall_s, r.cpu_s, r.rss_mb, dcpu.used)


# -- report --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    mem_kib = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return {"nproc": os.cpu_count(), "mem_gib": round(mem_kib / 1024 / 1024, 1), "cpu_model": model, "python": platform.python_version()}


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'method':<50} {'docs/s':>8} {'wall s':>7} {'x ceil':>6} {'CPU s':>6} {'CPU/100k':>8} {'RSS MB':>7} "
              f"{'dest CPU/100k':>13}  verified")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['method']:<50} {r['docs_per_s']:>8,} {r['wall_s']:>7.1f} {r['x_ceiling']:>6.2f} {fmt(r['cpu_s'], '.1f'):>6} "
              f"{fmt(r['cpu_s_per_100k'], '.2f'):>8} {fmt(r['rss_mb'], '.0f'):>7} {fmt(r['dest_cpu_s_per_100k'], '.1f'):>13}  {r['verified']}")


def goals(rows: list[Row]) -> list[dict[str, Any]]:
    """The issue's goals, as ratios within this run."""
    client = next((r for r in rows if r.kind == "ours" and r.method.startswith("our client")), None)
    if client is None:
        return []
    out = []
    server = [r for r in rows if r.kind == "server" and r.method.startswith("remote _reindex")]
    if server:
        best = max(server, key=lambda r: r.rate)
        out.append({"goal": f"client docs/s >= 1.0 x best server-side _reindex ({best.method})", "value": round(client.rate / best.rate, 2),
                    "pass": client.rate >= best.rate})
        took = client.extra.get("took_s")
        if took:
            # like for like: the _reindex figure starts once its index exists and no process has to start;
            # the client's wall time includes Python's start-up, and its took the index creation
            out.append({"goal": f"(same, from the client's own took of {took:.1f} s instead of its process wall time)",
                        "value": round(client.docs / took / best.rate, 2), "pass": client.docs / took >= best.rate})
    espy = next((r for r in rows if r.method.startswith("elasticsearch-py")), None)
    if espy and espy.cpu_s and client.cpu_s is not None:
        out.append({"goal": "client CPU <= 0.5 x elasticsearch-py's", "value": round(client.cpu_s / espy.cpu_s, 2), "pass": client.cpu_s <= 0.5 * espy.cpu_s})
    if client.rss_mb is not None:
        out.append({"goal": f"client peak RSS <= {GOAL_RSS_MB} MB", "value": round(client.rss_mb), "pass": client.rss_mb <= GOAL_RSS_MB})
    return out


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=200_000, help="documents in the source index (default 200,000; 1,000,000 for the scale run)")
    ap.add_argument("--only", default=",".join(METHODS), help=f"comma-separated subset of: {','.join(METHODS)}")
    ap.add_argument("--verify", choices=("full", "sample", "count"), default=None,
                    help="how each copy is checked: full (every digest; default up to 200,000 docs), sample (1,000 random docs; default above), count")
    ap.add_argument("--home", help=f"sandbox home (default: {BASE_HOME}/docs-N; reused when up with the same count)")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards (the next run with the same --docs reuses it)")
    ap.add_argument("--client-args", default="", help="extra arguments for the client engine, e.g. '--parallel 4 --bulk-mb 4'")
    ap.add_argument("--png", help="also copy the chart here (e.g. docs/bench/bench-200k.png)")
    args = ap.parse_args()
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = [m for m in only if m not in METHODS]
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}\nfix: use a comma-separated subset of {','.join(METHODS)}", file=sys.stderr)
        return 2
    if args.docs < 1:
        print("error: --docs must be at least 1\nfix: e.g. --docs 200000", file=sys.stderr)
        return 2
    verify_mode = args.verify or ("full" if args.docs <= 200_000 else "sample")
    say = (lambda m: print(m, flush=True))

    # the tools first: a missing npm or pip fails before minutes of node start-up
    espy_python = ensure_venv(SOURCE_VERSION, say)  # also draws the chart (matplotlib), so always there
    elasticdump = ensure_elasticdump(say) if "elasticdump" in only else None

    BASE_HOME.mkdir(parents=True, exist_ok=True)
    os.chmod(BASE_HOME, 0o755)  # the node user must traverse it
    home = Path(args.home) if args.home else BASE_HOME / f"docs-{args.docs}"
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o755)
    sandbox = Sandbox(home)
    workdir = Path(tempfile.mkdtemp(prefix="rr-bench-"))
    rows: list[Row] = []
    try:
        say(f"sandbox in {home}: {args.docs:,} documents...")
        t0 = time.monotonic()
        sandbox.up(source_version=SOURCE_VERSION, docs=args.docs, progress=lambda m: say("  " + m))
        assert sandbox.source is not None and sandbox.destination is not None
        if sandbox.source.docs != args.docs:
            raise SystemExit(f"the sandbox in {home} holds {sandbox.source.docs:,} docs, not {args.docs:,}: use another --home")
        say(f"  up in {time.monotonic() - t0:.0f} s")
        ensure_configured(sandbox, workdir)  # steps 3-4 of the guide: bundle + settings + restart
        password = sandbox.source.password_file.read_text().strip()
        src = sandbox.source.client(timeout=600)
        dst = sandbox.destination.client(timeout=600)
        dest_pid = sandbox.destination.node.pid
        source_version = sandbox.source.node.dist.version
        n = args.docs
        load_before = os.getloadavg()

        def measured(label: str, fn: Callable[[], Row], name: str | None) -> None:
            say(f"{label}...")
            row = fn()
            if name is not None:
                t = time.monotonic()
                row.verified, row.extra["equal"] = check(src, dst, name, n, verify_mode)
                row.extra["verify_s"] = round(time.monotonic() - t, 1)
                dst.request("DELETE", f"/{name}")
            rows.append(row)
            say(f"  {row.rate:,.0f} docs/s in {row.wall_s:.1f} s" + (f", CPU {row.cpu_s:.1f} s, RSS {row.rss_mb:.0f} MB" if row.cpu_s is not None else "")
                + (f"; {row.verified}" if row.verified else ""))

        if "ceiling" in only:
            for k in (1, 2, 4):
                def ceiling(k: int = k) -> Row:
                    with DestCpu(dest_pid) as dcpu:
                        r = bench_ceiling(src, dst, n, k)  # counts the copy, then deletes it
                    return Row(f"bulk ceiling, 5 MB bodies, {k} in flight", "ceiling", n, r.wall_s, dest_cpu_s=dcpu.used, verified=r.verified)
                measured(f"bulk ceiling, {k} in flight", ceiling, None)
        if "server" in only:
            for size in (1000, 5000):
                def plain(size: int = size) -> Row:
                    with DestCpu(dest_pid) as dcpu:
                        # checks the task's counts, then count + every digest (full) before it deletes the copy
                        r = bench_plain(sandbox.source, src, dst, n, password, size, deep=verify_mode == "full")
                    return Row(f"remote _reindex (server-side), size {size}", "server", n, r.wall_s, dest_cpu_s=dcpu.used, verified=r.verified)
                measured(f"server-side remote _reindex, size {size}", plain, None)
        if "engine" in only:
            def engine() -> Row:
                with DestCpu(dest_pid) as dcpu:
                    r = bench_engine(sandbox.source, src, dst, n, password, 2, None, deep=verify_mode == "full")
                return Row("our server engine, 2 partitions", "ours", n, r.wall_s, dest_cpu_s=dcpu.used, verified=r.verified,
                           extra={"copy_s": round(r.copy_s, 2)})
            measured("our server engine, 2 partitions", engine, None)
        if "client" in only:
            measured("our client engine", lambda: bench_client(sandbox, password, workdir, n, args.client_args.split()), "bench-client")
        if "elasticdump" in only:
            assert elasticdump is not None
            measured("elasticdump", lambda: bench_elasticdump(sandbox, src, dst, password, workdir, n, elasticdump), "bench-elasticdump")
        if "espy" in only:
            assert espy_python is not None
            measured("elasticsearch-py", lambda: bench_espy(sandbox, src, dst, password, workdir, n, espy_python), "bench-espy")

        ceilings = [r.rate for r in rows if r.kind == "ceiling"]
        ceiling = max(ceilings) if ceilings else max(r.rate for r in rows)
        table = [r.to_dict(ceiling) for r in rows]
        print()
        print_table(table)
        checks = goals(rows)
        for g in checks:
            print(f"goal: {g['goal']}: {g['value']} -> {'PASS' if g['pass'] else 'FAIL'}")
        for r in rows:
            if r.extra.get("rss_timeline_mb"):
                print(f"{r.method}: RSS at each tenth of the copy (MB): {r.extra['rss_timeline_mb']}")
        mach = machine()
        print(f"machine: {mach['nproc']} cores ({mach['cpu_model']}), {mach['mem_gib']} GiB; load average before / after: "
              f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = RESULTS_DIR / f"run-{n}-{stamp}.json"
        out.write_bytes(orjson.dumps({
            "docs": n, "ceiling_docs_per_s": round(ceiling), "source_version": source_version,
            "dest_version": sandbox.destination.node.dist.version, "verify": verify_mode, "machine": mach,
            "load_before": load_before, "load_after": os.getloadavg(), "results": table, "goals": checks,
        }, option=orjson.OPT_INDENT_2))
        print(f"written: {out}")
        if rows:
            png = out.with_suffix(".png")
            subprocess.run([str(espy_python), str(BENCH_DIR / "chart.py"), str(out), str(png)], check=True)
            print(f"chart: {png}")
            if args.png:
                Path(args.png).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(png, args.png)
                print(f"chart copied to {args.png}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            sandbox.down()


if __name__ == "__main__":
    sys.exit(main())
