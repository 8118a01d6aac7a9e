"""The server engine: the destination copies with its own ``POST _reindex`` from
``source.remote``; this side checks, plans, starts one task per index (or per partition
of a big index), N at a time, follows them, and reports like ``_reindex`` would.

Tasks run asynchronously (``wait_for_completion=false``) so progress can be read from
their status, Ctrl-C can cancel them, and ``attach`` can follow one started earlier. The
final result is read from the task and its ``.tasks`` document removed afterwards.
"""

from __future__ import annotations

import copy as _copy
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ...cluster import ClusterClient, ClusterInfo
from ...errors import ConnectError, CopyError, PreflightError, RemoteReindexError, TLSError, UsageError
from ...plan.body import ReindexBody
from ...plan.doc_size import average_document_bytes
from ...plan.indices import IndexInfo, dest_name_for, expand
from ...plan.source import source_client
from ...state.store import JobState
from .. import metadata
from ..options import ServerOptions
from ..progress import Progress
from ..summary import IndexSummary, RunSummary
from .batch import BatchChoice, choose_batch_size
from .nodes import RoundRobin, describe, node_clients
from .partitions import Partition, choose_field, index_mapping, plan_partitions
from .preflight import check_allowlist, check_module, check_versions, dest_index_state, probe_trust
from .resume import part_key, position_for, saved_partitions, status_from_counts, status_to_counts
from .tasks import TaskStatus, cancel_task, check_task_id, get_status, remove_result, start_task
from .translate import explain_reindex_error

PROBE_DEST_INDEX = "remote-reindex-probe"  # never created: the probe matches no document
DEFAULT_PARALLEL = 2  # tasks at once: the measured gain stops at the destination's CPUs


@dataclass
class Job:
    """One remote reindex task to run: an index, or one partition of it."""

    index: str
    dest_index: str
    body: dict[str, Any]
    partition: Partition | None = None
    task_id: str | None = None
    status: TaskStatus | None = None
    error: RemoteReindexError | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    part: str = ""  # its row in the state file
    body_position: dict[str, Any] | None = None  # what the state file keeps of it (label, query, size; no secret)
    resume: str | None = None  # "done": finished by an earlier run; "attach": follow the saved task_id


@dataclass
class IndexPlan:
    info: IndexInfo
    dest_index: str
    batch: BatchChoice
    partitions: list[Partition] = field(default_factory=list)
    dest_exists: bool | None = None
    dest_docs: int = 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.info.name, "dest_index": self.dest_index, "docs": self.info.docs, "size": self.batch.size}
        if self.info.is_data_stream:
            d["kind"] = "data_stream"
        if self.partitions:
            d["partitions"] = [p.label for p in self.partitions]
        if self.dest_exists:
            d["dest_docs"] = self.dest_docs
        return d


# -- reaching the source from here --------------------------------------------------------


def _source_from_here(body: ReindexBody, options: ServerOptions) -> tuple[ClusterClient, ClusterInfo]:
    assert body.remote is not None
    src = source_client(body.remote, ca_file=options.source_ca, insecure=options.source_insecure)
    try:
        return src, src.info()
    except TLSError as exc:
        src.close()
        fix = ("Pass the source's CA with --source-ca ca.pem (the file you bundled for the destination), "
               "or --skip-preflight to let only the destination talk to the source.") if not options.source_ca else exc.fix
        raise PreflightError(f"cannot check the source from here: {exc.message}", fix, cause=f"source_{exc.cause}") from None
    except RemoteReindexError:
        src.close()
        raise


def _validate(body: ReindexBody, options: ServerOptions) -> None:
    if not body.is_remote:
        raise UsageError("the server engine copies from a remote source, but the body has no source.remote", "Add \"remote\": {\"host\": \"https://HOST:PORT\", ...} to source.")
    if options.partitions > 1 and body.max_docs is not None:
        raise UsageError("--partitions cannot be combined with max_docs (each partition would take its own max_docs)", "Drop max_docs from the body, or run without --partitions.")
    if options.parallel is not None and options.parallel < 1:
        raise UsageError("--parallel must be at least 1", "Pass --parallel N with N >= 1.")


