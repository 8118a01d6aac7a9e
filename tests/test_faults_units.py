"""Fast tests of the pure parts of fault handling: which errors are transient, how an
index block reads, and the test proxy itself (on a loopback socket server)."""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import orjson
import pytest

from remote_reindex.engines.client.sink import _block_in, _request_block, block_error
from remote_reindex.engines.client.bulk import classify_items
from remote_reindex.engines.client.source import is_transient
from remote_reindex.errors import ClusterError, ConnectError, TimeoutError_, TLSError

from tcp_proxy import TcpProxy


@pytest.mark.parametrize("exc, transient", [
    (ConnectError("refused", cause="connection_refused"), True),
    (ConnectError("closed", cause="connection_failed"), True),
    (TimeoutError_("slow"), True),
    (TLSError("EOF in the middle of a record", cause="tls"), True),  # a cut TLS stream
    (TLSError("untrusted", cause="untrusted_issuer"), False),
    (TLSError("name", cause="hostname_mismatch"), False),
    (TLSError("plain http", cause="not_tls"), False),
    (ConnectError("no such host", cause="dns"), False),
    (ClusterError("busy", status=429), False),  # statuses are decided by the callers
])
def test_is_transient(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


WRITE_BLOCK = {"type": "cluster_block_exception", "reason": "index [books] blocked by: [FORBIDDEN/8/index write (api)];"}


def test_write_block_reads_as_one_line_and_a_fix() -> None:
    e = block_error("books", WRITE_BLOCK)
    assert (e.message, e.fix, e.cause, e.status) == (
        "the destination index books is write-blocked",
        'Lift it with PUT books/_settings {"index.blocks.write": false}, then run again.',
        "write_blocked", 403,
    )


def test_other_blocks() -> None:
    flood = block_error("books", {"type": "cluster_block_exception", "reason": "index [books] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];"})
    assert flood.message.startswith("the destination index books is read-only: a node's disk passed the flood-stage watermark")
    assert "index.blocks.read_only_allow_delete" in flood.fix
    ro = block_error("books", {"type": "cluster_block_exception", "reason": "index [books] blocked by: [FORBIDDEN/5/index read-only (api)];"})
    assert ro.message == "the destination index books is read-only (index.blocks.read_only)"
    other = block_error("books", {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered];"})
    assert other.message == "the destination refuses writes to books: blocked by: [SERVICE_UNAVAILABLE/1/state not recovered];"


def test_block_found_in_items_and_in_a_whole_request() -> None:
    items = {"items": [{"index": {"status": 201, "result": "created"}}, {"index": {"status": 403, "error": WRITE_BLOCK}}]}
    outcome = classify_items(items, 2)
    assert _block_in(outcome) == WRITE_BLOCK
    assert _block_in(classify_items({"items": [{"index": {"status": 400, "error": {"type": "mapper_parsing_exception"}}}]}, 1)) is None
    whole = orjson.dumps({"error": {"root_cause": [WRITE_BLOCK], "type": "cluster_block_exception", "reason": WRITE_BLOCK["reason"]}, "status": 403})
    assert _request_block(whole)["type"] == "cluster_block_exception"
    assert _request_block(b'{"error": {"type": "illegal_argument_exception"}}') is None
    assert _request_block(b"not json") is None


# -- the proxy ----------------------------------------------------------------------------

@pytest.fixture
def streaming_server() -> Iterator[int]:
    """Loopback server: answers every connection with 200,000 bytes, then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with conn:
                conn.recv(16)
                try:
                    conn.sendall(b"x" * 200_000)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    t.join(5)


def read_all(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"go")
        chunks = []
        while True:
            try:
                data = c.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_proxy_forwards_then_cuts_mid_answer(streaming_server: int) -> None:
    with TcpProxy(streaming_server) as proxy:
        assert len(read_all(proxy.port)) == 200_000
        proxy.cut_after(50_000, times=1)
        got = len(read_all(proxy.port))
        assert got < 200_000  # the answer ended early: a cut mid-response
        assert proxy.cuts == 1
        assert len(read_all(proxy.port)) == 200_000  # disarmed after one cut
        assert proxy.connections == 3


def test_proxy_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError):
        TcpProxy(9200, "10.0.0.1")


def test_an_unreachable_destination_stops_the_job_at_the_deadline_without_dead_letters(tmp_path) -> None:
    """A real refused connection (a loopback port nobody listens on): the batch is retried
    until the outage deadline, then the job stops with one clear line; the documents are
    fine, so none is dead-lettered."""
    import time

    from remote_reindex.cluster import ClusterClient
    from remote_reindex.engines.client.bulk import BatchBuilder, WriteSpec
    from remote_reindex.engines.client.docs import Doc
    from remote_reindex.engines.client.sink import AdaptiveLimit, BulkSink, DeadLetter

    with socket.socket() as s:  # a port that was free a moment ago: refused now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = WriteSpec("books")
    builder = BatchBuilder(spec, 1 << 20, 10)
    builder.add(Doc("1", b'{"a":1}'))
    batch = builder.flush()
    dead = DeadLetter(tmp_path / "dead.ndjson")
    with ClusterClient(f"http://127.0.0.1:{port}", connect_timeout=1) as dest:
        sink = BulkSink(dest, spec, src_index="books", limit=AdaptiveLimit(2), dead_letter=dead, outage_deadline=1.5)
        started = time.monotonic()
        with pytest.raises(ConnectError) as info:
            sink.write(batch)
    assert 1.5 <= time.monotonic() - started < 15
    assert info.value.message == f"the destination stayed unreachable for 2 s while writing books: connection refused by http://127.0.0.1:{port}"
    assert info.value.cause == "connection_refused"
    assert not (tmp_path / "dead.ndjson").exists()
