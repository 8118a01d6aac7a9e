"""``reindex.remote.whitelist`` entries: ``host:port``, nothing else.

The destination matches the host of ``source.remote.host`` against these entries
literally (``localhost:9200`` does not match ``127.0.0.1:9200``) and an entry with a
scheme or a path never matches at all, so everything is reduced to ``host:port`` here.
Wildcards (``*.example.com:9200``, ``localhost:*``) are the destination's own syntax and
are kept.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import UsageError

DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Remote:
    host: str  # IPv6 already in brackets
    port: str  # digits or "*"
    notice: str | None = None  # e.g. "no port: using 443, the https default"

    @property
    def entry(self) -> str:
        return f"{self.host}:{self.port}"


def _bracket_fix(text: str) -> str:
    """``::1:9200`` most likely means address ``::1``, port 9200: suggest exactly that."""
    address, _, port = text.rpartition(":")
    if port.isdigit() and 0 < int(port) < 65536:
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            pass
        else:
            return f"Write it as [{address}]:{port} (the address in brackets, then :PORT)."
    return f"Write it as [{text}]:PORT, e.g. [{text}]:9200."


def normalize_remote(value: str) -> Remote:
    """``https://es.example.com:9243/path`` -> ``es.example.com:9243``; errors for what cannot be fixed
    without guessing (a bare host with no port)."""
    raw = str(value).strip()
    if not raw:
        raise UsageError("empty remote", "Give the source as HOST:PORT, e.g. es.internal:9200.")
    scheme = None
    text = raw
    if "://" in raw:
        scheme, text = raw.split("://", 1)
        scheme = scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise UsageError(f"unsupported scheme {scheme!r} in {raw!r}", "Give the source as HOST:PORT or https://HOST:PORT.")
    text = text.split("/", 1)[0].split("?", 1)[0]
    if "@" in text:  # user info must never end up in a settings file
        raise UsageError(f"credentials in the remote {raw.split('@')[-1]!r}", "Give only HOST:PORT; credentials go in the reindex request, not the settings.")
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or not inner:
            raise UsageError(f"invalid IPv6 address in {raw!r}", "Write IPv6 addresses in brackets: [::1]:9200.")
        host, port = f"[{inner}]", rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise UsageError(f"invalid remote {raw!r}", "Write it as [ADDRESS]:PORT.")
    elif text.count(":") > 1:
        raise UsageError(f"IPv6 address without brackets in {raw!r}", _bracket_fix(text))
    else:
        host, _, port = text.partition(":")
    if not host:
        raise UsageError(f"no host in {raw!r}", "Give the source as HOST:PORT, e.g. es.internal:9200.")
    notice = None
    if not port:
        if scheme is None:
            raise UsageError(f"no port in {raw!r}", f"Write it as HOST:PORT, e.g. {host}:9200 (the destination matches host and port).")
        port = str(DEFAULT_PORTS[scheme])
        notice = f"{raw} has no port: using {port}, the {scheme} default (Elasticsearch usually listens on 9200)"
    if port != "*" and (not port.isdigit() or not 0 < int(port) < 65536):
        raise UsageError(f"invalid port {port!r} in {raw!r}", "The port must be a number from 1 to 65535 (or * for any).")
    return Remote(host, port, notice)


def normalize_remotes(values: list[str]) -> list[Remote]:
    """Every remote normalized, duplicates (after normalizing) dropped, order kept."""
    if not values:
        raise UsageError("no remote given", "Pass --remote HOST:PORT (repeat it for several sources).")
    seen: set[str] = set()
    result = []
    for value in values:
        remote = normalize_remote(value)
        if remote.entry not in seen:
            seen.add(remote.entry)
            result.append(remote)
    return result