# -- planning -------------------------------------------------------------------------------


def _plan_index(src: ClusterClient | None, info: IndexInfo, body: ReindexBody, options: ServerOptions, progress: Progress) -> IndexPlan:
    avg = average_document_bytes(src, info.name) if src is not None else None
    batch = choose_batch_size(avg, body.size)
    if batch.warning:
        progress.message(f"warning: {info.name}: {batch.warning}")
    plan = IndexPlan(info, dest_name_for(info, body.dest_index), batch)
    if options.partitions > 1:
        if src is None:
            raise UsageError("--partitions needs to read the source from here (mapping, min/max)", "Pass --source-ca (and run without --skip-preflight's blind mode), or drop --partitions.")
        mapping = index_mapping(src, info.backing_indices[-1] if info.is_data_stream and info.backing_indices else info.name)
        stats = choose_field(src, info.name, mapping, options.partition_field, body.query)
        plan.partitions = plan_partitions(stats, options.partitions, body.query)
    return plan


def task_body(body: ReindexBody, index: str, dest_index: str, size: int, query: Any, *, data_stream: bool = False) -> dict[str, Any]:
    """The user's body for one task: one concrete index, the partition's query, the batch size."""
    raw = _copy.deepcopy(dict(body.raw))
    src = raw["source"]
    src["index"] = index
    src["size"] = size
    if query:
        src["query"] = query
    dest = dict(raw.get("dest") or {})
    dest["index"] = dest_index
    if data_stream:
        dest["op_type"] = "create"  # the only operation a data stream accepts
    raw["dest"] = dest
    return raw


# -- running tasks ------------------------------------------------------------------------


