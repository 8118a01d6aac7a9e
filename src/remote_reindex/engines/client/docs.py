"""The unit of data: one source document as read, and what the engine remembers about
where each slice is (the cursor)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# per-slice counters kept across runs (same names as the summary's)
COUNTERS = ("created", "updated", "version_conflicts", "noops", "failed", "already_copied")


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
    counted as a conflict), so restarting from it never skips a document. With a state
    file (``state.StateStore``) it is saved after every move; ``--resume`` starts from it.

    The counters are those of the acknowledged prefix of the slice, across runs, so a
    resumed run's summary adds up exactly. ``submitted`` counts documents handed to the
    destination (acknowledged or not): after a kill, the documents between ``docs_done``
    and ``submitted`` may already be written — the *replay window*.
    """

    index: str  # source index or data stream
    slice_id: int
    slice_max: int
    mode: str  # "pit" | "scroll"
    context_id: str | None = None  # the PIT id (shared by the slices of an index) or this slice's scroll id
    search_after: list[Any] | None = None  # PIT: sort values of the last acknowledged document
    docs_done: int = 0  # documents of this slice acknowledged so far
    finished: bool = False
    submitted: int = 0  # documents sent to the destination so far (>= docs_done)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))  # acknowledged prefix, all runs
    replay_left: int = 0  # documents from the resume point that an earlier run may already have written
    dead_letter: str | None = None  # the file this slice's rejected documents went to (kept in the state)

    def to_position(self) -> dict[str, Any]:
        """What the state file keeps for this slice (no secret: ids, sort values, counts)."""
        return {
            "mode": self.mode, "slice_max": self.slice_max, "pit_id": self.context_id if self.mode == "pit" else None,
            "search_after": self.search_after, "submitted": self.submitted, "counts": dict(self.counts),
            **({"dead_letter": self.dead_letter} if self.dead_letter else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "slice_id": self.slice_id, "slice_max": self.slice_max, "mode": self.mode,
            "context_id": self.context_id, "search_after": self.search_after, "docs_done": self.docs_done,
            "finished": self.finished, "submitted": self.submitted, "counts": dict(self.counts),
        }


@dataclass
class Page:
    """One search response's worth of documents from one slice."""

    docs: list[Doc] = field(default_factory=list)
    context_id: str | None = None  # the newest PIT/scroll id after this page
