"""``ClusterClient``: the one HTTP layer used for every cluster, every version.

urllib3 with one explicit ``SSLContext`` (see ``tls.context``), a connection pool, gzip
responses, and transport errors mapped once, here, to the typed errors of
``remote_reindex.errors`` with a cause code a user can act on. Versions and flavors are
detected from the server (``GET /``, falling back to ``GET /_nodes/_local`` where ``/`` is
refused, as on ES 8.9+ test distributions) and exposed as capabilities, so callers branch
on what the cluster can do rather than on a client library per major version.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    InsecureRequestWarning,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from ..errors import AuthError, ClusterError, ConnectError, TimeoutError_, TLSError, UsageError
from ..tls.context import make_ssl_context
from .auth import Auth

JsonBody = Mapping[str, Any] | list[Any]


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return orjson.loads(self.data) if self.data else None


@dataclass(frozen=True)
class ClusterInfo:
    """What the server says it is, and what it can therefore do."""

    flavor: str  # "elasticsearch" | "opensearch"
    version: str  # "7.17.29"
    cluster_name: str = ""
    cluster_uuid: str = ""

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        parts = (self.version.split("-")[0].split(".") + ["0", "0", "0"])[:3]
        return tuple(int(p) if p.isdigit() else 0 for p in parts)  # type: ignore[return-value]

    @property
    def major(self) -> int:
        return self.version_tuple[0]

    @property
    def supports_pit(self) -> bool:
        """Point in time + search_after with slices: ES >= 7.10, OpenSearch >= 2.4."""
        if self.flavor == "opensearch":
            return self.version_tuple >= (2, 4, 0)
        return self.version_tuple >= (7, 10, 0)

    @property
    def has_mapping_types(self) -> bool:
        """ES 6 and older still use ``_type``; bulk metadata must carry it there."""
        return self.flavor == "elasticsearch" and self.major < 7

    @property
    def remote_allowlist_key(self) -> str:
        if self.flavor == "opensearch":
            return "reindex.remote.allowlist"
        return "reindex.remote.whitelist"

    def label(self) -> str:
        name = "OpenSearch" if self.flavor == "opensearch" else "Elasticsearch"
        return f"{name} {self.version}"


# OpenSSL verify codes -> (cause code, one-line reason)
_VERIFY_CAUSES = {
    2: "untrusted_issuer",  # unable to get issuer certificate
    18: "untrusted_issuer",  # self-signed leaf not in the CA file
    19: "untrusted_issuer",  # self-signed certificate in chain
    20: "untrusted_issuer",  # unable to get local issuer certificate
    21: "untrusted_issuer",  # unable to verify the first certificate
    9: "not_yet_valid",
    10: "expired",
    62: "hostname_mismatch",
}

_FIXES = {
    "untrusted_issuer": "Give the CA that issued the server's certificate with {ca_flag} (get it with 'remote-reindex ca fetch HOST:PORT -o ca.pem').",
    "hostname_mismatch": "Connect with a host name listed in the certificate's SANs (see 'remote-reindex ca fetch'), or reissue the certificate.",
    "expired": "Renew the server's certificate (or check this machine's clock).",
    "not_yet_valid": "Wait until the certificate's start date, or check this machine's clock.",
    "not_tls": "The port does not speak TLS: use http:// if the server is plain HTTP, or check the port.",
    "tls": "Check that the URL points at the cluster's HTTPS port.",
    "connection_refused": "Check the host and port, and that the cluster is running and reachable from here.",
    "dns": "Check the host name (typo?) and this machine's DNS.",
    "timeout": "Check that the host and port are reachable from here (firewall?), or raise the timeout.",
    "connection_failed": "Check the URL and that the cluster is reachable from here.",
}


def describe_ssl_error(exc: BaseException) -> tuple[str, str]:
    """(cause code, reason) for an ssl error raised during a handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        cause = _VERIFY_CAUSES.get(exc.verify_code, "untrusted_issuer")
        return cause, exc.verify_message or str(exc)
    text = str(exc)
    low = text.lower()
    if "wrong version number" in low or "record layer failure" in low or "http request" in low or "packet length too long" in low:
        return "not_tls", "the server did not answer the TLS handshake (plain HTTP on this port?)"
    if "certificate verify failed" in low:
        if "hostname" in low or "ip address mismatch" in low:
            return "hostname_mismatch", text
        if "expired" in low:
            return "expired", text
        if "not yet valid" in low:
            return "not_yet_valid", text
        return "untrusted_issuer", text
    return "tls", text


def _innermost(exc: BaseException) -> BaseException:
    seen = set()
    while True:
        nxt = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen or nxt is exc:
            return exc
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = nxt