class _Runner:
    """Runs jobs N at a time, spread over the destination's nodes; Ctrl-C cancels them."""

    def __init__(self, dest: ClusterClient, nodes: RoundRobin, options: ServerOptions, progress: Progress, explain: dict[str, Any], state: JobState | None = None) -> None:
        self.dest = dest
        self.state = state
        self.nodes = nodes
        self.options = options
        self.progress = progress
        self.explain = explain
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._per_index: dict[str, list[Job]] = {}

    def _report(self, index: str) -> None:
        jobs = self._per_index.get(index, [])
        done = sum(j.status.done for j in jobs if j.status)
        total = sum(j.status.total for j in jobs if j.status)
        self.progress.set_completed(index, done, total or None)

    def run_one(self, job: Job) -> Job:
        if job.resume == "done" or self.stop.is_set():
            return job
        if job.resume == "attach" and job.task_id:
            try:
                first = get_status(self.dest, job.task_id)  # any node answers for a task of the cluster
            except RemoteReindexError as exc:
                self.progress.message(f"{job.index}{_part_label(job)}: task {job.task_id} is no longer known to the destination ({exc.cause}); running it again")
                job.task_id = None
            else:
                self.progress.message(f"{job.index}{_part_label(job)}: re-attached to task {job.task_id} ({'finished, reading its result' if first.completed else 'still running, following it'})")
                job.status = first
                job.started_at = time.monotonic()
                self.follow(job, self.dest)
                return job
        node = self.nodes.next()
        try:
            job.task_id = start_task(node, job.body, requests_per_second=self.options.requests_per_second, explain=self.explain)
        except RemoteReindexError as exc:
            job.error = exc
            return job
        if self.state is not None:
            self.state.save(job.index, job.part, status="running", task_id=job.task_id)
        job.started_at = time.monotonic()
        self.follow(job, node)
        return job

    def _finished(self, job: Job) -> None:
        """Saved before the task's result is removed from ``.tasks``: a kill in between
        re-attaches to the result on the next run instead of copying the partition again."""
        if self.state is None or job.status is None:
            return
        ok = job.error is None and not job.status.canceled and not job.status.failures
        self.state.save(job.index, job.part, status="done" if ok else "failed", docs_done=job.status.done,
                        position={**(job.body_position or {}), "counts": status_to_counts(job.status), "task_id": job.task_id})

    def follow(self, job: Job, node: ClusterClient) -> None:
        assert job.task_id
        cancelled = False
        while True:
            if self.stop.is_set() and not cancelled:
                try:
                    cancel_task(node, job.task_id)
                except RemoteReindexError:
                    pass
                cancelled = True
            try:
                job.status = get_status(node, job.task_id)
            except ConnectError:
                time.sleep(self.options.poll_interval)
                continue  # a node restart or a blip: the task lives on the destination
            with self._lock:
                self._report(job.index)
            if job.status.completed:
                break
            self.stop.wait(self.options.poll_interval) if not cancelled else time.sleep(min(self.options.poll_interval, 0.5))
        job.finished_at = time.monotonic()
        if job.status.error is not None:
            job.error = explain_reindex_error({"error": job.status.error}, **self.explain)
        self._finished(job)
        remove_result(node, job.task_id)

    def run(self, jobs: list[Job]) -> bool:
        """Returns True when interrupted (Ctrl-C)."""
        for job in jobs:
            self._per_index.setdefault(job.index, []).append(job)
        # --partitions K alone means K tasks at once: partitions exist to run side by side.
        parallel = max(1, self.options.parallel or max(DEFAULT_PARALLEL, self.options.partitions))
        interrupted = False
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="reindex-task")
        futures: set[Future[Job]] = {pool.submit(self.run_one, j) for j in jobs}
        try:
            while futures:
                try:
                    done, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    interrupted = True
                    self.progress.message("interrupted: cancelling the running task(s) on the destination ...")
                    self.stop.set()
                    continue
                for f in done:
                    f.result()
        finally:
            if not interrupted:
                pool.shutdown(wait=True)
            else:
                # workers notice ``stop``, cancel their task and read its final counts
                pool.shutdown(wait=True)
        return interrupted


# -- summaries ------------------------------------------------------------------------------


def _summarize(index: str, dest_index: str, jobs: list[Job], interrupted: bool) -> IndexSummary:
    s = IndexSummary(index=index, dest_index=dest_index, engine="server")
    started = [j for j in jobs if j.started_at]
    if started:
        s.took_ms = int((max(j.finished_at or time.monotonic() for j in started) - min(j.started_at for j in started)) * 1000)
    for j in jobs:
        if j.task_id:
            s.task_ids.append(j.task_id)
        st = j.status
        if st is not None:
            s.total += st.total
            s.created += st.created
            s.updated += st.updated
            s.deleted += st.deleted
            s.version_conflicts += st.version_conflicts
            s.noops += st.noops
            s.batches += st.batches
            s.retries_bulk += st.retries_bulk
            s.retries_search += st.retries_search
            s.failures.extend(st.failures[:20])
            if st.canceled:
                s.cancelled = True
        if j.error is not None:
            s.failures.append({"cause": j.error.cause, "reason": j.error.message, "fix": j.error.fix,
                               **({"partition": j.partition.label} if j.partition else {})})
        if j.task_id is None and j.error is None:
            s.cancelled = s.cancelled or interrupted  # never started
    # documents not written: per-document failures, plus what a failed task never reached. Version
    # conflicts (op_type create onto existing ids) are counted in version_conflicts only, as the
    # client engine does: the document is already there, so it is not a failed write.
    for j in jobs:
        if j.status is not None:
            s.failed += sum(1 for f in j.status.failures if not is_version_conflict(f))
            if j.error is not None:
                s.failed += max(0, j.status.total - j.status.done)
    return s


# -- public API -----------------------------------------------------------------------------


