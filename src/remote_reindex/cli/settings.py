"""``remote-reindex settings`` and ``lint-settings``: step 4 of the guide."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..bundle import DEFAULT_NAME
from ..errors import RemoteReindexError, UsageError
from ..settings import generate_settings, lint_settings
from .common import err, fail, out, print_json


def settings(
    remote: Optional[list[str]] = typer.Option(None, "--remote", help="A source as HOST:PORT or URL; repeat for several. Scheme and path are stripped."),
    bundle_name: str = typer.Option(DEFAULT_NAME, "--bundle-name", help="The bundle's name (as given to 'remote-reindex bundle --name')."),
    verification_mode: str = typer.Option("full", "--verification-mode", help="full (chain + host name), certificate (chain only) or none (trust all: test only)."),
    flavor: str = typer.Option("elasticsearch", "--flavor", help="The DESTINATION's flavor: elasticsearch or opensearch."),
    target: str = typer.Option("cloud", "--target", help="cloud (Elastic Cloud) or self-managed."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the YAML to this file instead of printing it."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Step 4: the destination's reindex.* settings (and, for Elastic Cloud, the steps to apply them)."""
    try:
        plan = generate_settings(list(remote or []), bundle_name=bundle_name, verification_mode=verification_mode, flavor=flavor, target=target)
        if output is not None:
            if output.is_dir():
                raise UsageError(f"output path is a folder: {output}", "Give a file name, e.g. -o reindex-settings.yml.")
            if not output.parent.exists():
                raise UsageError(f"output folder does not exist: {output.parent}", "Create the folder first, or write elsewhere.")
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if output is not None:
        output.write_text(plan.yaml_text)
    if as_json:
        print_json(plan.to_dict() | {"written": str(output) if output else None})
        return
    # Data on stdout, guidance on stderr: 'settings ... > file.yml' stays valid YAML.
    guide = out if output is not None else err
    for n in plan.notices:
        err.print(f"notice: {escape(n)}")
    for w in plan.warnings:
        err.print(f"[bold red]WARNING:[/] {escape(w)}")
    if output is not None:
        out.print(f"Wrote {escape(str(output))}")
    else:
        out.print(plan.yaml_text, markup=False, end="")
    if plan.console_steps:
        guide.print("\nElastic Cloud console steps:", markup=False)
        for step in plan.console_steps:
            guide.print(f"  {step}", markup=False)
        guide.print("\nThe same through the Elastic Cloud API (dry run: nothing is sent):", markup=False)
        for line in plan.api_calls:
            guide.print(f"  {line}", markup=False)
    else:
        config_file = "opensearch.yml" if plan.flavor == "opensearch" else "elasticsearch.yml"
        guide.print(f"\nPut these in {config_file} on every destination node, unzip {plan.bundle_name}.zip into each node's config folder, and restart the nodes one by one.", markup=False)


def lint(
    file: Path = typer.Argument(..., help="The YAML to check (elasticsearch.yml, or Elastic Cloud user settings)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="The bundle zip: the CA path must match its folder and file."),
    flavor: Optional[str] = typer.Option(None, "--flavor", help="The DESTINATION's flavor: elasticsearch or opensearch."),
    dest_version: Optional[str] = typer.Option(None, "--dest-version", help="The destination's version, e.g. 2.19 or 3.0 (OpenSearch 3 rejects the whitelist key)."),
    target: Optional[str] = typer.Option(None, "--target", help="cloud or self-managed (default: inferred from the CA path)."),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON."),
) -> None:
    """Check destination settings: every problem with its line number and the fixed line. Exit 1 on errors."""
    try:
        report = lint_settings(file, bundle=bundle, flavor=flavor, version=dest_version, target=target)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(report.to_dict())
    else:
        for p in report.problems:
            colour = "red" if p.severity == "error" else "yellow"
            where = f"{report.file}:{p.line}" if p.line else report.file  # line 0: a setting that is missing
            out.print(f"{escape(where)}: [{colour}]{p.severity}:[/] {escape(p.message)}")
            if p.fixed is not None:
                out.print(f"    {'add' if not p.line else 'fixed'}: {p.fixed}", markup=False)
        out.print(f"{report.errors} error(s), {report.warnings} warning(s)")
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.command("settings")(settings)
    app.command("lint-settings")(lint)
