"""Writing batches to the destination with ``_bulk``.

- Several requests in flight, bounded by an ``AdaptiveLimit`` shared by the whole run:
  halved when the destination pushes back (429/503, per item or per request), grown again
  by one after a run of clean answers (AIMD, as TCP does), so a busy destination sees
  fewer concurrent bulks rather than a storm of retries.
- Per-item results: retryable items are sent again (only those) after a backoff with
  jitter; version conflicts follow ``conflicts``; other failures go to the dead-letter
  file with the document and the error.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ...cluster import ClusterClient
from ...errors import ClusterError, ConnectError
from .bulk import BULK_HEADERS, BULK_RESPONSE_FILTER, RETRYABLE_HTTP_STATUSES, Batch, ItemOutcome, WriteSpec, classify_items, failure_entry
from .source import backoff_delay, is_transient

# How long a destination may stay unreachable (connection refused or reset, timeouts)
# while a batch waits to be written: long enough for a node restart or a rolling restart
# of one node, short enough that a destination that is gone for good stops the job.
DESTINATION_OUTAGE_DEADLINE = 300.0
OUTAGE_BACKOFF_CAP = 5.0  # seconds between tries while the destination is unreachable: notice its return quickly


def block_error(dest_index: str, error: dict[str, Any] | None) -> ClusterError:
    """A ``cluster_block_exception`` as one line of what is wrong and one of what to do.

    A block is a state of the whole index (or cluster), not a problem of the documents:
    the job stops instead of dead-lettering every document after it."""
    reason = str((error or {}).get("reason", ""))
    low = reason.lower()
    if "flood" in low or "allow delete" in low or "allow_delete" in low:
        return ClusterError(
            f"the destination index {dest_index} is read-only: a node's disk passed the flood-stage watermark ({reason})",
            f"Free disk space on the destination (the block lifts itself on ES 7.4+), or PUT {dest_index}/_settings {{\"index.blocks.read_only_allow_delete\": null}}.",
            status=429, body=error, cause="index_blocked",
        )
    if "index write" in low:
        return ClusterError(
            f"the destination index {dest_index} is write-blocked",
            f"Lift it with PUT {dest_index}/_settings {{\"index.blocks.write\": false}}, then run again.",
            status=403, body=error, cause="write_blocked",
        )
    if "index read-only" in low or "read_only" in low:
        return ClusterError(
            f"the destination index {dest_index} is read-only (index.blocks.read_only)",
            f"Lift it with PUT {dest_index}/_settings {{\"index.blocks.read_only\": false}}, then run again.",
            status=403, body=error, cause="index_blocked",
        )
    return ClusterError(
        f"the destination refuses writes to {dest_index}: {reason or 'cluster_block_exception'}",
        f"Lift the block (GET {dest_index}/_settings and GET _cluster/settings show the blocks), then run again.",
        status=403, body=error, cause="index_blocked",
    )


def _block_in(outcome: ItemOutcome) -> dict[str, Any] | None:
    """The first item error that is an index/cluster block, if any."""
    for _, _, error in outcome.failed:
        if error.get("type") == "cluster_block_exception":
            return error
    for error in outcome.retry_errors.values():
        if error.get("type") == "cluster_block_exception":
            return error
    return None


@dataclass
class _Unanswered:
    """A ``_bulk`` that got no usable answer: pushed back as a whole (``error`` None) or
    lost on the way (``error`` the transport error)."""

    error: ConnectError | None = None


class AdaptiveLimit:
    """A semaphore whose size moves between 1 and ``maximum`` with the destination's pushback."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.active = 0
        self.lowered = 0  # how many times pushback lowered the limit (reported)
        self._clean = 0
        self._last_cut = 0.0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1

    def release(self) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify_all()

    def pushback(self) -> None:
        """The destination is overloaded: halve (at most once per second, so one burst of
        rejections from several requests counts once)."""
        with self._cond:
            now = time.monotonic()
            self._clean = 0
            if now - self._last_cut >= 1.0 and self.limit > 1:
                self.limit = max(1, self.limit // 2)
                self.lowered += 1
                self._last_cut = now

    def success(self) -> None:
        with self._cond:
            if self.limit >= self.maximum:
                return
            self._clean += 1
            if self._clean >= self.limit * 2:
                self.limit += 1
                self._clean = 0
                self._cond.notify_all()


class DeadLetter:
    """NDJSON of documents the destination refused, one line each: where it came from,
    the error, and the document itself. The file is created on the first document only,
    so a clean run leaves nothing behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._lock = threading.Lock()
        self._fh: Any = None

    def write(self, *, src_index: str, dest_index: str, doc_id: str, routing: str | None, status: int, error: dict[str, Any], source: bytes) -> None:
        meta: dict[str, Any] = {"index": src_index, "dest_index": dest_index, "_id": doc_id}
        if routing is not None:
            meta["_routing"] = routing
        meta["status"] = status
        meta["error"] = error
        # The raw _source bytes go in as they are (valid JSON already): no decode needed.
        line = orjson.dumps(meta)[:-1] + b',"_source":' + source + b"}\n"
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # 0600: the file holds whole documents (os.open's mode only applies to a new file)
                self._fh = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
            self._fh.write(line)
            self._fh.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class DeadLetters:
    """One ``DeadLetter`` per file: ``--dead-letter FILE`` shares one file across indices,
    the default is one file per source index in the current directory."""

    def __init__(self, shared_path: str | None = None) -> None:
        self.shared_path = shared_path
        self._files: dict[str, DeadLetter] = {}
        self._lock = threading.Lock()

    def for_index(self, index: str) -> DeadLetter:
        path = self.shared_path or f"remote-reindex-dead-letter-{index}.ndjson"
        key = str(Path(path).resolve())
        with self._lock:
            if key not in self._files:
                self._files[key] = DeadLetter(path)
            return self._files[key]

    def close(self) -> None:
        with self._lock:
            for dl in self._files.values():
                dl.close()


@dataclass
class BatchResult:
    docs: int = 0
    created: int = 0
    updated: int = 0
    noops: int = 0
    version_conflicts: int = 0
    failed: int = 0  # dead-lettered (or given up after retries)
    retries: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # first few, _reindex-shaped
    abort: bool = False  # a conflict with conflicts=abort: stop this index


class BulkSink:
    """Writes batches of one job (one destination index) and accounts for every item."""

    MAX_FAILURES_KEPT = 20

    def __init__(
        self,
        dest: ClusterClient,
        spec: WriteSpec,
        *,
        src_index: str,
        limit: AdaptiveLimit,
        dead_letter: DeadLetter,
        conflicts: str = "abort",
        pipeline: str | None = None,
        max_retries: int = 8,
        outage_deadline: float = DESTINATION_OUTAGE_DEADLINE,
    ) -> None:
        self.outage_deadline = outage_deadline
        self.dest = dest
        self.spec = spec
        self.src_index = src_index
        self.limit = limit
        self.dead_letter = dead_letter
        self.conflicts = conflicts
        # Only what classify_items and _request_block read: an item shrinks from ~230 to
        # ~45 bytes, less for the destination to write and for us to parse
        self.params = {"filter_path": BULK_RESPONSE_FILTER, **({"pipeline": pipeline} if pipeline else {})}
        self.max_retries = max_retries

    def write(self, batch: Batch) -> BatchResult:
        result = BatchResult(docs=len(batch))
        pending = list(range(len(batch)))
        last_errors: dict[int, dict[str, Any]] = {}
        attempt = 0  # pushback retries (429/503), bounded by max_retries
        outage_attempt = 0
        outage_since: float | None = None  # when the destination stopped answering
        while pending:
            outcome = self._send(batch, pending, result)
            if isinstance(outcome, ClusterError):  # the index (or cluster) is blocked: stop the job, do not dead-letter
                self._stop_job(result, outcome)
                return result
            if isinstance(outcome, _Unanswered) and outcome.error is not None:
                # Unreachable (restart, reset, timeout): wait for it up to the deadline; the
                # documents are fine, so they are never dead-lettered for this.
                now = time.monotonic()
                outage_since = outage_since if outage_since is not None else now
                if now - outage_since >= self.outage_deadline:
                    raise ConnectError(
                        f"the destination stayed unreachable for {self.outage_deadline:.0f} s while writing {self.spec.dest_index}: {outcome.error.message}",
                        outcome.error.fix, cause=outcome.error.cause,
                    )
                self.limit.pushback()
                result.retries += 1
                time.sleep(backoff_delay(outage_attempt, cap=OUTAGE_BACKOFF_CAP))
                outage_attempt += 1
                continue
            outage_since, outage_attempt = None, 0
            if isinstance(outcome, _Unanswered):  # the whole request was pushed back: send it all again
                retry = pending
                last_errors = {p: {"type": "bulk_request_retried", "reason": "the whole _bulk request was rejected"} for p in pending}
            else:
                blocked = _block_in(outcome)
                if blocked is not None:
                    # Items before the block may have been written in this same request: count them.
                    outcome.failed = [f for f in outcome.failed if f[2].get("type") != "cluster_block_exception"]
                    outcome.retry = [i for i in outcome.retry if outcome.retry_errors[i].get("type") != "cluster_block_exception"]
                    self._account(batch, pending, outcome, result)
                    self._stop_job(result, block_error(self.spec.dest_index, blocked))
                    return result
                self._account(batch, pending, outcome, result)
                retry = [pending[i] for i in outcome.retry]
                last_errors = {pending[i]: outcome.retry_errors[i] for i in outcome.retry}
                if not retry:
                    self.limit.success()
                    return result
            self.limit.pushback()
            if attempt >= self.max_retries:
                for pos in retry:
                    self._dead(batch, pos, 429, last_errors.get(pos, {"type": "retries_exhausted", "reason": ""}), result)
                return result
            result.retries += 1
            time.sleep(backoff_delay(attempt))
            attempt += 1
            pending = retry
        return result

    def _stop_job(self, result: BatchResult, exc: ClusterError) -> None:
        """Record a condition of the whole index as the job's failure and stop the job
        (the runner stops on ``abort``); the batch's documents are neither counted as
        failed nor dead-lettered: they are fine, the index is not."""
        result.abort = True
        self._keep_failure(result, {"index": self.spec.dest_index, "status": exc.status,
                                    "cause": {"type": exc.cause, "reason": exc.message, "fix": exc.fix}})

    def _send(self, batch: Batch, positions: list[int], result: BatchResult) -> ItemOutcome | _Unanswered | ClusterError:
        body = batch.body(positions)
        self.limit.acquire()
        try:
            resp = self.dest.request("POST", "/_bulk", body=body, params=self.params, headers=BULK_HEADERS, content_type="application/x-ndjson")
        except ConnectError as exc:
            if is_transient(exc):
                return _Unanswered(exc)  # retried as a whole; ids make a resend idempotent for op_type index
            raise
        finally:
            self.limit.release()
        if resp.status in RETRYABLE_HTTP_STATUSES:
            blocked = _request_block(resp.data)
            return block_error(self.spec.dest_index, blocked) if blocked else _Unanswered()
        if resp.status == 413:
            raise ClusterError(
                f"the destination refused a {len(body):,}-byte _bulk request as too large (413)",
                "Lower --bulk-mb (or raise http.max_content_length on the destination).", status=413,
            )
        if resp.status != 200:
            blocked = _request_block(resp.data)
            if blocked:
                return block_error(self.spec.dest_index, blocked)
            raise self.dest.error_for(resp, "POST _bulk")
        return classify_items(orjson.loads(resp.data), len(positions))

    def _account(self, batch: Batch, pending: list[int], outcome: ItemOutcome, result: BatchResult) -> None:
        result.created += outcome.created
        result.updated += outcome.updated
        result.noops += outcome.noops
        for i, error in outcome.conflicts:
            result.version_conflicts += 1
            if self.conflicts == "abort":
                result.abort = True
                self._keep_failure(result, failure_entry(self.spec.dest_index, batch.docs[pending[i]].id, 409, error))
        for i, status, error in outcome.failed:
            self._dead(batch, pending[i], status, error, result)

    def _dead(self, batch: Batch, pos: int, status: int, error: dict[str, Any], result: BatchResult) -> None:
        doc = batch.docs[pos]
        result.failed += 1
        self._keep_failure(result, failure_entry(self.spec.dest_index, doc.id, status, error))
        self.dead_letter.write(src_index=doc.index or self.src_index, dest_index=self.spec.dest_index, doc_id=doc.id,
                               routing=self.spec.routing_for(doc), status=status, error=error, source=doc.source)

    def _keep_failure(self, result: BatchResult, entry: dict[str, Any]) -> None:
        if len(result.failures) < self.MAX_FAILURES_KEPT:
            result.failures.append(entry)


def _request_block(data: bytes) -> dict[str, Any] | None:
    """The error of a whole ``_bulk`` refused for a block (a cluster-wide read-only block
    refuses the request, not its items)."""
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    for candidate in [err, *(err.get("root_cause") or [])]:
        if isinstance(candidate, dict) and candidate.get("type") == "cluster_block_exception":
            return candidate
    return None
