"""``remote-reindex verify`` against real nodes: the sandbox's TLS source (ES 7.17.29,
private CA, basic auth, ``products`` with SANDBOX_DOCS documents) and real destinations
(ES 7.17.29, ES 9.2.0, OpenSearch 2.19.6). Destination indices are filled here by reading
the source and bulk-writing (with every document's keys in reverse order, which verify
must not care about), so these tests do not depend on the copy engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from remote_reindex.cluster import ClusterClient
from remote_reindex.plan.body import body_from_dict
from remote_reindex.plan.source import source_client
from remote_reindex.verify import VerifyOptions, verify

SANDBOX_DOCS = int(os.environ.get("REMOTE_REINDEX_TEST_DOCS", "2000"))  # what conftest loads into the source

pytestmark = pytest.mark.nodes

PASSWORD_ENV = "RR_VERIFY_SOURCE_PASSWORD"
DEST_INDICES = ("verify-copy", "verify-diff", "verify-filtered", "verify-first100", "verify-missing", "verify-part-a", "verify-part-b", "verify-merged")
CAMPING = {"term": {"category": "camping"}}
FILTER = ["sku", "price", "seller.country"]


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def copy_index(src: ClusterClient, dst: ClusterClient, index: str, dest_index: str, *, query: Any = None,
               source_filter: Any = None, limit: int | None = None) -> int:
    """A plain scroll + bulk copy, independent of verify's reader and of the engines."""
    dst.request("DELETE", f"/{dest_index}")
    dst.call("PUT", f"/{dest_index}", body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}})
    body: dict[str, Any] = {"size": 500, "query": query or {"match_all": {}}, "sort": ["_doc"]}
    if source_filter is not None:
        body["_source"] = source_filter
    page = src.call("POST", f"/{index}/_search", params={"scroll": "1m"}, body=body)
    copied = 0
    while page["hits"]["hits"] and (limit is None or copied < limit):
        hits = page["hits"]["hits"][: None if limit is None else limit - copied]
        lines = bytearray()
        for hit in hits:
            lines += json.dumps({"index": {"_index": dest_index, "_id": hit["_id"]}}).encode() + b"\n"
            lines += json.dumps(reversed_keys(hit["_source"])).encode() + b"\n"
        result = dst.call("POST", "/_bulk", body=bytes(lines), content_type="application/x-ndjson")
        assert not result["errors"]
        copied += len(hits)
        page = src.call("POST", "/_search/scroll", body={"scroll": "1m", "scroll_id": page["_scroll_id"]})
    src.request("DELETE", "/_search/scroll", body={"scroll_id": [page["_scroll_id"]]})
    dst.call("POST", f"/{dest_index}/_refresh")
    return copied


@pytest.fixture(scope="module")
def src(source) -> Iterator[ClusterClient]:
    with source.client() as c:
        yield c


@pytest.fixture(scope="module")
def dst(destination) -> Iterator[ClusterClient]:
    with destination.client() as c:
        yield c
        for name in DEST_INDICES:
            c.request("DELETE", f"/{name}")


@pytest.fixture(scope="module")
def password(source) -> str:
    return source.password_file.read_text().strip()


@pytest.fixture(scope="module")
def copies(source, src: ClusterClient, dst: ClusterClient) -> dict[str, int]:
    assert source.docs == SANDBOX_DOCS
    counts = {
        "verify-copy": copy_index(src, dst, "products", "verify-copy"),
        "verify-diff": copy_index(src, dst, "products", "verify-diff"),
        "verify-filtered": copy_index(src, dst, "products", "verify-filtered", query=CAMPING, source_filter=FILTER),
        "verify-first100": copy_index(src, dst, "products", "verify-first100", limit=100),
    }
    # verify-diff: one document deleted, one changed, one added
    dst.call("DELETE", "/verify-diff/_doc/p00000005")
    changed = dst.call("GET", "/verify-diff/_doc/p00000010")["_source"]
    dst.call("PUT", "/verify-diff/_doc/p00000010", body={**changed, "price": changed["price"] + 1})
    dst.call("PUT", "/verify-diff/_doc/extra-1", body={"sku": "not from the source"})
    dst.call("POST", "/verify-diff/_refresh")
    return counts


