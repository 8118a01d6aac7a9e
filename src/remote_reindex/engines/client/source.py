"""Reading one index from the source in slices: point in time + ``search_after`` where the
source has it, sliced scroll otherwise.

Why PIT first: a scroll keeps search contexts pinned per slice and cannot be retried
safely (a repeated ``_search/scroll`` may skip a page); a PIT search is a plain search
with a position, so a retry after a 429 or a timeout reads the same page again, and the
position (the last hit's sort values) is a cursor that can be saved.

Sort order per flavor:
- Elasticsearch (7.12+) sorts on ``_shard_doc``, unique across the shards of a PIT.
- OpenSearch has no ``_shard_doc``; ``_doc`` is unique only within one shard, so a PIT
  read there uses at least one slice per shard (a slice never spans two shards when
  ``max >= shards``), and data streams (several indices) use scroll.

Hot path: responses are decoded with msgspec into typed structs, each ``_source`` kept as
the raw bytes the source sent, which go into the bulk body as they are (``pages.py``; see
bench/README.md for the measurement). Searches carry no ``filter_path``: with a filter,
Elasticsearch parses every ``_source`` and writes it again instead of copying its stored
bytes, which costs the source CPU and changes documents (``1.00000000000000000001``
becomes ``1.0``, ``1e400`` the string ``"Infinity"``; verified on 7.17). The unused fields
of each hit (``_type``, ``_score``) are skipped by the decoder.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import quote


from ...cluster import ClusterClient, ClusterInfo
from ...errors import ClusterError, ConnectError, TimeoutError_, TLSError, UsageError
from ...plan.doc_size import COMPRESSION_FACTOR
from .docs import Doc, Page, SliceCursor
from .pages import SearchPage, decode_search

RETRYABLE_SEARCH_STATUSES = frozenset({429, 502, 503, 504})
# Transport causes worth retrying inside a run: the other side restarted, was cut off, or
# answered too slowly. DNS and certificate problems are not (they do not heal by waiting).
TRANSIENT_CAUSES = frozenset({"connection_failed", "connection_refused", "timeout"})


def is_transient(exc: BaseException) -> bool:
    """A connection problem met during a run that a retry may cure.

    A connection cut in the middle of a TLS stream surfaces as a TLS error of the generic
    cause ``tls`` (an unexpected EOF), not as a certificate problem: it is transient here,
    where the handshake already succeeded before the run started. Verification failures
    (untrusted issuer, hostname, dates, not TLS) never are.
    """
    if isinstance(exc, TLSError):
        return exc.cause == "tls"
    if isinstance(exc, TimeoutError_):
        return True
    return isinstance(exc, ConnectError) and exc.cause in TRANSIENT_CAUSES


class ScrollLost(Exception):
    """A scroll continuation failed in a way that may have consumed a page on the server
    (answer lost, shard failure, context gone): the slice restarts with a fresh scroll."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _ReadPrefix:
    """What one scroll slice has handed out so far: a count and a digest of the
    (index, _id) sequence, to prove a fresh scroll repeats the same prefix before
    skipping it."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = hashlib.blake2b(digest_size=16)

    def reset(self) -> None:
        """Forget the prefix: the slice will be handed out again from its start."""
        self.__init__()  # type: ignore[misc]

    def add(self, docs: list[Doc]) -> None:
        for d in docs:
            self.digest.update(f"{d.index}\x00{d.id}\x00".encode())
        self.count += len(docs)


def pit_usable(info: ClusterInfo) -> bool:
    """PIT with ``search_after`` and slices, with a sort we can page on safely."""
    if info.flavor == "opensearch":
        return info.supports_pit
    # _shard_doc arrived in 7.12 and sliced PITs in 7.15 (before that PIT could not be sliced)
    return info.version_tuple >= (7, 15, 0)


DEFAULT_PAGE_SIZE = 1000  # documents per search page when their size is unknown
PAGE_TARGET_BYTES = 4 * 1024 * 1024  # one search page: about this much JSON
MAX_PAGE_SIZE = 3000
MIN_PAGE_SIZE = 10


def choose_page_size(avg_stored_bytes: int | None) -> tuple[int, str]:
    """Pure: documents per search page from the index's average stored document size, so
    that a page is about ``PAGE_TARGET_BYTES`` of JSON whatever the documents weigh.

    Measured on the sandbox (200,000 documents of ~1.1 KB JSON, 230 bytes stored, the
    source, the destination and this process on 2 cores): pages of 2,500 or 5,000 copied
    ~10-15 % faster than pages of 1,000 (the source spends less per document on fewer,
    larger searches), at +6 MB and +25 MB peak RSS. MAX_PAGE_SIZE keeps most of the gain
    for little memory; the byte target keeps pages of large documents small (1,000 pages
    of 1 MB documents would be a 1 GB response)."""
    if not avg_stored_bytes:
        return DEFAULT_PAGE_SIZE, "document size unknown"
    est = max(1, int(avg_stored_bytes * COMPRESSION_FACTOR))
    size = max(MIN_PAGE_SIZE, min(MAX_PAGE_SIZE, PAGE_TARGET_BYTES // est))
    return size, f"documents of about {avg_stored_bytes:,} bytes on disk (compressed; ~{est:,} bytes of JSON assumed)"


def choose_read_mode(requested: str, info: ClusterInfo, *, data_stream: bool = False) -> str:
    """``pit`` or ``scroll`` for ``--read-mode auto|pit|scroll``."""
    possible = pit_usable(info) and not (data_stream and info.flavor == "opensearch")
    if requested == "pit":
        if not info.supports_pit:
            raise UsageError(
                f"--read-mode pit: the source ({info.label()}) has no point in time API (Elasticsearch 7.10+ / OpenSearch 2.4+)",
                "Use --read-mode scroll (or auto).",
            )
        if not possible:
            raise UsageError(
                f"--read-mode pit: the source ({info.label()}) cannot page a sliced point in time safely here",
                "Use --read-mode scroll (or auto).",
            )
        return "pit"
    if requested == "scroll":
        return "scroll"
    return "pit" if possible else "scroll"


def slice_count(requested: int | None, shards: int, mode: str, info: ClusterInfo) -> int:
    """Slices to read at once: ``--parallel`` or the shard count; on OpenSearch PIT at
    least one per shard (see the module doc)."""
    n = max(1, requested or shards or 1)
    if mode == "pit" and info.flavor == "opensearch" and shards > 1:
        n = max(n, shards)
        n = ((n + shards - 1) // shards) * shards  # a multiple: every slice inside one shard
    return n


@dataclass
class ReadStats:
    retries: int = 0


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 20.0) -> float:
    """Exponential backoff with jitter (half fixed, half random) so retrying threads spread out."""
    d = min(cap, base * (2 ** attempt))
    return d / 2 + random.uniform(0, d / 2)


class IndexReader:
    """Reads one source index (or data stream / alias) in ``slices`` slices."""

    def __init__(
        self,
        client: ClusterClient,
        info: ClusterInfo,
        index: str,
        *,
        mode: str,
        slices: int,
        page_size: int,
        keep_alive: str = "5m",
        query: Mapping[str, Any] | None = None,
        source_filter: Any = None,
        want_version: bool = False,
        max_retries: int = 8,
        stop: threading.Event | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.info = info
        self.index = index
        self.mode = mode
        self.slices = max(1, slices)
        self.page_size = page_size
        self.keep_alive = keep_alive
        self.query = query
        self.source_filter = source_filter
        self.want_version = want_version
        self.max_retries = max_retries
        self.stop = stop or threading.Event()
        self.on_retry = on_retry or (lambda: None)
        self.pit_id: str | None = None
        self._scroll_ids: dict[int, str] = {}
        self._lock = threading.Lock()
        self._os = info.flavor == "opensearch"

    # -- lifecycle ------------------------------------------------------------------

    def open(self) -> list[SliceCursor]:
        """Open the PIT (one per index, shared by its slices); return a fresh cursor per slice."""
        if self.mode == "pit":
            path = f"/{quote(self.index, safe=',*-_.+')}/" + ("_search/point_in_time" if self._os else "_pit")
            data = self._with_retries(lambda: self.client.call("POST", path, params={"keep_alive": self.keep_alive, "expand_wildcards": "all"} if not self._os else {"keep_alive": self.keep_alive}), f"open a point in time on {self.index}")
            self.pit_id = data.get("pit_id") if self._os else data.get("id")
        return [SliceCursor(self.index, i, self.slices, self.mode, context_id=self.pit_id) for i in range(self.slices)]

    def close(self) -> None:
        """Release the PIT / scroll contexts on the source (best effort: they expire anyway)."""
        try:
            if self.pit_id:
                if self._os:
                    self.client.request("DELETE", "/_search/point_in_time", body={"pit_id": [self.pit_id]})
                else:
                    self.client.request("DELETE", "/_pit", body={"id": self.pit_id})
                self.pit_id = None
            with self._lock:
                ids = list(self._scroll_ids.values())
                self._scroll_ids.clear()
            if ids:
                self.client.request("DELETE", "/_search/scroll", body={"scroll_id": ids})
        except ConnectError:
            pass

    # -- reading --------------------------------------------------------------------

    def pages(self, cursor: SliceCursor) -> Iterator[Page]:
        """Pages of this slice from ``cursor`` on (PIT resumes after ``cursor.search_after``)."""
        if self.mode == "pit":
            yield from self._pit_pages(cursor)
        else:
            yield from self._scroll_pages(cursor)

    def _base_body(self, cursor: SliceCursor) -> dict[str, Any]:
        body: dict[str, Any] = {"size": self.page_size}
        if self.query:
            body["query"] = self.query
        if self.source_filter is not None:
            body["_source"] = self.source_filter
        if self.want_version:
            body["version"] = True
        if cursor.slice_max > 1:
            body["slice"] = {"id": cursor.slice_id, "max": cursor.slice_max}
        return body

    def _pit_pages(self, cursor: SliceCursor) -> Iterator[Page]:
        body = self._base_body(cursor)
        body["sort"] = ["_doc"] if self._os else [{"_shard_doc": "asc"}]
        body["track_total_hits"] = False
        search_after = cursor.search_after
        pit_id = cursor.context_id or self.pit_id
        while not self.stop.is_set():
            body["pit"] = {"id": pit_id, "keep_alive": self.keep_alive}
            if search_after is not None:
                body["search_after"] = search_after
            data = self._with_retries(lambda: self._search("POST", "/_search", body), f"read {self.index}")
            pit_id = data.get("pit_id") or pit_id
            with self._lock:
                self.pit_id = pit_id
            page = Page(self._docs(data), pit_id)
            if not page.docs:
                return
            search_after = page.docs[-1].sort
            yield page
            if len(page.docs) < self.page_size:
                return

    def _scroll_pages(self, cursor: SliceCursor) -> Iterator[Page]:
        """Pages of a scroll slice, surviving lost answers.

        A scroll continuation consumes its page on the server: if the answer is lost (the
        connection was cut, it timed out, a shard failed), sending the same request again
        would silently skip that page. So only an outright 429 (rejected before running)
        is retried in place; any other failure restarts the slice with a fresh scroll,
        which skips the documents already handed out after checking that it returns the
        same (index, _id) sequence for them. If it does not (segments merged meanwhile),
        the slice is read again from its start: writes are by _id, so that re-writes the
        same documents rather than losing any.
        """
        handed_out = _ReadPrefix()
        attempt = 0
        while True:
            try:
                for page in self._scroll_from_start(cursor, handed_out):
                    handed_out.add(page.docs)
                    attempt = 0  # progress was made: a later failure gets a fresh retry budget
                    yield page
                return
            except ScrollLost as lost:
                if self.stop.is_set():
                    return
                if attempt >= self.max_retries:
                    raise lost.error from None
                self._forget_scroll(cursor.slice_id)
                self.on_retry()
                time.sleep(backoff_delay(attempt))
                attempt += 1

    def _scroll_from_start(self, cursor: SliceCursor, handed_out: "_ReadPrefix") -> Iterator[Page]:
        body = self._base_body(cursor)
        body["sort"] = ["_doc"]
        path = f"/{quote(self.index, safe=',*-_.+')}/_search"
        skip = handed_out.count
        check = hashlib.blake2b(digest_size=16) if skip else None
        seen = 0
        # Opening a scroll consumes nothing: safe to retry like any search.
        data = self._with_retries(lambda: self._search("POST", path, body, {"scroll": self.keep_alive, "expand_wildcards": "all"}), f"read {self.index}")
        while True:
            scroll_id = data.get("_scroll_id")
            if scroll_id:
                with self._lock:
                    self._scroll_ids[cursor.slice_id] = scroll_id
            docs = self._docs(data)
            if not docs:
                if check is not None and seen < skip:
                    # Shorter than what was handed out: the source changed. Hand out the whole slice again.
                    handed_out.reset()
                    raise ScrollLost(ClusterError(f"the restarted scroll of {self.index} returned fewer documents", "", status=503))
                return
            if check is not None:
                take = min(len(docs), skip - seen)
                for d in docs[:take]:
                    check.update(f"{d.index}\x00{d.id}\x00".encode())
                seen += take
                docs = docs[take:]
                if seen >= skip:
                    if check.digest() != handed_out.digest.digest():
                        # Not the same prefix: forget it and hand out the whole slice again.
                        handed_out.reset()
                        raise ScrollLost(ClusterError(f"the restarted scroll of {self.index} returned documents in another order", "", status=503))
                    check = None
            if docs:
                yield Page(docs, scroll_id)
            if self.stop.is_set():
                return
            try:
                data = self._with_retries(
                    lambda: self._search("POST", "/_search/scroll", {"scroll": self.keep_alive, "scroll_id": scroll_id}),
                    f"read {self.index}", in_place=_scroll_retry_in_place,
                )
            except (ClusterError, ConnectError) as exc:
                if isinstance(exc, TLSError) and not is_transient(exc):
                    raise
                if is_transient(exc) or _scroll_restartable(exc):
                    raise ScrollLost(exc) from None
                raise

    def _forget_scroll(self, slice_id: int) -> None:
        """Release a slice's broken scroll context (best effort: it expires anyway)."""
        with self._lock:
            old = self._scroll_ids.pop(slice_id, None)
        if old:
            try:
                self.client.request("DELETE", "/_search/scroll", body={"scroll_id": [old]})
            except ConnectError:
                pass

    def _search(self, method: str, path: str, body: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> SearchPage:
        # no filter_path: it would make the source re-serialise every _source (see the module doc)
        resp = self.client.request(method, path, body=body, params=params)
        if resp.status != 200:
            raise self.client.error_for(resp, f"search {self.index}")
        data = decode_search(resp.data)  # the hits' _source stay raw bytes (see pages.py)
        shards = data.get("_shards") or {}
        if shards.get("failed"):
            # Partial results would silently lose documents: treat as an error (retried).
            reason = ""
            failures = shards.get("failures") or []
            if failures:
                r = failures[0].get("reason") or {}
                reason = f"{r.get('type', '')}: {r.get('reason', '')}" if isinstance(r, dict) else str(r)
            raise ClusterError(f"search {self.index} failed on {shards['failed']} shard(s) of {self.client.host_port}: {reason}", "Check the source cluster's health (GET _cluster/health).", status=503)
        if data.get("timed_out"):
            raise ClusterError(f"search {self.index} timed out on {self.client.host_port}", "Check the source cluster's load.", status=504)
        return data

    def _docs(self, data: SearchPage) -> list[Doc]:
        return data.docs()

    def _with_retries(self, fn: Callable[[], Any], what: str, *, in_place: Callable[[Exception], bool] | None = None) -> Any:
        """Run ``fn``, retrying with backoff while the failure is transient (see
        ``is_transient``) or a retryable status; ``in_place`` narrows what may be retried
        by sending the same request again (scroll continuations)."""
        attempt = 0
        while True:
            try:
                return fn()
            except (ClusterError, ConnectError) as exc:
                if isinstance(exc, TLSError) and not is_transient(exc):
                    raise
                status = getattr(exc, "status", 0)
                if in_place is not None:
                    retryable = in_place(exc)
                else:
                    retryable = (isinstance(exc, ClusterError) and status in RETRYABLE_SEARCH_STATUSES) or is_transient(exc)
                if not retryable or attempt >= self.max_retries or self.stop.is_set():
                    raise
                self.on_retry()
                time.sleep(backoff_delay(attempt))
                attempt += 1


def _scroll_retry_in_place(exc: Exception) -> bool:
    """Only a whole-request 429 is known not to have run: the same scroll request is safe."""
    return isinstance(exc, ClusterError) and exc.status == 429


def _scroll_restartable(exc: Exception) -> bool:
    """A continuation that failed after it may have run, or whose context is gone."""
    if not isinstance(exc, ClusterError):
        return False
    if exc.status in RETRYABLE_SEARCH_STATUSES:
        return True
    return exc.status == 404 and "search_context_missing" in str(exc.body)
