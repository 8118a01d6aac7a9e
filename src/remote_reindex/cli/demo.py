"""``remote-reindex demo``: the guide's five steps end to end on throwaway local nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import RemoteReindexError, UsageError
from .common import err, fail, out, print_json, terminate_as_interrupt

HOME_HELP = "Sandbox folder (default: $REMOTE_REINDEX_SANDBOX_HOME or /var/tmp/remote-reindex/sandbox); not under /root."


def demo_cmd(
    docs: Optional[int] = typer.Option(None, "--docs", help="Sample documents in the source index (default: 20000: under 2 minutes once the distributions are cached; 100000 took 4 minutes cold)."),
    keep: bool = typer.Option(False, "--keep", help="Leave the nodes running afterwards, to try the steps by hand."),
    home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON at the end."),
) -> None:
    """Run the guide end to end: sandbox up, 1 ca fetch, 2 ca check, 3 bundle, 4 settings +
    restart, 5 copy with the server engine and compare. Exit 0 only if the destination holds
    exactly the source's documents."""
    from ..demo import DEFAULT_DOCS, run_demo

    say = (lambda line: err.print(line, markup=False, highlight=False)) if as_json else (lambda line: out.print(line, markup=False, highlight=False))
    try:
        if docs is not None and not 1 <= docs <= 2_000_000:
            raise UsageError(f"--docs must be between 1 and 2000000, not {docs}", "Give a document count such as --docs 20000.")
        with terminate_as_interrupt():  # a killed demo stops its nodes too
            result = run_demo(docs=docs or DEFAULT_DOCS, home=home, keep=keep, say=say)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    say("\nThe same steps by hand" + ("" if result.kept else " (run the demo with --keep to try them on these nodes)") + ":")
    for line in result.by_hand:
        say(f"  {line}")
    if as_json:
        print_json(result.to_dict())
    verdict = "OK" if result.ok else "FAILED"
    say(f"\n{verdict}: the destination holds {result.dest_docs:,} of the source's {result.source_docs:,} documents"
        f"{', all equal by _id and _source' if result.equal else ''} ({result.seconds:.0f}s)")
    if not result.ok:
        raise typer.Exit(9)


def register(app: typer.Typer) -> None:
    app.command("demo", help="The guide end to end on throwaway local nodes (sandbox, steps 1-5, compare).")(demo_cmd)
