"""How big a source index's documents are, as far as the source says cheaply: its primary
store size divided by its primary document count. Both engines size their reads from it
(the server engine's ``source.size``, the client engine's search pages).

Stored documents are compressed and JSON in a response is not, so callers multiply by
``COMPRESSION_FACTOR`` for a conservative per-document estimate of the response."""

from __future__ import annotations

from ..cluster import ClusterClient

COMPRESSION_FACTOR = 3.0  # a stored document is rarely less than a third of its JSON


def average_document_bytes(source: ClusterClient, index: str) -> int | None:
    """Primary store size / primary document count of one index (or data stream) on the
    source; None when unknown (no monitor privilege, empty index)."""
    try:
        stats = source.call("GET", f"/{index}/_stats/store,docs")
    except Exception:  # noqa: BLE001 - a hint only: a role without monitor on the index must not stop the copy
        return None
    prim = (stats.get("_all") or {}).get("primaries") or {}
    docs = int((prim.get("docs") or {}).get("count") or 0)
    store = int((prim.get("store") or {}).get("size_in_bytes") or 0)
    if docs <= 0 or store <= 0:
        return None
    return max(1, store // docs)
