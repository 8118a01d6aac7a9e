"""``remote-reindex``: the guide's steps as commands, in the guide's order."""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import RemoteReindexError
from . import bundle, ca, demo, run, sandbox, settings, verify
from .common import err, fail

# The guide's steps first, then the tools around them. Typer lists plain commands before
# sub-apps; this group keeps the order a user reads the guide in.
COMMAND_ORDER = ("ca", "bundle", "settings", "lint-settings", "run", "verify", "sandbox", "demo")


class GuideOrderGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(self.commands)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


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
