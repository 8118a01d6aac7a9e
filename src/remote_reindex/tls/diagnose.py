"""Step 2 of the guide: test the CA file against the source, like ``curl --cacert``, and
when it fails say which of a dozen things went wrong and what to do.

The check runs in layers so each failure has one cause: TCP (dns, refused, timeout), then
a verified TLS handshake with exactly the user's CA file (untrusted issuer, host name,
validity, not TLS at all), then HTTP through ``ClusterClient`` (not Elasticsearch, 401,
403), then, when indices are named, the privileges remote reindex needs on the source.
When the handshake fails, a second handshake with verification off reads what the server
sent, so the message can name the missing certificate rather than repeat OpenSSL.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography import x509

from ..cluster.auth import Auth
from ..cluster.client import ClusterClient, normalize_url
from ..errors import AuthError, ClusterError, ConnectError, RemoteReindexError, TimeoutError_, TLSError, UsageError
from .chain import (
    _handshake_failure,
    anchor_warnings,
    chain_of,
    fetch_presented_chain,
    find_anchor,
    is_self_signed,
    open_tcp,
    order_chain,
    subject_alt_names,
    summarize,
    validity_warnings,
    verified_chain_of,
)
from .context import load_certificates, make_ssl_context

# One exit code per cause, so scripts can branch without parsing text (documented in
# ``remote-reindex ca check --help``). 2 stays "bad input", as everywhere in the CLI.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "usage": 2,
    "untrusted_issuer": 20,
    "hostname_mismatch": 21,
    "expired": 22,
    "not_yet_valid": 23,
    "not_tls": 24,
    "not_elasticsearch": 25,
    "auth_failed": 26,
    "forbidden": 27,
    "connection_refused": 28,
    "timeout": 29,
    "dns": 30,
    "tls": 31,
    "connection_failed": 32,
    "cluster_error": 33,
    "index_not_found": 34,
}

# The privileges a remote reindex uses on the source (Elastic's reindex docs).
SOURCE_CLUSTER_PRIVILEGES = ["monitor"]
SOURCE_INDEX_PRIVILEGES = ["read"]


def exit_code_for(cause: str) -> int:
    return EXIT_CODES.get(cause, 1)


def exit_code_table() -> str:
    return ", ".join(f"{code} {cause}" for cause, code in EXIT_CODES.items())


@dataclass
class CheckResult:
    ok: bool
    cause: str
    message: str
    fix: str
    url: str = ""
    version: str | None = None
    flavor: str | None = None
    cluster_name: str | None = None
    anchor: dict[str, Any] | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    privileges: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.cause)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ok": self.ok, "cause": self.cause, "message": self.message, "fix": self.fix, "exit_code": self.exit_code, "url": self.url}
        if self.ok:
            d.update(version=self.version, flavor=self.flavor, cluster_name=self.cluster_name)
        d.update(anchor=self.anchor, chain=self.chain, warnings=self.warnings)
        if self.privileges is not None:
            d["privileges"] = self.privileges
        return d

    @classmethod
    def from_error(cls, exc: RemoteReindexError, url: str = "", **kw: Any) -> "CheckResult":
        return cls(False, exc.cause, exc.message, exc.fix, url, **kw)


# -- the TLS layer --------------------------------------------------------------------


@dataclass
class TLSProbe:
    presented: list[x509.Certificate]
    anchor: x509.Certificate | None
    warnings: list[str]


# A CA file can be a whole system bundle (150 roots): name a few, count the rest, so the
# error stays one readable line.
NAMES_SHOWN = 3


def _names(certs: list[x509.Certificate]) -> str:
    shown = "; ".join(c.subject.rfc4514_string() for c in certs[:NAMES_SHOWN]) or "nothing"
    more = len(certs) - NAMES_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


def explain_untrusted(presented: list[x509.Certificate], ca_certs: list[x509.Certificate], ca_file: str, where: str) -> TLSError:
    """Why the chain does not reach the CA file, naming the certificate that is missing."""
    ordered = order_chain(presented)
    leaf, top = ordered[0], ordered[-1]
    ca_subjects = {c.subject for c in ca_certs}
    if len(ordered) == 1 and is_self_signed(leaf):
        return TLSError(
            f"TLS: {where} uses a self-signed certificate ({leaf.subject.rfc4514_string()}) that is not in {ca_file}",
            f"Trust that certificate itself: 'remote-reindex ca fetch {where} -o ca.pem', then use ca.pem.",
            cause="untrusted_issuer",
        )
    if len(ordered) == 1 and leaf.issuer not in ca_subjects:
        return TLSError(
            f"TLS: {where} sent only its own certificate, issued by {leaf.issuer.rfc4514_string()}, which is not in {ca_file} (intermediate CA missing)",
            f"Add the intermediate CA {leaf.issuer.rfc4514_string()} to {ca_file}, or make the server send its full chain (leaf + intermediate).",
            cause="untrusted_issuer",
        )
    return TLSError(
        f"TLS: the chain of {where} (top: {top.subject.rfc4514_string()}, issued by {top.issuer.rfc4514_string()}) is not anchored by any certificate in {ca_file} ({_names(ca_certs)})",
        f"Give the CA that issued {top.issuer.rfc4514_string()} with --ca (see 'remote-reindex ca fetch {where}').",
        cause="untrusted_issuer",
    )


def _verify_failure(exc: ssl.SSLCertVerificationError, host: str, port: int, servername: str | None, ca_certs: list[x509.Certificate], ca_file: str, timeout: float) -> TLSError:
    where = f"{host}:{port}"
    code = exc.verify_code
    try:
        presented, _ = fetch_presented_chain(host, port, servername=servername, timeout=timeout)
    except RemoteReindexError:
        presented = []
    leaf = order_chain(presented)[0] if presented else None
    if code == 62 or "mismatch" in (exc.verify_message or ""):
        sans = ", ".join(subject_alt_names(leaf)) if leaf is not None else "unknown"
        checked = servername or host  # the name verified is the --servername when one is given
        return TLSError(
            f"TLS: {checked} is not in the server certificate's SANs ({sans})",
            "Use a name from the SANs in the URL and in reindex.remote.whitelist, or set reindex.ssl.verification_mode: certificate (checks the chain, not the name).",
            cause="hostname_mismatch",
        )
    if code in (10, 9):
        expired = code == 10
        bad = next((c for c in order_chain(presented) if (summarize(c).expired if expired else summarize(c).not_yet_valid)), leaf)
        subject = bad.subject.rfc4514_string() if bad is not None else "the server certificate"
        if expired:
            when = bad.not_valid_after_utc.isoformat() if bad is not None else "?"
            return TLSError(f"TLS: the certificate {subject} of {where} expired on {when}", "Renew the source's certificate (or check this machine's clock); the destination will refuse it too.", cause="expired")
        when = bad.not_valid_before_utc.isoformat() if bad is not None else "?"
        return TLSError(f"TLS: the certificate {subject} of {where} is not valid before {when}", "Check this machine's clock and the source's, or wait until the certificate's start date.", cause="not_yet_valid")
    if presented:
        error = explain_untrusted(presented, ca_certs, ca_file, where)
        error.presented = presented  # type: ignore[attr-defined] - so --json can show the chain
        return error
    return TLSError(f"TLS: the certificate of {where} is not trusted ({exc.verify_message})", "Give the CA that issued the server's certificate with --ca.", cause="untrusted_issuer")


def probe_tls(host: str, port: int, ca_file: str, *, servername: str | None = None, timeout: float = 10.0) -> TLSProbe:
    """A verified handshake with exactly ``ca_file`` as trust (host name checked).
    Returns what was presented and which certificate of the file anchored it."""
    ca_certs = load_certificates(ca_file)
    ctx = make_ssl_context(ca_file)
    where = f"{host}:{port}"
    sock = open_tcp(host, port, timeout)
    try:
        try:
            with ctx.wrap_socket(sock, server_hostname=servername or host) as tls:
                presented = chain_of(tls)
                verified = verified_chain_of(tls)
        except ssl.SSLCertVerificationError as exc:
            raise _verify_failure(exc, host, port, servername, ca_certs, ca_file, timeout) from None
        except ssl.SSLError as exc:
            raise _handshake_failure(exc, where) from None
        except (socket.timeout, TimeoutError):
            raise TimeoutError_(f"{where} accepted the connection but did not complete a TLS handshake in {timeout:g}s", "Check that this is the cluster's HTTPS port, or raise --timeout.", cause="timeout") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            raise TLSError(f"{where} closed the connection during the TLS handshake", "Check that this is the cluster's HTTPS port (not a transport port such as 9300).", cause="not_tls") from None
    finally:
        sock.close()
    # With partial chains OpenSSL's verified chain may run past the certificate that is in the
    # file (a trusted leaf is followed by its untrusted intermediate), so ask the file.
    anchor = find_anchor(verified or presented, ca_certs)
    warnings = validity_warnings(order_chain(presented))
    if anchor is not None and presented:
        warnings += anchor_warnings(anchor, order_chain(presented)[0])
    return TLSProbe(presented, anchor, warnings)


# -- the whole check ------------------------------------------------------------------


def check_privileges(client: ClusterClient, indices: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(answer, warning). Raises ``AuthError(forbidden)`` when a needed privilege is missing."""
    body = {"cluster": SOURCE_CLUSTER_PRIVILEGES, "index": [{"names": indices, "privileges": SOURCE_INDEX_PRIVILEGES}]}
    resp = client.request("POST", "/_security/user/_has_privileges", body=body)
    if resp.status in (401, 403):
        raise client.error_for(resp, "POST /_security/user/_has_privileges")
    if resp.status != 200:
        return None, f"could not check privileges (HTTP {resp.status}; security disabled on the source?): remote reindex needs cluster 'monitor' and index 'read'"
    answer = resp.json() or {}
    missing = [f"cluster '{p}'" for p, has in (answer.get("cluster") or {}).items() if not has]
    for index, privs in (answer.get("index") or {}).items():
        missing += [f"'{p}' on index {index}" for p, has in privs.items() if not has]
    if missing:
        user = answer.get("username") or "this user"
        raise AuthError(
            f"{user} lacks privileges remote reindex needs on the source: {', '.join(missing)}",
            "Grant a role with cluster 'monitor' and index 'read' on the source indices to this user.",
            cause="forbidden",
            status=200,
            body=answer,
        )
    return answer, None


