"""``remote-reindex``: the guide's steps as commands, in the guide's order."""

from __future__ import annotations

import sys

from typing import Any

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import RemoteReindexError, UsageError

try:  # recent typer versions carry their own copy of click: its errors are other classes
    from typer._click.exceptions import UsageError as _ClickUsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError as _ClickUsageError
from . import bundle, ca, demo, run, sandbox, settings, verify
from .common import err, fail

# The guide's steps first, then the tools around them. Typer lists plain commands before
# sub-apps; this group keeps the order a user reads the guide in.
COMMAND_ORDER = ("ca", "bundle", "settings", "lint-settings", "run", "verify", "sandbox", "demo")


class GuideOrderGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:  # typer vendors click: no direct import
        names = list(self.commands)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))

    def invoke(self, ctx: Any) -> Any:
        """Flag mistakes click catches (unknown option, value out of range, not a number)
        get the same two lines as every other bad input, instead of a usage panel."""
        try:
            return super().invoke(ctx)
        except _ClickUsageError as exc:
            if exc.ctx is not None and exc.ctx is not ctx:
                where = exc.ctx.command_path
            else:
                where = " ".join(x for x in (ctx.command_path, ctx.invoked_subcommand) if x)
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                # 'remote-reindex ca' alone: the help is already printed and the message is empty
                names = exc.ctx.command.list_commands(exc.ctx) if hasattr(exc.ctx.command, "list_commands") else []
                fail(UsageError(f"'{where}' needs a command: {', '.join(names)}", f"Run '{where} COMMAND --help' for what one takes."))
            fail(UsageError(exc.format_message().replace("\n", " ").strip(), f"Run '{where} --help' to see what it takes."))


app = typer.Typer(
    name="remote-reindex",
    cls=GuideOrderGroup,
    help=(
        "Copy data from an Elasticsearch/OpenSearch cluster whose TLS uses a private CA or a "
        "self-signed certificate, following Elastic's guide 'Reindex from a self-managed cluster "
        "using a private CA': 1 get the CA, 2 test it, 3 bundle it, 4 destination settings, 5 copy."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"remote-reindex {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


# Registration order is the order --help shows: the guide's steps, then the tools around them.
app.add_typer(ca.app, name="ca", help="Steps 1-2: get the source's CA from its TLS endpoint, explain the chain, test it.")
bundle.register(app)
settings.register(app)
run.register(app)
verify.register(app)
app.add_typer(sandbox.app, name="sandbox", help="Throwaway local nodes reproducing the private-CA setup.")
demo.register(app)


def main() -> None:
    try:
        app(standalone_mode=True)
    except RemoteReindexError as exc:  # commands normally catch their own; this is the net
        try:
            fail(exc)
        except typer.Exit as e:
            sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
