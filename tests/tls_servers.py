"""Real TLS servers on loopback for the step 1-2 tests.

Each server is a ``ThreadingHTTPServer`` whose accepted sockets are wrapped in TLS in the
handler thread (so a client that fails the handshake never blocks the accept loop). The
certificates are made by ``trustme`` (CA -> intermediate -> leaf) or by ``cryptography``
directly where trustme cannot (self-signed leaf). Nothing here mocks TLS or HTTP: every
diagnosis the tests assert comes from a real handshake against one of these.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.timezone.utc)


# -- certificates ---------------------------------------------------------------------


@dataclass
class Pki:
    """Files for one server: what it presents (``server_chain``) and what a user might trust."""

    dir: Path
    key_pem: bytes
    server_chain: list[bytes]  # leaf first, as the server sends it
    root_pem: bytes | None = None
    inter_pem: bytes | None = None
    leaf_pem: bytes = b""

    def write(self, name: str, data: bytes) -> Path:
        p = self.dir / name
        p.write_bytes(data)
        return p

    @property
    def root_file(self) -> Path:
        assert self.root_pem
        return self.write("root.pem", self.root_pem)

    @property
    def inter_file(self) -> Path:
        assert self.inter_pem
        return self.write("inter.pem", self.inter_pem)

    @property
    def leaf_file(self) -> Path:
        return self.write("leaf.pem", self.leaf_pem)


def trustme_pki(
    tmp: Path,
    *names: str,
    send: str = "leaf+inter",
    key_type: trustme.KeyType = trustme.KeyType.ECDSA,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Pki:
    """root -> intermediate -> leaf for ``names`` (default localhost + 127.0.0.1).
    ``send``: ``leaf``, ``leaf+inter`` (the usual server), or ``leaf+inter+root``."""
    names = names or ("localhost", "127.0.0.1")
    root = trustme.CA(key_type=key_type)
    inter = root.create_child_ca(key_type=key_type)
    leaf = inter.issue_cert(*names, key_type=key_type, not_before=not_before, not_after=not_after)
    leaf_pem = leaf.cert_chain_pems[0].bytes()
    inter_pem = inter.cert_pem.bytes()
    root_pem = root.cert_pem.bytes()
    chain = {"leaf": [leaf_pem], "leaf+inter": [leaf_pem, inter_pem], "leaf+inter+root": [leaf_pem, inter_pem, root_pem]}[send]
    return Pki(tmp, leaf.private_key_pem.bytes(), chain, root_pem, inter_pem, leaf_pem)


def self_signed_pki(tmp: Path, *names: str, key: str = "rsa") -> Pki:
    """A self-signed leaf (not a CA), as a quick test cluster might use."""
    names = names or ("localhost", "127.0.0.1")
    private = rsa.generate_private_key(65537, 2048) if key == "rsa" else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed-node")])
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            import ipaddress

            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    leaf_pem = cert.public_bytes(serialization.Encoding.PEM)
    return Pki(tmp, key_pem, [leaf_pem], None, None, leaf_pem)


def s_client_output(pki: Pki) -> bytes:
    """What the guide's ``openssl s_client -showcerts`` writes: text around each certificate."""
    parts = [b"CONNECTED(00000003)\n---\nCertificate chain\n"]
    for i, pem in enumerate(pki.server_chain):
        cert = x509.load_pem_x509_certificate(pem)
        parts.append(f" {i} s:{cert.subject.rfc4514_string()}\n   i:{cert.issuer.rfc4514_string()}\n".encode())
        parts.append(pem)
    parts.append(b"---\nServer certificate\nsubject=...\n---\nSSL handshake has read 2345 bytes\nVerify return code: 20\n---\nDONE\n")
    return b"".join(parts)


# -- servers --------------------------------------------------------------------------


ES_ROOT = {
    "name": "node-1",
    "cluster_name": "private-ca-source",
    "cluster_uuid": "abc123",
    "version": {"number": "7.17.29", "build_flavor": "default", "lucene_version": "8.11.3"},
    "tagline": "You Know, for Search",
}


