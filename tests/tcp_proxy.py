"""A small TCP proxy for fault tests: forwards bytes between a client and a loopback
server (TLS goes through it untouched) and cuts every open connection on command, or
once a number of bytes has flowed back to the client.

Bounded on purpose: loopback targets only, at most ``max_connections`` open at once (more
are refused by closing them), one thread per connection, every socket closed by
``close()``. It knows nothing of HTTP: a cut lands wherever the bytes are, mid-response
included, which is exactly the case an engine must survive (a request the server ran
whose answer never arrived).
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import threading
from typing import Any


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TcpProxy:
    """``TcpProxy(port)`` listens on 127.0.0.1:<free port> and forwards to 127.0.0.1:``port``.

    - ``cut()``: close every connection now (both sides); new ones are accepted as usual.
    - ``cut_after(n, times=1)``: cut every connection once ``n`` more bytes have gone from
      the server to the client, ``times`` times in a row (re-armed after each cut).
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, max_connections: int = 64) -> None:
        if not _is_loopback(target_host):
            raise ValueError(f"the test proxy only forwards to loopback, not {target_host!r}")
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.cuts = 0  # how many times connections were cut
        self.connections = 0  # accepted in total
        self.bytes_to_client = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut_after: int | None = None
        self._cut_times = 0
        self._counted = 0  # bytes towards the armed cut
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)

    # -- control ----------------------------------------------------------------------

    def start(self) -> "TcpProxy":
        self._acceptor.start()
        return self

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def cut(self) -> int:
        """Close every open connection; returns how many were open."""
        with self._lock:
            socks = list(self._open)
            self._open.clear()
            if socks:
                self.cuts += 1
        for s in socks:
            _hard_close(s)
        return len(socks) // 2

    def cut_after(self, nbytes: int, times: int = 1) -> None:
        with self._lock:
            self._cut_after = nbytes
            self._cut_times = times
            self._counted = 0

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open) // 2

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.cut()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)

    # -- forwarding -------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with self._lock:
                full = len(self._open) // 2 >= self.max_connections
            if full:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream), name=f"proxy-{self.port}-conn", daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            client.setblocking(False)
            upstream.setblocking(False)
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            while not self._closed.is_set():
                with self._lock:
                    if client not in self._open:
                        return  # cut
                for key, _ in sel.select(timeout=0.2):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    try:
                        data = src.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    if src is upstream and self._count_and_maybe_cut(len(data)):
                        return
                    try:
                        dst.setblocking(True)
                        dst.sendall(data)
                        dst.setblocking(False)
                    except OSError:
                        return
        finally:
            sel.close()
            with self._lock:
                self._open.discard(client)
                self._open.discard(upstream)
            _hard_close(client)
            _hard_close(upstream)

    def _count_and_maybe_cut(self, n: int) -> bool:
        """Count bytes going to the client; True when this chunk triggered a cut (it is
        then not forwarded: the client sees its response end early)."""
        with self._lock:
            self.bytes_to_client += n
            if self._cut_after is None:
                return False
            self._counted += n
            if self._counted < self._cut_after:
                return False
            self._cut_times -= 1
            self._counted = 0
            if self._cut_times <= 0:
                self._cut_after = None
        self.cut()
        return True


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
