"""The client engine: this machine reads the source (sliced PIT or scroll) and writes the
destination with ``_bulk``.

Shape (the project's guide): a *source* (``source.IndexReader``) lists partitions
(slices) and reads pages from a cursor; a *sink* (``sink.BulkSink``) writes batches; the
runner (``runner.IndexJob``) turns each acknowledged batch into a saved cursor
(``docs.SliceCursor``), written to the job's state file when there is one (``state``);
``resume`` decides where each slice starts again after an interruption.

``copy`` runs three phases so a half-done run never leaves aliases on a half-filled index:
1. expand ``source.index`` and create every destination index with the source's mappings
   and settings (``--no-metadata`` skips it);
2. copy the data, one job per index, a few indices at once;
3. per index that completed, point its aliases at the copy.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from ...cluster import ClusterClient
from ...errors import UsageError
from ...plan.body import ReindexBody
from ...plan.doc_size import average_document_bytes
from ...plan.indices import dest_name_for, expand
from ...plan.source import source_client
from ...state.store import JobState
from ..options import ClientOptions
from ..progress import Progress
from ..summary import RunSummary
from .resume import kept_docs
from .runner import DocBudget, IndexJob, RunContext, Transform
from .sink import AdaptiveLimit, DeadLetters
from .source import choose_page_size, choose_read_mode, slice_count

__all__ = ["copy", "plan", "load_transform"]

INDICES_AT_ONCE = 2  # jobs run together; the destination, not the client, is usually the limit
INTERRUPT_GRACE = 30.0  # seconds the first Ctrl-C waits for the _bulk requests in flight


def load_transform(spec: str | None) -> Transform | None:
    """``module:function`` -> the function (the current directory is importable). It gets
    ``{"_index", "_id", "_routing", "_source"}`` per document and returns the same shape
    (changed) or ``None`` to skip the document (counted as a noop)."""
    if not spec:
        return None
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        raise UsageError(f"--transform must look like module:function, got {spec!r}", "E.g. --transform my_transforms:rename_fields (my_transforms.py in the current directory).")
    module_name, func_name = spec.split(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--transform: cannot import module {module_name!r}: {exc}", "Run from the directory that holds the module, or install it.") from None
    except Exception as exc:  # the module itself fails on import
        raise UsageError(f"--transform: importing {module_name!r} failed: {exc!r}", "Fix the module so it imports cleanly.") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise UsageError(f"--transform: {module_name!r} has no function {func_name!r}", "Name a function defined in that module.")
    return fn


class _Interrupt:
    """SIGINT (Ctrl-C) during the copy: the first one stops reading, lets the batches in
    flight be answered (at most ``INTERRUPT_GRACE`` seconds) so their cursors are saved,
    and the run returns its summary marked ``interrupted``; a second one exits at once
    (exit 130) with what the state file already holds. Installed only in the main thread."""

    def __init__(self, jobs: list[IndexJob], progress: Progress) -> None:
        self.jobs = jobs
        self.progress = progress
        self.requested = False
        self.deadline: float | None = None
        self._previous: Any = None
        self._installed = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second Ctrl-C: do not wait any longer
            sys.stderr.write("error: interrupted again: stopped without waiting for the writes in flight\n"
                             "fix: run the same command again: it resumes from the last acknowledged document of each slice\n")
            sys.stderr.flush()
            os._exit(130)
        self.requested = True
        self.deadline = time.monotonic() + INTERRUPT_GRACE
        for job in self.jobs:
            job.summary.cancelled = True
            job.stop.set()
        sys.stderr.write(f"interrupted: stopping; waiting up to {INTERRUPT_GRACE:.0f} s for the writes in flight (Ctrl-C again to quit at once)\n")
        sys.stderr.flush()

    def wait(self, futures: list[Any]) -> None:
        """Until every job is done, or the grace period after an interrupt is over."""
        pending = set(futures)
        while pending:
            timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            done, pending = futures_wait(pending, timeout=0.2 if timeout is None else min(timeout, 0.2))
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def _source_for(body: ReindexBody, dest: ClusterClient, options: ClientOptions, maxsize: int) -> ClusterClient:
    if body.remote is None:
        return dest  # no source.remote: copy inside the destination cluster
    return source_client(body.remote, ca_file=options.source_ca, insecure=options.source_insecure, maxsize=maxsize)


def _jobs(body: ReindexBody, source: ClusterClient, dest: ClusterClient, options: ClientOptions, progress: Progress, state: JobState | None = None) -> tuple[list[IndexJob], list[str], RunContext]:
    source_info = source.info()  # TLS / auth problems with the source surface here, before anything is written
    dest_info = dest.info()
    same_cluster = source is dest or (bool(source_info.cluster_uuid) and source_info.cluster_uuid == dest_info.cluster_uuid)
    expansion = expand(source, body.indices, options.include_hidden, count_query=body.query)
    writers_max = max(1, options.bulk_in_flight) * INDICES_AT_ONCE
    ctx = RunContext(
        source=source, source_info=source_info, dest=dest, body=body, options=options, progress=progress,
        limit=AdaptiveLimit(writers_max), writers=None,  # type: ignore[arg-type]  # set when the run starts
        budget=DocBudget(body.max_docs), dead_letters=DeadLetters(options.dead_letter_file),
        state=state,
    )
    jobs: list[IndexJob] = []
    for info in expansion.indices:
        dest_index = dest_name_for(info, body.dest_index)
        if same_cluster and dest_index == info.name:
            raise UsageError(f"source and destination are the same index: {info.name}", "Set dest.index to another name (or copy to another cluster with source.remote).")
        mode = choose_read_mode(options.read_mode, source_info, data_stream=info.is_data_stream)
        job = IndexJob(ctx, info, dest_index, mode, slice_count(options.parallel, info.shards, mode, source_info))
        explicit = options.read_size or body.size  # --read-size, or the body's source.size (the _reindex batch size)
        if explicit:
            job.page_size, job.page_reason = explicit, "--read-size" if options.read_size else "source.size from the body"
        else:
            job.page_size, job.page_reason = choose_page_size(average_document_bytes(source, info.name))
        jobs.append(job)
    return jobs, expansion.notes, ctx


def plan(body: ReindexBody, dest: ClusterClient, options: ClientOptions, progress: Progress | None = None) -> dict[str, Any]:
    """What ``copy`` would do; reads the source and the destination, writes nothing."""
    progress = progress or Progress()
    source = _source_for(body, dest, options, maxsize=4)
    jobs, notes, ctx = _jobs(body, source, dest, options, progress)
    from ..metadata import index_exists

    items = []
    for job in jobs:
        exists = index_exists(dest, job.dest_index)
        items.append({
            "index": job.info.name, "dest_index": job.dest_index, "docs": job.info.docs if body.max_docs is None else min(job.info.docs, body.max_docs),
            "kind": job.info.kind, "shards": job.info.shards, "read_mode": job.mode, "slices": job.slices, "op_type": job.spec.op_type,
            "page_size": job.page_size, "page_size_reason": job.page_reason,
            "metadata": "skip (--no-metadata)" if not options.copy_metadata else ("exists, kept" if exists else "create from source"),
        })
    notes = list(notes)
    pages = sorted({job.page_size for job in jobs})
    per_page = f"{pages[0]}" if len(pages) == 1 else f"{pages[0]}-{pages[-1]}"
    notes.append(f"source {ctx.source_info.label()}; read {per_page} docs per page; _bulk up to {options.bulk_bytes // (1024 * 1024)} MB / {options.bulk_docs} docs")
    if body.max_docs is not None:
        notes.append(f"max_docs {body.max_docs} over the whole run")
    if source is not dest:
        source.close()
    return {"engine": "client", "source": ctx.source_info.label(), "indices": items, "notes": notes}


def copy(body: ReindexBody, dest: ClusterClient, options: ClientOptions, progress: Progress | None = None, state: JobState | None = None) -> RunSummary | dict[str, Any]:
    """Copy ``body``'s source indices to ``dest``. Returns the ``RunSummary`` (or, with
    ``options.plan_only``, the plan as a dict, having written nothing).

    Errors a user can fix before anything is written (TLS, credentials, unknown index,
    bad transform, mappings the destination refuses) raise; problems during the copy are
    counted in the summary (failures, dead-lettered documents) and ``complete`` is False.

    ``state`` (``state.open_job_state``): cursors are saved there after every acknowledged
    batch, and a run of a job the file knows continues where it stood. A job the file
    says is finished is not copied again (``already_complete``, nothing written).
    """
    progress = progress or Progress()
    if body.script is not None:
        raise UsageError("the body's 'script' runs on the destination (server engine); the client engine cannot run it",
                         "Use --engine server (or auto), or drop 'script' and give --transform module:function (a Python function called per document) with --engine client.")
    if options.plan_only:
        return plan(body, dest, options, progress)
    if state is not None and state.finished_before:
        return RunSummary("client", state_file=str(state.path), already_complete=True)
    transform = load_transform(options.transform)
    started = time.monotonic()
    slices_hint = max(4, (options.parallel or 2) * INDICES_AT_ONCE + 2)
    source = _source_for(body, dest, options, maxsize=slices_hint)
    try:
        jobs, notes, ctx = _jobs(body, source, dest, options, progress, state)
        ctx.transform = transform
        if state is not None and state.resumed:
            done = sum(kept_docs(state.cursors(job.info.name)) for job in jobs)  # rejected documents are not "copied"
            total = sum(job.info.docs for job in jobs)
            # a job that stopped before sending anything (a failed preflight, a TLS error) has nothing to resume;
            # one whose documents were all rejected has (they are sent again)
            if any(c.docs_done for job in jobs for c in state.cursors(job.info.name)):
                progress.message(f"resuming job {state.description} from state {state.path}: {done:,} of {total:,} documents already copied")
        if body.sort is not None:
            notes.append("source.sort is ignored: documents are read in index order (sorting a copy is deprecated in _reindex too)")
        for note in notes:
            progress.message(note)
        for job in jobs:  # phase 1: every destination index exists before any data moves
            for note in job.prepare():
                progress.message(note)
        summary = RunSummary("client", state_file=str(state.path) if state is not None else None)
        summary.expected_docs = sum(job.info.docs for job in jobs) if body.max_docs is None else min(sum(job.info.docs for job in jobs), body.max_docs)
        writers = ThreadPoolExecutor(max_workers=ctx.limit.maximum * 2, thread_name_prefix="bulk")
        job_pool = ThreadPoolExecutor(max_workers=INDICES_AT_ONCE, thread_name_prefix="job")
        interrupt = _Interrupt(jobs, progress)
        try:
            ctx.writers = writers
            futures = [job_pool.submit(job.run) for job in jobs]  # phase 2 (+3 inside each job)
            interrupt.wait(futures)
            summary.interrupted = interrupt.requested
            summary.abandoned = not all(f.done() for f in futures)
            summary.indices = [f.result() if f.done() else job.summary for f, job in zip(futures, jobs)]
        finally:
            interrupt.restore()
            wait_for_threads = not (interrupt.requested and summary.abandoned)
            job_pool.shutdown(wait=wait_for_threads, cancel_futures=True)
            writers.shutdown(wait=wait_for_threads, cancel_futures=True)
        if ctx.limit.lowered:
            progress.message(f"the destination pushed back (429/503); bulk concurrency was lowered {ctx.limit.lowered} time(s)")
        summary.took_ms = int((time.monotonic() - started) * 1000)
        if state is not None and summary.complete:
            state.finish(True)
        return summary
    finally:
        if source is not dest:
            source.close()
        if "ctx" in locals():
            ctx.dead_letters.close()
