"""Copy an index's mappings and settings before the data, and its aliases after.

Used by both engines. ``_reindex`` copies documents only: without this the destination
would guess mappings dynamically (a ``keyword`` becomes ``text`` + ``keyword``, dates
may become strings, ``strict`` is lost) and every later query would differ.

Across versions (ES 6/7/8 -> ES 7/8/9, ES <-> OpenSearch):
- settings the source owns (uuid, creation date, version, provided name), rules about the
  source's nodes (routing/allocation), lifecycle policies that may not exist on the
  destination, write blocks and resize/shrink provenance are dropped (``UNCOPYABLE``);
- a setting the destination still does not know (``unknown setting [index.x]``, e.g.
  an OpenSearch-only setting going to Elasticsearch) is dropped and the create retried;
- mappings lose the ``_type`` wrapper of typed (ES 6, ``include_type_name``) mappings and
  the types-era parameters that later versions refuse (``_all``, ``include_in_all``, ...).
Everything dropped is reported, so nothing is changed silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

from ..cluster import ClusterClient
from ..errors import ClusterError, PreflightError

# Exact flat keys, and prefixes (ending with '.') of flat keys, never copied.
UNCOPYABLE = (
    "index.uuid",
    "index.creation_date",
    "index.creation_date_string",
    "index.provided_name",
    "index.version.",  # created / upgraded / compatibility
    "index.routing.",  # allocation include/exclude/require, _tier_preference: about the source's nodes
    "index.resize.",
    "index.shrink.",
    "index.blocks.",  # a read-only source would make the destination unwritable
    "index.verified_before_close",
    "index.lifecycle.",  # ES ILM: the policy may not exist on the destination
    "index.plugins.index_state_management.",  # OpenSearch ISM
    "index.opendistro.",
    "index.frozen",
    "index.search.throttled",
    "index.store.snapshot.",  # searchable snapshots
    "index.store.type",  # may name a store the destination lacks (snapshot)
    "index.recovery.type",
    "index.soft_deletes.",  # ES 8+ refuses soft_deletes.enabled=false; the default is right everywhere
    "index.translog.retention.",  # deprecated since 7.4, refused later
    "index.history.",
    "index.downsample.",
    "index.rollup.",
    "index.time_series.start_time",  # owned by the data stream that created the backing index
    "index.time_series.end_time",
)

# Types-era mapping parameters refused by ES 7+ / OpenSearch (dropped where they appear).
_TYPES_ERA_ROOT = ("_all", "_default_", "_timestamp", "_ttl", "_parent", "_size_", "include_in_all")
_TYPES_ERA_FIELD = ("include_in_all",)
_MAPPING_ROOT_KEYS = {
    "properties", "dynamic", "dynamic_templates", "_source", "_routing", "_meta", "_field_names",
    "date_detection", "dynamic_date_formats", "numeric_detection", "runtime", "enabled", "subobjects",
    "_data_stream_timestamp", "_doc_count", "_index", "_id", "_size",
}
_UNKNOWN_SETTING = re.compile(r"unknown setting \[([^\]]+)\]")


@dataclass
class IndexMetadata:
    """What the source says about one index."""

    name: str
    mappings: dict[str, Any]
    settings: dict[str, Any]  # flat keys ("index.number_of_shards": "2")
    aliases: dict[str, Any]

    @property
    def source_enabled(self) -> bool:
        return (self.mappings.get("_source") or {}).get("enabled", True) not in (False, "false")


@dataclass
class MetadataResult:
    dest_index: str
    created: bool  # False: the destination index existed and was left as it is
    dropped_settings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _path(name: str) -> str:
    return quote(name, safe="*,-_.+")


def fetch_index_metadata(source: ClusterClient, index: str) -> IndexMetadata:
    """Mappings (typeless), flat settings and aliases of one concrete index."""
    data = source.call("GET", f"/{_path(index)}", params={"flat_settings": "true", "expand_wildcards": "all"})
    if not isinstance(data, dict) or not data:
        raise ClusterError(f"GET /{index} on {source.host_port} returned nothing", "Check that the index exists on the source.")
    name, entry = next(iter(data.items())) if index not in data else (index, data[index])
    return IndexMetadata(
        name=name,
        mappings=clean_mappings(entry.get("mappings") or {}),
        settings=dict(entry.get("settings") or {}),
        aliases=dict(entry.get("aliases") or {}),
    )


def _uncopyable(key: str) -> bool:
    for rule in UNCOPYABLE:
        if rule.endswith(".") and key.startswith(rule):
            return True
        if key == rule or key.startswith(rule + "."):
            return True
    return False


def clean_settings(settings: Mapping[str, Any], *, keep_replicas: bool = True) -> tuple[dict[str, Any], list[str]]:
    """(settings to create the destination index with, keys dropped). ``settings`` may be
    flat (``index.x.y``) or nested (``{"index": {"x": ...}}``); the result is flat."""
    flat = flatten_settings(settings)
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in flat.items():
        if not key.startswith("index."):
            key = "index." + key
        if _uncopyable(key) or (not keep_replicas and key in ("index.number_of_replicas", "index.auto_expand_replicas")):
            dropped.append(key)
            continue
        kept[key] = value
    return kept, sorted(dropped)


def flatten_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_settings(value, full + "."))
        else:
            flat[full] = value
    return flat


def clean_mappings(mappings: Mapping[str, Any]) -> dict[str, Any]:
    """Typeless mappings a modern cluster accepts.

    - ``{"_doc": {"properties": ...}}`` or ``{"my_type": {...}}`` (ES 6, or 7 with
      ``include_type_name``) -> the inner mapping;
    - types-era root parameters (``_all``, ``_default_``, ...) and ``include_in_all`` on
      fields are removed.
    """
    m: dict[str, Any] = dict(mappings)
    if len(m) == 1:
        (only_key, inner), = m.items()
        # A type name wraps a whole mapping: its value holds mapping root keys only.
        if only_key not in _MAPPING_ROOT_KEYS and isinstance(inner, Mapping) and set(inner) <= (_MAPPING_ROOT_KEYS | set(_TYPES_ERA_ROOT)):
            m = dict(inner)
    for key in _TYPES_ERA_ROOT:
        m.pop(key, None)
    if "properties" in m:
        m["properties"] = _clean_properties(m["properties"])
    return m


def _clean_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in props.items():
        if not isinstance(spec, Mapping):
            out[name] = spec
            continue
        s = {k: v for k, v in spec.items() if k not in _TYPES_ERA_FIELD}
        if isinstance(s.get("properties"), Mapping):
            s["properties"] = _clean_properties(s["properties"])
        if isinstance(s.get("fields"), Mapping):
            s["fields"] = _clean_properties(s["fields"])
        out[name] = s
    return out


def index_exists(client: ClusterClient, index: str) -> bool:
    resp = client.request("HEAD", f"/{_path(index)}")
    if resp.status in (200, 404):
        return resp.status == 200
    raise client.error_for(resp, f"HEAD /{index}")


def create_index(dest: ClusterClient, dest_index: str, mappings: Mapping[str, Any], settings: Mapping[str, Any], *, max_unknown: int = 20) -> MetadataResult:
    """Create ``dest_index``; settings the destination does not know are dropped (and
    reported) one by one. An index that appeared meanwhile (another job) counts as existing."""
    settings = dict(settings)
    result = MetadataResult(dest_index, created=False)
    for _ in range(max_unknown + 1):
        body: dict[str, Any] = {"settings": settings}
        if mappings:
            body["mappings"] = mappings
        resp = dest.request("PUT", f"/{_path(dest_index)}", body=body)
        if resp.status in (200, 201):
            result.created = True
            return result
        text = resp.data.decode("utf-8", "replace")
        if resp.status == 400 and "resource_already_exists_exception" in text:
            result.notes.append(f"{dest_index} exists on the destination; kept its mappings and settings")
            return result
        unknown = _UNKNOWN_SETTING.search(text)
        if resp.status == 400 and unknown:
            key = unknown.group(1)
            candidates = [k for k in settings if k == key or k == "index." + key or k.startswith(key + ".")]
            if candidates:
                for k in candidates:
                    settings.pop(k)
                result.dropped_settings.extend(candidates)
                continue
        err = dest.error_for(resp, f"create index {dest_index}")
        raise PreflightError(
            f"the destination refused to create {dest_index} with the source's mappings/settings: {err.message.split(': ', 1)[-1]}",
            "Create the destination index yourself (mappings it accepts), then run again; or pass --no-metadata to let the destination map dynamically.",
            cause="metadata",
        )
    raise PreflightError(f"too many settings unknown to the destination while creating {dest_index}", "Create the destination index yourself, then run again.", cause="metadata")


def copy_index_metadata(
    source: ClusterClient,
    dest: ClusterClient,
    src_index: str,
    dest_index: str,
    *,
    keep_replicas: bool = True,
    extra_settings: Mapping[str, Any] | None = None,
    metadata: IndexMetadata | None = None,
) -> MetadataResult:
    """Create ``dest_index`` with ``src_index``'s mappings and settings (before any data).

    Leaves an existing destination index alone (``created=False`` and a note), as the data
    may be meant to go into an index the user prepared. ``extra_settings`` override the
    copied ones (e.g. ``{"index.number_of_replicas": 0}``).
    Raises ``PreflightError`` if the source has ``_source`` disabled (nothing to copy from)
    or the destination refuses the mappings.
    """
    meta = metadata or fetch_index_metadata(source, src_index)
    if not meta.source_enabled:
        raise PreflightError(
            f"{src_index} has _source disabled on the source: its documents cannot be read back to copy them",
            "Reindex from the original data instead; a _source-less index cannot be copied by _reindex or by this tool.",
            cause="source_disabled",
        )
    if index_exists(dest, dest_index):
        return MetadataResult(dest_index, created=False, notes=[f"{dest_index} exists on the destination; kept its mappings and settings"])
    settings, dropped = clean_settings(meta.settings, keep_replicas=keep_replicas)
    if extra_settings:
        settings.update(extra_settings)
    result = create_index(dest, dest_index, meta.mappings, settings)
    result.dropped_settings = sorted(set(dropped) | set(result.dropped_settings))
    return result


def copy_aliases(source: ClusterClient, dest: ClusterClient, src_index: str, dest_index: str, *, aliases: Mapping[str, Any] | None = None) -> list[str]:
    """Point ``src_index``'s aliases (filter, routing, write flag, hidden flag) at
    ``dest_index``; done after the data so nobody reads a half-filled index through them.
    Returns the alias names set."""
    if aliases is None:
        data = source.call("GET", f"/{_path(src_index)}/_alias", params={"expand_wildcards": "all"})
        entry = (data or {}).get(src_index) or (next(iter(data.values())) if data else {})
        aliases = entry.get("aliases") or {}
    if not aliases:
        return []
    actions = []
    for name, spec in sorted(aliases.items()):
        add: dict[str, Any] = {"index": dest_index, "alias": name}
        for key in ("filter", "routing", "index_routing", "search_routing", "is_write_index", "is_hidden"):
            if key in (spec or {}):
                add[key] = spec[key]
        actions.append({"add": add})
    dest.call("POST", "/_aliases", body={"actions": actions})
    return sorted(aliases)


def copy_data_stream_template(source: ClusterClient, dest: ClusterClient, stream: str) -> list[str]:
    """Make sure the destination will create ``stream`` as a data stream on the first
    ``op_type: create``: copy its composable index template (and the component templates
    it uses) when the destination has no template of that name. Returns notes."""
    notes: list[str] = []
    data = source.call("GET", f"/_data_stream/{_path(stream)}")
    streams = (data or {}).get("data_streams") or []
    if not streams:
        return notes
    template = streams[0].get("template")
    if not template:
        return notes
    if dest.request("HEAD", f"/_index_template/{_path(template)}").status == 200:
        return notes
    tdata = source.call("GET", f"/_index_template/{_path(template)}")
    found = [t for t in (tdata or {}).get("index_templates", []) if t.get("name") == template]
    if not found:
        return notes
    body = dict(found[0]["index_template"])
    for comp in body.get("composed_of", []) or []:
        if dest.request("HEAD", f"/_component_template/{_path(comp)}").status == 200:
            continue
        cdata = source.call("GET", f"/_component_template/{_path(comp)}")
        for c in (cdata or {}).get("component_templates", []):
            if c.get("name") == comp:
                dest.call("PUT", f"/_component_template/{_path(comp)}", body=_clean_template(c["component_template"]))
                notes.append(f"copied component template {comp}")
    dest.call("PUT", f"/_index_template/{_path(template)}", body=_clean_template(body))
    notes.append(f"copied index template {template} (data stream {stream})")
    return notes


def _clean_template(body: Mapping[str, Any]) -> dict[str, Any]:
    b = dict(body)
    tpl = dict(b.get("template") or {})
    if "settings" in tpl:
        tpl["settings"], _ = clean_settings(tpl["settings"])
    if "mappings" in tpl:
        tpl["mappings"] = clean_mappings(tpl["mappings"])
    if tpl:
        b["template"] = tpl
    # Keys a newer/other cluster adds to the GET output but refuses on PUT
    for key in ("created_date", "created_date_millis", "modified_date", "modified_date_millis", "deprecated"):
        b.pop(key, None)
    return b