def copy(body: ReindexBody, dest: ClusterClient, options: ServerOptions, progress: Progress | None = None, state: "JobState | None" = None) -> RunSummary | dict[str, Any]:
    """Copy with the destination's own remote ``_reindex``. With ``options.plan_only``
    returns the plan (a dict) after the checks, and writes nothing."""
    progress = progress or Progress()
    _validate(body, options)
    assert body.remote is not None
    if state is not None and state.finished_before and not options.plan_only:
        return RunSummary("server", state_file=str(state.path), already_complete=True)
    t0 = time.monotonic()
    notes: list[str] = []
    dest_info = dest.info()
    explain = {"host_port": body.remote.host_port, "allowlist_key": dest_info.remote_allowlist_key,
               "dest_label": f"the destination {dest.host_port}", "source_label": f"the source {body.remote.host_port}"}

    src: ClusterClient | None = None
    try:
        try:
            src, src_info = _source_from_here(body, options)
        except RemoteReindexError as exc:
            if not options.skip_preflight or any(_is_pattern(i) for i in body.indices) or options.partitions > 1:
                raise
            notes.append(f"the source is not readable from here ({exc.message}); copying blind: no counts, default batch size")
            src_info = None
        if src_info is not None:
            explain["source_label"] = f"the source {body.remote.host_port} ({src_info.label()})"
            note = check_versions(src_info, dest_info)
            if note:
                notes.append(note)

        if not options.skip_preflight:
            check_module(dest)
            check_allowlist(dest, body.remote.host_port, dest_info)

        if src is not None:
            expansion = expand(src, body.indices, options.include_hidden, count_query=body.query)
            infos = expansion.indices
            notes.extend(expansion.notes)
        else:
            infos = [IndexInfo(name=i, docs=0, shards=1) for i in body.indices]

        if not options.skip_preflight:
            problem = probe_trust(dest, body, infos[0].name, dest_name_for(infos[0], body.dest_index), dest_info=dest_info, source_label=explain["source_label"])
            if problem is not None:
                raise problem

        plans = [_plan_index(src, info, body, options, progress) for info in infos]
        for p in plans:
            dstate = dest_index_state(dest, p.dest_index)
            p.dest_exists, p.dest_docs = dstate.exists, dstate.docs
            if dstate.exists and dstate.docs:
                notes.append(f"{p.dest_index} already holds {dstate.docs:,} documents on the destination (op_type {body.op_type}: existing ids are {'overwritten' if body.op_type == 'index' else 'kept, counted as conflicts'})")

        if options.plan_only:
            return {"engine": "server", "source": src_info.label() if src_info else None, "destination": dest_info.label(),
                    "indices": [p.to_dict() for p in plans], "notes": notes}

        for n in notes:
            progress.message(f"note: {n}")

        written: list[str] = []  # what the metadata step created: after it, a refusal is a copy failure, not a preflight one
        if options.copy_metadata and src is not None:
            for p in plans:
                if p.info.is_data_stream:
                    ds_notes = metadata.copy_data_stream_template(src, dest, p.info.name)
                    for n in ds_notes:
                        progress.message(n)
                    if ds_notes:
                        written.append(f"the index template of {p.info.name}")
                else:
                    result = metadata.copy_index_metadata(src, dest, p.info.name, p.dest_index)
                    if result.created:
                        written.append(p.dest_index)
                        progress.message(f"created {p.dest_index} with the mappings and settings of {p.info.name}")
                    if result.dropped_settings:
                        progress.message(f"note: settings the source cluster owns were not copied: {', '.join(result.dropped_settings)}")
                    for n in result.notes:
                        progress.message(f"note: {n}")

        nodes = RoundRobin(node_clients(dest, notes) if options.spread_over_nodes else [dest])
        if len(nodes) > 1:
            progress.message(f"tasks go round-robin to the destination nodes {describe(nodes.clients)}")
        jobs: list[Job] = []
        for p in plans:
            progress.start_index(p.info.name, p.info.docs or None)
            saved = saved_partitions(state, p.info.name) if state is not None else None
            if saved is None:
                planned = [(part_key(part), part, position_for(part, p.batch.size, part.query if part else body.query)) for part in p.partitions or [None]]
            else:
                planned = saved  # the ranges of the first run, whatever a new plan would say
            for key, part, pos in planned:
                job = Job(p.info.name, p.dest_index, task_body(body, p.info.name, p.dest_index, int(pos.get("size") or p.batch.size), pos.get("query"),
                                                              data_stream=p.info.is_data_stream), part, part=key, body_position={k: pos.get(k) for k in ("label", "query", "size")})
                if state is not None:
                    _restore(job, state)
                jobs.append(job)
        if state is not None:
            for job in jobs:
                if job.resume is None:
                    state.save(job.index, job.part, position=job.body_position, status="pending")
            done = sum(state.docs_done(p.info.name) for p in plans)
            # a job that stopped before writing anything (a failed preflight) has nothing to resume: say nothing
            if state.resumed and (done or any(j.resume in ("done", "attach") for j in jobs)):
                progress.message(f"resuming job {state.description} from state {state.path}: {done:,} of {sum(p.info.docs for p in plans):,} documents already copied"
                                 f" ({sum(1 for j in jobs if j.resume == 'done')} of {len(jobs)} task(s) done, {sum(1 for j in jobs if j.resume == 'attach')} to re-attach)")
        runner = _Runner(dest, nodes, options, progress, explain, state)
        try:
            interrupted = runner.run(jobs)
        finally:
            nodes.close_extra()

        summary = RunSummary("server")
        for p in plans:
            mine = [j for j in jobs if j.index == p.info.name]
            s = _summarize(p.info.name, p.dest_index, mine, interrupted)
            summary.indices.append(s)
            progress.finish_index(p.info.name)
            if s.complete and options.copy_metadata and src is not None and not p.info.is_data_stream:
                try:
                    aliases = metadata.copy_aliases(src, dest, p.info.name, p.dest_index)
                    if aliases:
                        progress.message(f"aliases of {p.info.name} now point at {p.dest_index}: {', '.join(aliases)}")
                except RemoteReindexError as exc:
                    progress.message(f"note: aliases of {p.info.name} not copied: {exc.message}")
        summary.took_ms = int((time.monotonic() - t0) * 1000)
        if state is not None:
            summary.state_file = str(state.path)
            for s in summary.indices:
                s.resumed_docs = sum(j.status.done for j in jobs if j.index == s.index and j.resume == "done" and j.status)
            if summary.complete and not interrupted:
                state.finish(True)

        errors = [j.error for j in jobs if j.error is not None]
        if errors and summary.totals()["created"] + summary.totals()["updated"] == 0 and not interrupted:
            first = errors[0]  # nothing moved: the plain-words error is the whole story
            if isinstance(first, PreflightError) and written:
                # with --skip-preflight the destination's refusal comes after the metadata step wrote: not "nothing written"
                raise CopyError(f"{first.message} (no document was copied; already created on the destination: {', '.join(written)})",
                                first.fix, cause=first.cause)
            raise first
        for e in {e.message: e for e in errors}.values():
            progress.message(f"error: {e.message}\nfix: {e.fix}")
        if interrupted:
            t = summary.totals()
            progress.message(f"cancelled: {t['created'] + t['updated']:,} document(s) were written before the task(s) stopped")
            summary.interrupted = True  # Ctrl-C / SIGTERM: the CLI ends as for the client engine (exit 130)
            summary.expected_docs = max(sum(p.info.docs for p in plans) if body.max_docs is None else body.max_docs, t["created"] + t["updated"])
        return summary
    finally:
        if src is not None:
            src.close()


