"""The result of a copy, shaped like the ``_reindex`` response, per index and in total,
the same for both engines (``--json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IndexSummary:
    index: str  # source index
    dest_index: str
    engine: str  # "server" | "client"
    took_ms: int = 0
    total: int = 0  # documents the source had to give (after query / max_docs)
    created: int = 0
    updated: int = 0
    deleted: int = 0
    version_conflicts: int = 0
    noops: int = 0
    batches: int = 0
    retries_bulk: int = 0
    retries_search: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # first failures, as the server reports them
    failed: int = 0  # documents not written (dead-lettered or failed); version conflicts are not in it (see version_conflicts), for both engines
    dead_letter_file: str | None = None
    cancelled: bool = False
    task_ids: list[str] = field(default_factory=list)  # server engine
    resumed_docs: int = 0  # of ``total``: acknowledged by earlier runs of this job (state file)
    already_copied: int = 0  # of ``created``: replayed after a resume, found already written by an earlier run

    @property
    def written(self) -> int:
        return self.created + self.updated

    @property
    def complete(self) -> bool:
        """Every document the source gave was written (conflicts count when allowed by the caller)."""
        return not self.cancelled and self.failed == 0 and not self.failures

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "dest_index": self.dest_index,
            "engine": self.engine,
            "took": self.took_ms,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "version_conflicts": self.version_conflicts,
            "noops": self.noops,
            "batches": self.batches,
            "retries": {"bulk": self.retries_bulk, "search": self.retries_search},
            "failures": self.failures,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }
        if self.dead_letter_file:
            d["dead_letter_file"] = self.dead_letter_file
        if self.task_ids:
            d["task_ids"] = self.task_ids
        if self.resumed_docs:
            d["resumed_docs"] = self.resumed_docs
        if self.already_copied:
            d["already_copied"] = self.already_copied
        return d


_SUMMED = ("total", "created", "updated", "deleted", "version_conflicts", "noops", "batches", "retries_bulk", "retries_search", "failed")


@dataclass
class RunSummary:
    engine: str
    indices: list[IndexSummary] = field(default_factory=list)
    took_ms: int = 0
    state_file: str | None = None  # where the job's progress is saved (resume)
    already_complete: bool = False  # the state file says an earlier run finished this job: nothing was done
    interrupted: bool = False  # stopped by SIGINT (Ctrl-C): in-flight writes were awaited, cursors saved
    abandoned: bool = False  # interrupted and some writes did not finish within the grace period
    expected_docs: int = 0  # documents the source had for this run (the "of M" of an interruption)

    @property
    def complete(self) -> bool:
        return all(i.complete for i in self.indices)

    def totals(self) -> dict[str, Any]:
        t = {k: sum(getattr(i, k) for i in self.indices) for k in _SUMMED}
        return {
            "took": self.took_ms,
            "total": t["total"],
            "created": t["created"],
            "updated": t["updated"],
            "deleted": t["deleted"],
            "version_conflicts": t["version_conflicts"],
            "noops": t["noops"],
            "batches": t["batches"],
            "retries": {"bulk": t["retries_bulk"], "search": t["retries_search"]},
            "failures": [f for i in self.indices for f in i.failures][:100],
            "failed": t["failed"],
        }

    def to_dict(self) -> dict[str, Any]:
        d = {"engine": self.engine, "complete": self.complete, **self.totals(), "indices": [i.to_dict() for i in self.indices]}
        resumed = sum(i.resumed_docs for i in self.indices)
        if resumed:
            d["resumed_docs"] = resumed
        if self.state_file:
            d["state_file"] = self.state_file
        if self.already_complete:
            d["already_complete"] = True
        if self.interrupted:
            d["interrupted"] = True
        return d
