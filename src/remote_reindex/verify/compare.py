"""``verify``: does the destination hold what the body says it should?

Per (source indices -> destination index): counts first (cheap), then content. Content is
compared as bucketed digests (see ``digest``) streamed from both clusters at once; only
buckets whose digests differ are read again, in rounds that bound how many ids are held
in memory, to name the missing, extra and different ids. ``--sample N`` instead checks N
random documents from each side by id.

What the destination *should* hold is the body's view of the source: its ``query`` and
``_source`` filter are applied when reading the source. With ``max_docs`` the destination
holds an unspecified subset, so only counts can be compared.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable

import orjson

from ..cluster import ClusterClient
from ..errors import UsageError
from ..plan.body import ReindexBody
from ..plan.indices import IndexInfo, dest_name_for, expand
from . import reader
from .digest import DEFAULT_BUCKETS, BucketDigests, bucket_of, compare_id_digests, doc_digest, plan_rounds

Progress = Callable[[str], None]


@dataclass
class VerifyOptions:
    sample: int | None = None  # check N random documents per side instead of all
    parallel: int | None = None  # slices per side (default: primary shards, at most 8)
    buckets: int = DEFAULT_BUCKETS
    page_size: int = reader.DEFAULT_PAGE_SIZE
    keep: int = 1000  # ids kept per list (missing/extra/different) in the result; all go to the report
    memory_ids: int = 400_000  # ids held at once while drilling into unequal buckets (both sides)
    report_file: Path | None = None
    include_hidden: bool = False  # let source patterns match hidden and system indices, as 'run' does


@dataclass
class IdList:
    """A list of ids capped in memory, with its true length."""

    keep: int
    ids: list[str] = field(default_factory=list)
    count: int = 0

    def extend(self, ids: Iterable[str]) -> None:
        for doc_id in ids:
            self.count += 1
            if len(self.ids) < self.keep:
                self.ids.append(doc_id)

    @property
    def truncated(self) -> bool:
        return self.count > len(self.ids)


@dataclass
class IndexResult:
    index: str
    dest_index: str
    source_count: int
    dest_count: int
    mode: str  # "full" | "sample" | "counts"
    missing: IdList
    extra: IdList
    different: IdList
    buckets_checked: int = 0
    buckets_unequal: int = 0
    sampled: int = 0
    expected_dest_count: int | None = None  # set when it is not source_count (max_docs)
    notes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        expected = self.source_count if self.expected_dest_count is None else self.expected_dest_count
        return (
            expected == self.dest_count
            and self.buckets_unequal == 0
            and not (self.missing.count or self.extra.count or self.different.count)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "dest_index": self.dest_index,
            "source_count": self.source_count,
            "dest_count": self.dest_count,
            "expected_dest_count": self.source_count if self.expected_dest_count is None else self.expected_dest_count,
            "equal": self.equal,
            "mode": self.mode,
            "missing": self.missing.ids,
            "extra": self.extra.ids,
            "different": self.different.ids,
            "missing_count": self.missing.count,
            "extra_count": self.extra.count,
            "different_count": self.different.count,
            "truncated": self.missing.truncated or self.extra.truncated or self.different.truncated,
            "buckets_checked": self.buckets_checked,
            "buckets_unequal": self.buckets_unequal,
            "sampled": self.sampled,
            "notes": self.notes,
        }


@dataclass
class VerifyResult:
    indices: list[IndexResult]
    report_file: str | None = None

    @property
    def equal(self) -> bool:
        return all(i.equal for i in self.indices)

    def to_dict(self) -> dict[str, Any]:
        return {"equal": self.equal, "indices": [i.to_dict() for i in self.indices], "report_file": self.report_file}


class Report:
    """Every differing id, one JSON object per line, written as found (never all in memory).
    Written beside the target and renamed into place only when verify finishes, so a
    failed run leaves no half report behind."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".partial") if path else None
        # 0600 like every file that holds data of the source (the rename keeps the mode)
        self._fh: IO[bytes] | None = os.fdopen(os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") if self._tmp else None  # noqa: SIM115 - closed in close()

    def write(self, index: str, dest_index: str, kind: str, ids: Iterable[str]) -> None:
        if self._fh is None:
            return
        for doc_id in ids:
            self._fh.write(orjson.dumps({"index": index, "dest_index": dest_index, "kind": kind, "_id": doc_id}) + b"\n")

    def close(self, complete: bool) -> None:
        if self._fh is None or self._tmp is None or self.path is None:
            return
        self._fh.close()
        self._fh = None
        if complete:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Pair:
    """What is compared: source indices (one expression) against one destination index."""

    source: reader.IndexSet
    dest_index: str
    dest_shards: int | None  # None: the destination index does not exist


def plan_pairs(body: ReindexBody, source: ClusterClient, dest: ClusterClient, include_hidden: bool = False) -> tuple[list[Pair], list[str]]:
    """The same jobs the engines copy (``plan.indices.expand``: patterns, aliases, data
    streams, hidden and closed indices), grouped by where they write: with ``dest.index``
    several source indices merge into one destination index, and are compared as one."""
    expansion = expand(source, body.indices, include_hidden)
    groups: dict[str, list[IndexInfo]] = {}
    for info in expansion.indices:
        groups.setdefault(dest_name_for(info, body.dest_index), []).append(info)
    pairs = []
    for dest_index, infos in groups.items():
        src = reader.IndexSet(tuple(i.name for i in infos), max(i.shards for i in infos))
        d = reader.resolve_indices(dest, [dest_index], side="destination")
        pairs.append(Pair(src, dest_index, d.max_shards if d and d.names else None))
    return pairs, list(expansion.notes)


def _slices(options: VerifyOptions, shards: int) -> int:
    return max(1, min(options.parallel or shards, reader.MAX_SLICES))


def _both(fn_src: Callable[[], Any], fn_dst: Callable[[], Any]) -> tuple[Any, Any]:
    """Run the source and destination reads at the same time."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-side") as pool:
        fs, fd = pool.submit(fn_src), pool.submit(fn_dst)
        return fs.result(), fd.result()


def _read_digests(client: ClusterClient, index: str, *, query: Any, source_filter: Any, slices: int, options: VerifyOptions) -> BucketDigests:
    def visit(acc: BucketDigests, hit: dict[str, Any]) -> None:
        acc.add(hit["_id"], hit.get("_source"))

    parts = reader.parallel_scan(
        client, index, query=query, source_filter=source_filter, slices=slices,
        new_acc=lambda: BucketDigests(options.buckets), visit=visit, page_size=options.page_size,
    )
    total = BucketDigests(options.buckets)
    for p in parts:
        total.merge(p)
    return total


def _read_id_digests(
    client: ClusterClient, index: str, *, query: Any, source_filter: Any, slices: int, wanted: set[int], options: VerifyOptions
) -> dict[str, int]:
    """``{_id: digest}`` of the documents in the ``wanted`` buckets only (filtered here:
    there is no scripting on the server to filter by a hash)."""
    buckets = options.buckets

    def visit(acc: dict[str, int], hit: dict[str, Any]) -> None:
        doc_id = hit["_id"]
        if bucket_of(doc_id, buckets) in wanted:
            acc[doc_id] = doc_digest(doc_id, hit.get("_source"))

    parts = reader.parallel_scan(
        client, index, query=query, source_filter=source_filter, slices=slices,
        new_acc=dict, visit=visit, page_size=options.page_size,
    )
    merged: dict[str, int] = {}
    for p in parts:
        merged.update(p)
    return merged


def verify(
    body: ReindexBody,
    source: ClusterClient,
    dest: ClusterClient,
    options: VerifyOptions | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Compare what the destination holds with what the body says it should hold."""
    options = options or VerifyOptions()
    say = progress or (lambda _msg: None)
    if options.sample is not None:
        reader.check_sample_size(options.sample)
    # Reach both clusters first: a wrong URL, CA or password fails here with its own
    # message, before any index is looked at. Destination first, as on the command line.
    dest.info()
    if source is not dest:
        source.info()
    pairs, notes = plan_pairs(body, source, dest, options.include_hidden)
    report = Report(options.report_file)
    complete = False
    try:
        results = []
        for pair in pairs:
            say(f"verifying {pair.source.expression} -> {pair.dest_index}")
            results.append(_verify_pair(body, source, dest, pair, options, report, say))
        if results:
            results[0].notes.extend(notes)  # e.g. closed indices skipped, as the copy skipped them
        complete = True
    finally:
        report.close(complete)
    return VerifyResult(results, str(options.report_file) if options.report_file else None)


def _verify_pair(
    body: ReindexBody, source: ClusterClient, dest: ClusterClient, pair: Pair, options: VerifyOptions, report: Report, say: Progress
) -> IndexResult:
    src_index = pair.source.expression
    source_count = reader.count(source, src_index, body.query) or 0
    dest_exists = pair.dest_shards is not None
    dest_count = (reader.count(dest, pair.dest_index) or 0) if dest_exists else 0
    keep = options.keep
    result = IndexResult(src_index, pair.dest_index, source_count, dest_count, "full", IdList(keep), IdList(keep), IdList(keep))
    if not dest_exists:
        result.notes.append(f"the destination index {pair.dest_index} does not exist")
    if body.pipeline:
        result.notes.append(f"dest.pipeline {body.pipeline} may change documents: content differences can be expected")

    if body.max_docs is not None:
        # The destination holds *some* max_docs documents of the source: which ones is not
        # defined, so neither missing nor extra ids can be named.
        result.mode = "counts"
        expected = min(body.max_docs, source_count)
        result.notes.append(f"max_docs {body.max_docs}: only counts are compared (expected {expected:,} in the destination)")
        result.expected_dest_count = expected
        return result

    if options.sample is not None:
        _sample_pair(body, source, dest, pair, options, result, report, dest_exists)
        return result

    src_slices = _slices(options, pair.source.max_shards)
    dst_slices = _slices(options, pair.dest_shards or 1)
    say(f"  digests of {source_count:,} + {dest_count:,} documents in {options.buckets} buckets")
    src_d, dst_d = _both(
        lambda: _read_digests(source, src_index, query=body.query, source_filter=body.source_filter, slices=src_slices, options=options),
        lambda: _read_digests(dest, pair.dest_index, query=None, source_filter=None, slices=dst_slices, options=options)
        if dest_exists else BucketDigests(options.buckets),
    )
    unequal = src_d.unequal_buckets(dst_d)
    result.buckets_checked = options.buckets
    result.buckets_unequal = len(unequal)
    if src_d.total != source_count or dst_d.total != dest_count:
        result.notes.append(f"documents changed while verifying (read {src_d.total:,} / {dst_d.total:,}, counted {source_count:,} / {dest_count:,})")
    if not unequal:
        return result

    sizes = [src_d.counts[b] + dst_d.counts[b] for b in range(options.buckets)]
    rounds = plan_rounds(unequal, sizes, options.memory_ids)
    for n, group in enumerate(rounds, 1):
        say(f"  {len(unequal)} unequal bucket(s): reading ids, pass {n} of {len(rounds)}")
        wanted = set(group)
        src_ids, dst_ids = _both(
            lambda: _read_id_digests(source, src_index, query=body.query, source_filter=body.source_filter, slices=src_slices, wanted=wanted, options=options),
            lambda: _read_id_digests(dest, pair.dest_index, query=None, source_filter=None, slices=dst_slices, wanted=wanted, options=options)
            if dest_exists else {},
        )
        diff = compare_id_digests(src_ids, dst_ids)
        del src_ids, dst_ids
        _record(result, report, diff.missing, diff.extra, diff.different)
    return result


def _record(result: IndexResult, report: Report, missing: list[str], extra: list[str], different: list[str]) -> None:
    for kind, ids in (("missing", missing), ("extra", extra), ("different", different)):
        getattr(result, kind).extend(ids)
        report.write(result.index, result.dest_index, kind, ids)


def _sample_pair(
    body: ReindexBody, source: ClusterClient, dest: ClusterClient, pair: Pair, options: VerifyOptions,
    result: IndexResult, report: Report, dest_exists: bool,
) -> None:
    """N random source documents looked up in the destination (missing, different), and N
    random destination documents looked up in the source (extra, different)."""
    assert options.sample is not None
    result.mode = "sample"
    src_index = pair.source.expression
    src_hits = reader.random_sample(source, src_index, options.sample, query=body.query, source_filter=body.source_filter)
    src_digests = {h["_id"]: doc_digest(h["_id"], h.get("_source")) for h in src_hits}
    dst_hits = reader.random_sample(dest, pair.dest_index, options.sample) if dest_exists else []
    dst_digests = {h["_id"]: doc_digest(h["_id"], h.get("_source")) for h in dst_hits}
    result.sampled = len(src_digests) + len(dst_digests)

    # source sample -> destination
    found = {h["_id"]: doc_digest(h["_id"], h.get("_source")) for h in reader.fetch_by_ids(dest, pair.dest_index, list(src_digests))} if dest_exists and src_digests else {}
    missing = sorted(i for i in src_digests if i not in found)
    different = {i for i, d in src_digests.items() if i in found and found[i] != d}
    # destination sample -> source (with the body's query and filter: what should be there)
    back = {
        h["_id"]: doc_digest(h["_id"], h.get("_source"))
        for h in reader.fetch_by_ids(source, src_index, list(dst_digests), query=body.query, source_filter=body.source_filter)
    } if dst_digests else {}
    extra = sorted(i for i in dst_digests if i not in back)
    different |= {i for i, d in dst_digests.items() if i in back and back[i] != d}
    result.notes.append(f"sample: {len(src_digests):,} source and {len(dst_digests):,} destination documents checked by id; counts compared in full")
    _record(result, report, missing, extra, sorted(different))