def is_version_conflict(failure: dict[str, Any]) -> bool:
    cause = failure.get("cause") if isinstance(failure, dict) else None
    return isinstance(cause, dict) and (failure.get("status") == 409 or cause.get("type") == "version_conflict_engine_exception")


def _part_label(job: Job) -> str:
    return f" partition {job.partition.number} ({job.partition.label})" if job.partition else ""


def _restore(job: Job, state: JobState) -> None:
    """Where this task stands according to the state file."""
    row = state.get(job.index, job.part)
    if row is None:
        return
    pos = row.position if isinstance(row.position, dict) else {}
    if row.status == "done":
        job.resume = "done"
        job.task_id = pos.get("task_id") or row.task_id
        job.status = status_from_counts(job.task_id or "", pos.get("counts") or {})
    elif row.status == "running" and row.task_id:
        job.resume, job.task_id = "attach", row.task_id


_DESCRIPTION = re.compile(r"\]\[([^\[\]]*)\] to \[([^\[\]]*)\]")


def attach(task_id: str, dest: ClusterClient, options: ServerOptions, progress: Progress | None = None) -> RunSummary:
    """Follow a reindex task started earlier (by this tool or anyone) until it ends;
    Ctrl-C cancels it. The result is read from the task, then its ``.tasks`` entry removed."""
    progress = progress or Progress()
    task_id = check_task_id(task_id)
    t0 = time.monotonic()
    first = get_status(dest, task_id)
    m = _DESCRIPTION.search(first.description)
    index, dest_index = (m.group(1), m.group(2)) if m else (task_id, "?")
    progress.message(f"following task {task_id}: {first.description[:200]}" if first.description else f"following task {task_id}")
    job = Job(index, dest_index, {}, task_id=task_id, status=first, started_at=t0)
    runner = _Runner(dest, RoundRobin([dest]), options, progress, {"dest_label": f"the destination {dest.host_port}"})
    runner._per_index[index] = [job]
    progress.start_index(index, first.total or None)
    interrupted = False
    worker = threading.Thread(target=runner.follow, args=(job, dest), daemon=True)
    worker.start()
    while worker.is_alive():
        try:
            worker.join(0.5)
        except KeyboardInterrupt:
            interrupted = True
            progress.message("interrupted: cancelling the task on the destination ...")
            runner.stop.set()
    summary = RunSummary("server", [_summarize(index, dest_index, [job], interrupted)], int((time.monotonic() - t0) * 1000))
    summary.interrupted = interrupted
    summary.expected_docs = max(first.total, summary.totals()["created"] + summary.totals()["updated"])
    if job.error is not None and job.status is not None and job.status.done == 0:
        raise job.error
    return summary


