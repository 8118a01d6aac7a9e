"""The client engine's hot path: search pages decoded with each _source kept raw, and
exact-size action lines (see bench/README.md for why sizes matter)."""

from __future__ import annotations

import sys

import orjson
import pytest

from remote_reindex.engines.client.bulk import BULK_RESPONSE_FILTER, Batch, WriteSpec, classify_items
from remote_reindex.engines.client.docs import Doc
from remote_reindex.engines.client.pages import decode_search

PAGE = (b'{"pit_id":"p2","_shards":{"failed":0},"hits":{"hits":['
        b'{"_index":"i-1","_id":"a","_source":{"price":3.0,"big":123456789012345678901234567890,"t":"x\\"y"},"sort":[7,0]},'
        b'{"_index":"i-1","_id":"b","_routing":"r","_version":4,"_source":null},'
        b'{"_index":"i-2","_id":"c"}]}}')


def test_sources_are_the_bytes_the_source_sent() -> None:
    page = decode_search(PAGE)
    a, b, c = page.docs()
    # 3.0 stays 3.0 and a 30-digit integer survives: nothing is parsed and re-serialised
    assert a.source == b'{"price":3.0,"big":123456789012345678901234567890,"t":"x\\"y"}'
    assert (a.id, a.index, a.sort, a.routing, a.version) == ("a", "i-1", [7, 0], None, None)
    assert (b.source, b.routing, b.version) == (b"{}", "r", 4)  # null _source: an empty document
    assert (c.source, c.index) == (b"{}", "i-2")  # _source filtered out entirely


def test_sources_are_exact_size_copies() -> None:
    [doc, *_] = decode_search(PAGE).docs()
    assert sys.getsizeof(doc.source) - len(doc.source) < 64  # not a view of the page, no growth buffer


def test_page_answers_like_the_response_dict() -> None:
    page = decode_search(PAGE)
    assert page.get("pit_id") == "p2"
    assert page.get("_shards") == {"failed": 0}
    assert page.get("_scroll_id") is None and not page.get("timed_out")
    scroll = decode_search(b'{"_scroll_id":"s1","timed_out":true,"_shards":{"failed":1,"failures":[{"reason":{"type":"x"}}]}}')
    assert scroll.get("_scroll_id") == "s1" and scroll.get("timed_out") is True
    assert scroll.get("_shards")["failures"][0]["reason"]["type"] == "x"
    assert scroll.docs() == []
    assert decode_search(b"").docs() == [] and decode_search(b"{}").get("pit_id") is None


def test_invalid_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_search(b'{"hits":{"hits":[{"_id":"a","_source":{"x":}]}}')


@pytest.mark.parametrize("spec", [WriteSpec("dst"), WriteSpec('we"ird-ü', "create"), WriteSpec("d", routing="=x"),
                                  WriteSpec("d", version_type="external"), WriteSpec("d", routing="discard")])
@pytest.mark.parametrize("doc", [Doc('a"b\\c', b"{}"), Doc("1", b"{}", routing="r", version=3)])
def test_action_lines_match_the_generic_form(spec: WriteSpec, doc: Doc) -> None:
    meta: dict = {"_index": spec.dest_index, "_id": doc.id}
    routing = spec.routing_for(doc)
    if routing is not None:
        meta["routing"] = routing
    if spec.wants_version and doc.version is not None:
        meta.update(version=doc.version, version_type=spec.version_type)
    line = spec.action_line(doc)
    assert orjson.loads(line) == {spec.op_type: meta}
    assert sys.getsizeof(line) - len(line) < 64  # exact size, not orjson's 1 KB buffer


def test_batch_body_is_ndjson_of_the_raw_sources() -> None:
    spec = WriteSpec("dst")
    docs = decode_search(PAGE).docs()
    batch = Batch(docs=docs, actions=[spec.action_line(d) for d in docs])
    lines = batch.body().split(b"\n")
    assert lines[0] == b'{"index":{"_index":"dst","_id":"a"}}'
    assert lines[1] == docs[0].source and lines[-1] == b""


def test_filtered_bulk_response_is_enough_to_classify() -> None:
    # what the destination answers with filter_path=BULK_RESPONSE_FILTER
    assert "items.*.status" in BULK_RESPONSE_FILTER and "items.*.error" in BULK_RESPONSE_FILTER
    answer = {"errors": True, "items": [
        {"index": {"status": 201, "result": "created"}},
        {"index": {"status": 200, "result": "updated"}},
        {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
        {"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
    ]}
    outcome = classify_items(answer, 4)
    assert (outcome.created, outcome.updated, outcome.retry) == (1, 1, [2])
    assert outcome.failed == [(3, 400, {"type": "mapper_parsing_exception", "reason": "bad"})]
