"""Pure logic of ``_bulk``: action lines, batches cut by bytes and by count, and the
reading of per-item results. No I/O here, so it is unit-tested directly.

The destination answers HTTP 200 to a ``_bulk`` even when items fail; each item then has
its own status. 429 (``es_rejected_execution_exception``: the write queue is full) and
503 (shard not ready) are worth retrying; 409 is a version conflict, which ``conflicts``
decides about; anything else (mapping, pipeline, document too large) will fail again and
goes to the dead-letter file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

import orjson

from .docs import Doc

RETRYABLE_ITEM_STATUSES = frozenset({429, 502, 503, 504})
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})

# What a _bulk response needs to carry for ``classify_items`` (per item: status, result,
# error) and for a refused request (top-level error, status). Without it every item
# echoes index, type, id, version, shards, seq_no: ~5x the bytes to produce and parse.
BULK_RESPONSE_FILTER = "errors,items.*.status,items.*.result,items.*.error,error,status"
# Uncompressed answers: on a local or fast link, gzip costs the destination (usually the
# bottleneck) CPU to compress and us CPU to inflate, for a response that is now small.
BULK_HEADERS = {"accept-encoding": "identity"}


@dataclass(frozen=True)
class WriteSpec:
    """How every document of a job becomes a bulk action (the body's ``dest`` part)."""

    dest_index: str
    op_type: str = "index"  # index | create
    routing: str | None = None  # None/"keep": the source's routing; "discard"; "=value"
    version_type: str | None = None  # external* carries the source's _version

    @property
    def wants_version(self) -> bool:
        return self.version_type in ("external", "external_gt", "external_gte")

    def action_line(self, doc: Doc) -> bytes:
        routing = self.routing_for(doc)
        wants_version = self.wants_version and doc.version is not None
        if routing is None and not wants_version:
            # The common case from a template. Concatenation also gives an exact-size bytes
            # object, where orjson.dumps keeps a 1 KB buffer per ~60-byte line.
            return self._plain_prefix + orjson.dumps(doc.id) + b"}}"
        meta: dict[str, Any] = {"_index": self.dest_index, "_id": doc.id}
        if routing is not None:
            meta["routing"] = routing
        if wants_version:
            meta["version"] = doc.version
            meta["version_type"] = self.version_type
        return bytes(memoryview(orjson.dumps({self.op_type: meta})))

    @cached_property  # writes the instance __dict__ directly, so fine on a frozen dataclass
    def _plain_prefix(self) -> bytes:
        return b'{"' + self.op_type.encode() + b'":{"_index":' + orjson.dumps(self.dest_index) + b',"_id":'

    def routing_for(self, doc: Doc) -> str | None:
        if self.routing is None or self.routing == "keep":
            return doc.routing
        if self.routing == "discard":
            return None
        if self.routing.startswith("="):
            return self.routing[1:]
        return doc.routing


@dataclass
class Batch:
    """Documents of one ``_bulk`` request, with each document's two NDJSON lines."""

    docs: list[Doc] = field(default_factory=list)
    actions: list[bytes] = field(default_factory=list)  # the action line of each doc (its source stays in the Doc: one copy)
    nbytes: int = 0  # size of the NDJSON body
    seq: int = 0  # order within its slice (cursors advance in this order)

    def __len__(self) -> int:
        return len(self.docs)

    def body(self, only: Iterable[int] | None = None) -> bytes:
        """The NDJSON body (of the documents at positions ``only``, for a retry), built
        when sent so a batch waiting in the queue holds each source once."""
        positions = range(len(self.docs)) if only is None else only
        parts: list[bytes] = []
        for i in positions:
            parts += (self.actions[i], b"\n", self.docs[i].source, b"\n")
        return b"".join(parts)


class BatchBuilder:
    """Accumulates documents; ``add`` returns a full batch when the next document would
    push it past ``max_bytes`` or it reaches ``max_docs``. A single document larger than
    ``max_bytes`` travels alone (the destination judges it, not us)."""

    def __init__(self, spec: WriteSpec, max_bytes: int, max_docs: int) -> None:
        self.spec = spec
        self.max_bytes = max(1, max_bytes)
        self.max_docs = max(1, max_docs)
        self._seq = 0
        self._current = Batch(seq=0)

    def add(self, doc: Doc) -> Batch | None:
        action = self.spec.action_line(doc)
        size = len(action) + len(doc.source) + 2
        ready: Batch | None = None
        cur = self._current
        if cur.docs and cur.nbytes + size > self.max_bytes:
            ready = self._rotate()
            cur = self._current
        cur.docs.append(doc)
        cur.actions.append(action)
        cur.nbytes += size
        if len(cur.docs) >= self.max_docs:
            if ready is not None:  # cannot happen with max_docs >= 1 and a fresh batch, kept for clarity
                return ready
            return self._rotate()
        return ready

    def flush(self) -> Batch | None:
        if not self._current.docs:
            return None
        return self._rotate()

    def _rotate(self) -> Batch:
        done = self._current
        self._seq += 1
        self._current = Batch(seq=self._seq)
        return done


@dataclass
class ItemOutcome:
    """What one ``_bulk`` response says about the items sent (positions are indexes into
    the list of documents that were in that request)."""

    created: int = 0
    updated: int = 0
    noops: int = 0
    conflicts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (position, error)
    retry: list[int] = field(default_factory=list)  # positions to send again
    retry_errors: dict[int, dict[str, Any]] = field(default_factory=dict)  # last error of each retried item
    failed: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)  # (position, status, error)


def classify_items(response: dict[str, Any], sent: int) -> ItemOutcome:
    """Read the ``items`` of a bulk response of ``sent`` documents."""
    outcome = ItemOutcome()
    items = response.get("items") or []
    if len(items) != sent:
        # Should not happen; never count a document as written without an item saying so.
        raise ValueError(f"the destination answered {len(items)} bulk items for {sent} documents")
    for pos, item in enumerate(items):
        (_, result), = item.items()
        status = int(result.get("status", 0))
        error = result.get("error")
        if error is None and 200 <= status < 300:
            kind = result.get("result")
            if kind == "created" or (kind is None and status == 201):
                outcome.created += 1
            elif kind == "noop":
                outcome.noops += 1
            else:
                outcome.updated += 1
        elif status == 409:
            outcome.conflicts.append((pos, _error_dict(error)))
        elif status in RETRYABLE_ITEM_STATUSES:
            outcome.retry.append(pos)
            outcome.retry_errors[pos] = _error_dict(error)
        else:
            outcome.failed.append((pos, status, _error_dict(error)))
    return outcome


def _error_dict(error: Any) -> dict[str, Any]:
    if isinstance(error, dict):
        return error
    return {"type": "error", "reason": str(error)}


def failure_entry(dest_index: str, doc_id: str, status: int, error: dict[str, Any]) -> dict[str, Any]:
    """A failure as ``_reindex`` reports it in ``failures[]``."""
    return {"index": dest_index, "id": doc_id, "status": status, "cause": {"type": error.get("type", "error"), "reason": error.get("reason", "")}}