def choose_engine(body: ReindexBody, dest: ClusterClient, options: ServerOptions) -> tuple[str, str]:
    """``--engine auto``: ("server", why) when the destination can pull from the source
    (reindex module present, allowlisted, trusts the source's certificate: proved by an
    empty probe reindex), else ("client", why)."""
    if not body.is_remote:
        return "client", "the body has no source.remote"
    assert body.remote is not None
    if body.script is not None:
        return "server", "the body has a 'script', which only the destination can run"
    dest_info = dest.info()
    try:
        check_module(dest)
    except PreflightError as exc:
        if exc.cause == "no_reindex_module":
            return "client", exc.message
    try:
        src, src_info = _source_from_here(body, options)
        src.close()
        check_versions(src_info, dest_info)
    except PreflightError as exc:
        if exc.cause == "dest_older_than_source":
            return "client", exc.message
    except RemoteReindexError:
        pass  # the probe below tells whether the destination can reach it
    problem = probe_trust(dest, body, ",".join(body.indices), body.dest_index or PROBE_DEST_INDEX, dest_info=dest_info)
    if problem is None:
        return "server", f"the destination {dest.host_port} can pull from {body.remote.host_port} (allowlisted, trusts its certificate: an empty probe _reindex succeeded)"
    return "client", f"the destination cannot pull: {problem.message}"


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?") or name.startswith("-")
