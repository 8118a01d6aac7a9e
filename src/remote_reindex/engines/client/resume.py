"""Where a slice starts when a run resumes from the state file.

Rules (the same for every index):
- a slice saved as ``done`` is not read again; its saved counts join the summary;
- PIT, the saved point in time still answers: read on after the last acknowledged sort
  values on that same PIT — an exact resume;
- PIT gone (expired, source restarted): the saved sort values (``_shard_doc`` / ``_doc``)
  are Lucene doc ids, stable only while the source's segments are the same. The segments
  (names, doc counts, index uuid) recorded when the PIT was opened are compared with the
  current ones: equal -> a new PIT and read on after the saved position (exact); different
  -> the slice is read again from its start (safe: writes are idempotent by ``_id``);
- scroll: a scroll cannot be rewound, so an unfinished scroll slice is read again from
  its start;
- a slice in which the destination rejected documents (dead-lettered, ``failed`` > 0) is
  read again from its start, finished or not: its cursor moved past documents that are
  not on the destination, and a re-run must send them again.

A replayed document may already be on the destination: the ones between the last saved
cursor and what had been sent (``submitted``), or the whole slice when it starts over.
Their version conflicts (``op_type: create``, external versions) count as already copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

from ...cluster import ClusterClient, ClusterInfo
from ...errors import ClusterError, ConnectError
from ...state.store import Cursor
from .docs import COUNTERS, SliceCursor

SLICE_PART = "slice-{:04d}"
INDEX_PART = "index"  # per index: status done once every slice is done (and aliases copied)


def slice_part(slice_id: int) -> str:
    return SLICE_PART.format(slice_id)


def shard_signature(client: ClusterClient, index: str) -> dict[str, Any] | None:
    """The searchable segments of every shard copy of ``index`` plus the index uuids: equal
    signatures mean the same Lucene doc ids. None when the source does not tell."""
    path = quote(index, safe=",*-_.+")
    try:
        segments = client.call("GET", f"/{path}/_segments", params={"expand_wildcards": "all"})
        settings = client.call("GET", f"/{path}/_settings", params={"expand_wildcards": "all", "filter_path": "*.settings.index.uuid"})
    except (ClusterError, ConnectError):
        return None
    sig: dict[str, Any] = {}
    for name, idx in sorted((segments.get("indices") or {}).items()):
        uuid = ((settings.get(name) or {}).get("settings") or {}).get("index", {}).get("uuid")
        shards = {}
        for shard_no, copies in sorted((idx.get("shards") or {}).items()):
            primaries = [c for c in copies if (c.get("routing") or {}).get("primary")] or copies
            segs = (primaries[0].get("segments") or {}) if primaries else {}
            shards[shard_no] = sorted(
                [n, s.get("generation"), s.get("num_docs"), s.get("deleted_docs")]
                for n, s in segs.items() if s.get("search", True)
            )
        sig[name] = {"uuid": uuid, "shards": shards}
    return sig or None


def pit_alive(client: ClusterClient, info: ClusterInfo, pit_id: str, keep_alive: str) -> bool:
    """Does the saved point in time still answer on every shard? (This also extends it.)"""
    body = {"size": 0, "track_total_hits": False, "pit": {"id": pit_id, "keep_alive": keep_alive}}
    resp = client.request("POST", "/_search", body=body, params={"filter_path": "_shards"})  # a connection error raises: not "gone"
    if resp.status != 200:
        return False
    try:
        shards = resp.json().get("_shards") or {}
    except Exception:  # noqa: BLE001 - not JSON: treat as gone
        return False
    return not shards.get("failed")


def kept_docs(saved: list[Cursor]) -> int:
    """Documents of one index that earlier runs wrote and a resume keeps: the index's saved
    total once done, else the acknowledged documents of slices without rejected documents
    (those slices are read again, see ``plan_resume``)."""
    whole = [c for c in saved if c.part == INDEX_PART and c.status == "done"]
    if whole:
        return whole[0].docs_done
    kept = 0
    for c in saved:
        if not c.part.startswith("slice-"):
            continue
        counts = (c.position.get("counts") or {}) if isinstance(c.position, dict) else {}
        if not int(counts.get("failed") or 0):
            kept += c.docs_done
    return kept


@dataclass
class ResumePlan:
    """The cursors one index starts from, and what earlier runs already acknowledged."""

    cursors: list[SliceCursor]
    pit_id: str | None = None  # a PIT to reuse (saved and alive) or None: open one
    signature: dict[str, Any] | None = None
    how: str = "fresh"  # fresh | exact | exact-new-pit | replay
    prior: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    prior_docs: int = 0  # acknowledged by earlier runs and kept (not replayed)
    replayed_slices: int = 0
    rejected_slices: int = 0  # read again because an earlier run had documents rejected in them
    rejected_docs: int = 0  # documents earlier runs had rejected (dead-lettered) in those slices
    dead_letters: list[str] = field(default_factory=list)  # the files they went to

    @property
    def resumed(self) -> bool:
        return self.how != "fresh"


def _fresh(index: str, slice_id: int, slice_max: int, mode: str, replay_left: int = 0) -> SliceCursor:
    c = SliceCursor(index, slice_id, slice_max, mode)
    c.replay_left = replay_left
    c.submitted = 0
    return c


def plan_resume(
    index: str,
    saved: Mapping[str, Cursor],
    *,
    mode: str,
    slices: int,
    pit_is_alive: Any,
    current_signature: Any,
) -> ResumePlan:
    """Decide each slice's start from the saved cursors of ``index``.

    ``pit_is_alive(pit_id) -> bool`` and ``current_signature() -> dict | None`` are called
    only when needed (pure logic otherwise, unit-tested without nodes).
    """
    rows = {part: c for part, c in saved.items() if part.startswith("slice-") and isinstance(c.position, dict)}
    if not rows:
        return ResumePlan([_fresh(index, i, slices, mode) for i in range(slices)])
    first = next(iter(rows.values())).position
    slice_max = int(first.get("slice_max") or slices)
    saved_mode = str(first.get("mode") or mode)
    plan = ResumePlan([], how="replay")
    exact = False
    if saved_mode == "pit":
        pit_ids = [c.position.get("pit_id") for c in rows.values() if c.position.get("pit_id")]
        signature = saved.get(INDEX_PART).position.get("signature") if saved.get(INDEX_PART) and isinstance(saved[INDEX_PART].position, dict) else None
        if pit_ids and pit_is_alive(pit_ids[-1]):
            exact, plan.pit_id, plan.how = True, pit_ids[-1], "exact"
            plan.signature = signature
        elif signature is not None and current_signature() == signature:
            exact, plan.how = True, "exact-new-pit"
            plan.signature = signature
    for slice_id in range(slice_max):
        row = rows.get(slice_part(slice_id))
        pos = row.position if row else {}
        counts = {k: int((pos.get("counts") or {}).get(k, 0)) for k in COUNTERS}
        if row is not None and counts["failed"]:
            # documents of this slice were rejected (dead-lettered): they are not on the
            # destination, so the slice is read again from its start (writes are idempotent by
            # _id; what an earlier run wrote counts as already copied)
            plan.cursors.append(_fresh(index, slice_id, slice_max, saved_mode, replay_left=max(int(pos.get("submitted") or 0), row.docs_done)))
            plan.replayed_slices += 1
            plan.rejected_slices += 1
            plan.rejected_docs += counts["failed"]
            if pos.get("dead_letter") and pos["dead_letter"] not in plan.dead_letters:
                plan.dead_letters.append(str(pos["dead_letter"]))
        elif row is not None and row.status == "done":
            c = SliceCursor(index, slice_id, slice_max, saved_mode, docs_done=row.docs_done, finished=True,
                            submitted=int(pos.get("submitted") or row.docs_done), counts=counts)
            plan.cursors.append(c)
        elif row is not None and exact:
            c = SliceCursor(index, slice_id, slice_max, saved_mode, context_id=plan.pit_id, search_after=pos.get("search_after"),
                            docs_done=row.docs_done, submitted=int(pos.get("submitted") or row.docs_done), counts=counts)
            c.replay_left = max(0, c.submitted - c.docs_done)
            plan.cursors.append(c)
        else:  # never started, or cannot continue where it stood: from the slice's start
            submitted = int(pos.get("submitted") or 0) if row else 0
            plan.cursors.append(_fresh(index, slice_id, slice_max, saved_mode, replay_left=submitted))
            if row is not None and row.docs_done:
                plan.replayed_slices += 1
    for c in plan.cursors:
        if c.finished or c.docs_done:
            plan.prior_docs += c.docs_done
            for k in COUNTERS:
                plan.prior[k] += c.counts.get(k, 0)
    return plan
