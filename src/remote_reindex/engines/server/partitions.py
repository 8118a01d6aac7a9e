"""Split one index into K query ranges so K remote reindex tasks can run at once.

Remote reindex cannot slice, so a big index is cut by value: ranges over a numeric or
date field, ``[-inf, b1)``, ``[b1, b2)`` ... ``[b(K-1), +inf)``, plus one last partition for
documents without the field. The ranges are open at both ends and adjacent, so every
value lands in exactly one; with a single-valued field every document lands in exactly
one partition, and their union is exactly the index (under the user's query, combined
with each range through a ``bool`` filter). Multi-valued fields would put a document into
every range one of its values hits: they are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ...cluster import ClusterClient
from ...errors import UsageError

NUMERIC_TYPES = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
DATE_TYPES = {"date", "date_nanos"}


@dataclass(frozen=True)
class Partition:
    """One slice of an index: its query (already combined with the user's) and a label."""

    number: int  # 1-based
    label: str  # "created_at [2021-01-01.., 2022-01-01)" / "without created_at"
    query: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "label": self.label, "query": dict(self.query)}


@dataclass(frozen=True)
class FieldStats:
    field: str
    type: str
    minimum: float | None
    maximum: float | None
    with_field: int  # documents that have the field
    values: int  # values of the field in those documents (> with_field: multi-valued)
    without_field: int


def partitionable_fields(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, type) of the numeric and date fields of one index's mapping, outside nested
    objects (a range on a nested field needs a nested query and matches per child), dates
    first (they usually spread evenly over time), in mapping order."""
    found: list[tuple[str, str]] = []

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if not isinstance(spec, dict):
                continue
            path = f"{prefix}{name}"
            typ = spec.get("type", "object")
            if typ == "nested":
                continue
            if typ in NUMERIC_TYPES or typ in DATE_TYPES:
                found.append((path, typ))
            if isinstance(spec.get("properties"), dict):
                walk(spec["properties"], path + ".")

    props = mapping.get("properties") if isinstance(mapping, dict) else None
    if isinstance(props, dict):
        walk(props, "")
    return sorted(found, key=lambda f: 0 if f[1] in DATE_TYPES else 1)


def field_type(mapping: Mapping[str, Any], path: str) -> str | None:
    for p, t in partitionable_fields(mapping):
        if p == path:
            return t
    return None


def combine(user_query: Mapping[str, Any] | None, clause: Mapping[str, Any]) -> dict[str, Any]:
    """The user's query AND the partition clause, as filters (no scoring needed)."""
    filters: list[Any] = [dict(clause)]
    if user_query:
        filters.insert(0, dict(user_query))
    return {"bool": {"filter": filters}}


def boundaries(minimum: float, maximum: float, k: int, integral: bool) -> list[float]:
    """K-1 cut points splitting [minimum, maximum] into K equal widths (integers for
    integer and date fields, deduplicated: fewer ranges when the span is small)."""
    if k <= 1 or maximum <= minimum:
        return []
    step = (maximum - minimum) / k
    cuts: list[float] = []
    for i in range(1, k):
        b = minimum + step * i
        if integral:
            b = float(math.ceil(b))
        if minimum < b <= maximum and (not cuts or b > cuts[-1]):
            cuts.append(b)
    return cuts


