"""Parse and check the guide's ``POST _reindex`` body (with ``source.remote``).

Both engines start from the same body, so a user can try the server engine, then the
client engine, with one file. Everything a user can get wrong in the body is caught here,
before any request: the server would otherwise fail late and cryptically
(``Unsupported fields in [remote]``), and the client engine would fail mid-copy.

``${VAR}`` anywhere in the body is replaced by the environment variable, so secrets can
stay out of the file. The parsed body never shows a secret in its ``repr``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

import orjson

from ..errors import UsageError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_TOP_KEYS = {"source", "dest", "conflicts", "max_docs", "size", "script"}
_SOURCE_KEYS = {"remote", "index", "query", "_source", "size", "sort", "slice"}
_REMOTE_KEYS = {"host", "username", "password", "headers", "api_key", "socket_timeout", "connect_timeout"}
_DEST_KEYS = {"index", "op_type", "pipeline", "version_type", "routing"}
# What people put in source.remote hoping to configure TLS; the server answers
# "Unsupported fields in [remote]". TLS for remote reindex lives in the destination's
# node settings (the guide's step 4).
_TLS_KEYS = {"ssl", "tls", "ca", "cacert", "ca_file", "ca_certs", "certificate_authorities", "verification_mode", "verify_certs", "certificate", "key", "truststore", "insecure"}

FIX_BODY = "Fix the body file; see 'remote-reindex run --help' for the supported fields."


@dataclass(frozen=True)
class RemoteSource:
    """``source.remote``: where the source is and how to log in. Secrets are hidden from repr."""

    url: str  # scheme://host:port[/prefix], as given
    scheme: str
    host: str
    port: int
    path_prefix: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    socket_timeout: str | None = None
    connect_timeout: str | None = None

    @property
    def host_port(self) -> str:
        """The exact ``host:port`` the destination's whitelist must contain."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ReindexBody:
    remote: RemoteSource | None
    indices: tuple[str, ...]
    dest_index: str | None
    query: Mapping[str, Any] | None = None
    source_filter: Any = None  # source._source: list, string or {includes, excludes}
    size: int | None = None  # source.size: batch size of each read
    sort: Any = None
    op_type: str = "index"
    pipeline: str | None = None
    version_type: str | None = None
    routing: str | None = None
    conflicts: str = "abort"
    max_docs: int | None = None
    script: Any = None  # passed through to the destination's _reindex (server engine only; the client engine refuses it)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # env-expanded; holds secrets

    @property
    def is_remote(self) -> bool:
        return self.remote is not None


