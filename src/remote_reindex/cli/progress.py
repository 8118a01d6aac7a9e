"""The rich progress display for ``run`` (one bar per index and a total)."""

from __future__ import annotations

import threading

from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichBars, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..engines.progress import Progress
from .common import err


class RichProgress(Progress):
    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled
        self._lock = threading.Lock()
        self._tasks: dict[str, int] = {}
        self._bars = RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
            transient=False,
        )
        if enabled:
            self._bars.start()

    def message(self, text: str) -> None:
        err.print(text, markup=False, highlight=False)

    def start_index(self, index: str, total: int | None) -> None:
        with self._lock:
            if index not in self._tasks:
                self._tasks[index] = self._bars.add_task(index, total=total, rate="")
            else:
                self._bars.update(self._tasks[index], total=total)

    def _rate(self, tid: int) -> str:
        speed = self._bars.tasks[tid].speed if tid < len(self._bars.tasks) else None
        return f"{speed:,.0f} docs/s" if speed else ""

    def advance(self, index: str, docs: int) -> None:
        with self._lock:
            tid = self._tasks.get(index)
            if tid is not None:
                self._bars.advance(tid, docs)
                self._bars.update(tid, rate=self._rate(tid))

    def set_completed(self, index: str, done: int, total: int | None = None) -> None:
        with self._lock:
            tid = self._tasks.get(index)
            if tid is not None:
                self._bars.update(tid, completed=done, **({"total": total} if total is not None else {}))
                self._bars.update(tid, rate=self._rate(tid))

    def finish_index(self, index: str) -> None:
        pass

    def close(self) -> None:
        if self._enabled:
            self._bars.stop()
