"""The life of one remote ``_reindex`` task on the destination: start it without waiting,
read its status, cancel or rethrottle it, read its final result, remove the result
document the server keeps in ``.tasks``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...cluster import ClusterClient
from ...errors import ClusterError, RemoteReindexError, UsageError
from .translate import explain_reindex_error

_TASK_ID = re.compile(r"^[A-Za-z0-9_\-]+:\d+$")


def check_task_id(task_id: str) -> str:
    task_id = task_id.strip()
    if not _TASK_ID.match(task_id):
        raise UsageError(f"{task_id!r} is not a task id", "A task id looks like 'oTUltX4IQMOUUVeiohTt8A:12345' (printed when the copy started, or GET _tasks?actions=*reindex).")
    return task_id


@dataclass
class TaskStatus:
    """The counters of a running or finished reindex task (same names as the response)."""

    task_id: str
    completed: bool = False
    total: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    batches: int = 0
    version_conflicts: int = 0
    noops: int = 0
    retries_bulk: int = 0
    retries_search: int = 0
    throttled_millis: int = 0
    running_ms: int = 0
    took_ms: int = 0
    canceled: str | None = None  # the reason, when cancelled
    failures: list[dict[str, Any]] = field(default_factory=list)
    error: Any = None  # the task's error object, when it failed as a whole
    description: str = ""

    @property
    def done(self) -> int:
        """Documents handled so far (what the progress bar shows)."""
        return self.created + self.updated + self.deleted + self.version_conflicts + self.noops

    @classmethod
    def from_answer(cls, task_id: str, answer: Mapping[str, Any]) -> "TaskStatus":
        task = answer.get("task") or {}
        status = dict(task.get("status") or {})
        response = answer.get("response")
        counters = response if isinstance(response, dict) else status
        retries = counters.get("retries") or {}
        st = cls(
            task_id=task_id,
            completed=bool(answer.get("completed")),
            total=int(counters.get("total") or 0),
            created=int(counters.get("created") or 0),
            updated=int(counters.get("updated") or 0),
            deleted=int(counters.get("deleted") or 0),
            batches=int(counters.get("batches") or 0),
            version_conflicts=int(counters.get("version_conflicts") or 0),
            noops=int(counters.get("noops") or 0),
            retries_bulk=int(retries.get("bulk") or 0),
            retries_search=int(retries.get("search") or 0),
            throttled_millis=int(counters.get("throttled_millis") or 0),
            running_ms=int(task.get("running_time_in_nanos") or 0) // 1_000_000,
            took_ms=int((response or {}).get("took") or 0) if isinstance(response, dict) else 0,
            canceled=(response or {}).get("canceled") if isinstance(response, dict) else None,
            failures=list((response or {}).get("failures") or []) if isinstance(response, dict) else [],
            error=answer.get("error"),
            description=str(task.get("description") or ""),
        )
        if task.get("cancelled") and not st.canceled:
            st.canceled = "cancelled"
        return st


def start_task(dest: ClusterClient, body: Mapping[str, Any], *, requests_per_second: float | None = None, explain: dict[str, Any] | None = None) -> str:
    """``POST _reindex?wait_for_completion=false``: the task id. Errors the destination
    finds before starting (allowlist, malformed host, unknown fields) raise in plain words."""
    # refresh: the copied documents are searchable (and countable) when the task ends
    params: dict[str, Any] = {"wait_for_completion": False, "refresh": True}
    if requests_per_second is not None:
        params["requests_per_second"] = requests_per_second
    resp = dest.request("POST", "/_reindex", params=params, body=dict(body))
    answer = _json(resp)
    if resp.status == 200 and isinstance(answer, dict) and "task" in answer:
        return str(answer["task"])
    raise explain_reindex_error(answer, status=resp.status, **(explain or {}))


def get_status(dest: ClusterClient, task_id: str) -> TaskStatus:
    resp = dest.request("GET", f"/_tasks/{task_id}")
    answer = _json(resp)
    if resp.status == 404:
        raise ClusterError(
            f"task {task_id} is not known to {dest.host_port} (finished long ago and its result was removed, or a wrong id)",
            "List running reindex tasks with GET _tasks?actions=*reindex&detailed=true on the destination.",
            status=404, cause="task_not_found",
        )
    if resp.status != 200:
        raise dest.error_for(resp, f"GET _tasks/{task_id}")
    return TaskStatus.from_answer(task_id, answer)


def cancel_task(dest: ClusterClient, task_id: str) -> None:
    """Ask the destination to stop the task (it stops after the current batch)."""
    resp = dest.request("POST", f"/_tasks/{task_id}/_cancel")
    if resp.status not in (200, 404):
        raise dest.error_for(resp, f"POST _tasks/{task_id}/_cancel")


def rethrottle(dest: ClusterClient, task_id: str, requests_per_second: float | None) -> None:
    """Change a running task's throttle: a number of requests (documents) per second, or
    None for no throttle. Speeding up is immediate; slowing down waits for the current batch."""
    rps: Any = -1 if requests_per_second is None else requests_per_second
    dest.call("POST", f"/_reindex/{task_id}/_rethrottle", params={"requests_per_second": rps})


def remove_result(dest: ClusterClient, task_id: str) -> bool:
    """Delete the finished task's document from ``.tasks`` (the server keeps it forever).
    Best effort: a destination that protects system indices may refuse."""
    try:
        resp = dest.request("DELETE", f"/.tasks/_doc/{task_id}", headers={"x-elastic-product-origin": "remote-reindex"})
    except RemoteReindexError:
        return False
    return resp.status in (200, 404)


def wait_until_done(dest: ClusterClient, task_id: str, *, poll_interval: float = 1.0, timeout: float | None = None) -> TaskStatus:
    """Poll until the task completes (used after a cancel, and by tests)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = get_status(dest, task_id)
        if st.completed:
            return st
        if deadline is not None and time.monotonic() > deadline:
            return st
        time.sleep(poll_interval)


def _json(resp: Any) -> Any:
    try:
        return resp.json()
    except Exception:  # noqa: BLE001 - a proxy page, not JSON
        return {"error": {"type": "not_json", "reason": resp.data[:300].decode("utf-8", "replace")}}
