"""Fast tests of the server engine's pure logic: error translation from the texts real
nodes answered (recorded on ES 7.17.29 / OpenSearch 2.19.6, see
/work/shared/reference/test-infra.md), partition planning, batch sizing, allowlist matching."""

from __future__ import annotations

import pytest

from remote_reindex.cluster import ClusterInfo
from remote_reindex.engines.server.batch import choose_batch_size
from remote_reindex.engines.server.partitions import FieldStats, boundaries, partitionable_fields, plan_partitions
from remote_reindex.engines.server.preflight import allowlist_matches, allowlist_of, check_versions, probe_body
from remote_reindex.engines.server.tasks import TaskStatus, check_task_id
from remote_reindex.engines.server.translate import explain_reindex_error
from remote_reindex.errors import AuthError, CopyError, PreflightError, TLSError, UsageError
from remote_reindex.plan.body import parse_body


def err(typ: str, reason: str, caused_by: dict | None = None, status: int = 500) -> dict:
    e = {"type": typ, "reason": reason}
    if caused_by:
        e["caused_by"] = caused_by
    return {"error": {"root_cause": [{"type": typ, "reason": reason}], **e}, "status": status}


def test_not_whitelisted_es_gives_the_exact_line():
    e = explain_reindex_error(err("illegal_argument_exception", "[localhost:9201] not whitelisted in reindex.remote.whitelist", status=400),
                              status=400, host_port="localhost:9201")
    assert isinstance(e, PreflightError) and e.cause == "not_allowlisted"
    assert "step 4" in e.message
    assert "'reindex.remote.whitelist: [\"localhost:9201\"]'" in e.fix and "static" in e.fix


def test_not_allowlisted_opensearch_uses_the_allowlist_key():
    e = explain_reindex_error(err("illegal_argument_exception", "[localhost:9201] not allowlisted in reindex.remote.allowlist", status=400),
                              status=400, allowlist_key="reindex.remote.allowlist")
    assert e.cause == "not_allowlisted"
    assert "'reindex.remote.allowlist: [\"localhost:9201\"]'" in e.fix


def test_pkix_points_at_steps_1_to_4():
    pkix = "PKIX path building failed: sun.security.provider.certpath.SunCertPathBuilderException: unable to find valid certification path to requested target"
    body = err("s_s_l_handshake_exception", pkix, {"type": "validator_exception", "reason": pkix,
                                                   "caused_by": {"type": "sun_cert_path_builder_exception", "reason": "unable to find valid certification path to requested target"}})
    e = explain_reindex_error(body, host_port="localhost:9201")
    assert isinstance(e, TLSError) and e.cause == "dest_untrusted_ca"
    assert "does not trust the certificate of localhost:9201" in e.message
    assert "ca check" in e.fix and "reindex.ssl.certificate_authorities" in e.fix and "bundle" in e.fix


def test_hostname_mismatch():
    body = {"type": "s_s_l_peer_unverified_exception", "reason": "Host name 'vm' does not match the certificate subject provided by the peer (CN=localhost)"}
    e = explain_reindex_error({"error": body}, host_port="vm:9201")
    assert e.cause == "dest_hostname_mismatch" and "SANs" in e.message and "verification_mode" in e.fix


def test_wrapped_source_401_is_about_source_credentials():
    inner = '{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [reindexer] for REST request [/]"}],"type":"security_exception","reason":"unable to authenticate user [reindexer] for REST request [/]"},"status":401}'
    e = explain_reindex_error(err("status_exception", f"body={inner}", status=401), status=401)
    assert isinstance(e, AuthError) and e.cause == "source_auth_failed"
    assert "source.remote" in e.message and "password" in e.fix


def test_destination_own_401_is_about_destination_credentials():
    e = explain_reindex_error(err("security_exception", "unable to authenticate user [x] for REST request [/_reindex]", status=401), status=401)
    assert e.cause == "dest_auth_failed"