@dataclass
class Behaviour:
    """How the HTTP layer answers. ``kind``: ``es`` (answers like Elasticsearch),
    ``html`` (a web page, not ES). ``user``/``password``: basic auth required when set.
    ``privileges``: index -> has read, for ``_has_privileges``; ``monitor``: cluster monitor."""

    kind: str = "es"
    user: str | None = None
    password: str | None = None
    api_key: str | None = None
    privileges: dict[str, bool] = field(default_factory=dict)
    monitor: bool = True
    root: dict = field(default_factory=lambda: dict(ES_ROOT))
    requests: list[tuple[str, str]] = field(default_factory=list)
    indices: set[str] | None = None  # the indices that exist (for _count); None: the keys of ``privileges``


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="security"')
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            b = behaviour
            if b.user is None and b.api_key is None:
                return True
            header = self.headers.get("authorization", "")
            if b.user is not None and header == "Basic " + base64.b64encode(f"{b.user}:{b.password}".encode()).decode():
                return True
            return b.api_key is not None and header == f"ApiKey {b.api_key}"

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            behaviour.requests.append((method, path))
            if behaviour.kind == "html":
                self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
                return
            if not self._authorized():
                err = {"error": {"type": "security_exception", "reason": "unable to authenticate user [x] for REST request [/]"}, "status": 401}
                self._send(401, json.dumps(err).encode())
                return
            if path == "/" and method == "GET":
                self._send(200, json.dumps(behaviour.root).encode())
            elif path == "/_security/user/_has_privileges":
                req = json.loads(body or b"{}")
                cluster = {p: behaviour.monitor for p in req.get("cluster", [])}
                index = {}
                for entry in req.get("index", []):
                    for name in entry["names"]:
                        index[name] = {p: behaviour.privileges.get(name, False) for p in entry["privileges"]}
                has_all = all(cluster.values()) and all(all(v.values()) for v in index.values())
                self._send(200, json.dumps({"username": behaviour.user or "api", "has_all_requested": has_all, "cluster": cluster, "index": index, "application": {}}).encode())
            elif path.endswith("/_count") and path[1:-len("/_count")] in (behaviour.privileges if behaviour.indices is None else behaviour.indices):
                # an index that exists; every other name is a 404 below
                self._send(200, json.dumps({"count": 0, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}).encode())
            else:
                self._send(404, json.dumps({"error": {"type": "index_not_found_exception", "reason": "no such index"}, "status": 404}).encode())

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

    return Handler


class _TLSHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, ctx: ssl.SSLContext | None, handler: type[BaseHTTPRequestHandler]) -> None:
        self.tls_context = ctx
        super().__init__(("127.0.0.1", 0), handler)

    def finish_request(self, request, client_address) -> None:
        if self.tls_context is not None:
            request.settimeout(5)
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate: that is what the tests provoke
        try:
            super().finish_request(request, client_address)
        except (ssl.SSLError, OSError):
            pass

    def handle_error(self, request, client_address) -> None:
        pass


class Server:
    """A running loopback server; use as a context manager (always stopped)."""

    def __init__(self, pki: Pki | None, behaviour: Behaviour | None = None, *, tls_max: ssl.TLSVersion | None = None) -> None:
        ctx = None
        if pki is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if tls_max is not None:
                ctx.maximum_version = tls_max
            chain = pki.write("server-chain.pem", b"".join(pki.server_chain))
            key = pki.write("server.key", pki.key_pem)
            ctx.load_cert_chain(chain, key)
        self.behaviour = behaviour or Behaviour()
        self.httpd = _TLSHTTPServer(ctx, _handler(self.behaviour))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.httpd.tls_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def __enter__(self) -> "Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class SilentServer:
    """Accepts TCP connections and never says a word: a handshake that times out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except (socket.timeout, OSError):
                continue

    def __enter__(self) -> "SilentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


def closed_port() -> int:
    """A port nobody listens on (bound then released; nothing else binds it in the test's lifetime)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
