"""``remote-reindex bundle``: step 3 of the guide."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..bundle import DEFAULT_NAME, build_bundle
from ..errors import RemoteReindexError
from .common import err, fail, out, print_json


def bundle(
    ca: Optional[list[Path]] = typer.Option(None, "--ca", help="CA file (PEM); repeat for several sources: they are combined into one cacert.pem."),
    name: str = typer.Option(DEFAULT_NAME, "--name", help="Bundle name: lowercase letters, digits, '_' and '-'. Writes NAME.zip holding NAME/cacert.pem."),
    output: Path = typer.Option(Path("."), "-o", "--output", help="Folder to write NAME.zip into."),
    target: str = typer.Option("cloud", "--target", help="Destination kind: cloud (Elastic Cloud) or self-managed."),
    der: bool = typer.Option(False, "--der", help="Accept DER (binary) certificates and convert them to PEM."),
    allow_expired: bool = typer.Option(False, "--allow-expired", help="Write the bundle even when every certificate in it is expired."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Step 3: validate the CA file(s) and write the NAME.zip bundle the destination loads."""
    try:
        result = build_bundle(list(ca or []), name=name, out_dir=output, target=target, der=der, allow_expired=allow_expired)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"Wrote {escape(str(result.zip_path))} ({len(result.certificates)} certificate(s) in {result.name}/cacert.pem, sha256 {result.sha256[:16]}...)")
    for c in result.certificates:
        out.print(f"  - {escape(c.subject)} (CA: {'yes' if c.is_ca else 'no'}, until {c.not_after})")
    if result.target == "cloud":
        out.print("Upload it as an extension of type 'bundle' in the Elastic Cloud console, add it to the destination deployment, and use:")
    else:
        out.print(f"Unzip it into the destination's config folder on every node (giving <config>/{result.name}/cacert.pem), and use:")
    out.print(f"  reindex.ssl.certificate_authorities: [\"{result.settings_path}\"]", markup=False)
    out.print(f"Next: remote-reindex settings --remote HOST:PORT --bundle-name {result.name} --target {result.target}")


def register(app: typer.Typer) -> None:
    app.command("bundle")(bundle)
