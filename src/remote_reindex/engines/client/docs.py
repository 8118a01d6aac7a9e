"""The unit of data: one source document as read, and what the engine remembers about
where each slice is (the cursor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Doc:
    """One hit. ``source`` is the raw JSON bytes of ``_source``: passed through to the
    ``_bulk`` body as is, never decoded into Python objects on the hot path."""

    id: str
    source: bytes
    routing: str | None = None
    version: int | None = None
    sort: list[Any] | None = None  # PIT: this hit's sort values, the search_after to resume after it
    index: str = ""  # the concrete source index (a data stream's backing index, an alias's member)


@dataclass
class SliceCursor:
    """Where one slice of one index stands, as acknowledged by the destination.

    It moves only when a batch is acknowledged (every item written, dead-lettered or
    counted as a conflict), so restarting from it never skips a document. Kept in memory
    for now; a later change persists it (SQLite) for ``--resume``.
    """

    index: str  # source index or data stream
    slice_id: int
    slice_max: int
    mode: str  # "pit" | "scroll"
    context_id: str | None = None  # the PIT id (shared by the slices of an index) or this slice's scroll id
    search_after: list[Any] | None = None  # PIT: sort values of the last acknowledged document
    docs_done: int = 0  # documents of this slice acknowledged so far
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "slice_id": self.slice_id, "slice_max": self.slice_max, "mode": self.mode,
            "context_id": self.context_id, "search_after": self.search_after, "docs_done": self.docs_done,
            "finished": self.finished,
        }


@dataclass
class Page:
    """One search response's worth of documents from one slice."""

    docs: list[Doc] = field(default_factory=list)
    context_id: str | None = None  # the newest PIT/scroll id after this page
