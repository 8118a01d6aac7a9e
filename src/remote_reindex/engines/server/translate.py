"""The destination's nested ``_reindex`` errors, in plain words, mapped to the guide's steps.

A remote reindex fails on the destination, often several layers deep: the source's 401
arrives as a ``status_exception`` whose reason embeds the source's JSON, a missing CA as a
Java ``PKIX path building failed``, an older destination as ``Error parsing the response``.
``explain_reindex_error`` reads the whole answer (a synchronous error body, or the
``error`` of a finished task) and returns one typed error whose ``message`` says what is
wrong and whose ``fix`` says which step of the guide to redo, with the exact line to add
where there is one. The match is on the server's own texts (as answered by
ES 7.17 and OpenSearch 2.19 nodes, see tests/test_server_engine*.py), checked from the most
specific to the most general.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import orjson

from ...errors import AuthError, ClusterError, ConnectError, CopyError, PreflightError, RemoteReindexError, TLSError, UsageError

REMOTE_BUFFER_BYTES = 104_857_600  # the destination's fixed buffer for one remote response


def _texts(node: Any) -> Iterator[str]:
    """Every ``type`` and ``reason`` string in an error body, outermost first."""
    if isinstance(node, dict):
        for key in ("type", "reason"):
            value = node.get(key)
            if isinstance(value, str):
                yield value
        for key, value in node.items():
            if key not in ("type", "reason", "header"):
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _root_line(body: Any) -> str:
    """The innermost ``type: reason`` (the most concrete cause), shortened."""
    err = body.get("error", body) if isinstance(body, dict) else body
    best = ""
    node = err
    while isinstance(node, dict):
        if node.get("reason"):
            best = f"{node.get('type', '')}: {node['reason']}".strip(": ")
        node = node.get("caused_by")
    if not best and isinstance(err, dict):
        roots = err.get("root_cause") or []
        if roots and isinstance(roots[0], dict):
            best = f"{roots[0].get('type', '')}: {roots[0].get('reason', '')}"
    if not best:
        best = str(err)
    best = " ".join(best.split())
    return best if len(best) <= 300 else best[:297] + "..."


_WRAPPED_STATUS = re.compile(r'"status"\s*:\s*(\d{3})')
_ALLOWLIST = re.compile(r"\[([^\]]+)\] (?:either )?not (?:whitelisted|allowlisted) in (reindex\.remote\.(?:whitelist|allowlist))")
_CHUNK = re.compile(r"entity content is too long \[(\d+)\] for the configured buffer limit \[(\d+)\]")
_INDEX_NOT_FOUND = re.compile(r"no such index \[([^\]]+)\]|\"index\"\s*:\s*\"([^\"]+)\"")


def wrapped_source_status(texts: list[str]) -> int | None:
    """The source's HTTP status when the destination wrapped the source's answer
    (``status_exception`` with ``body={...}``), else None."""
    for t in texts:
        if t.startswith("body=") or "body={" in t:
            m = _WRAPPED_STATUS.search(t)
            if m:
                return int(m.group(1))
    return None


def explain_reindex_error(
    body: Any,
    *,
    status: int = 0,
    host_port: str = "",
    allowlist_key: str = "reindex.remote.whitelist",
    source_label: str = "the source",
    dest_label: str = "the destination",
    indices: tuple[str, ...] | list[str] = (),
) -> RemoteReindexError:
    """One typed error for a failed remote ``_reindex`` (or its probe).

    ``body``: the JSON answer (``{"error": ..., "status": N}``) or a task's ``error`` object.
    ``host_port``/``allowlist_key``: to write the exact settings line the user must add.
    """
    texts = list(_texts(body))
    joined = "\n".join(texts)
    low = joined.lower()
    root = _root_line(body)
    where = host_port or "the source"

    m = _ALLOWLIST.search(joined)
    if m:
        hp, key = m.group(1), m.group(2)
        key = allowlist_key if allowlist_key else key
        return PreflightError(
            f"{dest_label} may not pull from {hp}: it is not in {key} (guide step 4)",
            f"Add the line '{key}: [\"{hp}\"]' to the config of every destination node and restart them "
            f"(the setting is static; the host must match the body's host literally): see 'remote-reindex settings'.",
            cause="not_allowlisted",
        )
    if "unsupported fields in [remote]" in low:
        return UsageError(
            f"{dest_label} refused source.remote: {root}",
            "Keep only host, username, password, headers, socket_timeout, connect_timeout in source.remote; TLS settings go into the destination's reindex.ssl.* (steps 3-4).",
            cause="unsupported_remote_fields",
        )
    if "must be of the form [scheme]://[host]:[port]" in low:
        return UsageError(
            f"{dest_label} refused source.remote.host: {root}",
            "Write the host as https://HOST:PORT (scheme and port are required, e.g. https://source.example.com:9200).",
            cause="malformed_host",
        )
    if "doesn't support slices" in low or "does not support slices" in low:
        return UsageError(
            f"{dest_label} refused slices: reindex from a remote source cannot slice ({root})",
            "Drop 'slices'/'source.slice'; use --partitions K (server engine) or --engine client --parallel N.",
            cause="remote_slices",
        )
    chunk = _CHUNK.search(joined)
    if chunk or "chunk that was too large" in low:
        size_note = ""
        if chunk:
            size_note = f" ({int(chunk.group(1)) / 1e6:.0f} MB in one response; the limit is {int(chunk.group(2)) / 1e6:.0f} MB)"
        return CopyError(
            f"one response of the source was too large for {dest_label}'s 100 MB remote buffer{size_note}",
            "Use a smaller batch: lower source.size in the body (or leave it out: the tool then picks it from the average document size), or drop big fields with source._source.",
            cause="chunk_too_large",
        )
    if "remote is likely not an elasticsearch instance" in low or "required [_type]" in low:
        return PreflightError(
            f"{dest_label} cannot read {source_label}'s answers ({root}): a destination older than the source cannot pull from it",
            "Upgrade the destination to the source's version or newer (the guide's note under step 3), or copy with --engine client.",
            cause="dest_older_than_source",
        )
    if "pkix path building failed" in low or "unable to find valid certification path" in low:
        return TLSError(
            f"{dest_label} does not trust the certificate of {where}: {root}",
            "Steps 1-4: get the CA ('remote-reindex ca fetch'), prove it ('remote-reindex ca check --ca ca.pem'), bundle it "
            "('remote-reindex bundle'), set reindex.ssl.certificate_authorities on every destination node and restart them.",
            cause="dest_untrusted_ca",
        )
    if ("does not match the certificate subject" in low or "doesn't match any of the subject alternative names" in low
            or "no subject alternative" in low or "peer_unverified" in low):
        return TLSError(
            f"{dest_label} trusts the CA, but the host name in {where} is not in the source certificate's SANs: {root}",
            "Use a host name listed in the certificate's SANs in source.remote.host (and in the allowlist); see 'remote-reindex ca fetch'. "
            "reindex.ssl.verification_mode: certificate skips the name check (weaker).",
            cause="dest_hostname_mismatch",
        )
    if "certificateexpired" in low.replace(" ", "") or "certificate expired" in low or "notafter" in low:
        return TLSError(f"{dest_label} refused the source's certificate: it has expired ({root})", "Renew the source's certificate.", cause="dest_cert_expired")
    if "unrecognized ssl message" in low or "plaintext connection" in low:
        return TLSError(
            f"{dest_label} spoke TLS to {where}, which answered in plain HTTP ({root})",
            "Use http:// in source.remote.host if the source is plain HTTP, or check the port.",
            cause="source_not_tls",
        )
    if "ssl" in low and ("handshake" in low or "exception" in low):
        return TLSError(
            f"the TLS handshake from {dest_label} to {where} failed: {root}",
            "Check the destination's reindex.ssl.* settings (steps 3-4) and 'remote-reindex ca check' against the source.",
            cause="dest_tls",
        )

    source_status = wrapped_source_status(texts)
    if source_status == 401:
        return AuthError(
            f"{source_label} refused the credentials in source.remote (401)",
            "Check source.remote.username/password (or api_key/headers): they must log in to the source; test with 'remote-reindex ca check --user'.",
            status=401, body=None, cause="source_auth_failed",
        )
    if source_status == 403:
        return AuthError(
            f"{source_label} denied the user in source.remote (403): {root}",
            "Give that user the 'monitor' cluster privilege and 'read' on the source indices.",
            status=403, body=None, cause="source_forbidden",
        )
    if source_status == 404 or ("index_not_found" in low and source_status is not None):
        names = ", ".join(indices) if indices else "the index"
        return PreflightError(
            f"{source_label} has no index {names} (404 from the source)",
            "Check source.index: list the source's indices with GET _cat/indices on the source.",
            cause="source_index_not_found",
        )
    if "connection refused" in low or "connectexception" in low.replace(" ", "").replace("_", ""):
        return ConnectError(
            f"{dest_label} cannot connect to {where}: connection refused",
            "Check source.remote.host: it must be reachable FROM the destination's nodes (not only from here).",
            cause="dest_cannot_reach_source",
        )
    if "unknownhost" in low.replace(" ", "").replace("_", "") or "name or service not known" in low:
        return ConnectError(
            f"{dest_label} cannot resolve the host of {where}",
            "Use a host name the destination's nodes can resolve in source.remote.host (and in the allowlist).",
            cause="dest_cannot_resolve_source",
        )
    if "timeout" in low or "timed out" in low:
        return ConnectError(
            f"{dest_label} timed out talking to {where}: {root}",
            "Check that the source is reachable from the destination's nodes; raise source.remote.socket_timeout/connect_timeout for slow sources.",
            cause="dest_source_timeout",
        )
    if status in (401, 403):
        return AuthError(
            f"{dest_label} refused this tool's request ({status}): {root}",
            "Check the destination credentials (--dest-user ...); the user needs write on the destination index and the reindex privilege.",
            status=status, body=None, cause="dest_auth_failed" if status == 401 else "dest_forbidden",
        )
    if "index_not_found" in low:
        return PreflightError(f"{dest_label}: {root}", "Check the index names in the body.", cause="index_not_found")
    return ClusterError(f"the remote reindex failed on {dest_label}: {root}", "See the server's message; 'remote-reindex run --plan' shows the checks.", status=status, body=None, cause="reindex_failed")


def error_text(body: Any) -> str:
    """The raw answer as one string (for debugging output; never holds secrets: the
    destination does not echo source.remote.password)."""
    return orjson.dumps(body).decode() if body is not None else ""
