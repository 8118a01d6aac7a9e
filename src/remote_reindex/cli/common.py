"""Shared CLI plumbing: consoles, error printing, JSON output."""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from ..errors import RemoteReindexError

out = Console(highlight=False, soft_wrap=True, emoji=False)  # no emoji: ":CD:" in a fingerprint is hex, not a CD
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(exc: RemoteReindexError, *, as_json: bool = False) -> NoReturn:
    """Print an error as two lines (what is wrong, what to do) and exit with its code."""
    if as_json:
        print_json(exc.to_dict())
    err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
    if exc.fix:
        err.print(f"[bold]fix:[/] {escape(exc.fix)}", markup=True, highlight=False)
    raise typer.Exit(exc.exit_code)


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception, so that the ``finally`` blocks and the clean-up of
    a failed start (which catch BaseException) run as they do for Ctrl-C."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """For commands that start nodes (``sandbox up``, ``demo``): SIGTERM raises
    :class:`Terminated` in the main thread instead of killing the process outright, so the
    nodes are stopped before the exit instead of left running; a second SIGTERM during that
    clean-up is ignored. Ctrl-C and SIGTERM end with two lines and exit 130 / 143 (not
    click's bare "Aborted!")."""
    terminated = False

    def handle(signum: int, frame: Any) -> None:
        nonlocal terminated
        terminated = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    except KeyboardInterrupt:  # also an engine that caught the signal, cancelled its work and re-raised
        what, code = ("terminated", 143) if terminated else ("interrupted", 130)
        err.print(f"[bold red]error:[/] {what}: the nodes this command started were stopped", markup=True, highlight=False)
        err.print("[bold]fix:[/] run the command again; 'remote-reindex sandbox status' shows what still runs "
                  "(a sandbox that was up before, or kept with --keep), 'remote-reindex sandbox down' stops it",
                  markup=True, highlight=False)
        raise typer.Exit(code) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