def _fmt(value: float, typ: str) -> str:
    if typ in DATE_TYPES:
        import datetime as dt

        return dt.datetime.fromtimestamp(value / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


def plan_partitions(stats: FieldStats, k: int, user_query: Mapping[str, Any] | None = None) -> list[Partition]:
    """K range partitions (fewer when the values allow fewer) plus the partition of the
    documents without the field. Pure: ``stats`` come from ``field_stats``."""
    if stats.values > stats.with_field:
        raise UsageError(
            f"field {stats.field} has several values in some documents ({stats.values:,} values in {stats.with_field:,} documents): ranges on it would copy a document more than once",
            "Partition on a single-valued numeric or date field with --partition-field.",
        )
    is_date = stats.type in DATE_TYPES
    integral = is_date or stats.type in INTEGER_TYPES
    cuts = boundaries(stats.minimum, stats.maximum, k, integral) if stats.with_field and stats.minimum is not None and stats.maximum is not None else []
    extra: dict[str, Any] = {"format": "epoch_millis"} if is_date else {}

    def value(b: float) -> Any:
        return int(b) if integral else b

    parts: list[Partition] = []
    edges: list[float | None] = [None, *cuts, None]
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        rng: dict[str, Any] = dict(extra)
        if lo is not None:
            rng["gte"] = value(lo)
        if hi is not None:
            rng["lt"] = value(hi)
        # The unbounded single range still needs a clause: "exists" is the same set.
        clause = {"range": {stats.field: rng}} if (lo is not None or hi is not None) else {"exists": {"field": stats.field}}
        label = f"{stats.field} [{_fmt(lo, stats.type) if lo is not None else '..'}, {_fmt(hi, stats.type) if hi is not None else '..'})"
        parts.append(Partition(len(parts) + 1, label, combine(user_query, clause)))
    parts.append(Partition(len(parts) + 1, f"without {stats.field}", combine(user_query, {"bool": {"must_not": [{"exists": {"field": stats.field}}]}})))
    return parts


def field_stats(source: ClusterClient, index: str, field: str, typ: str, user_query: Mapping[str, Any] | None = None) -> FieldStats:
    """min/max, how many documents have the field and how many values they hold, under
    the user's query, read from the source with one aggregation request."""
    body: dict[str, Any] = {
        "size": 0,
        "track_total_hits": True,
        "aggs": {
            "lo": {"min": {"field": field}},
            "hi": {"max": {"field": field}},
            "values": {"value_count": {"field": field}},
            "with": {"filter": {"exists": {"field": field}}},
        },
    }
    if user_query:
        body["query"] = dict(user_query)
    answer = source.call("POST", f"/{index}/_search", body=body)
    total = answer["hits"]["total"]
    total = total["value"] if isinstance(total, dict) else int(total)
    aggs = answer["aggregations"]
    with_field = int(aggs["with"]["doc_count"])
    return FieldStats(
        field=field,
        type=typ,
        minimum=aggs["lo"].get("value"),
        maximum=aggs["hi"].get("value"),
        with_field=with_field,
        values=int(aggs["values"]["value"]),
        without_field=total - with_field,
    )


def choose_field(source: ClusterClient, index: str, mapping: Mapping[str, Any], given: str | None, user_query: Mapping[str, Any] | None = None) -> FieldStats:
    """The field to partition on: the one given (checked), else the first date or numeric
    field that is single-valued and present in most documents."""
    if given:
        typ = field_type(mapping, given)
        if typ is None:
            names = ", ".join(p for p, _ in partitionable_fields(mapping)) or "none"
            raise UsageError(
                f"--partition-field {given} is not a numeric or date field of {index} (outside nested objects)",
                f"Choose one of: {names}.",
            )
        return field_stats(source, index, given, typ, user_query)
    candidates = partitionable_fields(mapping)
    best: FieldStats | None = None
    for path, typ in candidates[:8]:  # a few aggregations at most
        stats = field_stats(source, index, path, typ, user_query)
        if stats.values > stats.with_field or not stats.with_field:
            continue
        if stats.with_field * 2 >= stats.with_field + stats.without_field:
            return stats
        if best is None or stats.with_field > best.with_field:
            best = stats
    if best is None:
        raise UsageError(
            f"{index} has no single-valued numeric or date field to split it by",
            "Run without --partitions (one task for the index), or name a field with --partition-field.",
        )
    return best


def index_mapping(source: ClusterClient, index: str) -> dict[str, Any]:
    """The mapping of one concrete index (without types on 7.x+; 6.x's single type unwrapped)."""
    answer = source.call("GET", f"/{index}/_mapping")
    entry = answer.get(index) or next(iter(answer.values()), {})
    mapping = entry.get("mappings", {})
    if "properties" not in mapping and len(mapping) == 1:  # 6.x: {"_doc": {"properties": ...}}
        only = next(iter(mapping.values()))
        if isinstance(only, dict) and "properties" in only:
            mapping = only
    return mapping
