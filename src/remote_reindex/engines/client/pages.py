"""Decoding a search response (PIT or scroll page) without decoding the documents.

The hot path of the client engine is turning a page of hits into bulk lines. Parsing the
whole page into Python objects and serialising every ``_source`` again was ~70 % of the
engine's CPU (py-spy, bench/README.md). msgspec decodes the page into typed structs
and keeps each ``_source`` as ``msgspec.Raw``: the bytes exactly as the source sent them,
found but never turned into objects. That is ~3x less CPU per document, and the bytes
written are the source's own (no float or big-integer reformatting on the way).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .docs import Doc

_EMPTY_SOURCE = b"{}"


class _Hit(msgspec.Struct, rename={"id": "_id", "source": "_source", "index": "_index", "routing": "_routing", "version": "_version"}):
    id: str
    source: msgspec.Raw = msgspec.Raw()
    index: str = ""
    routing: str | None = None
    version: int | None = None
    sort: list[Any] | None = None


class _Hits(msgspec.Struct):
    hits: list[_Hit] = []


class SearchPage(msgspec.Struct, rename={"scroll_id": "_scroll_id", "shards": "_shards"}):
    """The parts of a ``_search`` / ``_search/scroll`` answer the reader uses (the rest is
    skipped by the decoder). ``get`` answers like the response dict would, so
    callers read ``pit_id``, ``_scroll_id``, ``_shards`` and ``timed_out`` as before."""

    hits: _Hits = msgspec.field(default_factory=_Hits)
    pit_id: str | None = None
    scroll_id: str | None = None
    timed_out: bool = False
    shards: dict[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        value = {"pit_id": self.pit_id, "_scroll_id": self.scroll_id, "timed_out": self.timed_out, "_shards": self.shards}.get(key)
        return default if value is None else value

    def docs(self) -> list[Doc]:
        """One ``Doc`` per hit; each source is an exact-size copy of its bytes in the page,
        so the page buffer is freed once the page is done."""
        out = []
        for h in self.hits.hits:
            src = bytes(h.source)
            out.append(Doc(h.id, src if src and src != b"null" else _EMPTY_SOURCE, h.routing, h.version, h.sort, h.index))
        return out


_decoder = msgspec.json.Decoder(SearchPage)


def decode_search(raw: bytes) -> SearchPage:
    """Decode one search answer; invalid JSON raises ``ValueError`` (msgspec.DecodeError)."""
    return _decoder.decode(raw) if raw else SearchPage()
