"""Fast tests of verify's pure logic (digests, buckets, drill-down planning) and of the
CLI's answers to bad input, which come before any connection."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from remote_reindex.verify.compare import IdList, IndexResult, Report
from remote_reindex.verify.digest import (
    BucketDigests,
    bucket_of,
    canonical_source,
    compare_id_digests,
    doc_digest,
    plan_rounds,
)

DOCS = [(f"id-{i}", {"n": i, "name": f"doc {i}", "tags": ["a", "b"], "nested": {"x": i * 1.5, "y": None}}) for i in range(500)]


def test_canonical_source_ignores_key_order_and_whitespace() -> None:
    a = {"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": "é"}}
    b = json.loads('{ "a": {"x": "é", "y": [1, {"p": 3, "q": 2}]},   "b": 1 }')
    assert canonical_source(a) == canonical_source(b) == b'{"a":{"x":"\xc3\xa9","y":[1,{"p":3,"q":2}]},"b":1}'
    assert doc_digest("1", a) == doc_digest("1", b)
    # ...but list order, values and the id all count
    assert doc_digest("1", {"l": [1, 2]}) != doc_digest("1", {"l": [2, 1]})
    assert doc_digest("1", {"v": 1}) != doc_digest("1", {"v": 2})
    assert doc_digest("1", {"v": 1}) != doc_digest("2", {"v": 1})
    # a missing _source (e.g. filtered to nothing) is the empty object
    assert canonical_source(None) == b"{}"


def test_bucket_is_stable_and_in_range() -> None:
    # fixed values: a bucket must never depend on the process (hash() is salted per process)
    assert bucket_of("p00000000") == bucket_of("p00000000")
    assert [bucket_of(f"p{i:08d}") for i in range(3)] == [bucket_of(f"p{i:08d}", 256) for i in range(3)]
    code = "from remote_reindex.verify.digest import bucket_of; print(bucket_of('p00000042'), bucket_of('x', 16))"
    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert other_process.stdout.split() == [str(bucket_of("p00000042")), str(bucket_of("x", 16))]
    spread = {bucket_of(f"doc-{i}") for i in range(5000)}
    assert len(spread) == 256 and min(spread) == 0 and max(spread) == 255


def test_bucket_digests_do_not_depend_on_order_or_slicing() -> None:
    one = BucketDigests()
    for doc_id, src in DOCS:
        one.add(doc_id, src)
    shuffled = DOCS[:]
    random.Random(1).shuffle(shuffled)
    parts = [BucketDigests() for _ in range(3)]
    for n, (doc_id, src) in enumerate(shuffled):
        parts[n % 3].add(doc_id, dict(reversed(list(src.items()))))  # other key order too
    merged = BucketDigests()
    for p in parts:
        merged.merge(p)
    assert merged.counts == one.counts and merged.sums == one.sums
    assert merged.total == 500
    assert one.unequal_buckets(merged) == []


def test_each_kind_of_difference_shows_in_its_bucket() -> None:
    src, dst = BucketDigests(), BucketDigests()
    for doc_id, doc in DOCS:
        src.add(doc_id, doc)
        if doc_id == "id-7":
            continue  # missing
        dst.add(doc_id, {**doc, "n": -1} if doc_id == "id-9" else doc)  # different
    dst.add("extra-1", {"n": 0})
    unequal = src.unequal_buckets(dst)
    assert sorted(unequal) == sorted({bucket_of("id-7"), bucket_of("id-9"), bucket_of("extra-1")})


def test_a_document_read_twice_does_not_cancel_out() -> None:
    # why a sum and not XOR: a duplicate read must not look like "nothing there"
    a, b = BucketDigests(), BucketDigests()
    a.add("x", {"v": 1})
    a.add("x", {"v": 1})
    assert a.unequal_buckets(b) == [bucket_of("x")]


def test_compare_id_digests_names_missing_extra_different() -> None:
    src = {"a": 1, "b": 2, "c": 3}
    dst = {"b": 2, "c": 30, "d": 4}
    diff = compare_id_digests(src, dst)
    assert (diff.missing, diff.extra, diff.different) == (["a"], ["d"], ["c"])


def test_plan_rounds_respects_the_memory_budget() -> None:
    sizes = [10] * 8
    assert plan_rounds([0, 1, 2, 3, 4], sizes, 25) == [[0, 1], [2, 3], [4]]
    assert plan_rounds([0, 1], sizes, 1000) == [[0, 1]]
    # a bucket over the budget still gets a round of its own
    assert plan_rounds([0, 1], [50, 5], 10) == [[0], [1]]
    assert plan_rounds([], sizes, 10) == []


def test_id_list_caps_memory_but_counts_everything() -> None:
    ids = IdList(keep=2)
    ids.extend(["a", "b", "c", "d"])
    assert ids.ids == ["a", "b"] and ids.count == 4 and ids.truncated
    r = IndexResult("s", "d", 4, 0, "full", ids, IdList(2), IdList(2))
    d = r.to_dict()
    assert d["missing"] == ["a", "b"] and d["missing_count"] == 4 and d["truncated"] and d["equal"] is False


def test_report_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "ids.ndjson"
    r = Report(target)
    r.write("src", "dst", "missing", ["a"])
    r.close(complete=False)
    assert not target.exists() and list(tmp_path.iterdir()) == []
    r = Report(target)
    r.write("src", "dst", "extra", ["b", "c"])
    r.close(complete=True)
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines == [{"index": "src", "dest_index": "dst", "kind": "extra", "_id": "b"}, {"index": "src", "dest_index": "dst", "kind": "extra", "_id": "c"}]
    assert target.stat().st_mode & 0o777 == 0o600


# -- bad input: one line what is wrong, one line what to do, exit 2, nothing written --------

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remote_reindex.cli.main", "verify", *args], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=60)


GOOD_BODY = {"source": {"remote": {"host": "https://localhost:1"}, "index": "products"}, "dest": {"index": "copy"}}


@pytest.mark.parametrize(
    "args, body, message, fix",
    [
        (["body.json"], GOOD_BODY, "error: --dest is missing", "fix: Add --dest URL of the destination cluster"),
        (["body.json", "--dest", "http://localhost:1"], "{not json", "error: body file body.json is not valid JSON", "fix: Check the JSON syntax"),
        (["nope.json", "--dest", "http://localhost:1"], None, "error: body file not found: nope.json", "fix: Give the path of a JSON file"),
        (["body.json", "--dest", "http://localhost:1"], {"source": {"index": "x"}}, "error: the body has no 'dest' object".replace("the body", "body file body.json"), "fix: Add \"dest\""),
        (["body.json", "--dest", "http://localhost:1", "--sample", "0"], GOOD_BODY, "error: --sample must be from 1 to 10,000, got 0", "fix: Pick a smaller sample"),
        (["body.json", "--dest", "http://localhost:1", "--report", "no/such/dir/ids.ndjson"], GOOD_BODY, "error: the folder of --report no/such/dir/ids.ndjson does not exist", "fix: Create no/such/dir first"),
        (["body.json", "--dest", "localhost:9200"], GOOD_BODY, "error: URL has no scheme: 'localhost:9200'", "fix: Write it as https://HOST:PORT"),
    ],
)
def test_bad_input_gives_two_lines_and_exit_2(tmp_path: Path, args: list[str], body: object, message: str, fix: str) -> None:
    if body is not None:
        (tmp_path / "body.json").write_text(body if isinstance(body, str) else json.dumps(body))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith(message), lines[0]
    assert lines[1].startswith(fix), lines[1]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_unreachable_destination_is_a_connection_error(tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text(json.dumps(GOOD_BODY))
    proc = _cli("body.json", "--dest", "http://127.0.0.1:9", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines()[0] == "error: connection refused by http://127.0.0.1:9"
    assert "Traceback" not in proc.stderr


def test_unreachable_source_is_a_connection_error(tmp_path: Path) -> None:
    import socket
    import threading

    # a plain-HTTP "destination" that answers GET / like Elasticsearch, so verify gets to the source
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            body = b'{"cluster_name":"x","version":{"number":"7.17.29"}}'
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    body = {"source": {"remote": {"host": "https://127.0.0.1:9"}, "index": "products"}, "dest": {"index": "copy"}}
    (tmp_path / "body.json").write_text(json.dumps(body))
    try:
        proc = _cli("body.json", "--dest", f"http://127.0.0.1:{port}", cwd=tmp_path)
    finally:
        server.close()
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines()[0] == "error: connection refused by https://127.0.0.1:9"


def test_numbers_compare_by_exact_value():
    from remote_reindex.verify.digest import decode_exact

    def same(a: bytes, b: bytes) -> bool:
        return canonical_source(decode_exact(a)) == canonical_source(decode_exact(b))

    assert same(b'{"v": 2.50}', b'{"v": 2.5}')
    assert same(b'{"v": 1e2}', b'{"v": 100.0}')
    assert same(b'{"v": 1E+400}', b'{"v": 1e400}')
    assert not same(b'{"v": 3.0}', b'{"v": 3}')  # a float is not an integer
    assert not same(b'{"v": 1.00000000000000000001}', b'{"v": 1.0}')  # beyond a double
    assert not same(b'{"v": 12345678901234567890123}', b'{"v": 12345678901234567890124}')
    assert not same(b'{"v": 1e400}', b'{"v": "Infinity"}')
    assert canonical_source(decode_exact(b'{"b": 3.0, "a": [2.50, 1e400, 7]}')) == b'{"a":[2.5,1E+400,7],"b":3.0}'
