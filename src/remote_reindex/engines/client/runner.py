"""One copy job per source index: slices read in threads, batches written by a shared pool
of bulk writers, each acknowledged batch turned into a saved cursor.

Threads, not processes: the work is I/O (urllib3 releases the GIL while waiting) plus
orjson, which is fast enough that one process keeps a destination busy (see bench/).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from ...cluster import ClusterClient, ClusterInfo
from ...errors import RemoteReindexError
from ...plan.body import ReindexBody
from ...plan.indices import IndexInfo
from ..metadata import MetadataResult, copy_aliases, copy_data_stream_template, copy_index_metadata, fetch_index_metadata
from ..options import ClientOptions
from ..progress import Progress
from ..summary import IndexSummary
from .bulk import Batch, BatchBuilder, WriteSpec
from ...state.store import JobState
from .docs import COUNTERS, Doc, SliceCursor
from .resume import INDEX_PART, ResumePlan, pit_alive, plan_resume, shard_signature, slice_part
from .sink import AdaptiveLimit, BatchResult, BulkSink, DeadLetters
from .source import IndexReader

SLICE_WINDOW = 2  # batches of one slice written at once (read-ahead of one batch while one is written)

Transform = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class DocBudget:
    """``max_docs`` shared by every slice of every job: each page takes what is left."""

    def __init__(self, total: int | None) -> None:
        self.left = total
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        if self.left is None:
            return n
        with self._lock:
            got = min(n, self.left)
            self.left -= got
            return got

    @property
    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0


@dataclass
class RunContext:
    """What every job of one run shares."""

    source: ClusterClient
    source_info: ClusterInfo
    dest: ClusterClient
    body: ReindexBody
    options: ClientOptions
    progress: Progress
    limit: AdaptiveLimit
    writers: ThreadPoolExecutor
    budget: DocBudget
    dead_letters: DeadLetters
    transform: Transform | None = None
    state: JobState | None = None  # the state file: cursors saved after every acknowledged batch


class _SliceAcks:
    """Moves a slice's cursor over batches in their read order, whatever order the
    destination acknowledges them in: the cursor never passes an unacknowledged document.
    Each move is saved to the state file (under the same lock, so saves stay in order)."""

    def __init__(self, cursor: SliceCursor, save: Callable[[SliceCursor, str], None] | None = None) -> None:
        self.cursor = cursor
        self._save = save
        self._next = 0
        self._done: dict[int, tuple[int, Doc, str | None, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def sent(self, n: int) -> None:
        """``n`` more documents go to the destination: the replay window of a later resume."""
        with self._lock:
            self.cursor.submitted += n
            if self._save is not None:
                self._save(self.cursor, "running")

    def ack(self, seq: int, n: int, last: Doc, context_id: str | None, counts: dict[str, int] | None = None) -> None:
        with self._lock:
            self._done[seq] = (n, last, context_id, counts or {})
            moved = False
            while self._next in self._done:
                count, doc, ctx, batch_counts = self._done.pop(self._next)
                self.cursor.docs_done += count
                for k, v in batch_counts.items():
                    self.cursor.counts[k] = self.cursor.counts.get(k, 0) + v
                if doc.sort is not None:
                    self.cursor.search_after = doc.sort
                if ctx:
                    self.cursor.context_id = ctx
                self._next += 1
                moved = True
            if moved and self._save is not None:
                self._save(self.cursor, "running")

    def finish(self, ok: bool) -> None:
        with self._lock:
            self.cursor.finished = ok
            if self._save is not None:
                self._save(self.cursor, "done" if ok else "running")


@dataclass
class IndexJob:
    ctx: RunContext
    info: IndexInfo
    dest_index: str
    mode: str
    slices: int
    summary: IndexSummary = field(init=False)
    cursors: list[SliceCursor] = field(default_factory=list)
    metadata: MetadataResult | None = None
    _aliases: dict[str, Any] | None = None
    page_size: int = 1000  # documents per search page (set from the index's document size)
    page_reason: str = ""

    def __post_init__(self) -> None:
        self.summary = IndexSummary(self.info.name, self.dest_index, "client")
        self._unwritten = 0  # read but never acknowledged (dropped at a stop, or their bulk failed): not in "total"
        self.stop = threading.Event()
        self._lock = threading.Lock()
        body = self.ctx.body
        op_type = "create" if self.info.is_data_stream else body.op_type
        self.spec = WriteSpec(self.dest_index, op_type, body.routing, body.version_type)

    # -- phase 1: metadata ----------------------------------------------------------

    def prepare(self) -> list[str]:
        """Create the destination index (or data stream template) before any data."""
        notes: list[str] = []
        if not self.ctx.options.copy_metadata:
            return notes
        src, dst = self.ctx.source, self.ctx.dest
        if self.info.is_data_stream:
            return copy_data_stream_template(src, dst, self.info.name)
        meta = fetch_index_metadata(src, self.info.name)
        self._aliases = meta.aliases
        self.metadata = copy_index_metadata(src, dst, self.info.name, self.dest_index, metadata=meta)
        if self.metadata.created:
            notes.append(f"created {self.dest_index} with the mappings and settings of {self.info.name}")
        if self.metadata.dropped_settings:
            notes.append(f"{self.dest_index}: settings not copied: {', '.join(self.metadata.dropped_settings)}")
        notes.extend(self.metadata.notes)
        return notes

    # -- phase 2: data --------------------------------------------------------------

    def run(self) -> IndexSummary:
        ctx = self.ctx
        started = time.monotonic()
        s = self.summary
        if self.stop.is_set():  # interrupted (Ctrl-C) before this job started: read nothing
            return s
        saved = {c.part: c for c in ctx.state.cursors(self.info.name)} if ctx.state else {}
        row = saved.get(INDEX_PART)
        if row is not None and row.status == "done" and isinstance(row.position, dict):
            # copied completely by an earlier run: report its counts, read nothing
            self._add_prior(row.position.get("counts") or {}, int(row.position.get("docs") or row.docs_done))
            return s
        expected = self.info.docs if ctx.budget.left is None else min(self.info.docs, max(ctx.budget.left, 0))
        ctx.progress.start_index(self.info.name, expected)
        reader = IndexReader(
            ctx.source, ctx.source_info, self.info.name, mode=self.mode, slices=self.slices, page_size=self.page_size,
            keep_alive=ctx.options.keep_alive, query=ctx.body.query, source_filter=ctx.body.source_filter,
            want_version=self.spec.wants_version, max_retries=ctx.options.max_retries, stop=self.stop,
            on_retry=self._search_retry,
        )
        dead = ctx.dead_letters.for_index(self.info.name)
        sink = BulkSink(ctx.dest, self.spec, src_index=self.info.name, limit=ctx.limit, dead_letter=dead,
                        conflicts=ctx.body.conflicts, pipeline=ctx.body.pipeline, max_retries=ctx.options.max_retries)
        # documents an earlier run may already have written are sent with conflicts=proceed:
        # a conflict there means "already copied", not a failure
        replay_sink = BulkSink(ctx.dest, self.spec, src_index=self.info.name, limit=ctx.limit, dead_letter=dead,
                               conflicts="proceed", pipeline=ctx.body.pipeline, max_retries=ctx.options.max_retries)
        try:
            plan = self._start(reader, saved)
            self.cursors = plan.cursors
            self._add_prior(plan.prior, plan.prior_docs)
            if plan.prior_docs:
                ctx.progress.advance(self.info.name, plan.prior_docs)
            threads = [threading.Thread(target=self._run_slice, args=(reader, sink, replay_sink, c), name=f"read-{self.info.name}-{c.slice_id}", daemon=True)
                       for c in self.cursors if not c.finished]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except RemoteReindexError as exc:
            self._fatal(exc)
        finally:
            reader.close()
        if s.failed:
            s.dead_letter_file = str(dead.path)
        if s.written or s.failed:
            ctx.dest.request("POST", f"/{self.dest_index}/_refresh")  # make the copy visible to counts right away
        if ctx.options.copy_metadata and not self.info.is_data_stream and s.complete and self._aliases:
            try:
                copy_aliases(ctx.source, ctx.dest, self.info.name, self.dest_index, aliases=self._aliases)
            except RemoteReindexError as exc:
                self._fatal(exc)
        if ctx.state is not None and s.complete and all(c.finished for c in self.cursors):
            counts = {k: sum(c.counts.get(k, 0) for c in self.cursors) for k in COUNTERS}
            ctx.state.save(self.info.name, INDEX_PART, position={"counts": counts, "docs": sum(c.docs_done for c in self.cursors)},
                           docs_done=sum(c.docs_done for c in self.cursors), status="done")
        # "total" counts what this job accounts for (written, conflicts, noops, failed), as
        # _reindex's does: documents read but dropped by a stop are read again by the next run
        s.total -= self._unwritten
        s.took_ms = int((time.monotonic() - started) * 1000)
        ctx.progress.finish_index(self.info.name)
        return s

    # -- resume -------------------------------------------------------------------------

    def _start(self, reader: IndexReader, saved: dict[str, Any]) -> ResumePlan:
        """Open the read (PIT or scroll) fresh or where the state file says it stood."""
        ctx = self.ctx
        if ctx.state is None:
            return ResumePlan(reader.open())
        src, name, keep_alive = ctx.source, self.info.name, ctx.options.keep_alive

        def decide(allow_pit: bool = True, allow_signature: bool = True) -> ResumePlan:
            return plan_resume(name, saved, mode=self.mode, slices=self.slices,
                               pit_is_alive=lambda pid: allow_pit and pit_alive(src, ctx.source_info, pid, keep_alive),
                               current_signature=lambda: shard_signature(src, name) if allow_signature else None)

        plan = decide()
        reader.mode = plan.cursors[0].mode
        reader.slices = len(plan.cursors)
        signature = plan.signature
        if reader.mode == "pit" and plan.pit_id:
            reader.pit_id = plan.pit_id  # the saved PIT still answers: read on in it
        elif reader.mode == "pit" and not all(c.finished for c in plan.cursors):
            before = shard_signature(src, name)
            reader.open()  # a new PIT (the saved one is gone, or there was none)
            signature = before if before is not None and shard_signature(src, name) == before else None
            if plan.how == "exact-new-pit" and signature != plan.signature:
                plan = decide(allow_pit=False, allow_signature=False)  # changed while opening: start those slices over
            for c in plan.cursors:
                c.context_id = reader.pit_id
        elif reader.mode == "scroll":
            reader.open()
        ctx.state.save(name, INDEX_PART, position={"signature": signature}, status="running")
        for c in plan.cursors:
            if not c.finished:
                self._save_slice(c, "running" if c.docs_done or c.submitted else "pending")
        if plan.resumed:
            replayed = sum(1 for c in plan.cursors if not c.finished and not c.docs_done and c.replay_left)
            how = {"exact": "on the saved point in time", "exact-new-pit": "on a new point in time (the saved one expired; the source's segments are unchanged)",
                   "replay": "from the slice starts" + (" (scroll cannot rewind)" if reader.mode == "scroll" else " (the saved point in time expired and the source changed)")}[plan.how]
            ctx.progress.message(f"{name}: {plan.prior_docs:,} document(s) already copied; continuing {how}"
                                 + (f"; {replayed} slice(s) read again from their start" if replayed and plan.how != "replay" else ""))
            if plan.rejected_slices:
                where = f" (dead letter: {', '.join(plan.dead_letters)})" if plan.dead_letters else ""
                ctx.progress.message(f"{name}: {plan.rejected_docs:,} document(s) rejected by an earlier run{where} are sent again: "
                                     f"{plan.rejected_slices} slice(s) read again from their start")
        return plan

    def _save_slice(self, cursor: SliceCursor, status: str) -> None:
        assert self.ctx.state is not None
        self.ctx.state.save(self.info.name, slice_part(cursor.slice_id), position=cursor.to_position(), docs_done=cursor.docs_done, status=status)

    def _add_prior(self, counts: dict[str, Any], docs: int) -> None:
        """Counts acknowledged by earlier runs join this run's summary."""
        s = self.summary
        with self._lock:
            s.total += docs
            s.created += int(counts.get("created", 0))
            s.updated += int(counts.get("updated", 0))
            s.version_conflicts += int(counts.get("version_conflicts", 0))
            s.noops += int(counts.get("noops", 0))
            s.failed += int(counts.get("failed", 0))
            s.already_copied += int(counts.get("already_copied", 0))
            s.resumed_docs += docs

    # -- slices ---------------------------------------------------------------------------

    def _run_slice(self, reader: IndexReader, sink: BulkSink, replay_sink: BulkSink, cursor: SliceCursor) -> None:
        ctx = self.ctx
        builder = BatchBuilder(self.spec, ctx.options.bulk_bytes, ctx.options.bulk_docs)
        acks = _SliceAcks(cursor, self._save_slice if ctx.state is not None else None)
        window = threading.Semaphore(SLICE_WINDOW)
        context_id: str | None = cursor.context_id
        replay_left = cursor.replay_left  # the first documents may be on the destination already
        try:
            for page in reader.pages(cursor):
                context_id = page.context_id
                docs = page.docs
                granted = ctx.budget.take(len(docs))
                docs = docs[:granted]
                with self._lock:
                    self.summary.total += len(docs)
                if ctx.transform is not None:
                    docs = self._transform(docs, sink)
                for doc in docs:
                    if replay_left > 0:
                        # batches of the replay window hold only replayed documents
                        replay_left -= 1
                        batch = builder.add(doc)
                        if batch is not None:
                            self._submit(batch, replay_sink, acks, window, context_id, replay=True)
                        if replay_left == 0:
                            batch = builder.flush()
                            if batch is not None:
                                self._submit(batch, replay_sink, acks, window, context_id, replay=True)
                        continue
                    batch = builder.add(doc)
                    if batch is not None:
                        self._submit(batch, sink, acks, window, context_id)
                if ctx.budget.exhausted or self.stop.is_set():
                    break
            batch = builder.flush()
            if batch is not None and not self.stop.is_set():
                if replay_left > 0:
                    self._submit(batch, replay_sink, acks, window, context_id, replay=True)
                else:
                    self._submit(batch, sink, acks, window, context_id)
            elif batch is not None:
                self._not_written(len(batch))
        except RemoteReindexError as exc:
            self._fatal(exc)
        except Exception as exc:  # a bug must not end a slice silently: the index is then reported incomplete
            self._fatal(RemoteReindexError(f"unexpected error reading {self.info.name} (slice {cursor.slice_id}): {exc!r}"))
        finally:
            for _ in range(SLICE_WINDOW):  # wait until this slice's batches are answered
                window.acquire()
        acks.finish(not self.stop.is_set())

    def _submit(self, batch: Batch, sink: BulkSink, acks: _SliceAcks, window: threading.Semaphore, context_id: str | None, replay: bool = False) -> None:
        window.acquire()
        if self.stop.is_set():
            window.release()
            self._not_written(len(batch))
            return
        acks.sent(len(batch))  # saved before the write: a kill after it knows these may be on the destination
        fut = self.ctx.writers.submit(sink.write, batch)
        fut.add_done_callback(lambda f: self._written(f, batch, acks, window, context_id, replay, sink.dead_letter.path))

    def _written(self, fut: Future, batch: Batch, acks: _SliceAcks, window: threading.Semaphore, context_id: str | None, replay: bool = False,
                 dead_letter: Any = None) -> None:
        try:
            try:
                r: BatchResult = fut.result()
            except RemoteReindexError as exc:
                self._not_written(len(batch))
                self._fatal(exc)
                return
            except Exception as exc:  # a bug must not hang the slice: report it as a failure
                self._not_written(len(batch))
                self._fatal(RemoteReindexError(f"unexpected error writing to {self.dest_index}: {exc!r}"))
                return
            s = self.summary
            accounted = r.created + r.updated + r.version_conflicts + r.noops + r.failed
            if accounted < len(batch):  # e.g. items refused by an index write block: neither written nor failed
                self._not_written(len(batch) - accounted)
            # in the replay window a conflict is a document an earlier run of this job wrote
            existing = r.version_conflicts if replay else 0
            counts = {"created": r.created + existing, "updated": r.updated, "version_conflicts": r.version_conflicts - existing,
                      "noops": r.noops, "failed": r.failed, "already_copied": existing}
            with self._lock:
                s.batches += 1
                s.created += counts["created"]
                s.updated += r.updated
                s.noops += r.noops
                s.version_conflicts += counts["version_conflicts"]
                s.already_copied += existing
                s.failed += r.failed
                s.retries_bulk += r.retries
                room = 100 - len(s.failures)
                if room > 0:
                    s.failures.extend(r.failures[:room])
            if r.failed and dead_letter is not None:
                acks.cursor.dead_letter = str(Path(dead_letter).resolve())  # kept in the state: a re-run elsewhere still finds it  # saved with the cursor: a re-run names the file
            if r.abort:
                self.stop.set()  # conflicts=abort: stop at the first version conflict, as _reindex does
            acks.ack(batch.seq, len(batch), batch.docs[-1], context_id, counts)
            self.ctx.progress.advance(self.info.name, len(batch))
        finally:
            window.release()

    def _transform(self, docs: list[Doc], sink: BulkSink) -> list[Doc]:
        out: list[Doc] = []
        fn = self.ctx.transform
        assert fn is not None
        for doc in docs:
            record = {"_index": doc.index or self.info.name, "_id": doc.id, "_routing": doc.routing, "_source": orjson.loads(doc.source)}
            try:
                new = fn(record)
            except Exception as exc:  # the user's code: its document goes to the dead letter, the run goes on
                with self._lock:
                    self.summary.failed += 1
                    if len(self.summary.failures) < 100:
                        self.summary.failures.append({"index": self.dest_index, "id": doc.id, "status": 0, "cause": {"type": "transform_error", "reason": repr(exc)}})
                sink.dead_letter.write(src_index=record["_index"], dest_index=self.dest_index, doc_id=doc.id, routing=doc.routing,
                                       status=0, error={"type": "transform_error", "reason": repr(exc)}, source=doc.source)
                continue
            if new is None:
                with self._lock:
                    self.summary.noops += 1
                continue
            out.append(Doc(
                id=str(new.get("_id", doc.id)),
                source=orjson.dumps(new.get("_source", {})),
                routing=new.get("_routing", doc.routing),
                version=doc.version,
                sort=doc.sort,
                index=doc.index,
            ))
        return out

    def _not_written(self, docs: int) -> None:
        with self._lock:
            self._unwritten += docs

    def _search_retry(self) -> None:
        with self._lock:
            self.summary.retries_search += 1

    def _fatal(self, exc: RemoteReindexError) -> None:
        with self._lock:
            if len(self.summary.failures) < 100:
                self.summary.failures.append({
                    "index": self.dest_index, "status": getattr(exc, "status", 0),
                    "cause": {"type": exc.cause, "reason": exc.message, "fix": exc.fix},
                })
        self.stop.set()
