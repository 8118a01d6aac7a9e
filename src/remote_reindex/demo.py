"""``remote-reindex demo``: the guide end to end on throwaway local nodes.

A sandbox (Elasticsearch 7.17.29 source over HTTPS with a private CA -> Elasticsearch
7.17.29 destination that neither allowlists nor trusts it), then the guide's five steps
with the library functions the commands use: 1 get the CA, 2 test it, 3 bundle it,
4 destination settings (applied as a hosted service would: unpack + merge + restart),
5 copy with the server engine, then compare. Each step reports what it found; the result
is ok only if the destination holds exactly the source's documents. It ends with the same
steps as commands to run by hand, with the sandbox's real paths and ports (the password
stays in its file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from .bundle import build_bundle
from .cluster import Auth
from .engines.options import ServerOptions
from .engines.progress import Progress
from .engines.server import choose_engine, copy
from .errors import CopyError, RemoteReindexError
from .plan.body import body_from_dict
from .sandbox import SAMPLE_INDEX, Sandbox
from .settings.generate import generate_settings
from .tls.chain import fetch_chain_report
from .tls.diagnose import check_source
from .verify.compare import verify

# Measured on 2 cores shared with other test runs (load average ~12): 100,000 documents
# took 3m40s from nothing running (unpack + start ~35 s, load ~80 s, restart ~20 s, copy
# ~65 s, compare ~15 s); well under the 6-minute budget for a cold demo.
DEFAULT_DOCS = 20_000  # measured: warm demo well under 2 minutes on 2 cores; --docs 100000 for a bigger copy
BUNDLE_NAME = "my_source_ca"
PASSWORD_VAR = "SOURCE_PASSWORD"

Say = Callable[[str], None]


@dataclass
class DemoStep:
    number: int  # the guide's step (0: the sandbox itself)
    title: str
    lines: list[str] = field(default_factory=list)
    ok: bool = True


@dataclass
class DemoResult:
    ok: bool
    home: Path
    workdir: Path
    source_docs: int = 0
    dest_docs: int = 0
    equal: bool = False
    seconds: float = 0.0
    steps: list[DemoStep] = field(default_factory=list)
    by_hand: list[str] = field(default_factory=list)
    kept: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "home": str(self.home), "workdir": str(self.workdir), "source_docs": self.source_docs,
            "dest_docs": self.dest_docs, "equal": self.equal, "seconds": round(self.seconds, 1), "kept": self.kept,
            "steps": [{"step": s.number, "title": s.title, "ok": s.ok, "lines": s.lines} for s in self.steps],
            "by_hand": self.by_hand,
        }


class _SayProgress(Progress):
    """Engine progress as occasional lines (the demo prints steps, not bars)."""

    def __init__(self, say: Say) -> None:
        self._say = say
        self._last = time.monotonic()  # the first line after 5 s, when there is progress to show

    def message(self, text: str) -> None:
        self._say(f"    {text}")

    def set_completed(self, index: str, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if done and now - self._last >= 5:  # "0 documents" says nothing
            self._last = now
            self._say(f"    {index}: {done:,}" + (f" / {total:,}" if total else "") + " documents")


def run_demo(*, docs: int = DEFAULT_DOCS, home: str | Path | None = None, keep: bool = False, say: Say = print) -> DemoResult:
    """Run the guide on a sandbox; tears the sandbox down at the end unless ``keep`` (or
    unless it was already up before the demo: then it is the user's and stays)."""
    t0 = time.monotonic()
    sandbox = Sandbox(home)
    workdir = sandbox.home / "demo"
    result = DemoResult(False, sandbox.home, workdir)

    def step(number: int, title: str) -> DemoStep:
        s = DemoStep(number, title)
        result.steps.append(s)
        say(f"\nStep {number}: {title}" if number else f"\n{title}")
        return s

    def found(s: DemoStep, line: str) -> None:
        s.lines.append(line)
        say(f"  {line}")

    s0 = step(0, "Sandbox: a source with a private CA, a destination that does not trust it")
    fresh = sandbox.up(source_version="7.17.29", destination="elasticsearch", docs=docs, progress=lambda m: say(f"  {m}"))
    assert sandbox.source is not None and sandbox.destination is not None
    src, dst = sandbox.source, sandbox.destination
    tear_down = fresh and not keep
    try:
        workdir.mkdir(exist_ok=True)
        password = src.password_file.read_text().strip()
        auth = Auth.basic(src.username, password)
        host, port = "localhost", src.node.http_port
        with src.client(timeout=60) as sc:
            result.source_docs = int(sc.call("GET", f"/{SAMPLE_INDEX}/_count")["count"])
        found(s0, f"source      {src.url} ({src.node.dist.label}, HTTPS, private CA), index {SAMPLE_INDEX}: {result.source_docs:,} documents"
                  + ("" if fresh else " (reused)"))
        found(s0, f"destination {dst.url} ({dst.node.dist.label} + reindex module)")

        # Step 1: what the server presents, and the CA to trust
        s1 = step(1, "Get the source's CA certificate")
        presented = fetch_chain_report(host, port)
        for c in presented.chain:
            found(s1, f"presented: {c.subject}" + (" (CA)" if getattr(c, "is_ca", False) else ""))
        root_file = src.ca_file  # the root of the source's private PKI (what a PKI team hands out)
        if presented.root_sent:
            report = presented
        else:
            found(s1, f"the server does not send its root CA; the PKI team's root is {root_file}")
            report = fetch_chain_report(host, port, from_file=root_file)
        ca_file = workdir / "ca.pem"
        ca_file.write_text(report.pem)
        found(s1, f"wrote {ca_file}: {report.trust_reason}")

        # Step 2: test it like curl --cacert
        s2 = step(2, "Test the CA against the source (like curl --cacert)")
        check = check_source(src.url, ca_file, auth=auth, indices=[SAMPLE_INDEX])
        found(s2, check.message)
        for w in check.warnings:
            found(s2, f"warning: {w}")
        if not check.ok:
            s2.ok = False
            raise RemoteReindexError(check.message, check.fix, cause=check.cause)

        # Step 3: the bundle
        s3 = step(3, "Bundle the CA as a zip the destination loads")
        bundle = build_bundle([ca_file], name=BUNDLE_NAME, out_dir=workdir, target="self-managed")
        found(s3, f"wrote {bundle.zip_path} ({BUNDLE_NAME}/cacert.pem, {len(bundle.certificates)} certificate(s)); setting path {bundle.settings_path}")

        # Step 4: destination settings, applied as a hosted service does
        s4 = step(4, "Destination settings: allowlist + CA (static: restart)")
        body_file = workdir / "body.json"
        raw = {"source": {"remote": {"host": src.url, "username": src.username, "password": f"${{{PASSWORD_VAR}}}"}, "index": SAMPLE_INDEX},
               "dest": {"index": SAMPLE_INDEX}}
        body_file.write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2))  # the file holds the placeholder only
        raw["source"]["remote"]["password"] = password
        body = body_from_dict(raw, f"body file {body_file}")
        options = ServerOptions(source_ca=str(ca_file), parallel=2)
        with dst.client(timeout=120) as dc:
            engine, why = choose_engine(body, dc, options)
            found(s4, f"before: --engine auto would pick {engine}: {why}")
        plan = generate_settings([f"{host}:{port}"], bundle_name=BUNDLE_NAME, target="self-managed", flavor=dst.node.dist.flavor)
        settings_file = workdir / "settings.yml"
        settings_file.write_text(plan.yaml_text)
        for key, value in plan.settings.items():
            found(s4, f"{key}: {orjson.dumps(value).decode()}")
        found(s4, f"restarting the destination with {bundle.zip_path.name} unpacked into its config folder ...")
        sandbox.configure_destination(bundle.zip_path, settings_file)
        with dst.client(timeout=120) as dc:
            engine, why = choose_engine(body, dc, options)
            found(s4, f"after: --engine auto picks {engine}: {why}")
            if engine != "server":
                s4.ok = False
                raise RemoteReindexError(f"the destination still cannot pull: {why}", "See the step 4 lines above.", cause="demo_step4")

        # Step 5: copy with the destination's own _reindex, then compare
        s5 = step(5, "Copy with the destination's own _reindex (server engine), then compare")
        with dst.client(timeout=120) as dc, src.client(timeout=120) as sc:
            dc.request("DELETE", f"/{SAMPLE_INDEX}")  # a reused sandbox: start from empty
            summary = copy(body, dc, options, _SayProgress(say))
            assert not isinstance(summary, dict)
            if any(i.cancelled for i in summary.indices):
                # Ctrl-C or SIGTERM reached the engine, which cancelled its tasks and returned: stop
                # here (the finally below stops the nodes) instead of comparing a half copy
                raise KeyboardInterrupt
            t = summary.totals()
            found(s5, f"copied: created {t['created']:,}, updated {t['updated']:,}, failed {t['failed']:,} in {summary.took_ms / 1000:.1f}s")
            result.dest_docs = int(dc.call("GET", f"/{SAMPLE_INDEX}/_count")["count"])
            found(s5, f"counts: source {result.source_docs:,}, destination {result.dest_docs:,}")
            compared = verify(body, sc, dc)
            result.equal = compared.equal and result.dest_docs == result.source_docs
            found(s5, "every document equal by _id and _source" if result.equal else f"DIFFERENT: {orjson.dumps(compared.to_dict()['indices']).decode()[:300]}")
            s5.ok = result.equal and summary.complete
        result.ok = all(s.ok for s in result.steps)
        if not result.ok:
            raise CopyError("the destination does not hold exactly the source's documents", "See the step 5 lines above.")
    except KeyboardInterrupt:
        tear_down = fresh  # --keep is for a finished demo; an interrupted one stops the nodes it started
        raise
    finally:
        result.by_hand = by_hand_commands(sandbox, workdir)
        result.seconds = time.monotonic() - t0
        if tear_down:
            sandbox.down()
        result.kept = not tear_down
    return result


