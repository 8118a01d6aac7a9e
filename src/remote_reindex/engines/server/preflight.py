"""Checks before anything is written, each failing with one line of cause and one of fix.

In the order a user would fix them: the source as seen from here (reachable, version,
indices, counts), the destination's version (same or newer than the source, the guide's
note under step 3), its reindex module, every node's allowlist (static setting: a missing
line means editing the config and restarting), and last the one thing no settings API
shows, whether the destination trusts the source's certificate (``reindex.ssl.*`` is
filtered from ``_nodes/settings``): ask the destination itself with a remote ``_reindex``
whose query matches nothing. That probe connects, authenticates and searches like the
real copy, writes nothing, creates no index, and fails with the same error the copy
would.
"""

from __future__ import annotations

import copy as _copy
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...cluster import ClusterClient, ClusterInfo
from ...errors import AuthError, ClusterError, PreflightError, RemoteReindexError
from ...plan.body import ReindexBody
from .translate import explain_reindex_error

ALLOWLIST_KEYS = ("reindex.remote.whitelist", "reindex.remote.allowlist")
EMPTY_QUERY = {"ids": {"values": []}}


def check_versions(source: ClusterInfo, dest: ClusterInfo) -> str | None:
    """PreflightError when the destination is older than the source; a note for mixed
    flavors (OpenSearch pulls from Elasticsearch 7.x and, as tested, 8.x)."""
    if source.flavor == dest.flavor:
        if dest.version_tuple < source.version_tuple:
            raise PreflightError(
                f"the destination ({dest.label()}) is older than the source ({source.label()}): it cannot read the source's answers",
                "Use a destination of the source's version or newer (the guide's note under step 3), or copy with --engine client.",
                cause="dest_older_than_source",
            )
        return None
    if dest.flavor == "elasticsearch" and source.flavor == "opensearch":
        return f"an Elasticsearch destination ({dest.label()}) pulling from OpenSearch ({source.label()}) is untested; if it fails, use --engine client"
    return None