def test_wrapped_source_403_and_404():
    forbidden = 'body={"error":{"type":"security_exception","reason":"action [indices:data/read/search] is unauthorized for user [r]"},"status":403}'
    assert explain_reindex_error(err("status_exception", forbidden, status=403)).cause == "source_forbidden"
    missing = 'body={"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [nope]"}]},"status":404}'
    e = explain_reindex_error(err("status_exception", missing, status=404), indices=["nope"])
    assert e.cause == "source_index_not_found" and "nope" in e.message


def test_malformed_host_unsupported_fields_slices():
    e = explain_reindex_error(err("illegal_argument_exception", "[host] must be of the form [scheme]://[host]:[port](/[pathPrefix])? but was [localhost]", status=400))
    assert isinstance(e, UsageError) and e.cause == "malformed_host"
    e = explain_reindex_error(err("parsing_exception", "[reindex] failed to parse field [source]", {"type": "illegal_argument_exception", "reason": "Unsupported fields in [remote]: [ssl]"}, status=400))
    assert e.cause == "unsupported_remote_fields" and "reindex.ssl" in e.fix
    e = explain_reindex_error(err("action_request_validation_exception", "Validation Failed: 1: reindex from remote sources doesn't support slices > 1 but was [2];", status=400))
    assert e.cause == "remote_slices" and "--partitions" in e.fix


def test_chunk_too_large():
    body = err("illegal_argument_exception", "Remote responded with a chunk that was too large. Use a smaller batch size.",
               {"type": "content_too_long_exception", "reason": "entity content is too long [120012929] for the configured buffer limit [104857600]"}, status=400)
    e = explain_reindex_error(body)
    assert isinstance(e, CopyError) and e.cause == "chunk_too_large"
    assert "120 MB" in e.message and "105 MB" in e.message and "source.size" in e.fix


def test_older_destination():
    body = err("illegal_state_exception", "Error parsing the response, remote is likely not an Elasticsearch instance",
               {"type": "x_content_parse_exception", "reason": "[1:1234] [search_response] failed to parse field [hits]", "caused_by": {"type": "illegal_argument_exception", "reason": "Required [_type]"}})
    e = explain_reindex_error(body)
    assert e.cause == "dest_older_than_source" and "step 3" in e.fix


def test_check_versions():
    es = lambda v: ClusterInfo("elasticsearch", v)  # noqa: E731
    assert check_versions(es("7.17.29"), es("7.17.29")) is None
    assert check_versions(es("7.17.29"), es("8.8.2")) is None
    with pytest.raises(PreflightError) as e:
        check_versions(es("8.8.2"), es("7.17.29"))
    assert e.value.cause == "dest_older_than_source"
    assert check_versions(es("8.8.2"), ClusterInfo("opensearch", "2.19.6")) is None


def test_allowlist_matching_is_literal_with_wildcards():
    assert allowlist_matches(["localhost:9201"], "localhost:9201")
    assert not allowlist_matches(["localhost:9201"], "127.0.0.1:9201")
    assert allowlist_matches(["localhost:*"], "localhost:9999")
    assert allowlist_matches(["*.example.com:9200"], "es1.example.com:9200")
    assert not allowlist_matches([], "localhost:9201")
    assert allowlist_of({"reindex.remote.whitelist": ["a:1", "b:2"]}) == ("reindex.remote.whitelist", ["a:1", "b:2"])
    assert allowlist_of({"reindex.remote.allowlist.0": "a:1", "reindex.remote.allowlist.1": "b:2"}) == ("reindex.remote.allowlist", ["a:1", "b:2"])
    assert allowlist_of({"reindex.remote.whitelist": "a:1,b:2"})[1] == ["a:1", "b:2"]
    assert allowlist_of({}) == (None, [])


