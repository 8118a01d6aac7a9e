"""Progress reporting kept out of the engines: they call a ``Progress``; the CLI gives a
rich implementation, library users get the silent default."""

from __future__ import annotations


class Progress:
    """No-op base. Methods may be called from worker threads."""

    def message(self, text: str) -> None:
        """A one-line note for the user (which engine, why, warnings)."""

    def start_index(self, index: str, total: int | None) -> None:
        pass

    def advance(self, index: str, docs: int) -> None:
        pass

    def set_completed(self, index: str, done: int, total: int | None = None) -> None:
        """For engines that read absolute progress (server tasks)."""

    def finish_index(self, index: str) -> None:
        pass

    def close(self) -> None:
        pass
