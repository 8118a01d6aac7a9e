"""Shared CLI plumbing: consoles, error printing, JSON output."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from ..errors import RemoteReindexError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