def allowlist_of(flat_settings: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(key, patterns) of a node's allowlist from its flat settings; the list may come as
    a JSON list, a comma string, or indexed keys (``key.0``, ``key.1``)."""
    for key in ALLOWLIST_KEYS:
        value = flat_settings.get(key)
        indexed = [v for k, v in sorted(flat_settings.items()) if re.fullmatch(re.escape(key) + r"\.\d+", k)]
        if value is None and not indexed:
            continue
        if isinstance(value, list):
            items = value
        elif isinstance(value, str):
            items = value.strip("[]").split(",")
        else:
            items = indexed
        return key, [str(i).strip().strip('"') for i in items if str(i).strip()]
    return None, []


def allowlist_matches(patterns: list[str], host_port: str) -> bool:
    """The destination's own test: ``host:port`` against patterns where ``*`` matches
    anything (no DNS: ``127.0.0.1`` does not match ``localhost``)."""
    for pattern in patterns:
        regex = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
        if re.match(regex, host_port):
            return True
    return False


def check_allowlist(dest: ClusterClient, host_port: str, dest_info: ClusterInfo) -> None:
    """Every destination node's allowlist must cover ``host_port`` exactly."""
    key = dest_info.remote_allowlist_key
    answer = _read(dest, "/_nodes/settings", {"flat_settings": "true", "filter_path": "nodes.*.name,nodes.*.settings"}, "read the destination's node settings")
    missing = []
    for node in (answer or {}).get("nodes", {}).values():
        found_key, patterns = allowlist_of(node.get("settings") or {})
        if not allowlist_matches(patterns, host_port):
            missing.append((node.get("name", "?"), found_key, patterns))
    if missing:
        names = ", ".join(n for n, _, _ in missing)
        have = "; ".join(f"{n}: {k}={p}" for n, k, p in missing if p)
        have_note = f" (they allow {have})" if have else " (they have no allowlist)"
        raise PreflightError(
            f"destination node(s) {names} may not pull from {host_port}: it is not in {key}{have_note} (guide step 4)",
            f"Add the line '{key}: [\"{host_port}\"]' to the config of every destination node and restart them "
            "(the setting is static; the host must match source.remote.host literally): see 'remote-reindex settings'.",
            cause="not_allowlisted",
        )


def check_module(dest: ClusterClient) -> None:
    """Every destination node has the reindex module (or plugin)."""
    answer = _read(dest, "/_nodes/plugins", {"filter_path": "nodes.*.name,nodes.*.modules.name,nodes.*.plugins.name"}, "read the destination's modules")
    lacking = []
    for node in (answer or {}).get("nodes", {}).values():
        names = {m.get("name") for m in (node.get("modules") or []) + (node.get("plugins") or [])}
        if "reindex" not in names:
            lacking.append(node.get("name", "?"))
    if lacking:
        raise PreflightError(
            f"destination node(s) {', '.join(lacking)} have no reindex module: they cannot run _reindex",
            "Install the reindex module on the destination (it is part of every full distribution), or copy with --engine client.",
            cause="no_reindex_module",
        )


def probe_body(body: ReindexBody, index: str, dest_index: str) -> dict[str, Any]:
    """The user's body narrowed to one index and a query that matches nothing."""
    raw = _copy.deepcopy(dict(body.raw))
    source = raw["source"]
    source["index"] = index
    source["query"] = EMPTY_QUERY
    source["size"] = 1
    source.pop("sort", None)
    raw.pop("max_docs", None)
    raw.pop("size", None)
    raw["dest"] = {"index": dest_index}
    return raw


def probe_trust(dest: ClusterClient, body: ReindexBody, index: str, dest_index: str, *, dest_info: ClusterInfo | None = None, source_label: str = "the source") -> RemoteReindexError | None:
    """Ask the destination to pull nothing from the source: None when it could, else the
    error in plain words (not raised: ``choose_engine`` only wants to know)."""
    assert body.remote is not None
    resp = dest.request("POST", "/_reindex", params={"wait_for_completion": True, "refresh": False}, body=probe_body(body, index, dest_index), timeout=120)
    try:
        answer = resp.json()
    except Exception:  # noqa: BLE001
        answer = {"error": {"type": "not_json", "reason": resp.data[:300].decode("utf-8", "replace")}}
    if resp.status == 200 and isinstance(answer, dict) and not answer.get("failures"):
        return None
    key = dest_info.remote_allowlist_key if dest_info else "reindex.remote.whitelist"
    return explain_reindex_error(
        answer, status=resp.status, host_port=body.remote.host_port, allowlist_key=key,
        source_label=source_label, dest_label=f"the destination {dest.host_port}", indices=(index,),
    )


@dataclass
class DestIndexState:
    name: str
    exists: bool
    docs: int = 0


def dest_index_state(dest: ClusterClient, name: str) -> DestIndexState:
    resp = dest.request("GET", f"/{name}/_count")
    if resp.status == 404:
        return DestIndexState(name, False)
    if resp.status != 200:
        raise dest.error_for(resp, f"GET {name}/_count")
    return DestIndexState(name, True, int((resp.json() or {}).get("count", 0)))


@dataclass
class PreflightReport:
    source_info: ClusterInfo | None = None
    dest_info: ClusterInfo | None = None
    notes: list[str] = field(default_factory=list)


def _read(dest: ClusterClient, path: str, params: Mapping[str, Any], what: str) -> Any:
    try:
        return dest.call("GET", path, params=params)
    except AuthError as exc:
        raise PreflightError(
            f"cannot {what} ({exc.status}): the user may not read node information",
            "Grant the destination user the 'monitor' cluster privilege, or run with --skip-preflight (the copy then fails late if the settings are wrong).",
            cause="preflight_forbidden",
        ) from None
    except ClusterError as exc:
        raise PreflightError(f"cannot {what}: {exc.message}", "Run with --skip-preflight to try the copy without these checks.", cause="preflight_failed") from None