INDEX_FIX = "Check the name against the source's indices (GET /_cat/indices?v on the source), or leave out --index to check only the connection."


def check_indices_exist(client: ClusterClient, indices: list[str]) -> None:
    """Raises ``ClusterError(index_not_found)`` for a name that is not an index, alias or data
    stream of the source (privileges are granted on names, so they do not tell). Uses
    ``_count``, which the 'read' privilege allows."""
    for name in indices:
        what = f"GET /{name}/_count"
        resp = client.request("GET", f"/{quote(name, safe='*,')}/_count")
        try:
            body = resp.json()
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            body = None
        body = body if isinstance(body, dict) else {}
        if resp.status == 200:
            if "*" in name and (body.get("_shards") or {}).get("total", 1) == 0:
                raise ClusterError(f"{name} matches no index on the source", INDEX_FIX, cause="index_not_found", status=200, body=body)
            continue
        error = body.get("error")
        error_type = error.get("type") if isinstance(error, dict) else None
        if resp.status == 404 and error_type in ("index_not_found_exception", None):
            raise ClusterError(f"index {name} does not exist on the source", INDEX_FIX, cause="index_not_found", status=404, body=body)
        raise client.error_for(resp, what)


def check_source(
    url: str,
    ca_file: str | Path | None,
    *,
    auth: Auth | None = None,
    indices: list[str] | None = None,
    servername: str | None = None,
    timeout: float = 10.0,
) -> CheckResult:
    """``ca check``: never raises for a diagnosis (the result carries it); raises
    ``UsageError`` only for bad input (URL, CA file, credentials)."""
    url = normalize_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ca = str(ca_file) if ca_file is not None else None
    result = CheckResult(True, "ok", "", "", url)
    if parts.scheme == "https":
        if ca is None:
            raise UsageError("ca check needs --ca FILE for an https:// URL", "Pass the CA file to test, e.g. --ca ca.pem (get one with 'remote-reindex ca fetch HOST:PORT -o ca.pem').")
        load_certificates(ca)  # bad file = bad input (exit 2), not a diagnosis
        try:
            probe = probe_tls(host, port, ca, servername=servername, timeout=timeout)
        except (TLSError, ConnectError) as exc:
            presented = getattr(exc, "presented", None) or []
            chain = [summarize(c).to_dict() for c in order_chain(presented)] if presented else []
            return CheckResult.from_error(exc, url, chain=chain)
        result.chain = [summarize(c).to_dict() for c in order_chain(probe.presented)]
        result.anchor = summarize(probe.anchor).to_dict() if probe.anchor is not None else None
        result.warnings += probe.warnings
    elif ca is not None:
        result.warnings.append(f"{url} is plain HTTP: the CA file is not used (remote reindex needs no CA for it)")
    try:
        with ClusterClient(url, ca_file=ca, auth=auth, timeout=timeout, connect_timeout=timeout) as client:
            info = client.info()
            if indices:
                result.privileges, warning = check_privileges(client, indices)
                if warning:
                    result.warnings.append(warning)
                check_indices_exist(client, indices)
    except RemoteReindexError as exc:
        return CheckResult.from_error(exc, url, chain=result.chain, anchor=result.anchor, warnings=result.warnings)
    result.version, result.flavor, result.cluster_name = info.version, info.flavor, info.cluster_name
    trust = ""
    if result.anchor is not None:
        trust = f"; TLS verified with {ca}, anchored at {result.anchor['subject']}"
    result.message = f"{url} is {info.label()} (cluster {info.cluster_name or '?'}){trust}"
    result.fix = f"Next: remote-reindex bundle --ca {ca}" if ca and parts.scheme == "https" else "Next: remote-reindex settings --remote " + f"{host}:{port}"
    return result
