"""The server engine's part of the state file: one row per task to run (an index, or one
partition of it) with its query, its task id once started, and its final counts once done.

On a re-run: a done partition is not run again (its saved counts join the summary); a
partition whose task was started re-attaches to that task — still running: followed;
finished: its result read from ``.tasks``; unknown to the destination (result removed,
node restarted): run again, which is safe because documents are written by ``_id``; a
partition never started, failed or cancelled runs again. The partitions themselves come
from the state, not from a new plan, so the ranges stay the same across runs.
"""

from __future__ import annotations

from typing import Any

from ...state.store import JobState
from .partitions import Partition
from .tasks import TaskStatus

_COUNTS = ("total", "created", "updated", "deleted", "batches", "version_conflicts", "noops", "retries_bulk", "retries_search")


def part_key(partition: Partition | None) -> str:
    return f"task-{partition.number if partition else 0:03d}"


def saved_partitions(state: JobState, index: str) -> list[tuple[str, Partition | None, dict[str, Any]]] | None:
    """The partitions an earlier run planned for ``index`` (None: no earlier plan)."""
    rows = [c for c in state.cursors(index) if c.part.startswith("task-") and isinstance(c.position, dict)]
    if not rows:
        return None
    out = []
    for c in rows:
        p = c.position
        number = int(c.part.split("-")[1])
        part = Partition(number, str(p.get("label") or ""), p.get("query") or {}) if number else None
        out.append((c.part, part, p))
    return out


def position_for(partition: Partition | None, size: int, query: Any) -> dict[str, Any]:
    return {"label": partition.label if partition else "", "query": query, "size": size}


def status_to_counts(st: TaskStatus) -> dict[str, int]:
    return {k: int(getattr(st, k)) for k in _COUNTS}


def status_from_counts(task_id: str, counts: dict[str, Any]) -> TaskStatus:
    st = TaskStatus(task_id=task_id, completed=True)
    for k in _COUNTS:
        setattr(st, k, int(counts.get(k, 0)))
    return st
