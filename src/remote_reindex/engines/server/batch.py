"""``source.size`` by bytes: one remote response must fit the destination's fixed 100 MB
buffer (``Remote responded with a chunk that was too large``), whatever the documents weigh.

The only cheap hint of a document's size is the index's store size divided by its count.
Stored documents are compressed (and JSON in a response is not), so the estimate is
multiplied by a safety factor, and the target stays far under the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...plan.doc_size import COMPRESSION_FACTOR
from .translate import REMOTE_BUFFER_BYTES

DEFAULT_SIZE = 1000  # the server's own default batch
MAX_SIZE = 5000
TARGET_RESPONSE_BYTES = 20 * 1024 * 1024  # a fifth of the buffer: JSON overhead, uneven documents


@dataclass(frozen=True)
class BatchChoice:
    size: int
    avg_doc_bytes: int | None  # store size / docs on the source (None: unknown)
    estimated_response_bytes: int | None
    warning: str | None = None  # the user's size will likely overflow the buffer
    reason: str = ""


def choose_batch_size(avg_doc_bytes: int | None, user_size: int | None) -> BatchChoice:
    """Pure: the ``source.size`` for one index. The user's explicit size wins (with a
    warning when it probably overflows the buffer)."""
    est_doc = int(avg_doc_bytes * COMPRESSION_FACTOR) if avg_doc_bytes else None
    if user_size is not None:
        estimate = est_doc * user_size if est_doc else None
        warning = None
        if estimate is not None and estimate > REMOTE_BUFFER_BYTES * 0.8:
            safe = max(1, TARGET_RESPONSE_BYTES // est_doc) if est_doc else DEFAULT_SIZE
            warning = (
                f"source.size {user_size} with documents of about {avg_doc_bytes / 1024:,.0f} KB stored may exceed the "
                f"destination's 100 MB remote buffer (about {estimate / 1e6:,.0f} MB per batch); {safe} would be safe"
            )
        return BatchChoice(user_size, avg_doc_bytes, estimate, warning, "source.size from the body")
    if est_doc is None:
        return BatchChoice(DEFAULT_SIZE, None, None, None, "default batch (document size unknown)")
    # Bigger batches were faster when measured (size 5000 ~1.1-1.7x size 1000 here), so go up
    # to MAX_SIZE as long as one response stays near the target.
    size = max(1, min(MAX_SIZE, TARGET_RESPONSE_BYTES // est_doc))
    reason = f"documents of about {avg_doc_bytes:,} bytes stored: {size} per batch keeps one response near {size * est_doc / 1e6:,.1f} MB"
    return BatchChoice(size, avg_doc_bytes, size * est_doc, None, reason)
