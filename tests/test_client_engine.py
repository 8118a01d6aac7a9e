"""The client engine on real nodes.

Source: the sandbox's Elasticsearch 7.17.29 over TLS with a private CA (root ->
intermediate -> leaf), file-realm user, ``products`` with the sample documents; and an
Elasticsearch 8.8.2 TLS source with its own CA. Destinations: Elasticsearch 9.2.0,
Elasticsearch 7.17.29, OpenSearch 2.19.6, and an ES 7.17.29 with a write pool of 1 and a
queue of 1 (real per-item 429s).

Every copy is checked document by document (``_id`` and ``_source``), and mappings are
compared after the copy. The machine's REQUESTS_CA_BUNDLE / SSL_CERT_FILE point at the
system bundle throughout: the explicit --source-ca must still win.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Iterator

import orjson
import pytest
import trustme

from remote_reindex.cluster import ClusterClient
from remote_reindex.engines.client import copy
from remote_reindex.engines.client.source import choose_page_size
from remote_reindex.engines.options import ClientOptions
from remote_reindex.engines.summary import RunSummary
from remote_reindex.errors import TLSError, UsageError
from remote_reindex.plan.body import ReindexBody, parse_body
from remote_reindex.plan.doc_size import average_document_bytes
from remote_reindex.sandbox import SAMPLE_INDEX

pytestmark = pytest.mark.nodes

SYSTEM_BUNDLE = next((p for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt") if os.path.exists(p)), None)
PASSWORD_VAR = "H3_SOURCE_PASSWORD"


# -- helpers ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, source) -> None:
    """The machine's environment: the system bundle everywhere; the source password only in an env var."""
    if SYSTEM_BUNDLE:
        for var in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(var, SYSTEM_BUNDLE)
    monkeypatch.setenv(PASSWORD_VAR, source.password_file.read_text().strip())


def make_body(src, index: Any, dest_index: str | None, *, source_extra: dict | None = None, dest_extra: dict | None = None, password_var: str = PASSWORD_VAR, **top: Any) -> ReindexBody:
    raw = {
        "source": {"remote": {"host": f"https://localhost:{src.node.http_port}", "username": src.username, "password": "${%s}" % password_var},
                   "index": index, **(source_extra or {})},
        "dest": {**({"index": dest_index} if dest_index else {}), **(dest_extra or {})},
        **top,
    }
    return parse_body(orjson.dumps(raw).decode())


def docs_of(client: ClusterClient, index: str) -> dict[str, Any]:
    client.call("POST", f"/{index}/_refresh")
    answer = client.call("POST", f"/{index}/_search", body={"size": 10_000, "sort": ["_doc"]})
    return {h["_id"]: h["_source"] for h in answer["hits"]["hits"]}


def mapping_of(client: ClusterClient, index: str) -> dict[str, Any]:
    data = client.call("GET", f"/{index}/_mapping")
    return next(iter(data.values()))["mappings"]


def run(src, body: ReindexBody, dest: ClusterClient, **opts: Any) -> RunSummary:
    opts.setdefault("source_ca", str(src.ca_file))
    summary = copy(body, dest, ClientOptions(**opts))
    assert isinstance(summary, RunSummary)
    return summary


