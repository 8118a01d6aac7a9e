"""Reading ``_id`` + ``_source`` from a cluster for verification: sliced scrolls run in
parallel threads, random samples, look-ups by id, counts.

Sliced scroll rather than PIT: it is the one read path that every version we meet answers
the same way (ES 7.17, 8.x, 9.x and OpenSearch 2.x, whose PIT endpoints differ from ES's),
and it needs no scripting. Each slice is one thread with its own scroll; a slice's
accumulator is private to its thread and merged at the end, so no locks on the hot path.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import quote

import msgspec

from ..cluster import ClusterClient
from ..errors import ClusterError, UsageError
from .digest import decode_exact

SCROLL_KEEP_ALIVE = "5m"
DEFAULT_PAGE_SIZE = 1000
MAX_SLICES = 8
MAX_RESULT_WINDOW = 10_000  # index.max_result_window's default: the most one search returns

Acc = TypeVar("Acc")


class Cancelled(Exception):
    """Another slice failed: this one stops at its next page."""


def index_path(index: str) -> str:
    # Names and patterns keep their commas and stars; anything else odd is escaped.
    return quote(index, safe=",*-_.+")


@dataclass(frozen=True)
class IndexSet:
    """Concrete indices (as the cluster names them) and their largest primary shard count."""

    names: tuple[str, ...]
    max_shards: int

    @property
    def expression(self) -> str:
        return ",".join(self.names)


def resolve_indices(client: ClusterClient, patterns: Sequence[str], *, side: str) -> IndexSet | None:
    """Expand names/patterns into concrete open indices. ``None`` when a named index does
    not exist; an empty set when patterns match nothing."""
    resp = client.request(
        "GET",
        f"/{index_path(','.join(patterns))}/_settings/index.number_of_shards",
        params={"expand_wildcards": "open", "allow_no_indices": "true"},
    )
    if resp.status == 404:
        return None
    if resp.status != 200:
        raise client.error_for(resp, f"reading the {side} index settings")
    body = resp.json() or {}
    names = tuple(sorted(body))
    shards = [int(((v.get("settings") or {}).get("index") or {}).get("number_of_shards") or 1) for v in body.values()]
    return IndexSet(names, max(shards) if shards else 1)


def count(client: ClusterClient, index: str, query: Mapping[str, Any] | None = None) -> int | None:
    """Documents in ``index`` matching ``query``; ``None`` when the index does not exist."""
    body = {"query": query} if query else None
    resp = client.request("POST", f"/{index_path(index)}/_count", body=body, params={"ignore_unavailable": "false"})
    if resp.status == 404:
        return None
    if resp.status != 200:
        raise client.error_for(resp, f"counting {index}")
    return int(resp.json()["count"])


def search_exact(client: ClusterClient, path: str, *, body: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                 timeout: float | None = None) -> dict[str, Any]:
    """A search whose answer keeps every number exact (``digest.decode_exact``): documents
    are compared by value, and a number beyond a double (``1e400``) is not a crash."""
    resp = client.request("POST", path, body=body, params=params, **({"timeout": timeout} if timeout else {}))
    if resp.status != 200:
        raise client.error_for(resp, f"POST {path}")
    try:
        return decode_exact(resp.data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ClusterError(f"{client.host_port} answered {path} with invalid JSON: {exc}",
                           "Check that the URL points at Elasticsearch or OpenSearch, and run verify again.", cause="bad_response") from None


def _check_shards(client: ClusterClient, result: Mapping[str, Any], index: str) -> None:
    shards = result.get("_shards") or {}
    if shards.get("failed"):
        failures = shards.get("failures") or [{}]
        reason = (failures[0].get("reason") or {}).get("reason", "unknown reason")
        # A partial read would show as false differences: stop instead.
        raise ClusterError(
            f"reading {index} on {client.host_port} failed on {shards['failed']} of {shards.get('total', '?')} shards: {reason}",
            "Check the cluster's health (GET _cluster/health) and run verify again.",
            cause="shard_failure",
        )


def scroll_slice(
    client: ClusterClient,
    index: str,
    *,
    query: Mapping[str, Any] | None,
    source_filter: Any,
    slice_id: int,
    slices: int,
    page_size: int = DEFAULT_PAGE_SIZE,
    cancel: threading.Event | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of hits (``_id``, ``_source``) of one slice; the scroll is cleared on exit."""
    body: dict[str, Any] = {"size": page_size, "sort": ["_doc"], "query": query or {"match_all": {}}}
    if source_filter is not None:
        body["_source"] = source_filter
    if slices > 1:
        body["slice"] = {"id": slice_id, "max": slices}
    result = search_exact(client, f"/{index_path(index)}/_search", params={"scroll": SCROLL_KEEP_ALIVE}, body=body)
    scroll_id = result.get("_scroll_id")
    try:
        while True:
            _check_shards(client, result, index)
            hits = result["hits"]["hits"]
            if not hits:
                return
            yield hits
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            result = search_exact(client, "/_search/scroll", body={"scroll": SCROLL_KEEP_ALIVE, "scroll_id": scroll_id})
            scroll_id = result.get("_scroll_id", scroll_id)
    finally:
        if scroll_id:
            try:  # best effort: an expired scroll is cleaned up by the cluster anyway
                client.request("DELETE", "/_search/scroll", body={"scroll_id": [scroll_id]})
            except Exception:  # noqa: BLE001 - never mask the real error with a cleanup error
                pass


