"""``remote-reindex verify``: after a copy, check that the destination holds what the body
says it should: counts, then content digests, then the ids that differ."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.markup import escape

from ..errors import MismatchError, RemoteReindexError, UsageError
from ..plan.source import source_client
from ..tls.context import warn_insecure
from ..verify import VerifyOptions, VerifyResult, verify
from ..verify.reader import check_sample_size
from .common import err, fail, out, print_json
from .run import (
    DEST_API_KEY_ENV_OPTION, DEST_BEARER_ENV_OPTION, DEST_CA_OPTION, DEST_INSECURE_OPTION, DEST_PASSWORD_ENV_OPTION,
    DEST_PASSWORD_FILE_OPTION, DEST_USER_OPTION, SOURCE_CA_OPTION, SOURCE_INSECURE_OPTION, check_tls_flags, dest_client, load_body,
)

EXIT_DIFFERENT = MismatchError.exit_code


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


@contextmanager
def exit_on_interrupt(report_path: Optional[Path]) -> Iterator[None]:
    """Ctrl-C during a verify: two lines and exit 130 at once. Verify only reads, so there is
    nothing to save, and the reading threads are not waited for (os._exit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        partial = f"; {report_path} is incomplete" if report_path is not None else ""
        sys.stderr.write(f"error: interrupted: verify stopped before it finished comparing{partial}\n"
                         "fix: run the same command again: verify only reads, so it starts over and nothing needs cleaning up\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_report_path(report: Optional[str]) -> Optional[Path]:
    if report is None:
        return None
    p = Path(report)
    if p.is_dir():
        raise UsageError(f"--report {p} is a directory", "Give a file name, e.g. --report verify-ids.ndjson.")
    if not p.parent.exists():
        raise UsageError(f"the folder of --report {p} does not exist", f"Create {p.parent} first, or write the report elsewhere.")
    return p


def print_result(result: VerifyResult, show: int) -> None:
    for r in result.indices:
        head = escape(f"{r.index} -> {r.dest_index}")  # an index name like x[bold]y is text, not markup
        if r.equal:
            how = {"full": f"{r.buckets_checked} buckets of content compared", "sample": f"{r.sampled:,} sampled documents compared",
                   "counts": "counts only"}[r.mode]
            out.print(f"[green]equal[/]  {head}: {r.dest_count:,} documents ({how})")
        else:
            expected = r.expected_dest_count if r.expected_dest_count is not None else r.source_count
            parts = [f"{n:,} {kind}" for kind, n in (("missing", r.missing.count), ("extra", r.extra.count), ("different", r.different.count)) if n]
            buckets = f"; {r.buckets_unequal} of {r.buckets_checked} buckets unequal" if r.buckets_checked else ""
            out.print(f"[bold red]DIFFERENT[/]  {head}: source {r.source_count:,}, destination {r.dest_count:,}"
                      f"{f' (expected {expected:,})' if expected != r.source_count else ''}"
                      f"{'; ' + ', '.join(parts) if parts else ''}{buckets}")
            for kind in ("missing", "extra", "different"):
                ids = getattr(r, kind)
                if ids.count:
                    more = f" ... and {ids.count - min(show, len(ids.ids)):,} more" if ids.count > show else ""
                    out.print(f"  {kind} ({ids.count:,}): {', '.join(ids.ids[:show])}{more}", markup=False)
        for note in r.notes:
            out.print(f"  note: {note}", markup=False)
    if result.report_file:
        out.print(f"all differing ids: {result.report_file}", markup=False)


def mismatch_fix(result: VerifyResult) -> str:
    """What to do about the differences found: missing or different documents are copied
    again by a fresh run (--restart: a finished job is otherwise not run again); extra ones
    stay until deleted, since a copy never removes documents."""
    unequal = [r for r in result.indices if not r.equal]
    missing_or_different = any(r.missing.count or r.different.count for r in unequal)
    extra = any(r.extra.count for r in unequal)
    if not missing_or_different and not extra:  # only the counts differ (no id lists): tell from the counts
        for r in unequal:
            expected = r.expected_dest_count if r.expected_dest_count is not None else r.source_count
            extra = extra or r.dest_count > expected
            missing_or_different = missing_or_different or r.dest_count <= expected
    steps = []
    if missing_or_different:
        steps.append("copy again with 'remote-reindex run BODY --dest URL --restart' (without --restart a finished job is not run again)")
    if extra:
        steps.append("delete the extra documents from the destination (a copy never removes documents)")
    text = " and ".join(steps) + ", then verify again; --report FILE lists every differing id."
    if any(r.different.count for r in unequal):
        # the one content difference a re-copy by the server engine cannot fix
        text += (" Documents still different after a copy with --engine server: Elasticsearch's remote _reindex rewrites"
                 " numbers beyond a double (1e400 becomes \"Infinity\"); copy those with --engine client, which keeps the bytes.")
    return text[0].upper() + text[1:]


def verify_cmd(
    body_file: Optional[str] = typer.Argument(None, metavar="[BODY_FILE|-]", help="The same _reindex body given to 'run'; '-' reads standard input."),
    dest: Optional[str] = typer.Option(None, "--dest", help="Destination cluster URL, e.g. https://dest:9200."),
    source_ca: Optional[str] = SOURCE_CA_OPTION,
    source_insecure: bool = SOURCE_INSECURE_OPTION,
    dest_ca: Optional[str] = DEST_CA_OPTION,
    dest_insecure: bool = DEST_INSECURE_OPTION,
    dest_user: Optional[str] = DEST_USER_OPTION,
    dest_password_env: Optional[str] = DEST_PASSWORD_ENV_OPTION,
    dest_password_file: Optional[str] = DEST_PASSWORD_FILE_OPTION,
    dest_api_key_env: Optional[str] = DEST_API_KEY_ENV_OPTION,
    dest_bearer_env: Optional[str] = DEST_BEARER_ENV_OPTION,
    sample: Optional[int] = typer.Option(None, "--sample", metavar="N", help="Check N random documents from each side by id instead of all (counts are still exact)."),
    report: Optional[str] = typer.Option(None, "--report", metavar="FILE", help="Write every missing/extra/different id to FILE (NDJSON), however many."),
    parallel: Optional[int] = typer.Option(None, "--parallel", min=1, max=8, help="Slices read at once per cluster (default: the index's primary shards)."),
    show: int = typer.Option(10, "--show", min=0, help="Ids printed per list (missing, extra, different)."),
    max_ids: int = typer.Option(10_000, "--max-ids", min=0, help="Ids kept per list in memory and in --json; --report gets them all."),
    include_hidden: bool = typer.Option(False, "--include-hidden", help="Let patterns match hidden and system indices (as with 'run --include-hidden')."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON: per index counts, equal, missing/extra/different ids."),
) -> None:
    """Compare source and destination: counts, then content (bucketed digests of _id + _source), then the ids that differ.
    Exit 0 when equal, 11 when different, 2 for bad input."""
    try:
        if not dest:
            raise UsageError("--dest is missing", "Add --dest URL of the destination cluster, e.g. --dest https://dest.example:9200.")
        check_tls_flags(source_ca, source_insecure, dest, dest_ca, dest_insecure)
        if sample is not None:
            check_sample_size(sample)
        report_path = check_report_path(report)
        body = load_body(body_file)
        dst = dest_client(dest, dest_ca, dest_insecure, dest_user, dest_password_env, dest_password_file, dest_api_key_env, dest_bearer_env)
        if body.remote is not None:
            if source_insecure:
                warn_insecure()
            src = source_client(body.remote, ca_file=source_ca, insecure=source_insecure, maxsize=16)
        else:  # a local _reindex body: source and destination are the same cluster
            src = dst
        options = VerifyOptions(sample=sample, parallel=parallel, keep=max_ids, report_file=report_path, include_hidden=include_hidden)
        progress = (lambda msg: err.print(msg, style="dim", markup=False)) if not as_json and err.is_terminal else None
        with exit_on_interrupt(report_path):
            result = verify(body, src, dst, options, progress)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(result.to_dict())
    else:
        print_result(result, show)
    if not result.equal:
        n = sum(1 for r in result.indices if not r.equal)
        exc = MismatchError(f"the destination differs from the source in {n} of {len(result.indices)} index pair(s)", mismatch_fix(result))
        err.print(f"[bold red]error:[/] {escape(exc.message)}\n[bold]fix:[/] {escape(exc.fix)}", markup=True, highlight=False)
        raise typer.Exit(exc.exit_code)


def register(app: typer.Typer) -> None:
    app.command("verify", help="After a copy: compare counts and content of source and destination; exit 0 only when equal.")(verify_cmd)