def body_file(tmp_path: Path, source, dest_index: str, source_extra: dict[str, Any] | None = None, **extra: Any) -> Path:
    source_part: dict[str, Any] = {
        "remote": {"host": source.url, "username": source.username, "password": "${" + PASSWORD_ENV + "}"},
        "index": extra.pop("index", "products"),
    }
    source_part.update(source_extra or {})
    body = {"source": source_part, "dest": {"index": dest_index}, **extra}
    path = tmp_path / f"body-{dest_index}.json"
    path.write_text(json.dumps(body))
    return path


def run_verify(source, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The machine points REQUESTS_CA_BUNDLE/SSL_CERT_FILE at the system bundle: --source-ca must still win.
    env = {**os.environ, PASSWORD_ENV: password}
    assert env.get("SSL_CERT_FILE") or env.get("REQUESTS_CA_BUNDLE")
    proc = subprocess.run([sys.executable, "-m", "remote_reindex.cli.main", "verify", *args], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert password not in proc.stdout and password not in proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def verify_json(source, password: str, body: Path, dest_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_verify(source, password, str(body), "--dest", dest_url, "--source-ca", str(source.ca_file), "--json", *args)
    return proc.returncode, json.loads(proc.stdout)


def test_equal_after_a_copy(tmp_path, source, destination, password, copies) -> None:
    assert copies["verify-copy"] == SANDBOX_DOCS
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-copy"), destination.url)
    assert code == 0
    assert out["equal"] is True
    [r] = out["indices"]
    assert (r["index"], r["dest_index"], r["source_count"], r["dest_count"]) == ("products", "verify-copy", SANDBOX_DOCS, SANDBOX_DOCS)
    assert (r["equal"], r["mode"], r["buckets_checked"], r["buckets_unequal"]) == (True, "full", 256, 0)
    assert (r["missing"], r["extra"], r["different"]) == ([], [], [])


def test_equal_text_output(tmp_path, source, destination, password, copies) -> None:
    proc = run_verify(source, password, str(body_file(tmp_path, source, "verify-copy")), "--dest", destination.url, "--source-ca", str(source.ca_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"equal  products -> verify-copy: {SANDBOX_DOCS:,} documents (256 buckets of content compared)"


def test_missing_extra_and_different_ids_are_named(tmp_path, source, destination, password, copies) -> None:
    report = tmp_path / "ids.ndjson"
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-diff"), destination.url, "--report", str(report))
    assert code == 11
    [r] = out["indices"]
    assert (r["source_count"], r["dest_count"], r["equal"]) == (SANDBOX_DOCS, SANDBOX_DOCS, False)
    assert (r["missing"], r["extra"], r["different"]) == (["p00000005"], ["extra-1"], ["p00000010"])
    assert (r["missing_count"], r["extra_count"], r["different_count"]) == (1, 1, 1)
    assert r["buckets_checked"] == 256 and 1 <= r["buckets_unequal"] <= 3
    lines = sorted((d["kind"], d["_id"]) for d in map(json.loads, report.read_text().splitlines()))
    assert lines == [("different", "p00000010"), ("extra", "extra-1"), ("missing", "p00000005")]
    assert not report.with_name(report.name + ".partial").exists()


def test_differences_in_text_output(tmp_path, source, destination, password, copies) -> None:
    proc = run_verify(source, password, str(body_file(tmp_path, source, "verify-diff")), "--dest", destination.url, "--source-ca", str(source.ca_file))
    assert proc.returncode == 11
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"DIFFERENT  products -> verify-diff: source {SANDBOX_DOCS:,}, destination {SANDBOX_DOCS:,}; 1 missing, 1 extra, 1 different;")
    assert lines[1:] == ["  missing (1): p00000005", "  extra (1): extra-1", "  different (1): p00000010"]
    assert proc.stderr.strip().splitlines() == [
        "error: the destination differs from the source in 1 of 1 index pair(s)",
        "fix: Copy again with 'remote-reindex run BODY --dest URL --restart' (without --restart a finished job is not run again) and delete the extra "
        "documents from the destination (a copy never removes documents), then verify again; --report FILE lists every differing id. "
        "Documents still different after a copy with --engine server: Elasticsearch's remote _reindex rewrites numbers beyond a double "
        "(1e400 becomes \"Infinity\"); copy those with --engine client, which keeps the bytes.",
    ]


def test_sample_finds_the_same_ids_when_it_covers_everything(tmp_path, source, destination, password, copies) -> None:
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-diff"), destination.url, "--sample", "10000")
    assert code == 11
    [r] = out["indices"]
    assert r["mode"] == "sample" and r["buckets_checked"] == 0
    assert (r["missing"], r["extra"], r["different"]) == (["p00000005"], ["extra-1"], ["p00000010"])
    assert r["sampled"] == 2 * SANDBOX_DOCS


def test_small_sample_of_an_equal_copy(tmp_path, source, destination, password, copies) -> None:
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-copy"), destination.url, "--sample", "50")
    assert code == 0
    [r] = out["indices"]
    assert (r["mode"], r["sampled"], r["equal"], r["source_count"], r["dest_count"]) == ("sample", 100, True, SANDBOX_DOCS, SANDBOX_DOCS)


def test_query_and_source_filter_define_what_the_destination_should_hold(tmp_path, source, destination, password, copies, src) -> None:
    camping = src.call("POST", "/products/_count", body={"query": CAMPING})["count"]
    assert 0 < camping < SANDBOX_DOCS and copies["verify-filtered"] == camping
    extra = {"source_extra": {"query": CAMPING, "_source": FILTER}}
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-filtered", **extra), destination.url)
    assert code == 0, out
    assert out["indices"][0]["source_count"] == camping and out["indices"][0]["dest_count"] == camping
    # the same body against the full copy: everything outside the query is extra,
    # everything inside it holds more fields than the filter lets through
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-copy", **extra), destination.url)
    assert code == 11
    r = out["indices"][0]
    assert (r["missing_count"], r["extra_count"], r["different_count"]) == (0, SANDBOX_DOCS - camping, camping)


def test_max_docs_compares_counts_only(tmp_path, source, destination, password, copies) -> None:
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-first100", max_docs=100), destination.url)
    assert code == 0
    r = out["indices"][0]
    assert (r["mode"], r["source_count"], r["expected_dest_count"], r["dest_count"]) == ("counts", SANDBOX_DOCS, 100, 100)
    assert "max_docs 100: only counts are compared (expected 100 in the destination)" in r["notes"]
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-copy", max_docs=100), destination.url)
    assert code == 11 and out["indices"][0]["dest_count"] == SANDBOX_DOCS


def test_missing_destination_index_lists_every_id_in_the_report(tmp_path, source, destination, password, copies) -> None:
    report = tmp_path / "ids.ndjson"
    code, out = verify_json(source, password, body_file(tmp_path, source, "verify-missing"), destination.url,
                            "--report", str(report), "--max-ids", "5")
    assert code == 11
    r = out["indices"][0]
    assert (r["dest_count"], r["missing_count"], r["extra_count"], r["different_count"]) == (0, SANDBOX_DOCS, 0, 0)
    assert len(r["missing"]) == 5 and set(r["missing"]) <= {f"p{i:08d}" for i in range(SANDBOX_DOCS)}
    assert r["truncated"] is True
    assert "the destination index verify-missing does not exist" in r["notes"]
    ids = sorted(json.loads(line)["_id"] for line in report.read_text().splitlines())
    assert ids == [f"p{i:08d}" for i in range(SANDBOX_DOCS)]


def test_drill_down_in_several_bounded_rounds(source, destination, password, copies) -> None:
    """The library with a tiny memory budget: many passes, the same answer."""
    raw = {"source": {"remote": {"host": source.url, "username": source.username, "password": password}, "index": "products"},
           "dest": {"index": "verify-diff"}}
    body = body_from_dict(raw)
    messages: list[str] = []
    with source_client(body.remote, ca_file=str(source.ca_file)) as s, destination.client() as d:
        result = verify(body, s, d, VerifyOptions(memory_ids=1, parallel=2), messages.append)
    [r] = result.indices
    assert (r.missing.ids, r.extra.ids, r.different.ids) == (["p00000005"], ["extra-1"], ["p00000010"])
    passes = [m for m in messages if "reading ids, pass" in m]
    assert len(passes) == r.buckets_unequal >= 2  # one pass per unequal bucket with a budget of 1 id


def test_missing_source_index_is_a_usage_error(tmp_path, source, destination, password) -> None:
    proc = run_verify(source, password, str(body_file(tmp_path, source, "verify-x", index="no-such-index")), "--dest", destination.url,
                      "--source-ca", str(source.ca_file))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: source index not found on {source.node.host_port}: no-such-index",
        "fix: Check source.index (list the source's indices with GET _cat/indices, or use a pattern like \"logs-*\").",
    ]


def test_source_ca_is_required_even_with_the_environment_bundle(tmp_path, source, destination, password) -> None:
    proc = run_verify(source, password, str(body_file(tmp_path, source, "verify-copy")), "--dest", destination.url)
    assert proc.returncode == 4
    assert proc.stderr.splitlines()[0].startswith(f"error: TLS: the certificate of {source.url} is not issued by a CA you trust")


def test_wrong_source_password_is_an_auth_error(tmp_path, source, destination) -> None:
    proc = run_verify(source, "wrong-password-123", str(body_file(tmp_path, source, "verify-copy")), "--dest", destination.url,
                      "--source-ca", str(source.ca_file))
    assert proc.returncode == 7
    assert proc.stderr.splitlines()[0].startswith(f"error: {source.node.host_port} refused the credentials (401)")


def test_pattern_of_indices_merged_into_one_destination_index(tmp_path, destination, dst) -> None:
    """A local body (no source.remote: source and destination are one cluster): a pattern
    matching two indices written into one, as _reindex does with dest.index."""
    lines = bytearray()
    for part in ("a", "b"):
        for i in range(50):
            doc = {"part": part, "n": i}
            for index in (f"verify-part-{part}", "verify-merged"):
                lines += json.dumps({"index": {"_index": index, "_id": f"{part}{i}"}}).encode() + b"\n" + json.dumps(doc).encode() + b"\n"
    assert not dst.call("POST", "/_bulk", params={"refresh": "true"}, body=bytes(lines), content_type="application/x-ndjson")["errors"]
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps({"source": {"index": "verify-part-*"}, "dest": {"index": "verify-merged"}}))
    proc = run_verify(None, "unused-secret-xyz", str(merged), "--dest", destination.url, "--json")
    assert proc.returncode == 0, proc.stderr
    [r] = json.loads(proc.stdout)["indices"]
    assert (r["index"], r["dest_index"], r["source_count"], r["dest_count"], r["equal"]) == ("verify-part-a,verify-part-b", "verify-merged", 100, 100, True)
    # without dest.index each index keeps its name: compared with itself, twice equal
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"source": {"index": ["verify-part-a", "verify-part-b"]}, "dest": {}}))
    proc = run_verify(None, "unused-secret-xyz", str(own), "--dest", destination.url, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(r["index"], r["dest_index"], r["dest_count"]) for r in json.loads(proc.stdout)["indices"]] == [
        ("verify-part-a", "verify-part-a", 50), ("verify-part-b", "verify-part-b", 50)]
    # one document less in the merged index
    dst.call("DELETE", "/verify-merged/_doc/b7", params={"refresh": "true"})
    proc = run_verify(None, "unused-secret-xyz", str(merged), "--dest", destination.url, "--json")
    assert proc.returncode == 11 and json.loads(proc.stdout)["indices"][0]["missing"] == ["b7"]