def map_transport_error(exc: BaseException, url: str, ca_flag: str = "--ca") -> ConnectError:
    """One boundary where urllib3/socket/ssl exceptions become our typed errors.
    ``ca_flag``: the option of the command at hand that gives the CA (--ca, --source-ca, --dest-ca)."""
    inner = _innermost(exc)
    where = url
    if isinstance(inner, ssl.SSLError) or isinstance(exc, SSLError):
        cause, reason = describe_ssl_error(inner if isinstance(inner, ssl.SSLError) else exc)
        messages = {
            "untrusted_issuer": f"TLS: the certificate of {where} is not issued by a CA you trust ({reason})",
            "hostname_mismatch": f"TLS: the host name in {where} is not in the server certificate's SANs ({reason})",
            "expired": f"TLS: the server certificate of {where} has expired",
            "not_yet_valid": f"TLS: the server certificate of {where} is not valid yet",
            "not_tls": f"{where} does not speak TLS: {reason}",
            "tls": f"TLS handshake with {where} failed: {reason}",
        }
        return TLSError(messages[cause], _FIXES[cause].replace("{ca_flag}", ca_flag), cause=cause)
    # urllib3 2 makes NewConnectionError (refused, unreachable) a subclass of ConnectTimeoutError.
    timed_out = isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)) and not isinstance(inner, (ConnectionRefusedError, socket.gaierror))
    if isinstance(inner, (ConnectTimeoutError, ReadTimeoutError, socket.timeout, TimeoutError)) or timed_out:
        return TimeoutError_(f"timed out talking to {where}", _FIXES["timeout"], cause="timeout")
    if isinstance(inner, socket.gaierror) or "Name or service not known" in str(inner) or "nodename nor servname" in str(inner) or "Temporary failure in name resolution" in str(inner):
        return ConnectError(f"cannot resolve the host of {where}", _FIXES["dns"], cause="dns")
    if isinstance(inner, ConnectionRefusedError) or "Connection refused" in str(inner):
        return ConnectError(f"connection refused by {where}", _FIXES["connection_refused"], cause="connection_refused")
    if isinstance(inner, (ProtocolError, ConnectionResetError, ConnectionAbortedError)) or "RemoteDisconnected" in repr(inner) or isinstance(exc, ProtocolError):
        hint = "If the server speaks HTTPS, use an https:// URL." if where.startswith("http://") else _FIXES["connection_failed"]
        return ConnectError(f"{where} closed the connection without an HTTP answer", hint, cause="connection_failed")
    return ConnectError(f"cannot connect to {where}: {inner}", _FIXES["connection_failed"], cause="connection_failed")


def _error_reason(body: Any) -> str:
    """The most useful one-line reason from an Elasticsearch error body."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            root = err.get("root_cause") or []
            first = root[0] if root and isinstance(root[0], dict) else err
            typ = first.get("type", "")
            reason = first.get("reason") or err.get("reason") or ""
            return f"{typ}: {reason}" if typ else str(reason)
        if isinstance(err, str):
            return err
        if "message" in body:
            return str(body["message"])
    return str(body)[:300] if body else ""


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``user:password@``): the form every message shows."""
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    return f"{head}{sep}{netloc}{slash}{tail}"


def normalize_url(url: str) -> str:
    raw = url.strip()
    url = redact_url(raw)
    if url != raw:
        raise UsageError(f"the URL {url} has a user name or password in it (not sent, not shown)",
                         "Remove USER:PASSWORD@ from the URL and give them with the command's user and password options (see --help).")
    if "://" not in url:
        raise UsageError(f"URL has no scheme: {url!r}", "Write it as https://HOST:PORT (or http:// for a plain-HTTP cluster).")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"unsupported URL scheme {parts.scheme!r} in {url!r}", "Use https://HOST:PORT or http://HOST:PORT.")
    if not parts.hostname:
        raise UsageError(f"URL has no host: {url!r}", "Write it as https://HOST:PORT.")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"URL has an invalid port: {url!r}", "Write it as https://HOST:PORT with a port from 1 to 65535.") from None
    if port == 0:
        raise UsageError(f"URL has an invalid port: {url!r}", "Write it as https://HOST:PORT with a port from 1 to 65535.")
    return url.rstrip("/")