def parallel_scan(
    client: ClusterClient,
    index: str,
    *,
    query: Mapping[str, Any] | None,
    source_filter: Any,
    slices: int,
    new_acc: Callable[[], Acc],
    visit: Callable[[Acc, dict[str, Any]], None],
    page_size: int = DEFAULT_PAGE_SIZE,
) -> list[Acc]:
    """Read every document of ``index`` in ``slices`` parallel slices; ``visit(acc, hit)``
    is called for each hit with that slice's own accumulator. Returns the accumulators."""
    slices = max(1, min(slices, MAX_SLICES))
    cancel = threading.Event()

    def run(slice_id: int) -> Acc:
        acc = new_acc()
        try:
            for hits in scroll_slice(client, index, query=query, source_filter=source_filter, slice_id=slice_id,
                                     slices=slices, page_size=page_size, cancel=cancel):
                for hit in hits:
                    visit(acc, hit)
        except BaseException:
            cancel.set()
            raise
        return acc

    if slices == 1:
        return [run(0)]
    with ThreadPoolExecutor(max_workers=slices, thread_name_prefix="verify-slice") as pool:
        futures = [pool.submit(run, i) for i in range(slices)]
        results: list[Acc] = []
        first_error: BaseException | None = None
        for f in futures:
            try:
                results.append(f.result())
            except Cancelled:
                continue
            except BaseException as exc:  # noqa: BLE001 - re-raised below, the first real one wins
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return results


def random_sample(
    client: ClusterClient, index: str, n: int, *, query: Mapping[str, Any] | None = None, source_filter: Any = None
) -> list[dict[str, Any]]:
    """Up to ``n`` (<= 10,000) documents picked at random (``random_score``: no scripting needed)."""
    body: dict[str, Any] = {
        "size": n,
        "query": {"function_score": {"query": query or {"match_all": {}}, "random_score": {}, "boost_mode": "replace"}},
    }
    if source_filter is not None:
        body["_source"] = source_filter
    result = search_exact(client, f"/{index_path(index)}/_search", body=body, timeout=120)
    _check_shards(client, result, index)
    return result["hits"]["hits"]


def fetch_by_ids(
    client: ClusterClient,
    index: str,
    ids: Sequence[str],
    *,
    query: Mapping[str, Any] | None = None,
    source_filter: Any = None,
    chunk: int = 1000,
) -> Iterator[dict[str, Any]]:
    """The hits among ``ids`` that exist in ``index`` (and match ``query``). A search with
    an ``ids`` filter rather than ``_mget`` so the body's query can apply as well."""
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        filters: list[Any] = [{"ids": {"values": part}}]
        if query:
            filters.append(query)
        body: dict[str, Any] = {"size": min(len(part) * 4, MAX_RESULT_WINDOW), "query": {"bool": {"filter": filters}}}
        if source_filter is not None:
            body["_source"] = source_filter
        result = search_exact(client, f"/{index_path(index)}/_search", body=body, timeout=120)
        _check_shards(client, result, index)
        yield from result["hits"]["hits"]


def check_sample_size(n: int) -> None:
    if n < 1 or n > MAX_RESULT_WINDOW:
        raise UsageError(f"--sample must be from 1 to {MAX_RESULT_WINDOW:,}, got {n}", "Pick a smaller sample, or leave --sample out to compare every document.")
