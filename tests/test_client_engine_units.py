"""Fast tests of the client engine's pure logic: bulk lines and byte cuts, per-item result
reading, cursors, budget, concurrency limit, dead-letter format, metadata cleaning, read
mode and slice choice. The real-node tests are in test_client_engine.py."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from remote_reindex.cluster import ClusterInfo
from remote_reindex.engines.client import load_transform
from remote_reindex.engines.client.bulk import BatchBuilder, WriteSpec, classify_items
from remote_reindex.engines.client.docs import Doc, SliceCursor
from remote_reindex.engines.client.runner import DocBudget, _SliceAcks
from remote_reindex.engines.client.sink import AdaptiveLimit, DeadLetter
from remote_reindex.engines.client.source import choose_page_size, choose_read_mode, pit_usable, slice_count
from remote_reindex.engines.metadata import clean_mappings, clean_settings
from remote_reindex.errors import UsageError

ES717 = ClusterInfo("elasticsearch", "7.17.29")
ES88 = ClusterInfo("elasticsearch", "8.8.2")
ES711 = ClusterInfo("elasticsearch", "7.11.2")
ES69 = ClusterInfo("elasticsearch", "6.8.23")
OS219 = ClusterInfo("opensearch", "2.19.6")
OS13 = ClusterInfo("opensearch", "1.3.20")


def doc(i: int, size: int = 10, **kw) -> Doc:
    return Doc(id=str(i), source=orjson.dumps({"n": i, "pad": "x" * size}), **kw)


# -- bulk lines ------------------------------------------------------------------------

def test_action_lines_follow_the_dest_part_of_the_body() -> None:
    d = Doc(id="a1", source=b'{"x":1}', routing="r", version=7)
    assert WriteSpec("out").action_line(d) == b'{"index":{"_index":"out","_id":"a1","routing":"r"}}'
    assert WriteSpec("out", "create").action_line(d) == b'{"create":{"_index":"out","_id":"a1","routing":"r"}}'
    assert WriteSpec("out", routing="discard").action_line(d) == b'{"index":{"_index":"out","_id":"a1"}}'
    assert WriteSpec("out", routing="=fixed").action_line(d) == b'{"index":{"_index":"out","_id":"a1","routing":"fixed"}}'
    assert WriteSpec("out", version_type="external").action_line(d) == \
        b'{"index":{"_index":"out","_id":"a1","routing":"r","version":7,"version_type":"external"}}'
    assert WriteSpec("out", version_type="internal").action_line(d) == b'{"index":{"_index":"out","_id":"a1","routing":"r"}}'


def test_the_source_bytes_go_into_the_body_untouched() -> None:
    raw = b'{"b":2, "a":1.0e10,"s":"\\u00e9"}'  # odd spacing and escapes survive: no decode/re-encode
    b = BatchBuilder(WriteSpec("out"), 10_000, 10)
    b.add(Doc(id="1", source=raw))
    batch = b.flush()
    assert batch is not None
    assert batch.body() == b'{"index":{"_index":"out","_id":"1"}}\n' + raw + b"\n"


def test_batches_are_cut_by_bytes_and_never_exceed_them() -> None:
    spec = WriteSpec("out")
    one = len(spec.action_line(doc(0, 100))) + 1 + len(doc(0, 100).source) + 1
    b = BatchBuilder(spec, max_bytes=one * 3 + 5, max_docs=1000)
    batches = [x for i in range(10) if (x := b.add(doc(i, 100))) is not None]
    tail = b.flush()
    assert tail is not None
    batches.append(tail)
    assert [len(x) for x in batches] == [3, 3, 3, 1]
    assert all(x.nbytes <= one * 3 + 5 for x in batches)
    assert all(x.nbytes == len(x.body()) for x in batches)
    assert [x.seq for x in batches] == [0, 1, 2, 3]
    assert [d.id for x in batches for d in x.docs] == [str(i) for i in range(10)]


def test_batches_are_cut_by_count() -> None:
    b = BatchBuilder(WriteSpec("out"), max_bytes=10**9, max_docs=4)
    sizes = [len(x) for i in range(10) if (x := b.add(doc(i))) is not None]
    assert sizes == [4, 4]
    assert len(b.flush() or []) == 2
    assert b.flush() is None


def test_a_document_larger_than_the_cut_travels_alone() -> None:
    b = BatchBuilder(WriteSpec("out"), max_bytes=50, max_docs=100)
    assert b.add(doc(1, 5)) is None
    first = b.add(doc(2, 500))  # too big to join: the small one leaves first
    assert first is not None and [d.id for d in first.docs] == ["1"]
    second = b.add(doc(3, 5))
    assert second is not None and [d.id for d in second.docs] == ["2"]


# -- per-item results ------------------------------------------------------------------

def _item(status: int, result: str | None = None, error: dict | None = None, op: str = "index") -> dict:
    body: dict = {"_index": "out", "_id": "x", "status": status}
    if result:
        body["result"] = result
    if error:
        body["error"] = error
    return {op: body}


def test_bulk_items_are_classified() -> None:
    rejected = {"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
    mapping = {"type": "mapper_parsing_exception", "reason": "failed to parse field [price] of type [double]"}
    conflict = {"type": "version_conflict_engine_exception", "reason": "[x]: version conflict, document already exists"}
    resp = {"errors": True, "items": [
        _item(201, "created"), _item(200, "updated"), _item(200, "noop"), _item(429, error=rejected),
        _item(400, error=mapping), _item(409, error=conflict, op="create"), _item(503, error={"type": "unavailable_shards_exception", "reason": "x"}),
    ]}
    o = classify_items(resp, 7)
    assert (o.created, o.updated, o.noops) == (1, 1, 1)
    assert o.retry == [3, 6]
    assert o.retry_errors[3] == rejected
    assert o.failed == [(4, 400, mapping)]
    assert o.conflicts == [(5, conflict)]


def test_item_count_mismatch_is_never_counted_as_written() -> None:
    with pytest.raises(ValueError):
        classify_items({"errors": False, "items": [_item(201, "created")]}, 2)


# -- cursor, budget, limit -------------------------------------------------------------

def test_cursor_moves_only_over_contiguous_acknowledged_batches() -> None:
    c = SliceCursor("idx", 0, 2, "pit", context_id="pit0")
    acks = _SliceAcks(c)
    acks.ack(1, 10, Doc("b", b"{}", sort=[20]), "pit1")  # batch 1 answered before batch 0
    assert (c.docs_done, c.search_after) == (0, None)
    acks.ack(0, 5, Doc("a", b"{}", sort=[10]), "pit1")
    assert (c.docs_done, c.search_after, c.context_id) == (15, [20], "pit1")
    assert c.to_dict()["search_after"] == [20]


def test_budget_is_shared_and_exact() -> None:
    b = DocBudget(25)
    got = []
    threads = [threading.Thread(target=lambda: got.append(b.take(10))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(got) == 25 and b.exhausted
    assert DocBudget(None).take(1000) == 1000


def test_limit_halves_on_pushback_and_grows_back() -> None:
    lim = AdaptiveLimit(8)
    lim.pushback()
    assert lim.limit == 4 and lim.lowered == 1
    lim.pushback()  # the same burst (within a second) counts once
    assert lim.limit == 4
    for _ in range(8):
        lim.success()
    assert lim.limit == 5
    lim.acquire()
    lim.release()
    assert lim.active == 0


# -- dead letter -----------------------------------------------------------------------

def test_dead_letter_lines_hold_the_document_and_the_error(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dead.ndjson"
    dl = DeadLetter(path)
    assert not path.exists()  # nothing written until something fails
    err = {"type": "mapper_parsing_exception", "reason": "failed to parse"}
    dl.write(src_index="src", dest_index="dst", doc_id="7", routing=None, status=400, error=err, source=b'{"price":"abc"}')
    dl.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1
    assert orjson.loads(lines[0]) == {"index": "src", "dest_index": "dst", "_id": "7", "status": 400, "error": err, "_source": {"price": "abc"}}
    assert path.stat().st_mode & 0o777 == 0o600  # whole documents: private to the user


# -- metadata cleaning -----------------------------------------------------------------

def test_settings_the_source_owns_are_dropped() -> None:
    flat = {
        "index.number_of_shards": "2", "index.number_of_replicas": "1", "index.uuid": "abc", "index.creation_date": "1",
        "index.provided_name": "x", "index.version.created": "7172999", "index.routing.allocation.include._tier_preference": "data_content",
        "index.blocks.write": "true", "index.lifecycle.name": "p", "index.analysis.analyzer.a.type": "custom", "index.refresh_interval": "5s",
        "index.soft_deletes.enabled": "true", "index.resize.source.uuid": "u", "index.hidden": "true",
    }
    kept, dropped = clean_settings(flat)
    assert kept == {"index.number_of_shards": "2", "index.number_of_replicas": "1", "index.analysis.analyzer.a.type": "custom",
                    "index.refresh_interval": "5s", "index.hidden": "true"}
    assert "index.uuid" in dropped and "index.lifecycle.name" in dropped and "index.blocks.write" in dropped
    nested = {"index": {"number_of_shards": "1", "uuid": "u", "analysis": {"filter": {"f": {"type": "stop", "stopwords": ["a", "b"]}}}}}
    kept2, _ = clean_settings(nested, keep_replicas=False)
    assert kept2 == {"index.number_of_shards": "1", "index.analysis.filter.f.type": "stop", "index.analysis.filter.f.stopwords": ["a", "b"]}


def test_typed_mappings_lose_the_type_and_types_era_parameters() -> None:
    typed = {"_doc": {"_all": {"enabled": False}, "properties": {"a": {"type": "text", "include_in_all": False, "fields": {"k": {"type": "keyword"}}}}}}
    assert clean_mappings(typed) == {"properties": {"a": {"type": "text", "fields": {"k": {"type": "keyword"}}}}}
    custom = {"my_type": {"dynamic": "strict", "properties": {"b": {"type": "long"}}}}
    assert clean_mappings(custom) == {"dynamic": "strict", "properties": {"b": {"type": "long"}}}
    typeless = {"properties": {"properties": {"type": "keyword"}}}  # a field named "properties" is not a type
    assert clean_mappings(typeless) == typeless
    assert clean_mappings({"dynamic": "false"}) == {"dynamic": "false"}


# -- read mode and slices --------------------------------------------------------------

def test_read_mode_choice() -> None:
    assert pit_usable(ES717) and pit_usable(ES88) and pit_usable(OS219)
    assert not pit_usable(ES711) and not pit_usable(ES69) and not pit_usable(OS13)
    assert choose_read_mode("auto", ES717) == "pit"
    assert choose_read_mode("auto", ES69) == "scroll"
    assert choose_read_mode("scroll", ES88) == "scroll"
    assert choose_read_mode("auto", OS219, data_stream=True) == "scroll"
    with pytest.raises(UsageError) as info:
        choose_read_mode("pit", ES69)
    assert info.value.message == "--read-mode pit: the source (Elasticsearch 6.8.23) has no point in time API (Elasticsearch 7.10+ / OpenSearch 2.4+)"


def test_slice_count() -> None:
    assert slice_count(None, 3, "pit", ES717) == 3
    assert slice_count(5, 3, "scroll", ES717) == 5
    assert slice_count(None, 0, "scroll", ES717) == 1
    # OpenSearch sorts a PIT on _doc: every slice must stay inside one shard
    assert slice_count(1, 2, "pit", OS219) == 2
    assert slice_count(3, 2, "pit", OS219) == 4
    assert slice_count(1, 1, "pit", OS219) == 1


# -- transform -------------------------------------------------------------------------

def test_transform_spec_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_transform(None) is None
    with pytest.raises(UsageError) as info:
        load_transform("no-colon")
    assert info.value.message == "--transform must look like module:function, got 'no-colon'"
    with pytest.raises(UsageError) as info:
        load_transform("h3_missing_module_xyz:f")
    assert info.value.message.startswith("--transform: cannot import module 'h3_missing_module_xyz'")
    (tmp_path / "h3_tx_mod.py").write_text("def up(d):\n    d['_source']['x'] = 1\n    return d\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError) as info:
        load_transform("h3_tx_mod:nope")
    assert info.value.message == "--transform: 'h3_tx_mod' has no function 'nope'"
    fn = load_transform("h3_tx_mod:up")
    assert fn is not None and fn({"_source": {}})["_source"] == {"x": 1}


def test_page_size_follows_the_document_size():
    assert choose_page_size(None) == (1000, "document size unknown")
    # the sandbox's ~1.1 KB documents store in ~230 bytes: the cap
    assert choose_page_size(230) == (3000, "documents of about 230 bytes on disk (compressed; ~690 bytes of JSON assumed)")
    # 100 KB stored (~300 KB of JSON each): 13 per page, ~4 MB
    assert choose_page_size(100_000) == (13, "documents of about 100,000 bytes on disk (compressed; ~300,000 bytes of JSON assumed)")
    # huge documents: never fewer than 10 per page
    assert choose_page_size(50_000_000)[0] == 10
