"""Expand ``source.index`` (names, lists, patterns, aliases, data streams) into the concrete
things to copy on the source, one copy job each.

Both engines use this. ``_resolve/index`` (ES >= 7.9, OpenSearch >= 1.0) answers in one
request what a pattern matches, with each index's attributes (hidden, system, closed) and
the data streams and aliases it touches, so we never guess from names (a ``.ds-`` prefix
or a leading dot says little). Counts come from ``_count`` (top-level documents only:
``_cat/indices`` counts nested documents as well, which would inflate the totals), primary
shard counts from ``_settings``.

Rules:
- A data stream is ONE job (read from the stream, written with ``op_type: create``); its
  hidden backing indices are not listed separately.
- An alias named (or matched) expands to the concrete indices behind it, one job each.
- Hidden and system indices only when ``include_hidden`` (patterns only: a name given
  exactly is always taken, as Elasticsearch itself does).
- Closed indices cannot be read: they are skipped with a note, or refused if named exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from ..cluster import ClusterClient
from ..errors import ClusterError, UsageError


@dataclass(frozen=True)
class IndexInfo:
    """One thing to copy on the source."""

    name: str  # the index or data stream name to read from
    docs: int  # top-level documents (``_count``), before any query
    shards: int  # primary shards (summed over backing indices for a data stream)
    kind: str = "index"  # "index" | "data_stream"
    hidden: bool = False
    system: bool = False
    backing_indices: tuple[str, ...] = ()  # data streams only
    timestamp_field: str | None = None  # data streams only

    @property
    def is_data_stream(self) -> bool:
        return self.kind == "data_stream"


@dataclass
class Expansion:
    """The result of ``expand``: the jobs, plus notes for the user (skipped things)."""

    indices: list[IndexInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_pattern(name: str) -> bool:
    return any(c in name for c in "*?") or name.startswith("-")


def _path_names(names: Iterable[str]) -> str:
    # Keep the characters index expressions use (wildcards, commas, dots, the exclusion dash)
    return ",".join(quote(n, safe="*?,-_.+") for n in names)


def resolve(source: ClusterClient, patterns: Iterable[str], include_hidden: bool = False) -> dict[str, Any]:
    """Raw ``GET _resolve/index/<patterns>``: ``{"indices": [...], "aliases": [...], "data_streams": [...]}``."""
    names = list(patterns)
    wildcards = "open,closed,hidden" if include_hidden else "open,closed"
    resp = source.request("GET", f"/_resolve/index/{_path_names(names)}", params={"expand_wildcards": wildcards})
    if resp.status == 404:
        return {"indices": [], "aliases": [], "data_streams": []}
    if resp.status != 200:
        raise source.error_for(resp, "GET _resolve/index")
    return resp.json() or {}


def expand(source: ClusterClient, patterns: Iterable[str], include_hidden: bool = False, *, count_query: Mapping[str, Any] | None = None) -> Expansion:
    """Expand ``patterns`` on ``source`` into jobs, in a stable order (sorted by name).

    ``count_query``: when given, ``docs`` counts only the documents matching it (the body's
    ``source.query``), so progress totals and plans show what will really be copied.
    Raises ``UsageError`` when nothing matches or a name given exactly does not exist.
    """
    patterns = [p for p in patterns if p]
    exact = [p for p in patterns if not is_pattern(p)]
    resolved = resolve(source, patterns, include_hidden)
    notes: list[str] = []

    # Exact names must exist: a typo should not silently copy nothing.
    known = {i["name"] for i in resolved.get("indices", [])} | {a["name"] for a in resolved.get("aliases", [])} | {d["name"] for d in resolved.get("data_streams", [])}
    missing = [n for n in exact if n not in known]
    if missing:
        raise UsageError(
            f"source index not found on {source.host_port}: {', '.join(missing)}",
            "Check source.index (list the source's indices with GET _cat/indices, or use a pattern like \"logs-*\").",
        )

    streams = {d["name"]: d for d in resolved.get("data_streams", [])}
    backing_to_stream = {b: name for name, d in streams.items() for b in d.get("backing_indices", [])}
    aliases = {a["name"]: a for a in resolved.get("aliases", [])}

    selected: dict[str, dict[str, Any]] = {}  # concrete index name -> resolve entry
    by_name = {i["name"]: i for i in resolved.get("indices", [])}
    for entry in resolved.get("indices", []):
        name = entry["name"]
        if name in backing_to_stream:
            continue  # copied through its data stream
        attrs = set(entry.get("attributes", []))
        if ("hidden" in attrs or "system" in attrs) and not include_hidden and name not in exact:
            continue
        selected[name] = entry
    # Aliases expand to their indices (which may be hidden: the alias was asked for).
    for alias in aliases.values():
        for idx in alias.get("indices", []):
            if idx in backing_to_stream:
                continue
            selected.setdefault(idx, by_name.get(idx, {"name": idx, "attributes": ["open"]}))

    closed = sorted(n for n, e in selected.items() if "closed" in e.get("attributes", []))
    closed_exact = [n for n in closed if n in exact]
    if closed_exact:
        raise UsageError(
            f"source index is closed and cannot be read: {', '.join(closed_exact)}",
            "Open it on the source (POST /INDEX/_open) or leave it out of source.index.",
        )
    if closed:
        notes.append(f"skipped {len(closed)} closed index(es): {', '.join(closed[:10])}{' ...' if len(closed) > 10 else ''}")
    for name in closed:
        selected.pop(name)

    if not selected and not streams:
        hint = " (hidden indices are left out unless --include-hidden)" if not include_hidden else ""
        raise UsageError(
            f"source.index {', '.join(patterns)} matches no index on {source.host_port}{hint}",
            "Check the pattern against GET _cat/indices on the source, or pass --include-hidden for hidden indices.",
        )

    concrete = sorted(selected)
    stream_names = sorted(streams)
    shard_counts = primary_shards(source, concrete + [b for s in stream_names for b in streams[s].get("backing_indices", [])])

    result: list[IndexInfo] = []
    for name in concrete:
        attrs = set(selected[name].get("attributes", []))
        result.append(IndexInfo(
            name=name,
            docs=count(source, name, count_query),
            shards=shard_counts.get(name, 1),
            hidden="hidden" in attrs,
            system="system" in attrs,
        ))
    for name in stream_names:
        d = streams[name]
        backing = tuple(d.get("backing_indices", []))
        result.append(IndexInfo(
            name=name,
            docs=count(source, name, count_query),
            shards=sum(shard_counts.get(b, 1) for b in backing) or 1,
            kind="data_stream",
            hidden=name.startswith("."),
            backing_indices=backing,
            timestamp_field=d.get("timestamp_field"),
        ))
    result.sort(key=lambda i: i.name)
    return Expansion(result, notes)


def expand_indices(source: ClusterClient, patterns: Iterable[str], include_hidden: bool = False, *, count_query: Mapping[str, Any] | None = None) -> list[IndexInfo]:
    """Just the jobs of ``expand`` (see there)."""
    return expand(source, patterns, include_hidden, count_query=count_query).indices


def count(source: ClusterClient, index: str, query: Mapping[str, Any] | None = None) -> int:
    """Top-level documents of ``index`` matching ``query`` (all when None)."""
    body = {"query": query} if query else None
    data = source.call("POST", f"/{_path_names([index])}/_count", body=body, params={"expand_wildcards": "all"})
    return int(data.get("count", 0))


def primary_shards(source: ClusterClient, indices: list[str]) -> dict[str, int]:
    """``{index: number_of_shards}``; asked in chunks so the URL stays short."""
    shards: dict[str, int] = {}
    for start in range(0, len(indices), 100):
        chunk = indices[start:start + 100]
        if not chunk:
            continue
        try:
            data = source.call(
                "GET", f"/{_path_names(chunk)}/_settings/index.number_of_shards",
                params={"expand_wildcards": "all", "flat_settings": "true"},
            )
        except ClusterError:
            continue  # counts are a hint for the slice count; 1 is a safe default
        for name, entry in (data or {}).items():
            value = (entry.get("settings") or {}).get("index.number_of_shards")
            if value is not None:
                shards[name] = int(value)
    return shards


def dest_name_for(info: IndexInfo, dest_index: str | None) -> str:
    """Where a job writes: ``dest.index`` when given (several jobs may then merge into it,
    as ``_reindex`` does), else the source's own name."""
    return dest_index or info.name
