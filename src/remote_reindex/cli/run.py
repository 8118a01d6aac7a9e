"""``remote-reindex run``: step 5, copy the data with the server or the client engine."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..cluster import ClusterClient
from ..cluster.client import redact_url
from ..cluster.auth import resolve_auth
from ..engines.options import ClientOptions, ServerOptions
from ..engines.summary import RunSummary
from ..errors import CopyError, RemoteReindexError, UsageError
from ..plan.body import ReindexBody, parse_body
from ..state import open_job_state
from ..tls.context import load_certificates, warn_insecure
from .common import err, fail, out, print_json
from .progress import RichProgress

ENGINES = ("auto", "server", "client")
READ_MODES = ("auto", "pit", "scroll")


def load_body(body_file: Optional[str]) -> ReindexBody:
    if body_file is None or body_file == "-":
        if body_file is None and sys.stdin.isatty():
            raise UsageError("no _reindex body given", "Pass a body file (remote-reindex run body.json --dest URL) or '-' to read it from standard input.")
        return parse_body(sys.stdin.read(), "the body on standard input")
    p = Path(body_file)
    if not p.exists():
        raise UsageError(f"body file not found: {p}", "Give the path of a JSON file with the _reindex body, or '-' for standard input.")
    if p.is_dir():
        raise UsageError(f"body file is a directory: {p}", "Give the path of a JSON file with the _reindex body.")
    return parse_body(p.read_bytes(), f"body file {p}")


def check_tls_flags(source_ca: Optional[str], source_insecure: bool, dest: Optional[str], dest_ca: Optional[str], dest_insecure: bool) -> None:
    """CA and --insecure flags that contradict each other, or a CA for a plain-HTTP destination."""
    for side, ca, insecure in (("source", source_ca, source_insecure), ("dest", dest_ca, dest_insecure)):
        if ca and insecure:
            raise UsageError(f"--{side}-insecure and --{side}-ca contradict each other (no verification vs. verify with this CA)",
                             f"Keep --{side}-ca {ca} to verify the {'source' if side == 'source' else 'destination'}'s certificate, and drop --{side}-insecure.")
    if dest and dest.strip().lower().startswith("http://"):
        if dest_ca:
            err.print(f"warning: --dest-ca {dest_ca} is not used: --dest {redact_url(dest.strip())} is plain HTTP (no TLS)", markup=False, highlight=False)


def dest_client(
    dest: str, dest_ca: Optional[str], dest_insecure: bool, user: Optional[str], password_env: Optional[str],
    password_file: Optional[str], api_key_env: Optional[str], bearer_env: Optional[str], maxsize: int = 16,
) -> ClusterClient:
    shown = redact_url(dest.strip())
    if shown != dest.strip():
        raise UsageError(f"--dest {shown} has a user name or password in it (not sent, not shown)",
                         "Remove USER:PASSWORD@ from --dest: give the user with --dest-user and put the password in --dest-password-env VAR (or --dest-password-file FILE).")
    if dest_insecure:
        warn_insecure()
    auth = resolve_auth(user, password_env, password_file, api_key_env, bearer_env, prompt=sys.stdin.isatty(), who="dest")
    return ClusterClient(dest, ca_file=dest_ca, verify=not dest_insecure, auth=auth, maxsize=maxsize, ca_flag="--dest-ca")


def plan_fields(fields: dict) -> str:
    """``size=5000 dest_docs=20000 partitions=a | b``: the extra fields of a plan line."""
    def value(v: object) -> str:
        if isinstance(v, (list, tuple)):
            return " | ".join(value(x) for x in v)
        if isinstance(v, dict):
            return ",".join(f"{k}:{value(x)}" for k, x in v.items())
        return str(v)
    return " ".join(f"{k}={value(v)}" for k, v in fields.items())


def print_plan(plan: dict) -> None:
    out.print(f"plan ({plan.get('engine', '?')} engine) - nothing was written:")
    for item in plan.get("indices", []):
        line = f"  {item.get('index')} -> {item.get('dest_index')}: {item.get('docs', '?'):,} docs" if isinstance(item.get('docs'), int) else f"  {item.get('index')} -> {item.get('dest_index')}"
        extra = {k: v for k, v in item.items() if k not in ("index", "dest_index", "docs")}
        out.print(line + (f"  {plan_fields(extra)}" if extra else ""), markup=False)
    for note in plan.get("notes", []):
        out.print(f"  note: {note}", markup=False)


COLUMNS = ("index", "dest", "total", "created", "updated", "conflicts", "failed", "retries", "took")


def summary_rows(summary: RunSummary) -> list[tuple[str, ...]]:
    return [(i.index, i.dest_index, f"{i.total:,}", f"{i.created:,}", f"{i.updated:,}", f"{i.version_conflicts:,}",
             f"{i.failed:,}", f"{i.retries_bulk + i.retries_search:,}", f"{i.took_ms / 1000:.1f}s") for i in summary.indices]


def describe_failure(failure: dict) -> str:
    """``index products, id p1: version_conflict_engine_exception: [p1]: version conflict, document already exists``"""
    cause = failure.get("cause")
    if isinstance(cause, dict):
        typ, reason = str(cause.get("type") or ""), str(cause.get("reason") or "")
    else:
        typ, reason = str(cause or ""), str(failure.get("reason") or "")
    where = ", ".join(x for x in (f"index {failure['index']}" if failure.get("index") else "", f"id {failure['id']}" if failure.get("id") is not None else "",
                                  f"partition {failure['partition']}" if failure.get("partition") else "") if x)
    what = f"{typ}: {reason}" if typ and reason else (typ or reason or "no reason given")
    return f"{where}: {what}" if where else what


def first_failure_lines(summary: RunSummary) -> list[str]:
    """The first failure of the copy with its cause, and how many more documents were not
    written: the cause in plain text (the full list is in --json and the dead-letter file)."""
    failures = [f for i in summary.indices for f in i.failures if isinstance(f, dict)]
    if not failures:
        return []
    not_written = sum(i.failed + (i.version_conflicts if any(_is_conflict(f) for f in i.failures) else 0) for i in summary.indices if i.failures)
    lines = [f"first failure: {describe_failure(failures[0])}"]
    more = max(not_written, len(failures)) - 1
    if more > 0:
        lines.append(f"and {more:,} more (all kept failures: --json; rejected documents: the dead-letter file)")
    return lines


def _is_conflict(failure: dict) -> bool:
    cause = failure.get("cause")
    return failure.get("status") == 409 or (isinstance(cause, dict) and cause.get("type") == "version_conflict_engine_exception")


def print_summary(summary: RunSummary) -> None:
    if out.is_terminal:
        table = Table(title=f"copied with the {summary.engine} engine", show_lines=False)
        for col in COLUMNS:
            table.add_column(col, justify="right" if col not in ("index", "dest") else "left", overflow="fold")
        for row in summary_rows(summary):
            table.add_row(*row)
        out.print(table)
    else:  # a file or a pipe: plain lines, nothing cut to the width of a terminal that is not there
        out.print(f"copied with the {summary.engine} engine:", markup=False)
        for row in summary_rows(summary):
            out.print(f"  {row[0]} -> {row[1]}: " + ", ".join(f"{col} {v}" for col, v in zip(COLUMNS[2:], row[2:])), markup=False)
    t = summary.totals()
    out.print(f"total {t['total']:,}: created {t['created']:,}, updated {t['updated']:,}, version conflicts "
              f"{t['version_conflicts']:,}, failed {t['failed']:,} in {summary.took_ms / 1000:.1f}s")
    resumed = sum(i.resumed_docs for i in summary.indices)
    if resumed:
        out.print(f"{resumed:,} of the {t['total']:,} documents were copied by earlier runs of this job (state {summary.state_file})", markup=False)
    again = sum(i.already_copied for i in summary.indices)
    if again:
        out.print(f"{again:,} replayed document(s) were already on the destination (written by an earlier run; counted as created)", markup=False)
    for i in summary.indices:
        if i.dead_letter_file and i.failed:
            err.print(f"{i.failed:,} document(s) of {i.index} were not written; they are in {i.dead_letter_file}", markup=False)
    for line in first_failure_lines(summary):
        err.print(line, markup=False, highlight=False)


def check_local_inputs(source_ca: Optional[str], transform: Optional[str], state_file: Optional[str], dead_letter: Optional[str] = None) -> None:
    """Files and code named on the command line, checked before anything connects or is
    written (the state file included): a typo fails in a second, not after a handshake."""
    if source_ca:
        load_certificates(source_ca)
    if transform:
        from ..engines.client import load_transform

        load_transform(transform)
    if state_file and Path(state_file).is_dir():
        raise UsageError(f"--state {state_file} is a directory", "Give a file name for the job's state, e.g. --state job.sqlite.")
    if state_file and not Path(state_file).parent.is_dir():  # only the default state folder is ever created
        raise UsageError(f"the folder of --state {state_file} does not exist: {Path(state_file).parent}", "Create the folder first, or give --state a file in an existing folder.")
    # the dead-letter file is only opened at the first rejected document: check its place now
    if dead_letter and Path(dead_letter).is_dir():
        raise UsageError(f"--dead-letter {dead_letter} is a directory", "Give a file name, e.g. --dead-letter rejected.ndjson.")
    if dead_letter and not Path(dead_letter).parent.is_dir():
        raise UsageError(f"the folder of --dead-letter {dead_letter} does not exist: {Path(dead_letter).parent}", "Create the folder first, or give --dead-letter a file in an existing folder.")


def check_engine_options(engine: str, client_only: list[str], server_only: list[str], has_script: bool = False) -> tuple[str, str | None]:
    """The engine the options allow, before anything connects: client-only options
    (--read-mode, --bulk-mb, --dead-letter, --transform) need the client engine,
    server-only ones (--partitions, --partition-field, --requests-per-second) and a body
    'script' need the server engine. ``--engine auto`` follows them and says why."""
    if client_only and server_only:
        raise UsageError(f"{', '.join(client_only)} (client engine) and {', '.join(server_only)} (server engine) cannot be combined",
                         "Keep the options of one engine: drop one of them.")
    if has_script and client_only:
        raise UsageError(f"the body's 'script' needs the server engine, but {', '.join(client_only)} needs the client engine",
                         "Drop 'script' from the body and do the change with --transform module:function, or drop " + ", ".join(client_only) + ".")
    if engine == "server" and client_only:
        raise UsageError(f"{', '.join(client_only)} only work{'s' if len(client_only) == 1 else ''} with the client engine, but --engine server was given",
                         f"Use --engine client (or auto), or drop {', '.join(client_only)}.")
    if engine == "client" and server_only:
        raise UsageError(f"{', '.join(server_only)} only work{'s' if len(server_only) == 1 else ''} with the server engine, but --engine client was given",
                         f"Use --engine server (or auto), or drop {', '.join(server_only)}.")
    if engine == "client" and has_script:
        raise UsageError("the body's 'script' runs on the destination (server engine); the client engine cannot run it",
                         "Use --engine server (or auto), or drop 'script' and give --transform module:function (a Python function called per document) with --engine client.")
    if engine == "auto":
        if client_only:
            return "client", f"{', '.join(client_only)} {'is a client-engine option' if len(client_only) == 1 else 'are client-engine options'}"
        if server_only:
            return "server", f"{', '.join(server_only)} {'is a server-engine option' if len(server_only) == 1 else 'are server-engine options'}"
        if has_script:
            return "server", "the body has a 'script', which only the destination can run"
    return engine, None


# Connection options of run and verify: declared once so both commands take them alike.
SOURCE_CA_OPTION = typer.Option(None, "--source-ca", help="CA file (PEM) for the source as seen from here; wins over REQUESTS_CA_BUNDLE/SSL_CERT_FILE.")
SOURCE_INSECURE_OPTION = typer.Option(False, "--source-insecure", help="Do not verify the source's certificate (prints a warning).")
DEST_CA_OPTION = typer.Option(None, "--dest-ca", help="CA file (PEM) for the destination.")
DEST_INSECURE_OPTION = typer.Option(False, "--dest-insecure", help="Do not verify the destination's certificate (prints a warning).")
DEST_USER_OPTION = typer.Option(None, "--dest-user", help="Destination user (basic auth).")
DEST_PASSWORD_ENV_OPTION = typer.Option(None, "--dest-password-env", metavar="VAR", help="Environment variable holding the destination password.")
DEST_PASSWORD_FILE_OPTION = typer.Option(None, "--dest-password-file", metavar="FILE", help="File holding the destination password.")
DEST_API_KEY_ENV_OPTION = typer.Option(None, "--dest-api-key-env", metavar="VAR", help="Environment variable holding a destination API key.")
DEST_BEARER_ENV_OPTION = typer.Option(None, "--dest-bearer-env", metavar="VAR", help="Environment variable holding a destination bearer token.")


def run_cmd(
    body_file: Optional[str] = typer.Argument(None, metavar="[BODY_FILE|-]", help="The guide's _reindex body (JSON) with source.remote; '-' reads standard input. ${VAR} is expanded from the environment."),
    dest: Optional[str] = typer.Option(None, "--dest", help="Destination cluster URL, e.g. https://dest:9200."),
    engine: str = typer.Option("auto", "--engine", help="server: the destination pulls with its own _reindex; client: this machine reads and writes; auto: server when the destination can pull, else client. Engine-specific options decide auto: --read-mode, --bulk-mb, --dead-letter, --transform pick the client engine, --partitions, --partition-field, --requests-per-second (and a body 'script') the server engine; given with the other --engine they are an error."),
    source_ca: Optional[str] = SOURCE_CA_OPTION,
    source_insecure: bool = SOURCE_INSECURE_OPTION,
    dest_ca: Optional[str] = DEST_CA_OPTION,
    dest_insecure: bool = DEST_INSECURE_OPTION,
    dest_user: Optional[str] = DEST_USER_OPTION,
    dest_password_env: Optional[str] = DEST_PASSWORD_ENV_OPTION,
    dest_password_file: Optional[str] = DEST_PASSWORD_FILE_OPTION,
    dest_api_key_env: Optional[str] = DEST_API_KEY_ENV_OPTION,
    dest_bearer_env: Optional[str] = DEST_BEARER_ENV_OPTION,
    parallel: Optional[int] = typer.Option(None, "--parallel", min=1, max=256, help="Client: slices read at once (default: the source's shard count). Server: tasks at once."),
    read_mode: Optional[str] = typer.Option(None, "--read-mode", help="Client engine read path: pit (point in time + search_after), scroll (sliced scroll), auto (the default)."),
    transform: Optional[str] = typer.Option(None, "--transform", metavar="MODULE:FUNCTION", help="Client engine: a Python function called per document (instead of 'script')."),
    bulk_mb: Optional[float] = typer.Option(None, "--bulk-mb", min=0.1, max=100.0, help="Client engine: _bulk request size in MB (default 8)."),
    dead_letter: Optional[str] = typer.Option(None, "--dead-letter", metavar="FILE", help="Client engine: NDJSON file for documents the destination rejects."),
    partitions: int = typer.Option(1, "--partitions", min=1, max=64, help="Server engine: split each index into K query-range partitions run as parallel tasks."),
    partition_field: Optional[str] = typer.Option(None, "--partition-field", help="Server engine: numeric or date field to partition on (default: chosen from the mapping)."),
    requests_per_second: Optional[float] = typer.Option(None, "--requests-per-second", min=0.001, help="Server engine: throttle each task."),
    skip_preflight: bool = typer.Option(False, "--skip-preflight", help="Server engine: skip the checks that need to read node settings."),
    attach: Optional[str] = typer.Option(None, "--attach", metavar="TASK_ID", help="Server engine: follow a task started earlier (node:id)."),
    no_metadata: bool = typer.Option(False, "--no-metadata", help="Do not copy mappings, settings and aliases before the data."),
    include_hidden: bool = typer.Option(False, "--include-hidden", help="Let patterns match hidden and system indices."),
    plan: bool = typer.Option(False, "--plan", help="Print the plan (indices, counts, engine, partitions) and write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (shaped like the _reindex response)."),
    state_file: Optional[str] = typer.Option(None, "--state", metavar="FILE", help="SQLite file with the job's progress (default: one per body+destination under ~/.local/state/remote-reindex/). Re-running the same command resumes from it: client PIT slices after their last acknowledged document, scroll slices from their start (a scroll cannot rewind), server tasks re-attached and only unfinished partitions re-run. No secret is stored in it."),
    resume: bool = typer.Option(False, "--resume", help="Continue the job from its state file (also what re-running does); fails if there is no state to resume."),
    restart: bool = typer.Option(False, "--restart", help="Forget the job's state file and copy everything again."),
    keep_alive: str = typer.Option("5m", "--keep-alive", hidden=True, help="Client engine: PIT/scroll keep-alive (tests use a short one)."),
    read_size: Optional[int] = typer.Option(None, "--read-size", hidden=True, min=1, max=10000, help="Client engine: documents per search page."),
    bulk_docs: int = typer.Option(5000, "--bulk-docs", hidden=True, min=1, max=100000, help="Client engine: at most this many documents per _bulk."),
) -> None:
    """Step 5: copy the data, one job per source index, N in parallel."""
    progress: RichProgress | None = None
    state_path: str | None = None
    signal.signal(signal.SIGTERM, _sigterm_as_sigint)  # `timeout`, systemd, kill: stop as cleanly as Ctrl-C
    try:
        if engine not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}", "Use --engine server, --engine client or --engine auto.")
        if read_mode is not None and read_mode not in READ_MODES:
            raise UsageError(f"--read-mode must be one of {', '.join(READ_MODES)}, got {read_mode!r}", "Use --read-mode pit or --read-mode scroll.")
        if not dest:
            raise UsageError("--dest is missing", "Add --dest URL of the destination cluster, e.g. --dest https://dest.example:9200.")
        if resume and restart:
            raise UsageError("--restart and --resume contradict each other", "Use --resume to continue the job, or --restart to copy everything again.")
        client_only = [name for name, given in (("--read-mode", read_mode is not None), ("--bulk-mb", bulk_mb is not None),
                                                ("--dead-letter", dead_letter is not None), ("--transform", transform is not None)) if given]
        server_only = [name for name, given in (("--partitions", partitions > 1), ("--partition-field", partition_field is not None),
                                                ("--requests-per-second", requests_per_second is not None)) if given]
        engine, forced_reason = check_engine_options(engine, client_only, server_only)
        body = None if attach else load_body(body_file)
        if body is not None and body.script is not None:
            engine, why = check_engine_options(engine, client_only, server_only, has_script=True)
            forced_reason = forced_reason or why
        check_tls_flags(source_ca, source_insecure, dest, dest_ca, dest_insecure)
        check_local_inputs(source_ca, transform, state_file, dead_letter)
        if source_insecure:
            warn_insecure()
        common = dict(parallel=parallel, plan_only=plan, copy_metadata=not no_metadata, include_hidden=include_hidden,
                      source_ca=source_ca, source_insecure=source_insecure)
        client_opts = ClientOptions(**common, read_mode=read_mode or "auto", transform=transform, bulk_bytes=int((bulk_mb or 8.0) * 1024 * 1024), dead_letter_file=dead_letter,
                                    keep_alive=keep_alive, read_size=read_size, bulk_docs=bulk_docs)
        server_opts = ServerOptions(**common, partitions=partitions, partition_field=partition_field,
                                    requests_per_second=requests_per_second, skip_preflight=skip_preflight)
        dst = dest_client(dest, dest_ca, dest_insecure, dest_user, dest_password_env, dest_password_file, dest_api_key_env, dest_bearer_env)
        progress = RichProgress(enabled=not as_json and not plan and err.is_terminal)
        from ..engines import client as client_engine
        from ..engines import server as server_engine

        if attach:
            summary = server_engine.attach(attach, dst, server_opts, progress)
        else:
            assert body is not None
            if forced_reason is not None:
                progress.message(f"engine: {engine} ({forced_reason})")
            elif engine == "auto":
                engine, reason = server_engine.choose_engine(body, dst, server_opts)
                progress.message(f"engine: {engine} ({reason})")
            state = None
            if not plan:
                # the job is "this body into this destination cluster": a re-created cluster at the same URL is another job
                dest_id = f"{dst.url}#{dst.info().cluster_uuid or ''}"
                state = open_job_state(body, dest_id, dst.host_port, engine, state_file=state_file, restart=restart, resume=resume)
                state_path = str(state.path) if state is not None else None
            if state is not None and state.finished_before:
                progress.close()
                if as_json:
                    print_json({"engine": engine, "complete": True, "already_complete": True, "state_file": str(state.path)})
                else:
                    out.print(f"job already complete ({state.description}); state {state.path}. Nothing was written.", markup=False)
                    out.print(f"Compare source and destination with remote-reindex verify; copy again with --restart (or delete {state.path}).", markup=False)
                return
            if engine == "server":
                summary = server_engine.copy(body, dst, server_opts, progress, state=state)
            else:
                summary = client_engine.copy(body, dst, client_opts, progress, state=state)
    except RemoteReindexError as exc:
        if progress:
            progress.close()
        fail(exc, as_json=as_json)
    except KeyboardInterrupt:  # before an engine took over Ctrl-C (planning, metadata): nothing half-written to report
        if progress:
            progress.close()
        err.print("[bold red]error:[/] interrupted before the copy started", markup=True, highlight=False)
        err.print(f"[bold]fix:[/] run the same command again{' (progress is kept in the state file)' if state_path else ''}", markup=True, highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    progress.close()
    if isinstance(summary, dict):  # --plan: the engine returned the plan, nothing was written
        if as_json:
            print_json(summary)
        else:
            print_plan(summary)
        return
    if as_json:
        print_json(summary.to_dict())
    else:
        print_summary(summary)
    if getattr(summary, "interrupted", False):
        exit_interrupted(summary)
    if not summary.complete:
        state_path = getattr(summary, "state_file", None)
        fix = (f"Fix the cause shown, then run the same command again: it resumes from {state_path}." if state_path
               else "Fix the cause shown, then run the same command again (documents are written by _id: nothing is duplicated).")
        exc = CopyError("the copy did not write every document (see the counts above)", fix)
        stopped = job_stop_reason(summary)  # e.g. a write-blocked index: its own two lines say more
        if stopped is not None:
            exc = CopyError(*stopped)
        err.print(f"[bold red]error:[/] {escape(exc.message)}\n[bold]fix:[/] {escape(exc.fix)}")
        raise typer.Exit(exc.exit_code)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _sigterm_as_sigint(signum: int, frame: Any) -> None:
    """SIGTERM does what Ctrl-C does: the client engine's handler stops the reads and waits
    for the writes in flight, the server engine cancels its tasks; before either, a
    KeyboardInterrupt. Called directly, not re-sent as SIGINT: a process started in the
    background by a shell ignores SIGINT, and SIGTERM must still stop it."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def exit_interrupted(summary: RunSummary) -> None:
    """Ctrl-C during a copy: what was written, then the two lines; exit 130. When writes in
    flight did not finish within the grace period, their threads are left behind (os._exit):
    the state file holds only acknowledged cursors, so the re-run resends those batches."""
    t = summary.totals()
    copied = t["created"] + t["updated"]
    expected = max(summary.expected_docs, copied)
    state_path = getattr(summary, "state_file", None)
    fix = (f"run the same command again: it resumes from {state_path}" if state_path
           else "run the same command again (documents are written by _id: nothing is duplicated)")
    err.print(f"[bold red]error:[/] interrupted: {copied:,} of {expected:,} documents copied\n[bold]fix:[/] {escape(fix)}")
    if summary.abandoned:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_INTERRUPTED)


def job_stop_reason(summary: RunSummary) -> tuple[str, str] | None:
    """(message, fix) of the first condition that stopped a job (a failure without a
    document id that carries a fix, like a write-blocked index), if any."""
    for index in summary.indices:
        for failure in index.failures:
            cause = failure.get("cause") if isinstance(failure.get("cause"), dict) else {}
            if "id" not in failure and cause.get("reason") and cause.get("fix"):
                return str(cause["reason"]), str(cause["fix"])
    return None


def register(app: typer.Typer) -> None:
    app.command("run", help="Step 5: copy the data (server engine: the destination's own _reindex; client engine: read here, _bulk there). Client engine: Ctrl-C stops reading, waits up to 30 s for the writes in flight, saves the cursors and exits 130; the same command resumes.")(run_cmd)
