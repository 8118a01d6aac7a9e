"""``remote-reindex sandbox``: throwaway local nodes reproducing the private-CA setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import RemoteReindexError
from ..sandbox import DESTINATIONS, SOURCE_VERSIONS, Sandbox
from .common import err, fail, out, print_json, terminate_as_interrupt

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

HOME_HELP = "Sandbox folder (default: $REMOTE_REINDEX_SANDBOX_HOME or /var/tmp/remote-reindex/sandbox). Must be enterable by the node user, so not under /root."


def _progress(line: str) -> None:
    err.print(f"[dim]>[/] {line}", markup=True, highlight=False)


def _sandbox(home: Optional[Path]) -> Sandbox:
    return Sandbox(home)


@app.command()
def up(
    source_version: str = typer.Option("7.17.29", "--source-version", help=f"Source Elasticsearch version: {' | '.join(SOURCE_VERSIONS)}."),
    destination: str = typer.Option("elasticsearch", "--destination", help=f"Destination kind: {' | '.join(DESTINATIONS)}."),
    docs: int = typer.Option(100_000, "--docs", help="Sample documents to load into the source's 'products' index."),
    destination_nodes: int = typer.Option(1, "--destination-nodes", help="Nodes in the destination cluster."),
    home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON when up."),
) -> None:
    """Start a TLS source with a fresh private CA and a destination that does not trust it yet."""
    try:
        sb = _sandbox(home)
        with terminate_as_interrupt():  # killed while starting: stop what was started
            created = sb.up(source_version=source_version, destination=destination, docs=docs, destination_nodes=destination_nodes, progress=_progress)
        for warning in sb.warnings:
            err.print(f"[bold yellow]warning:[/] {warning}", markup=True, highlight=False)
        if not created:
            err.print(f"the sandbox in {sb.home} is already up: reusing it", highlight=False)
        status = sb.status()
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(status)
    else:
        _print_status(status, warnings=False)  # already printed above, on stderr


@app.command()
def status(
    home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Where the nodes are and how to log in (the password file, never the password)."""
    try:
        result = _sandbox(home).status()
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(result)
        return
    if not result["source"] and not result["destination"]:
        if not Path(result["home"]).is_dir():
            out.print(f"no sandbox in {result['home']} (start one with 'remote-reindex sandbox up --home {result['home']}')", highlight=False)
            return
        out.print(f"no sandbox is up in {result['home']} (start one with 'remote-reindex sandbox up --home {result['home']}')", highlight=False)
        return
    _print_status(result)


@app.command()
def down(home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP)) -> None:
    """Stop every node, wait until no process is left and every port is free, delete the nodes."""
    try:
        sb = _sandbox(home)
        existed = sb.home.is_dir()
        count = sb.down()
    except RemoteReindexError as exc:
        fail(exc)
    if not existed:
        out.print(f"no sandbox in {sb.home}: nothing to stop", highlight=False)
    elif count:
        out.print(f"stopped {count} node(s); removed their folders from {sb.home}", highlight=False)
    else:
        out.print(f"no sandbox was up in {sb.home}", highlight=False)


@app.command("configure-destination")
def configure_destination(
    bundle: Path = typer.Option(..., "--bundle", help="The CA bundle zip: NAME.zip holding NAME/cacert.pem."),
    settings: Path = typer.Option(..., "--settings", help="YAML with the destination's user settings (reindex.remote.whitelist, reindex.ssl.*)."),
    destination: Optional[str] = typer.Option(None, "--destination", help="Name of an extra destination (see 'sandbox status') to configure instead of the main one."),
    home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Do what a hosted service does on 'add extension' + 'save user settings': unpack the
    bundle into the destination's config dir, merge the settings, restart, wait for health."""
    try:
        result = _sandbox(home).configure_destination(bundle, settings, target=destination, progress=_progress)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json({"ok": True, **result})
        return
    out.print(f"unpacked {result['bundle']}/ into {result['extracted_to']}", highlight=False)
    for key, value in result["settings"].items():
        out.print(f"set {key}: {value}", highlight=False)
    out.print(f"destination restarted with {result['config_file']}; it is healthy", highlight=False)


def _print_status(status: dict[str, Any], *, warnings: bool = True) -> None:
    """A readable summary; long paths stay whole (no table wrapping) so they can be copied."""

    def state(x: dict[str, Any]) -> str:
        return "[green]running[/]" if x.get("running") else "[red]not running[/]"

    def product(x: dict[str, Any]) -> str:
        name = "OpenSearch" if x["flavor"] == "opensearch" else "Elasticsearch"
        return f"{name} {x['version']}"

    def source_lines(title: str, x: dict[str, Any]) -> None:
        out.print(f"[bold]{title}[/]  {x['url']}  {product(x)}, HTTPS with a private CA  {state(x)}", highlight=False)
        out.print(f"  user           {x['username']}", highlight=False)
        out.print(f"  password file  {x['password_file']}", highlight=False)
        out.print(f"  CA file        {x['ca_file']}", highlight=False)
        out.print(f"  index          {x['index']} ({x['docs']} docs)", highlight=False)
        out.print(f"  log            {x['log']}", highlight=False)

    def destination_lines(title: str, x: dict[str, Any]) -> None:
        extra = " + reindex module" if x.get("reindex_module") else ""
        out.print(f"[bold]{title}[/]  {x['url']}  {product(x)}{extra}, plain HTTP, no security  {state(x)}", highlight=False)
        if len(x.get("nodes") or []) > 1:
            out.print(f"  nodes          {', '.join(x['nodes'])}", highlight=False)
        out.print(f"  config dir     {x['config_dir']}", highlight=False)
        out.print(f"  config file    {x['config_file']}", highlight=False)
        out.print(f"  log            {x['log']}", highlight=False)

    out.print(f"sandbox in {status['home']}", highlight=False)
    if status.get("source"):
        source_lines("source     ", status["source"])
    if status.get("destination"):
        destination_lines("destination", status["destination"])
    for name, x in (status.get("extra_sources") or {}).items():
        source_lines(f"extra source {name}", x)
    for name, x in (status.get("extra_destinations") or {}).items():
        destination_lines(f"extra destination {name}", x)
    for w in (status.get("warnings") or []) if warnings else []:
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