def by_hand_commands(sandbox: Sandbox, workdir: Path) -> list[str]:
    """The demo's steps as the commands a user types, with this sandbox's real values."""
    src, dst = sandbox.source, sandbox.destination
    if src is None or dst is None:
        return []
    h = sandbox.home
    port = src.node.http_port
    pw = src.password_file
    return [
        f"remote-reindex sandbox up --home {h}",
        f"remote-reindex ca fetch localhost:{port} --from-file {src.ca_file} -o {workdir / 'ca.pem'}        # step 1",
        f"remote-reindex ca check {src.url} --ca {workdir / 'ca.pem'} --user {src.username} --password-file {pw} --index {SAMPLE_INDEX}   # step 2",
        f"remote-reindex bundle --ca {workdir / 'ca.pem'} --name {BUNDLE_NAME} --target self-managed -o {workdir}   # step 3",
        f"remote-reindex settings --remote localhost:{port} --bundle-name {BUNDLE_NAME} --target self-managed -o {workdir / 'settings.yml'}   # step 4",
        f"remote-reindex sandbox configure-destination --home {h} --bundle {workdir / (BUNDLE_NAME + '.zip')} --settings {workdir / 'settings.yml'}",
        f"{PASSWORD_VAR}=\"$(cat {pw})\" remote-reindex run {workdir / 'body.json'} --dest {dst.url} --engine server --source-ca {workdir / 'ca.pem'}   # step 5",
        f"{PASSWORD_VAR}=\"$(cat {pw})\" remote-reindex verify {workdir / 'body.json'} --dest {dst.url} --source-ca {workdir / 'ca.pem'}",
        f"remote-reindex sandbox down --home {h}",
    ]