def test_boundaries_and_partitions_cover_everything_once():
    assert boundaries(0, 100, 4, True) == [25, 50, 75]
    assert boundaries(0, 2, 4, True) == [1, 2]  # small span: fewer ranges
    assert boundaries(5, 5, 4, True) == []
    stats = FieldStats("n", "long", 0, 100, with_field=90, values=90, without_field=10)
    parts = plan_partitions(stats, 4, {"term": {"category": "x"}})
    assert len(parts) == 5
    ranges = [p.query["bool"]["filter"][1]["range"]["n"] for p in parts[:4]]
    assert ranges == [{"lt": 25}, {"gte": 25, "lt": 50}, {"gte": 50, "lt": 75}, {"gte": 75}]
    assert all(p.query["bool"]["filter"][0] == {"term": {"category": "x"}} for p in parts)
    assert parts[-1].query["bool"]["filter"][1] == {"bool": {"must_not": [{"exists": {"field": "n"}}]}}
    # every value of the field falls in exactly one range
    for v in [-5, 0, 24, 24.999, 25, 49, 50, 75, 100, 10**9]:
        hits = [r for r in ranges if ("gte" not in r or v >= r["gte"]) and ("lt" not in r or v < r["lt"])]
        assert len(hits) == 1, v


def test_date_partitions_use_epoch_millis():
    stats = FieldStats("created_at", "date", 1_577_836_800_000.0, 1_735_689_600_000.0, 100, 100, 0)
    parts = plan_partitions(stats, 2, None)
    assert parts[0].query == {"bool": {"filter": [{"range": {"created_at": {"format": "epoch_millis", "lt": 1_656_763_200_000}}}]}}
    assert parts[0].label.startswith("created_at [.., 2022-07-02")


def test_multivalued_field_is_refused():
    with pytest.raises(UsageError) as e:
        plan_partitions(FieldStats("tags", "long", 0, 9, 10, 25, 0), 3)
    assert "several values" in e.value.message


def test_partitionable_fields_skip_nested_and_put_dates_first():
    mapping = {"properties": {"price": {"type": "double"}, "created_at": {"type": "date"}, "title": {"type": "text"},
                              "reviews": {"type": "nested", "properties": {"stars": {"type": "integer"}}},
                              "seller": {"properties": {"since": {"type": "date"}}}}}
    assert partitionable_fields(mapping) == [("created_at", "date"), ("seller.since", "date"), ("price", "double")]


def test_batch_size_by_bytes():
    assert choose_batch_size(None, None).size == 1000
    assert choose_batch_size(500, None).size == 5000  # small documents: the largest batch (fastest when measured)
    assert choose_batch_size(2000, None).size == 20 * 1024 * 1024 // 6000  # ~1 KB JSON docs: stays near 20 MB
    big = choose_batch_size(1_000_000, None)
    assert 1 <= big.size <= 10 and big.warning is None
    user = choose_batch_size(1_000_000, 1000)
    assert user.size == 1000 and user.warning and "100 MB" in user.warning
    assert choose_batch_size(500, 5000).warning is None


def test_probe_body_matches_nothing_and_keeps_the_remote():
    body = parse_body('{"source": {"remote": {"host": "https://localhost:9201", "username": "u", "password": "p"}, "index": "a", "size": 50, "query": {"match_all": {}}}, "dest": {"index": "b", "pipeline": "x"}, "max_docs": 5}')
    probe = probe_body(body, "a", "b")
    assert probe["source"]["query"] == {"ids": {"values": []}}
    assert probe["source"]["remote"]["password"] == "p"
    assert probe["dest"] == {"index": "b"} and "max_docs" not in probe


def test_task_status_and_ids():
    answer = {"completed": True, "task": {"status": {"total": 10, "created": 3}, "running_time_in_nanos": 2_000_000, "description": "reindex from [host=localhost port=1][a] to [b][_doc]"},
              "response": {"took": 5, "total": 10, "created": 7, "updated": 3, "batches": 1, "retries": {"bulk": 1, "search": 0}, "failures": [], "canceled": "by user request"}}
    st = TaskStatus.from_answer("n:1", answer)
    assert (st.completed, st.total, st.created, st.updated, st.done, st.retries_bulk, st.canceled) == (True, 10, 7, 3, 10, 1, "by user request")
    assert check_task_id(" abc_-D:12 ") == "abc_-D:12"
    with pytest.raises(UsageError):
        check_task_id("12")
