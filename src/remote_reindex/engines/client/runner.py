"""One copy job per source index: slices read in threads, batches written by a shared pool
of bulk writers, each acknowledged batch turned into a saved cursor.

Threads, not processes: the work is I/O (urllib3 releases the GIL while waiting) plus
orjson, which is fast enough that one process keeps a destination busy (see bench/).
"""

from __future__ import annotations

import threading
import time
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
from .docs import Doc, SliceCursor
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
    page_size: int = 1000


class _SliceAcks:
    """Moves a slice's cursor over batches in their read order, whatever order the
    destination acknowledges them in: the cursor never passes an unacknowledged document."""

    def __init__(self, cursor: SliceCursor) -> None:
        self.cursor = cursor
        self._next = 0
        self._done: dict[int, tuple[int, Doc, str | None]] = {}
        self._lock = threading.Lock()

    def ack(self, seq: int, n: int, last: Doc, context_id: str | None) -> None:
        with self._lock:
            self._done[seq] = (n, last, context_id)
            while self._next in self._done:
                count, doc, ctx = self._done.pop(self._next)
                self.cursor.docs_done += count
                if doc.sort is not None:
                    self.cursor.search_after = doc.sort
                if ctx:
                    self.cursor.context_id = ctx
                self._next += 1


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

    def __post_init__(self) -> None:
        self.summary = IndexSummary(self.info.name, self.dest_index, "client")
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
        expected = self.info.docs if ctx.budget.left is None else min(self.info.docs, max(ctx.budget.left, 0))
        ctx.progress.start_index(self.info.name, expected)
        reader = IndexReader(
            ctx.source, ctx.source_info, self.info.name, mode=self.mode, slices=self.slices, page_size=ctx.page_size,
            keep_alive=ctx.options.keep_alive, query=ctx.body.query, source_filter=ctx.body.source_filter,
            want_version=self.spec.wants_version, max_retries=ctx.options.max_retries, stop=self.stop,
            on_retry=self._search_retry,
        )
        dead = ctx.dead_letters.for_index(self.info.name)
        sink = BulkSink(ctx.dest, self.spec, src_index=self.info.name, limit=ctx.limit, dead_letter=dead,
                        conflicts=ctx.body.conflicts, pipeline=ctx.body.pipeline, max_retries=ctx.options.max_retries)
        try:
            self.cursors = reader.open()
            threads = [threading.Thread(target=self._run_slice, args=(reader, sink, c), name=f"read-{self.info.name}-{c.slice_id}", daemon=True)
                       for c in self.cursors]
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
        s.took_ms = int((time.monotonic() - started) * 1000)
        ctx.progress.finish_index(self.info.name)
        return s

    def _run_slice(self, reader: IndexReader, sink: BulkSink, cursor: SliceCursor) -> None:
        ctx = self.ctx
        builder = BatchBuilder(self.spec, ctx.options.bulk_bytes, ctx.options.bulk_docs)
        acks = _SliceAcks(cursor)
        window = threading.Semaphore(SLICE_WINDOW)
        context_id: str | None = cursor.context_id
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
                    batch = builder.add(doc)
                    if batch is not None:
                        self._submit(batch, sink, acks, window, context_id)
                if ctx.budget.exhausted or self.stop.is_set():
                    break
            batch = builder.flush()
            if batch is not None and not self.stop.is_set():
                self._submit(batch, sink, acks, window, context_id)
        except RemoteReindexError as exc:
            self._fatal(exc)
        except Exception as exc:  # a bug must not end a slice silently: the index is then reported incomplete
            self._fatal(RemoteReindexError(f"unexpected error reading {self.info.name} (slice {cursor.slice_id}): {exc!r}"))
        finally:
            for _ in range(SLICE_WINDOW):  # wait until this slice's batches are answered
                window.acquire()
        cursor.finished = not self.stop.is_set()

    def _submit(self, batch: Batch, sink: BulkSink, acks: _SliceAcks, window: threading.Semaphore, context_id: str | None) -> None:
        window.acquire()
        if self.stop.is_set():
            window.release()
            return
        fut = self.ctx.writers.submit(sink.write, batch)
        fut.add_done_callback(lambda f: self._written(f, batch, acks, window, context_id))

    def _written(self, fut: Future, batch: Batch, acks: _SliceAcks, window: threading.Semaphore, context_id: str | None) -> None:
        try:
            try:
                r: BatchResult = fut.result()
            except RemoteReindexError as exc:
                self._fatal(exc)
                return
            except Exception as exc:  # a bug must not hang the slice: report it as a failure
                self._fatal(RemoteReindexError(f"unexpected error writing to {self.dest_index}: {exc!r}"))
                return
            s = self.summary
            with self._lock:
                s.batches += 1
                s.created += r.created
                s.updated += r.updated
                s.noops += r.noops
                s.version_conflicts += r.version_conflicts
                s.failed += r.failed
                s.retries_bulk += r.retries
                room = 100 - len(s.failures)
                if room > 0:
                    s.failures.extend(r.failures[:room])
            if r.abort:
                self.stop.set()  # conflicts=abort: stop at the first version conflict, as _reindex does
            acks.ack(batch.seq, len(batch), batch.docs[-1], context_id)
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