class ClusterClient:
    """A pooled, thread-safe HTTP client for one cluster.

    ``ca_file``: the only trust for HTTPS (the environment's bundle is ignored then).
    ``verify=False``: no verification; callers print ``tls.context.warn_insecure`` first.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | None = None,
        verify: bool = True,
        auth: Auth | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        maxsize: int = 8,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_flag: str = "--ca",
    ) -> None:
        self.url = normalize_url(url)
        self.ca_flag = ca_flag
        parts = urlsplit(self.url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.path_prefix = parts.path.rstrip("/")
        self.auth = auth or Auth()
        self.ca_file = ca_file
        self.verify = verify
        self._base_headers = {"accept-encoding": "gzip", "user-agent": "remote-reindex", **self.auth.headers(), **(headers or {})}
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=timeout)
        kwargs: dict[str, Any] = {"maxsize": maxsize, "block": True, "retries": False, "timeout": self._timeout}
        if self.scheme == "https":
            kwargs["ssl_context"] = ssl_context or make_ssl_context(ca_file, verify=verify)
            if not verify:
                # the caller printed our one warning (tls.context.warn_insecure); urllib3 would add one per request.
                # Only unverified requests raise this warning, so silencing it hides nothing about verified clients.
                urllib3.disable_warnings(InsecureRequestWarning)
                kwargs["cert_reqs"] = "CERT_NONE"
                kwargs["assert_hostname"] = False
        self._pool = urllib3.connection_from_url(self.url, **kwargs)
        self._info: ClusterInfo | None = None

    def __repr__(self) -> str:
        return f"ClusterClient({self.url!r}, auth={self.auth!r})"

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> "ClusterClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- raw requests ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JsonBody | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Response:
        """Send one request; transport problems raise ``ConnectError`` subclasses.
        Any HTTP status is returned as is: see ``call`` for the raising variant."""
        url = self.path_prefix + (path if path.startswith("/") else "/" + path)
        if params:
            clean = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
            url += "?" + urlencode(clean)
        hdrs = dict(self._base_headers)
        if headers:
            hdrs.update(headers)
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
            hdrs.setdefault("content-type", content_type)
        else:
            data = orjson.dumps(body)
            hdrs.setdefault("content-type", "application/json")
        try:
            resp = self._pool.urlopen(
                method,
                url,
                body=data,
                headers=hdrs,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(connect=self._timeout.connect_timeout, read=timeout) if timeout else self._timeout,
                decode_content=True,
                preload_content=True,
            )
        except (HTTPError, OSError) as exc:  # urllib3 wraps most; raw OSError can escape on reads
            raise map_transport_error(exc if not isinstance(exc, MaxRetryError) else (exc.reason or exc), self.url, self.ca_flag) from None
        return Response(resp.status, resp.headers, resp.data)

    def call(self, method: str, path: str, *, ok: Iterable[int] = (200, 201), **kw: Any) -> Any:
        """Request and parse JSON; a non-OK status raises ``ClusterError``/``AuthError``."""
        resp = self.request(method, path, **kw)
        if resp.status in tuple(ok):
            return resp.json()
        raise self.error_for(resp, f"{method} {path}")

    def error_for(self, resp: Response, what: str) -> ClusterError:
        try:
            body = resp.json()
        except orjson.JSONDecodeError:
            body = resp.data[:300].decode("utf-8", "replace")
        reason = _error_reason(body)
        if resp.status == 401:
            return AuthError(
                f"{self.host_port} refused the credentials (401) for {what}",
                "Check the user name and password (or API key) for this cluster.",
                status=401, body=body, cause="auth_failed",
            )
        if resp.status == 403:
            return AuthError(
                f"{self.host_port} denied {what} (403): {reason}",
                "Grant this user the privileges the operation needs (see the message), or use another user.",
                status=403, body=body, cause="forbidden",
            )
        return ClusterError(f"{what} failed on {self.host_port} ({resp.status}): {reason}", "See the cluster's message above.", status=resp.status, body=body)

    # -- what the server is ---------------------------------------------------------

    def info(self, refresh: bool = False) -> ClusterInfo:
        if self._info is not None and not refresh:
            return self._info
        resp = self.request("GET", "/")
        body: Any = None
        if resp.status == 200:
            try:
                body = resp.json()
            except orjson.JSONDecodeError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("version"), dict) and "number" in body["version"]:
                v = body["version"]
                flavor = "opensearch" if v.get("distribution") == "opensearch" else "elasticsearch"
                self._info = ClusterInfo(flavor, str(v["number"]), str(body.get("cluster_name", "")), str(body.get("cluster_uuid", "")))
                return self._info
            raise _not_elasticsearch(self.url)
        if resp.status in (401, 403):
            raise self.error_for(resp, "GET /")
        # ES 8.9+ test distributions (and some proxies/roles) refuse GET /: ask the node.
        resp2 = self.request("GET", "/_nodes/_local", params={"filter_path": "cluster_name,nodes.*.version,nodes.*.build_flavor,nodes.*.build_type"})
        if resp2.status in (401, 403):
            raise self.error_for(resp2, "GET /_nodes/_local")
        if resp2.status != 200:
            raise _not_elasticsearch(self.url)
        try:
            body = resp2.json()
            node = next(iter(body["nodes"].values()))
            version = str(node["version"])
        except Exception:
            raise _not_elasticsearch(self.url) from None
        # OpenSearch nodes report versions 1.x-3.x and no build_flavor; ES 1.x-2.x are long gone.
        flavor = "opensearch" if "build_flavor" not in node and version.split(".")[0] in ("1", "2", "3") else "elasticsearch"
        self._info = ClusterInfo(flavor, version, str(body.get("cluster_name", "")))
        return self._info


def _not_elasticsearch(url: str) -> ClusterError:
    return ClusterError(
        f"{url} answered, but not as Elasticsearch or OpenSearch",
        "Check the URL: it must be the cluster's HTTP port (usually 9200), not Kibana or a proxy page.",
        cause="not_elasticsearch",
    )
