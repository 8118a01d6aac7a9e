"""``remote-reindex ca fetch`` and ``ca check``: steps 1 and 2 of the guide."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cluster.auth import resolve_auth
from ..errors import RemoteReindexError, UsageError
from ..tls.chain import ChainReport, fetch_chain_report, file_report, parse_host_port
from ..tls.diagnose import EXIT_CODES, check_source
from .common import err, fail, out, print_json

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _write_pem(path: Path, pem: str) -> None:
    if path.is_dir():
        raise UsageError(f"output path is a folder: {path}", "Give a file name, e.g. -o ca.pem.")
    if not path.parent.exists():
        raise UsageError(f"output folder does not exist: {path.parent}", "Create the folder first, or write elsewhere.")
    path.write_text(pem)


def _print_report(report: ChainReport, written: Path | None) -> None:
    where = f"{report.host}:{report.port}" if report.port else report.host or "file"
    out.print(f"[bold]Certificates sent by {where}[/]" + (f" ({report.tls_version})" if report.tls_version else ""))
    for i, c in enumerate(report.chain):
        role = "leaf" if i == 0 else ("root CA" if c.self_signed else "CA" if c.is_ca else "certificate")
        if i == 0 and c.self_signed:
            role = "self-signed leaf"
        out.print(f"  [{i}] {role}: {escape(c.subject)}")
        out.print(f"      issuer:   {escape(c.issuer)}")
        out.print(f"      SANs:     {escape(', '.join(c.sans)) or '-'}")
        out.print(f"      valid:    {c.not_before} .. {c.not_after}" + (" [red](EXPIRED)[/]" if c.expired else " [red](NOT YET VALID)[/]" if c.not_yet_valid else ""))
        out.print(f"      key:      {c.key}    CA: {'yes' if c.is_ca else 'no'}")
        out.print(f"      sha256:   {c.sha256}")
    out.print(f"[bold]Trust:[/] {escape(report.trust_reason)}")
    if report.anchor is not None:
        out.print(f"[bold]Anchor:[/] {escape(report.anchor.subject)}")
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    if report.verification_mode:
        out.print(f"[bold]reindex.ssl.verification_mode: {report.verification_mode}[/] - {escape(report.verification_reason)}")
    if written is not None:
        out.print(f"Wrote {len(report.trust)} certificate(s) to {written}. Next: remote-reindex ca check https://{where} --ca {written}", markup=False)
    else:
        out.print("PEM to trust (write it with -o FILE):")
        out.print(report.pem.rstrip(), markup=False)


def privileges_line(answer: dict) -> str:
    """One line naming every privilege checked and whether the user has it."""
    checked = [f"cluster '{p}' {'yes' if has else 'NO'}" for p, has in (answer.get("cluster") or {}).items()]
    for index, privs in (answer.get("index") or {}).items():
        checked += [f"'{p}' on index {index} {'yes' if has else 'NO'}" for p, has in privs.items()]
    return f"privileges checked for {answer.get('username') or 'this user'}: {', '.join(checked) or 'none'}"


@app.command("fetch")
def fetch(
    host_port: Optional[str] = typer.Argument(None, metavar="HOST:PORT", help="The source's HTTPS endpoint, e.g. es.internal:9200 (a URL works too)."),
    servername: Optional[str] = typer.Option(None, "--servername", help="TLS server name (SNI) to send, and the host the destination will use; default: HOST."),
    from_file: Optional[Path] = typer.Option(None, "--from-file", help="A CA file (PEM, or 'openssl s_client -showcerts' output) to check and write instead of what the server sent."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the certificate(s) to trust to this PEM file."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the connection and handshake."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Step 1: read the certificate chain the source presents, explain it, and write the CA to trust."""
    try:
        if host_port is None:
            if from_file is None:
                raise UsageError("give HOST:PORT (the source's HTTPS endpoint) or --from-file FILE", "e.g. remote-reindex ca fetch es.internal:9200 -o ca.pem")
            report = file_report(from_file, servername)
        else:
            host, port = parse_host_port(host_port)
            report = fetch_chain_report(host, port, servername=servername, from_file=from_file, timeout=timeout)
        if output is not None:
            _write_pem(output, report.pem)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        data = report.to_dict()
        data.update(ok=True, cause="ok", written=str(output) if output else None)
        print_json(data)
        return
    _print_report(report, output)


@app.command(
    "check",
    epilog="Exit codes: " + ", ".join(f"{code} {cause}" for cause, code in EXIT_CODES.items()) + ".",
)
def check(
    url: str = typer.Argument(..., help="The source, e.g. https://es.internal:9200."),
    ca: Optional[Path] = typer.Option(None, "--ca", help="The CA file to test (PEM; s_client output is fine)."),
    user: Optional[str] = typer.Option(None, "--user", help="User name for basic auth (password from --password-env, --password-file or a prompt)."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Name of the environment variable holding the password."),
    password_file: Optional[str] = typer.Option(None, "--password-file", help="File holding the password."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Name of the environment variable holding an API key (base64 id:key)."),
    bearer_env: Optional[str] = typer.Option(None, "--bearer-env", help="Name of the environment variable holding a bearer token."),
    index: Optional[list[str]] = typer.Option(None, "--index", help="Source index to check 'read' on (with cluster 'monitor'); repeatable."),
    servername: Optional[str] = typer.Option(None, "--servername", help="Host name to verify instead of the URL's host."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each step."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, cause, message, fix, ...} as JSON."),
) -> None:
    """Step 2: test the CA file against the source like 'curl --cacert', and diagnose failures."""
    try:
        auth = resolve_auth(user, password_env, password_file, api_key_env, bearer_env, prompt=True)
        result = check_source(url, ca, auth=auth, indices=index or None, servername=servername, timeout=timeout)
    except RemoteReindexError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(result.to_dict())
    else:
        for w in result.warnings:
            err.print(f"[yellow]warning:[/] {escape(w)}")
        if result.ok:
            out.print(f"[green]ok:[/] {escape(result.message)}")
            if result.privileges is not None:
                out.print(privileges_line(result.privileges), markup=False)
            if result.fix:
                out.print(result.fix, markup=False)
        else:
            err.print(f"[bold red]error:[/] {escape(result.message)}", highlight=False)
            err.print(f"[bold]fix:[/] {escape(result.fix)}", highlight=False)
    raise typer.Exit(result.exit_code)