NUMBERS = b'{"a": 1.00000000000000000001, "b": 3.0, "c": 12345678901234567890123, "e" : [1, 2.50], "f": 1e400, "g": 100.0}'
NUMBERS_RESPELLED = b'{"g":1e2,"f":1E+400,"e":[1,2.5],"c":12345678901234567890123,"b":3.00,"a":1.000000000000000000010}'
NUMBERS_AS_REMOTE_REINDEX_WRITES_THEM = b'{"a":1.0,"b":3.0,"c":12345678901234567890123,"e":[1,2.5],"f":"Infinity","g":100.0}'
NUMBERS_AS_ELASTICDUMP_WRITES_THEM = b'{"a":1.00000000000000000001,"b":3,"c":12345678901234567890123,"e":[1,2.5],"f":1e400,"g":100}'


def test_numbers_are_compared_by_exact_value(tmp_path, destination, dst) -> None:
    """Verify compares numbers by value, beyond a double: the same values spelled otherwise
    are equal; what Elasticsearch's remote _reindex (rounding, "Infinity") or elasticdump
    (3.0 -> 3) write is different; a number beyond a double is no crash."""
    docs = {"verify-num-src": NUMBERS, "verify-num-same": NUMBERS_RESPELLED,
            "verify-num-remote": NUMBERS_AS_REMOTE_REINDEX_WRITES_THEM, "verify-num-dump": NUMBERS_AS_ELASTICDUMP_WRITES_THEM}
    try:
        for index, raw in docs.items():
            dst.request("DELETE", f"/{index}")
            dst.call("PUT", f"/{index}", body={"mappings": {"dynamic": False}})  # kept in _source, not indexed
            dst.call("PUT", f"/{index}/_doc/1", body=raw, params={"refresh": "true"})
        results = {}
        for dest_index in ("verify-num-same", "verify-num-remote", "verify-num-dump"):
            body = tmp_path / f"{dest_index}.json"
            body.write_text(json.dumps({"source": {"index": "verify-num-src"}, "dest": {"index": dest_index}}))
            proc = run_verify(None, "unused-secret-xyz", str(body), "--dest", destination.url, "--json")
            results[dest_index] = (proc.returncode, json.loads(proc.stdout)["indices"][0]["different"])
        assert results == {"verify-num-same": (0, []), "verify-num-remote": (11, ["1"]), "verify-num-dump": (11, ["1"])}
    finally:
        for index in docs:
            dst.request("DELETE", f"/{index}")


@pytest.mark.parametrize("dest_fixture", ["es9_destination", "opensearch_destination"])
def test_other_destination_versions(request, tmp_path, source, src, password, dest_fixture) -> None:
    other = request.getfixturevalue(dest_fixture)
    with other.client() as d:
        try:
            assert copy_index(src, d, "products", "verify-other") == SANDBOX_DOCS
            code, out = verify_json(source, password, body_file(tmp_path, source, "verify-other"), other.url)
            assert code == 0 and out["indices"][0]["dest_count"] == SANDBOX_DOCS
            d.call("DELETE", "/verify-other/_doc/p00000123")
            d.call("POST", "/verify-other/_refresh")
            code, out = verify_json(source, password, body_file(tmp_path, source, "verify-other"), other.url)
            r = out["indices"][0]
            assert code == 11 and (r["missing"], r["extra"], r["different"]) == (["p00000123"], [], [])
            code, out = verify_json(source, password, body_file(tmp_path, source, "verify-other"), other.url, "--sample", "10000")
            assert code == 11 and out["indices"][0]["missing"] == ["p00000123"]
        finally:
            d.request("DELETE", "/verify-other")