@pytest.fixture(scope="module")
def sc(source) -> Iterator[ClusterClient]:
    with source.client(timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def source_docs(sc) -> dict[str, Any]:
    return docs_of(sc, SAMPLE_INDEX)


@pytest.fixture
def cleanup() -> Iterator[list[tuple[ClusterClient, str]]]:
    """Indices to delete after the test: (client, index-or-pattern)."""
    items: list[tuple[ClusterClient, str]] = []
    yield items
    for client, name in items:
        client.request("DELETE", f"/{name}", params={"expand_wildcards": "all"})


def clients(side) -> ClusterClient:
    return side.client(timeout=120)


# -- every version pair ----------------------------------------------------------------

def test_es717_tls_source_to_es9_with_pit(source, es9_destination, sc, source_docs, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.append((dest, "client-pit-products"))
    s = run(source, make_body(source, SAMPLE_INDEX, "client-pit-products"), dest, read_mode="pit")
    d = s.to_dict()
    assert d["complete"] is True
    assert (d["total"], d["created"], d["updated"], d["failed"], d["version_conflicts"]) == (source.docs, source.docs, 0, 0, 0)
    assert d["failures"] == []
    assert docs_of(dest, "client-pit-products") == source_docs
    assert mapping_of(dest, "client-pit-products") == mapping_of(sc, SAMPLE_INDEX)
    settings = dest.call("GET", "/client-pit-products/_settings", params={"flat_settings": "true"})["client-pit-products"]["settings"]
    assert settings["index.number_of_shards"] == "2"

    # Same destination, the other read path: a second copy updates every document in place
    s2 = run(source, make_body(source, SAMPLE_INDEX, "client-pit-products"), dest, read_mode="scroll", parallel=3)
    assert (s2.to_dict()["created"], s2.to_dict()["updated"]) == (0, source.docs)
    assert docs_of(dest, "client-pit-products") == source_docs


def test_es717_source_to_es717_with_scroll(source, destination, source_docs, sc, cleanup) -> None:
    dest = clients(destination)
    cleanup.append((dest, "client-scroll-products"))
    s = run(source, make_body(source, SAMPLE_INDEX, "client-scroll-products"), dest, read_mode="scroll", parallel=1)
    assert s.complete and s.totals()["created"] == source.docs
    assert docs_of(dest, "client-scroll-products") == source_docs
    assert mapping_of(dest, "client-scroll-products") == mapping_of(sc, SAMPLE_INDEX)


# Bytes Elasticsearch would rewrite if the search had a filter_path: it then parses every
# _source and writes it again (1.0, 2.5, "Infinity", no spaces) instead of copying it.
EXACT_SOURCE = b'{"a": 1.00000000000000000001, "b": 3.0, "c": 12345678901234567890123, "d":"x",  "e" : [1, 2.50], "f": 1e400}'


@pytest.mark.parametrize("read_mode", ["pit", "scroll"])
@pytest.mark.parametrize("dest_fixture", ["destination", "es9_destination"])
def test_documents_arrive_byte_for_byte(read_mode, dest_fixture, request, source, sc, cleanup) -> None:
    dest = clients(request.getfixturevalue(dest_fixture))
    src_index, dst_index = f"exact-src-{read_mode}", f"exact-dst-{read_mode}"
    cleanup.extend([(sc, src_index), (dest, dst_index)])
    sc.request("DELETE", f"/{src_index}")
    sc.call("PUT", f"/{src_index}", body={"mappings": {"dynamic": False}})  # kept in _source, not indexed
    sc.call("PUT", f"/{src_index}/_doc/1", body=EXACT_SOURCE, params={"refresh": "true"})
    assert sc.request("GET", f"/{src_index}/_source/1").data == EXACT_SOURCE  # the source stores the bytes as sent

    s = run(source, make_body(source, src_index, dst_index), dest, read_mode=read_mode)
    assert s.complete and s.totals()["created"] == 1
    assert dest.request("GET", f"/{dst_index}/_source/1").data == EXACT_SOURCE


def test_es717_source_to_opensearch(source, opensearch_destination, source_docs, sc, cleanup) -> None:
    dest = clients(opensearch_destination)
    cleanup.append((dest, "client-os-products"))
    s = run(source, make_body(source, SAMPLE_INDEX, "client-os-products"), dest, read_mode="pit", parallel=2)
    assert s.complete and s.totals()["created"] == source.docs
    assert docs_of(dest, "client-os-products") == source_docs
    assert mapping_of(dest, "client-os-products") == mapping_of(sc, SAMPLE_INDEX)


def test_es88_source_to_es9(es88_source, es9_destination, cleanup, monkeypatch) -> None:
    monkeypatch.setenv("H3_SOURCE88_PASSWORD", es88_source.password_file.read_text().strip())
    dest = clients(es9_destination)
    cleanup.append((dest, "client-88-products"))
    for mode in ("pit", "scroll"):
        dest.request("DELETE", "/client-88-products")
        body = make_body(es88_source, SAMPLE_INDEX, "client-88-products", password_var="H3_SOURCE88_PASSWORD")
        s = run(es88_source, body, dest, read_mode=mode)
        assert s.complete and s.totals()["created"] == es88_source.docs == 1000, mode
        with es88_source.client(timeout=60) as src:
            assert docs_of(dest, "client-88-products") == docs_of(src, SAMPLE_INDEX)
            assert mapping_of(dest, "client-88-products") == mapping_of(src, SAMPLE_INDEX)


# -- what the body asks for --------------------------------------------------------------

def test_query_source_filter_and_max_docs(source, es9_destination, source_docs, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.append((dest, "client-q-*"))
    category = next(iter(source_docs.values()))["category"]
    wanted = {i: d for i, d in source_docs.items() if d["category"] == category}
    body = make_body(source, SAMPLE_INDEX, "client-q-filtered", source_extra={
        "query": {"term": {"category": category}},
        "_source": {"includes": ["sku", "category", "seller.*"], "excludes": ["seller.since"]},
    })
    s = run(source, body, dest)
    assert s.complete and s.totals()["total"] == s.totals()["created"] == len(wanted)
    expected = {i: {"sku": d["sku"], "category": d["category"], "seller": {k: v for k, v in d["seller"].items() if k != "since"}} for i, d in wanted.items()}
    assert docs_of(dest, "client-q-filtered") == expected

    s = run(source, make_body(source, SAMPLE_INDEX, "client-q-max", max_docs=333), dest, parallel=3)
    assert s.complete and (s.totals()["total"], s.totals()["created"]) == (333, 333)
    got = docs_of(dest, "client-q-max")
    assert len(got) == 333 and all(source_docs[i] == d for i, d in got.items())


def test_op_type_create_with_existing_docs(source, es9_destination, source_docs, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.append((dest, "client-create"))
    run(source, make_body(source, SAMPLE_INDEX, "client-create", max_docs=100), dest, parallel=1)
    existing = docs_of(dest, "client-create")
    changed_id = next(iter(existing))
    dest.call("PUT", f"/client-create/_doc/{changed_id}", body={**existing[changed_id], "sku": "CHANGED"}, params={"refresh": "true"})

    # conflicts: proceed -> the other documents are created, the existing ones are left alone
    body = make_body(source, SAMPLE_INDEX, "client-create", dest_extra={"op_type": "create"}, conflicts="proceed")
    s = run(source, body, dest)
    t = s.totals()
    assert s.complete
    assert (t["created"], t["version_conflicts"], t["failed"], t["failures"]) == (source.docs - 100, 100, 0, [])
    after = docs_of(dest, "client-create")
    assert len(after) == source.docs
    assert after[changed_id]["sku"] == "CHANGED"

    # conflicts: abort (the default) -> stops at the first conflict and says so
    body = make_body(source, SAMPLE_INDEX, "client-create", dest_extra={"op_type": "create"})
    s = run(source, body, dest, parallel=1)
    assert not s.complete
    t = s.totals()
    assert t["created"] == 0 and t["version_conflicts"] >= 1
    assert t["failures"][0]["status"] == 409
    assert t["failures"][0]["cause"]["type"] == "version_conflict_engine_exception"


def test_pattern_expands_to_one_job_per_index_with_aliases(source, sc, es9_destination, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.extend([(sc, "h3-multi-*"), (dest, "h3-multi-*")])
    sizes = {"h3-multi-a": 30, "h3-multi-b": 45, "h3-multi-c": 12}
    for name, n in sizes.items():
        sc.call("PUT", f"/{name}", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                        "mappings": {"properties": {"n": {"type": "integer"}, "name": {"type": "keyword"}}}})
        lines = b"".join(orjson.dumps({"index": {"_index": name, "_id": f"{name}-{i}"}}) + b"\n" + orjson.dumps({"n": i, "name": name}) + b"\n" for i in range(n))
        assert not sc.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson", params={"refresh": "true"})["errors"]
    sc.call("POST", "/_aliases", body={"actions": [{"add": {"index": "h3-multi-b", "alias": "h3-multi-current", "filter": {"range": {"n": {"gte": 10}}}}}]})
    sc.call("PUT", "/h3-multi-closed")
    sc.call("POST", "/h3-multi-closed/_close")

    s = run(source, make_body(source, "h3-multi-*", None), dest)
    assert s.complete
    assert [(i.index, i.dest_index, i.created) for i in s.indices] == [(n, n, c) for n, c in sizes.items()]
    for name in sizes:
        assert docs_of(dest, name) == docs_of(sc, name)
    aliases = dest.call("GET", "/h3-multi-b/_alias")["h3-multi-b"]["aliases"]
    assert aliases == {"h3-multi-current": {"filter": {"range": {"n": {"gte": 10}}}}}
    assert dest.call("POST", "/h3-multi-current/_count")["count"] == 35
    assert dest.request("HEAD", "/h3-multi-closed").status == 404  # closed: skipped with a note


# -- the destination pushes back or refuses ------------------------------------------------

def test_real_429s_are_retried_and_nothing_is_lost(source, throttled_destination, source_docs, cleanup) -> None:
    dest = throttled_destination.client(timeout=120, maxsize=32)
    cleanup.append((dest, "client-429"))
    s = run(source, make_body(source, SAMPLE_INDEX, "client-429"), dest,
            parallel=4, bulk_docs=100, bulk_in_flight=8, read_size=200, max_retries=15)
    t = s.totals()
    assert t["retries"]["bulk"] > 0  # real per-item 429s came back inside HTTP 200 answers
    assert (t["created"], t["failed"], t["failures"]) == (source.docs, 0, [])
    assert s.complete
    assert docs_of(dest, "client-429") == source_docs


def test_refused_documents_go_to_the_dead_letter_file_via_the_cli(source, sc, es9_destination, tmp_path, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.extend([(sc, "h3-dl-src"), (dest, "h3-dl-dst")])
    sc.call("PUT", "/h3-dl-src", body={"mappings": {"properties": {"v": {"type": "keyword"}}}})
    bad = {"bad-1", "bad-2", "bad-3"}
    lines = b"".join(
        orjson.dumps({"index": {"_index": "h3-dl-src", "_id": i}}) + b"\n" + orjson.dumps({"v": "not-a-number" if i in bad else "7"}) + b"\n"
        for i in sorted(bad | {f"ok-{n}" for n in range(50)}))
    sc.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson", params={"refresh": "true"})
    dest.call("PUT", "/h3-dl-dst", body={"mappings": {"properties": {"v": {"type": "integer"}}}})  # the destination's own mapping

    body_file = tmp_path / "body.json"
    body_file.write_text(orjson.dumps({
        "source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username, "password": "${%s}" % PASSWORD_VAR}, "index": "h3-dl-src"},
        "dest": {"index": "h3-dl-dst"},
    }).decode())
    dead = tmp_path / "dead.ndjson"
    proc = subprocess.run(
        [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body_file), "--dest", es9_destination.url, "--engine", "client",
         "--source-ca", str(source.ca_file), "--dead-letter", str(dead), "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=os.environ.copy(),
    )
    assert proc.returncode == 9, proc.stderr
    summary = orjson.loads(proc.stdout)
    assert (summary["total"], summary["created"], summary["failed"]) == (53, 50, 3)
    assert summary["complete"] is False
    assert summary["indices"][0]["dead_letter_file"] == str(dead)
    assert {f["id"] for f in summary["failures"]} == bad
    assert "error: the copy did not write every document" in proc.stderr
    entries = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert {e["_id"] for e in entries} == bad
    assert all(e["_source"] == {"v": "not-a-number"} and e["status"] == 400 and e["error"]["type"] in ("document_parsing_exception", "mapper_parsing_exception") for e in entries)
    assert all(e["index"] == "h3-dl-src" and e["dest_index"] == "h3-dl-dst" for e in entries)
    assert source.password_file.read_text().strip() not in proc.stdout + proc.stderr + dead.read_text()


# -- CLI, plan, TLS --------------------------------------------------------------------------

def test_cli_json_summary_and_plan(source, es9_destination, source_docs, tmp_path, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.append((dest, "client-cli"))
    body_file = tmp_path / "body.json"
    body_file.write_text(orjson.dumps({
        "source": {"remote": {"host": f"https://localhost:{source.node.http_port}", "username": source.username, "password": "${%s}" % PASSWORD_VAR}, "index": SAMPLE_INDEX},
        "dest": {"index": "client-cli"},
    }).decode())
    base = [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body_file), "--dest", es9_destination.url, "--engine", "client", "--source-ca", str(source.ca_file)]

    plan = subprocess.run(base + ["--plan", "--json"], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert plan.returncode == 0, plan.stderr
    p = orjson.loads(plan.stdout)
    assert p["engine"] == "client"
    with source.client() as sc:
        avg = average_document_bytes(sc, SAMPLE_INDEX)
    assert avg is not None and 50 < avg < 2000  # the sample documents: ~1 KB of JSON, compressed on disk
    page, why = choose_page_size(avg)
    assert p["indices"] == [{"index": SAMPLE_INDEX, "dest_index": "client-cli", "docs": source.docs, "kind": "index", "shards": 2,
                             "read_mode": "pit", "slices": 2, "op_type": "index", "page_size": page,
                             "page_size_reason": f"documents of about {avg:,} bytes on disk (compressed; ~{avg * 3:,} bytes of JSON assumed)", "metadata": "create from source"}]
    assert f"read {page} docs per page" in " ".join(p["notes"])
    assert dest.request("HEAD", "/client-cli").status == 404  # the plan wrote nothing

    proc = subprocess.run(base + ["--json", "--read-mode", "scroll", "--parallel", "3"], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr
    d = orjson.loads(proc.stdout)
    assert (d["engine"], d["complete"], d["total"], d["created"], d["failed"], d["failures"]) == ("client", True, source.docs, source.docs, 0, [])
    assert d["retries"] == {"bulk": 0, "search": 0}
    assert d["indices"][0]["batches"] >= 3  # three slices, at least one bulk each
    assert docs_of(dest, "client-cli") == source_docs


def test_source_ca_wins_and_a_wrong_ca_fails_before_writing(source, es9_destination, tmp_path) -> None:
    dest = clients(es9_destination)
    body = make_body(source, SAMPLE_INDEX, "client-never")
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(trustme.CA().cert_pem.bytes())
    with pytest.raises(TLSError) as info:
        copy(body, dest, ClientOptions(source_ca=str(other_ca)))
    assert info.value.cause == "untrusted_issuer"
    assert info.value.message.startswith(f"TLS: the certificate of https://localhost:{source.node.http_port} is not issued by a CA you trust")
    assert info.value.fix == "Give the CA that issued the server's certificate with --source-ca (get it with 'remote-reindex ca fetch HOST:PORT -o ca.pem')."
    with pytest.raises(TLSError):  # no --source-ca: the system bundle from the environment does not know the private CA
        copy(body, dest, ClientOptions())
    assert dest.request("HEAD", "/client-never").status == 404

    with pytest.raises(UsageError) as uinfo:
        copy(make_body(source, "no-such-index-h3", "client-never"), dest, ClientOptions(source_ca=str(source.ca_file)))
    assert uinfo.value.message == f"source index not found on localhost:{source.node.http_port}: no-such-index-h3"
    assert dest.request("HEAD", "/client-never").status == 404


def test_transform_changes_and_drops_documents(source, es9_destination, source_docs, tmp_path, monkeypatch, cleanup) -> None:
    dest = clients(es9_destination)
    cleanup.append((dest, "client-tx"))
    (tmp_path / "h3_transforms.py").write_text(
        "def shout(doc):\n"
        "    if doc['_id'].endswith('7'):\n"
        "        return None\n"
        "    doc['_source']['sku'] = doc['_source']['sku'].upper() + '-X'\n"
        "    return doc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    s = run(source, make_body(source, SAMPLE_INDEX, "client-tx"), dest, transform="h3_transforms:shout")
    dropped = {i for i in source_docs if i.endswith("7")}
    assert s.complete and s.totals()["noops"] == len(dropped) and s.totals()["created"] == source.docs - len(dropped)
    got = docs_of(dest, "client-tx")
    assert set(got) == set(source_docs) - dropped
    some = next(iter(got))
    assert got[some] == {**source_docs[some], "sku": source_docs[some]["sku"].upper() + "-X"}


def test_data_stream_is_one_job_written_with_create(opensearch_destination, cleanup) -> None:
    """Data streams: of the distributions here only OpenSearch has them (the ES integ zips
    lack the data-streams module), so this copies inside one OpenSearch cluster (no
    source.remote): a stream is read as one job (scroll: _doc is not unique across its
    backing indices) and written with op_type create into a new stream."""
    os_client = clients(opensearch_destination)
    cleanup.extend([(os_client, "_data_stream/h3-logs-*"), (os_client, "_index_template/h3-logs")])
    os_client.call("PUT", "/_index_template/h3-logs", body={
        "index_patterns": ["h3-logs-*"], "data_stream": {}, "priority": 500,
        "template": {"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                     "mappings": {"properties": {"@timestamp": {"type": "date"}, "msg": {"type": "keyword"}}}},
    })
    lines = b"".join(orjson.dumps({"create": {"_index": "h3-logs-app", "_id": f"log-{i}"}}) + b"\n"
                     + orjson.dumps({"@timestamp": f"2026-01-01T00:00:{i % 60:02d}Z", "msg": f"line {i}"}) + b"\n" for i in range(120))
    assert not os_client.call("POST", "/_bulk", body=lines, content_type="application/x-ndjson", params={"refresh": "true"})["errors"]
    os_client.call("POST", "/h3-logs-app/_rollover")  # two backing indices
    os_client.call("POST", "/h3-logs-app/_doc", body={"@timestamp": "2026-01-02T00:00:00Z", "msg": "after rollover"}, params={"refresh": "true", "op_type": "create"})

    body = parse_body(orjson.dumps({"source": {"index": "h3-logs-app"}, "dest": {"index": "h3-logs-copy"}}).decode())
    s = copy(body, os_client, ClientOptions())
    assert isinstance(s, RunSummary)
    assert [(i.index, i.dest_index, i.created) for i in s.indices] == [("h3-logs-app", "h3-logs-copy", 121)]
    assert s.complete
    streams = os_client.call("GET", "/_data_stream/h3-logs-copy")["data_streams"]
    assert streams[0]["name"] == "h3-logs-copy" and streams[0]["template"] == "h3-logs"
    assert docs_of(os_client, "h3-logs-copy") == docs_of(os_client, "h3-logs-app")