def _expand_env(text: str, origin: str) -> str:
    def repl(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in os.environ:
            raise UsageError(f"{origin} refers to ${{{var}}}, but the environment variable {var} is not set", f"export {var}=... before running.")
        # the value lands inside a JSON string: escape it as JSON would
        return orjson.dumps(os.environ[var]).decode()[1:-1]

    return _ENV_REF.sub(repl, text)


def _unknown(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise UsageError(f"unsupported field{'s' if len(extra) > 1 else ''} in {where}: {', '.join(extra)}", f"Supported in {where}: {', '.join(sorted(allowed))}.")


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{where} must be a positive whole number, got {value!r}", FIX_BODY)
    return value


def parse_remote_host(host: Any) -> tuple[str, str, int, str]:
    """``https://host:port[/prefix]`` -> (scheme, host, port, prefix). The port is
    required, as the destination requires it."""
    if not isinstance(host, str) or not host:
        raise UsageError("source.remote.host must be a string like https://HOST:PORT", FIX_BODY)
    netloc = host.partition("://")[2].partition("/")[0] if "://" in host else host.partition("/")[0]
    if "@" in netloc:  # userinfo: never shown, never sent
        shown = host.replace(netloc, netloc.rsplit("@", 1)[1], 1)
        raise UsageError(f"source.remote.host {shown!r} has a user name or password in it (not shown)",
                         "Remove USER:PASSWORD@ from source.remote.host and put them in source.remote.username and source.remote.password (e.g. \"${SRC_PASSWORD}\").")
    if "://" not in host:
        raise UsageError(f"source.remote.host {host!r} has no scheme", f"Write it as https://{host} (the destination needs scheme, host and port).")
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"source.remote.host {host!r} has scheme {parts.scheme!r}", "Use https:// (or http:// for a plain-HTTP source).")
    if not parts.hostname:
        raise UsageError(f"source.remote.host {host!r} has no host name", "Write it as https://HOST:PORT.")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        raise UsageError(f"source.remote.host {host!r} has no port", f"Add the port, e.g. {parts.scheme}://{parts.hostname}:9200 (the destination requires it).")
    if port < 1:
        raise UsageError(f"source.remote.host {host!r} has an invalid port", "Write it as https://HOST:PORT with a port from 1 to 65535.")
    if parts.query or parts.fragment:
        raise UsageError(f"source.remote.host {host!r} has a query or fragment", "Write it as https://HOST:PORT[/path-prefix].")
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def parse_body(text: str | bytes, origin: str = "the body") -> ReindexBody:
    """Parse a ``_reindex`` body (JSON text) into a checked ``ReindexBody``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{origin} is not UTF-8 text", "Give the _reindex body as a JSON file.") from None
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark (Windows editors write one) is not content
    if not text.strip():
        raise UsageError(f"{origin} is empty", "Give the _reindex body as JSON, e.g. {\"source\": {\"remote\": {...}, \"index\": \"...\"}, \"dest\": {\"index\": \"...\"}}.")
    expanded = _expand_env(text, origin)
    try:
        raw = orjson.loads(expanded)
    except orjson.JSONDecodeError as exc:
        # The position, not the parser's wording (it changes between orjson versions).
        raise UsageError(f"{origin} is not valid JSON (line {exc.lineno}, column {exc.colno})", "Check the JSON syntax there (quotes, commas, braces).") from None
    return body_from_dict(raw, origin)


def body_from_dict(raw: Any, origin: str = "the body") -> ReindexBody:
    if not isinstance(raw, dict):
        raise UsageError(f"{origin} must be a JSON object", "Give the _reindex body: {\"source\": {...}, \"dest\": {...}}.")
    script = raw.get("script")
    if "script" in raw and not (isinstance(script, str) and script.strip() or isinstance(script, dict) and script):
        raise UsageError(f"'script' must be a script object like {{\"source\": \"...\", \"lang\": \"painless\"}} (or a string), got {script!r}", FIX_BODY)
    _unknown(set(raw), _TOP_KEYS, "the body")
    source = raw.get("source")
    if not isinstance(source, dict):
        raise UsageError(f"{origin} has no 'source' object", "Add \"source\": {\"remote\": {\"host\": \"https://HOST:PORT\", ...}, \"index\": \"NAME\"}.")
    if "slice" in source:
        raise UsageError("'source.slice' cannot be used with a remote source (remote reindex cannot slice)", "Use --parallel N with --engine client, or --partitions K with --engine server.")
    _unknown(set(source), _SOURCE_KEYS, "source")
    dest = raw.get("dest")
    if not isinstance(dest, dict):
        raise UsageError(f"{origin} has no 'dest' object", "Add \"dest\": {\"index\": \"NAME\"}.")
    _unknown(set(dest), _DEST_KEYS, "dest")

    remote = None
    if "remote" in source:
        remote = _parse_remote(source["remote"])

    index = source.get("index")
    if isinstance(index, str):
        indices = tuple(i.strip() for i in index.split(",") if i.strip())
    elif isinstance(index, list) and all(isinstance(i, str) and i for i in index):
        indices = tuple(index)
    else:
        indices = ()
    if not indices:
        raise UsageError("source.index is missing or empty", "Set source.index to an index name, a list of names, or a pattern like \"logs-*\".")

    dest_index = dest.get("index")
    if dest_index is not None and (not isinstance(dest_index, str) or not dest_index):
        raise UsageError("dest.index must be a non-empty string", FIX_BODY)
    if dest_index is None and len(indices) == 1 and not _is_pattern(indices[0]):
        raise UsageError("dest.index is missing", "Add \"dest\": {\"index\": \"NAME\"} (with several source indices it may be left out: each keeps its name).")

    query = source.get("query")
    if query is not None and not isinstance(query, dict):
        raise UsageError("source.query must be a JSON object (a query DSL clause)", FIX_BODY)

    op_type = dest.get("op_type", "index")
    if op_type not in ("index", "create"):
        raise UsageError(f"dest.op_type must be 'index' or 'create', got {op_type!r}", FIX_BODY)
    conflicts = raw.get("conflicts", "abort")
    if conflicts not in ("abort", "proceed"):
        raise UsageError(f"conflicts must be 'abort' or 'proceed', got {conflicts!r}", FIX_BODY)
    version_type = dest.get("version_type")
    if version_type is not None and version_type not in ("internal", "external", "external_gt", "external_gte"):
        raise UsageError(f"dest.version_type {version_type!r} is not one of internal, external, external_gt, external_gte", FIX_BODY)

    size = _positive_int(source["size"], "source.size") if "size" in source else None
    max_docs = None
    if "max_docs" in raw:
        max_docs = _positive_int(raw["max_docs"], "max_docs")
    if "size" in raw:  # the old name of max_docs
        if max_docs is not None:
            raise UsageError("both 'size' and 'max_docs' are set at the top level", "Keep only max_docs (top-level 'size' is its deprecated name).")
        max_docs = _positive_int(raw["size"], "size")

    return ReindexBody(
        remote=remote,
        indices=indices,
        dest_index=dest_index,
        query=query,
        source_filter=source.get("_source"),
        size=size,
        sort=source.get("sort"),
        op_type=op_type,
        pipeline=dest.get("pipeline"),
        version_type=version_type,
        routing=dest.get("routing"),
        conflicts=conflicts,
        max_docs=max_docs,
        script=script,
        raw=raw,
    )


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?") or name.startswith("-")


def _parse_remote(remote: Any) -> RemoteSource:
    if not isinstance(remote, dict):
        raise UsageError("source.remote must be a JSON object", "Write \"remote\": {\"host\": \"https://HOST:PORT\", \"username\": \"...\", \"password\": \"${SOURCE_PASSWORD}\"}.")
    tls = sorted(k for k in remote if k.lower() in _TLS_KEYS or k.lower().startswith("ssl"))
    if tls:
        raise UsageError(
            f"TLS settings do not belong in source.remote: {', '.join(tls)} (the destination answers 'Unsupported fields in [remote]')",
            "Remove them: the CA goes into the destination's reindex.ssl.* settings (steps 3-4: 'remote-reindex bundle', 'remote-reindex settings'); --source-ca for --engine client.",
        )
    _unknown(set(remote), _REMOTE_KEYS, "source.remote")
    scheme, host, port, prefix = parse_remote_host(remote.get("host"))
    username = remote.get("username")
    password = remote.get("password")
    if username is not None and not isinstance(username, str):
        raise UsageError("source.remote.username must be a string", FIX_BODY)
    if password is not None and not isinstance(password, str):
        raise UsageError("source.remote.password must be a string", FIX_BODY)
    if username and not password:
        raise UsageError("source.remote.username is set without a password", "Add \"password\": \"${SOURCE_PASSWORD}\" and export SOURCE_PASSWORD.")
    if password and not username:
        raise UsageError("source.remote.password is set without a username", "Add \"username\": \"...\".")
    api_key = remote.get("api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise UsageError("source.remote.api_key must be a non-empty string (the base64 'id:key' value)", FIX_BODY)
    if api_key and username:
        raise UsageError("source.remote has both username and api_key", "Keep one way to log in to the source.")
    headers = remote.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise UsageError("source.remote.headers must be an object of string values", FIX_BODY)
    for key in ("socket_timeout", "connect_timeout"):
        value = remote.get(key)
        if value is not None and not (isinstance(value, str) and re.fullmatch(r"\d+(ms|s|m|h)?", value)):
            raise UsageError(f"source.remote.{key} must be a time value like \"30s\", got {value!r}", FIX_BODY)
    return RemoteSource(
        url=remote["host"].rstrip("/"),
        scheme=scheme,
        host=host,
        port=port,
        path_prefix=prefix,
        username=username,
        password=password,
        api_key=api_key,
        headers=dict(headers),
        socket_timeout=remote.get("socket_timeout"),
        connect_timeout=remote.get("connect_timeout"),
    )


def time_value_seconds(value: str | None, default: float) -> float:
    """``"30s"`` -> 30.0; ES time units as used by socket_timeout/connect_timeout."""
    if not value:
        return default
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    if not m:
        return default
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600, None: n / 1000}[m.group(2)]
