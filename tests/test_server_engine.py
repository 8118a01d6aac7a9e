"""The server engine on real nodes: an Elasticsearch 7.17.29 destination of its own (the
shared one must stay untouched), walked through the guide's states in order, so it is
restarted only three times: not allowlisted -> allowlisted only (PKIX) -> bundle + settings
(copies; every error text triggered for real) -> a wrong CA in the bundle.

Every error the destination can give is triggered for real; where our own body checks
would catch it first, the raw request goes straight to the destination and the
translation is checked on the server's own answer.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import trustme

from remote_reindex.engines.options import ServerOptions
from remote_reindex.engines.progress import Progress
from remote_reindex.engines.server import attach, choose_engine, copy, explain_reindex_error, rethrottle, task_body
from remote_reindex.engines.server.preflight import probe_trust
from remote_reindex.engines.server.tasks import get_status, start_task
from remote_reindex.errors import AuthError, ClusterError, CopyError, PreflightError, TLSError, UsageError
from remote_reindex.sandbox import SAMPLE_INDEX

from test_server_engine_support import body_for, configure, count_of, docs_of, full_settings, index_exists, remote_of

pytestmark = pytest.mark.nodes

NAME = "srv-es"


@pytest.fixture(scope="module")
def dest(extra_destination):
    return extra_destination("elasticsearch", name=NAME)


@pytest.fixture(scope="module")
def dc(dest):
    with dest.client(timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def sc(source):
    with source.client(timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-engine")


def opts(source, **kw) -> ServerOptions:
    return ServerOptions(source_ca=str(source.ca_file), poll_interval=0.3, **kw)


def host_ports(source) -> list[str]:
    return [f"localhost:{source.node.http_port}", f"vm:{source.node.http_port}"]


# -- state 1: nothing configured ---------------------------------------------------------


def test_01_not_allowlisted_refused_before_writing(source, dc):
    body = body_for(source, SAMPLE_INDEX, "s1-products")
    with pytest.raises(PreflightError) as e:
        copy(body, dc, opts(source))
    assert e.value.cause == "not_allowlisted"
    assert f"may not pull from localhost:{source.node.http_port}" in e.value.message
    assert f"'reindex.remote.whitelist: [\"localhost:{source.node.http_port}\"]'" in e.value.fix
    assert "static" in e.value.fix
    assert not index_exists(dc, "s1-products")
    # the destination's own answer says the same
    with pytest.raises(PreflightError) as e2:
        copy(body, dc, opts(source, skip_preflight=True, copy_metadata=False))
    assert e2.value.cause == "not_allowlisted"
    assert not index_exists(dc, "s1-products")
    engine, why = choose_engine(body, dc, opts(source))
    assert engine == "client" and "reindex.remote.whitelist" in why


# -- state 2: allowlisted, CA not configured ------------------------------------------------


def test_02_pkix_when_only_allowlisted(sandbox, source, dest, dc, workdir):
    configure(sandbox, dest, NAME, workdir / "wl", {"reindex.remote.whitelist": host_ports(source)}, [source.ca_file])
    body = body_for(source, SAMPLE_INDEX, "s2-products")
    with pytest.raises(TLSError) as e:
        copy(body, dc, opts(source))
    assert e.value.cause == "dest_untrusted_ca"
    assert "does not trust the certificate" in e.value.message and "unable to find valid certification path" in e.value.message
    assert "ca check" in e.value.fix
    assert not index_exists(dc, "s2-products")  # the probe created nothing
    engine, why = choose_engine(body, dc, opts(source))
    assert engine == "client" and "does not trust" in why


# -- state 3: bundle + settings ---------------------------------------------------------------


def test_03_copy_after_bundle_and_settings(sandbox, source, dest, dc, sc, workdir):
    configure(sandbox, dest, NAME, workdir / "full", full_settings("reindex.remote.whitelist", host_ports(source)), [source.ca_file])
    body = body_for(source, SAMPLE_INDEX, "s3-products")
    engine, why = choose_engine(body, dc, opts(source))
    assert engine == "server" and "probe" in why
    summary = copy(body, dc, opts(source))
    assert summary.complete
    [s] = summary.indices
    assert (s.total, s.created, s.updated, s.failed) == (source.docs, source.docs, 0, 0)
    assert docs_of(dc, "s3-products") == docs_of(sc, SAMPLE_INDEX)
    # the mapping came from the source (strict, explicit types), not dynamic guessing
    mapping = dc.call("GET", "/s3-products/_mapping")["s3-products"]["mappings"]
    assert mapping["dynamic"] == "strict" and mapping["properties"]["category"] == {"type": "keyword"}
    # the task's result was read, then removed from .tasks
    with pytest.raises(ClusterError) as gone:
        get_status(dc, s.task_ids[0])
    assert gone.value.cause == "task_not_found"
    d = summary.to_dict()
    assert d["engine"] == "server" and d["created"] == source.docs and d["indices"][0]["task_ids"] == s.task_ids


def test_04_plan_writes_nothing(source, dc):
    plan = copy(body_for(source, SAMPLE_INDEX, "s4-products"), dc, opts(source, plan_only=True, partitions=3))
    assert plan["engine"] == "server"
    [item] = plan["indices"]
    assert item["docs"] == source.docs and len(item["partitions"]) == 4  # 3 ranges + "without the field"
    assert not index_exists(dc, "s4-products")


def test_05_wrong_password_is_the_sources_401(source, dc):
    body = body_for(source, SAMPLE_INDEX, "s5-products", password="not-the-password")
    with pytest.raises(AuthError) as e:  # checked from here first
        copy(body, dc, opts(source))
    # the destination's own answer: a 401 wrapped in a status_exception
    with pytest.raises(AuthError) as e2:
        copy(body, dc, opts(source, skip_preflight=True, copy_metadata=False))
    assert e2.value.cause == "source_auth_failed"
    assert "refused the credentials in source.remote" in e2.value.message
    assert "not-the-password" not in e2.value.message + e2.value.fix
    assert not index_exists(dc, "s5-products")


def test_06_missing_source_index(source, dc):
    body = body_for(source, "no-such-index", "s6")
    with pytest.raises(UsageError):
        copy(body, dc, opts(source))  # found from here first
    problem = probe_trust(dc, body, "no-such-index", "s6")
    assert problem is not None and problem.cause == "source_index_not_found" and "no-such-index" in problem.message


def _raw(dc, body, params=None):
    resp = dc.request("POST", "/_reindex", body=body, params=params)
    return resp.status, resp.json()


def test_07_malformed_host_unsupported_fields_slices_from_the_server(source, dc):
    remote = remote_of(source)
    status, answer = _raw(dc, {"source": {"remote": {**remote, "host": f"localhost:{source.node.http_port}"}, "index": SAMPLE_INDEX}, "dest": {"index": "s7"}})
    assert status == 400
    assert explain_reindex_error(answer, status=status).cause == "malformed_host"
    status, answer = _raw(dc, {"source": {"remote": {**remote, "ssl": {"verification_mode": "none"}}, "index": SAMPLE_INDEX}, "dest": {"index": "s7"}})
    assert status == 400
    e = explain_reindex_error(answer, status=status)
    assert e.cause == "unsupported_remote_fields" and "reindex.ssl" in e.fix
    status, answer = _raw(dc, {"source": {"remote": remote, "index": SAMPLE_INDEX}, "dest": {"index": "s7"}}, {"slices": 2})
    assert status == 400
    assert explain_reindex_error(answer, status=status).cause == "remote_slices"
    assert not index_exists(dc, "s7")


def test_08_hostname_mismatch(source, dc):
    # "vm" resolves to 127.0.0.1 here and is allowlisted, but the certificate names only localhost/127.0.0.1
    body = body_for(source, SAMPLE_INDEX, "s8", host="vm")
    with pytest.raises(PreflightError):
        copy(body, dc, opts(source))  # Python refuses the name from here first
    with pytest.raises(TLSError) as e:
        copy(body, dc, opts(source, skip_preflight=True, copy_metadata=False))
    assert e.value.cause == "dest_hostname_mismatch"
    assert "Host name 'vm' does not match" in e.value.message


@pytest.fixture(scope="module")
def mixed_index(sc):
    """600 documents: some without the date, some without the number."""
    name = "srv-mixed"
    sc.request("DELETE", f"/{name}")
    sc.call("PUT", f"/{name}", body={"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                                      "mappings": {"properties": {"n": {"type": "long"}, "at": {"type": "date"}, "tag": {"type": "keyword"}}}})
    lines = bytearray()
    for i in range(600):
        doc: dict = {"tag": f"t{i % 3}"}
        if i % 5:
            doc["at"] = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
        if i % 7:
            doc["n"] = i * 10
        lines += orjson.dumps({"index": {"_index": name, "_id": f"m{i}"}}) + b"\n" + orjson.dumps(doc) + b"\n"
    sc.call("POST", "/_bulk", body=bytes(lines), content_type="application/x-ndjson", params={"refresh": "true"})
    yield name
    sc.request("DELETE", f"/{name}")


@pytest.mark.parametrize("field", ["at", "n", None])
def test_09_partitions_union_is_exactly_the_index(source, dc, sc, mixed_index, field):
    dest_index = f"s9-{field or 'auto'}"
    summary = copy(body_for(source, mixed_index, dest_index), dc, opts(source, partitions=3, partition_field=field, parallel=2))
    [s] = summary.indices
    assert len(s.task_ids) == 4  # 3 ranges + the documents without the field
    assert (s.total, s.created, s.updated, s.version_conflicts) == (600, 600, 0, 0)  # none twice
    assert docs_of(dc, dest_index) == docs_of(sc, mixed_index)


def test_10_partitions_combine_with_the_users_query(source, dc, sc, mixed_index):
    query = {"term": {"tag": "t1"}}
    summary = copy(body_for(source, mixed_index, "s10", query=query), dc, opts(source, partitions=2, partition_field="n"))
    expected = {k: v for k, v in docs_of(sc, mixed_index).items() if v["tag"] == "t1"}
    assert summary.indices[0].created == len(expected) == 200
    assert docs_of(dc, "s10") == expected


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_11_cancel_in_the_middle(sig, source, dest, dc, workdir):
    dc.request("DELETE", "/s11")
    body = {"source": {"remote": {**remote_of(source), "password": "${SRC_PW}"}, "index": SAMPLE_INDEX, "size": 50}, "dest": {"index": "s11"}}
    body_file = workdir / "cancel-body.json"
    body_file.write_bytes(orjson.dumps(body))
    state = workdir / f"cancel-{int(sig)}.sqlite"  # each signal its own job
    password = source.password_file.read_text().strip()
    env = {**os.environ, "SRC_PW": password}
    proc = subprocess.Popen(
        [sys.executable, "-m", "remote_reindex.cli.main", "run", str(body_file), "--dest", dest.url, "--engine", "server",
         "--source-ca", str(source.ca_file), "--requests-per-second", "100", "--json", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        # as from a terminal: a test run started in the background by a non-interactive shell
        # inherits SIGINT ignored, and Ctrl-C would never reach the copy
        # inherits SIGINT ignored, and Ctrl-C would never reach the copy. SIGTERM must stop it
        # even then (run in the background by a shell, stopped by `timeout` or systemd).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL if sig == signal.SIGINT else signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 120
        created = 0
        while time.monotonic() < deadline and created < 150:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            tasks = dc.call("GET", "/_tasks", params={"actions": "*reindex", "detailed": "true"})
            created = sum(t["status"]["created"] for n in tasks["nodes"].values() for t in n["tasks"].values())
            time.sleep(0.2)
        assert created >= 150, "the copy did not start"
        proc.send_signal(sig)
        out, errs = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # as with the client engine: the task is cancelled, what was written is reported, exit 130
    assert proc.returncode == 130, errs.decode()
    report = orjson.loads(out)
    assert report["indices"][0]["cancelled"] is True and report["interrupted"] is True
    assert 150 <= report["created"] < source.docs
    last = errs.decode().strip().splitlines()[-2:]
    assert last[0] == f"error: interrupted: {report['created']:,} of {source.docs:,} documents copied", last
    assert last[1].startswith("fix: run the same command again: it resumes from "), last
    assert count_of(dc, "s11") == report["created"]  # the destination agrees
    text = out.decode() + errs.decode()
    assert password not in text
    assert "cancelled" in errs.decode()
    assert not dc.call("GET", "/_tasks", params={"actions": "*reindex"})["nodes"] or all(
        not n["tasks"] for n in dc.call("GET", "/_tasks", params={"actions": "*reindex"})["nodes"].values())


def test_11b_attach_follows_a_task_started_elsewhere_and_rethrottle(source, dc, sc):
    body = task_body(body_for(source, SAMPLE_INDEX, "s11b"), SAMPLE_INDEX, "s11b", 100, None)
    task_id = start_task(dc, body, requests_per_second=400)
    rethrottle(dc, task_id, 2000)
    assert get_status(dc, task_id).task_id == task_id
    answer = dc.call("GET", f"/_tasks/{task_id}")
    assert answer["completed"] or answer["task"]["status"]["requests_per_second"] == 2000.0
    summary = attach(task_id, dc, opts(source))
    [s] = summary.indices
    assert (s.index, s.dest_index) == (SAMPLE_INDEX, "s11b")
    assert s.created == s.total == source.docs and summary.complete
    assert docs_of(dc, "s11b") == docs_of(sc, SAMPLE_INDEX)
    with pytest.raises(ClusterError):
        get_status(dc, task_id)  # result read, then removed from .tasks


def test_12_chunk_too_large_and_the_size_picked_by_bytes(source, dc, sc):
    """120 documents of 1 MB: with size 1000 one response is ~120 MB > the 100 MB buffer."""
    name = "srv-big"
    sc.request("DELETE", f"/{name}")
    sc.call("PUT", f"/{name}", body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                      "mappings": {"properties": {"blob": {"type": "binary"}}}})
    try:
        for start in range(0, 120, 10):
            lines = bytearray()
            for i in range(start, start + 10):
                blob = base64.b64encode(os.urandom(750_000)).decode()  # 1 MB of incompressible text
                lines += orjson.dumps({"index": {"_index": name, "_id": f"b{i}"}}) + b"\n" + orjson.dumps({"blob": blob}) + b"\n"
            sc.call("POST", "/_bulk", body=bytes(lines), content_type="application/x-ndjson", timeout=120)
        sc.call("POST", f"/{name}/_refresh")
        messages: list[str] = []

        class Collect(Progress):
            def message(self, text: str) -> None:
                messages.append(text)

        with pytest.raises(CopyError) as e:
            copy(body_for(source, name, "s12-user-size", size=1000), dc, opts(source, copy_metadata=False), Collect())
        assert e.value.cause == "chunk_too_large"
        assert "100 MB remote buffer" in e.value.message and "source.size" in e.value.fix
        assert any("may exceed the destination's 100 MB remote buffer" in m for m in messages)
        # without a size in the body the engine picks one from the average document size
        summary = copy(body_for(source, name, "s12-auto"), dc, opts(source, copy_metadata=False))
        assert summary.complete and summary.indices[0].created == 120
        assert summary.indices[0].batches >= 12
    finally:
        sc.request("DELETE", f"/{name}")
        dc.request("DELETE", "/s12-*")


# -- state 4: a wrong CA in the bundle --------------------------------------------------------


def test_13_wrong_ca_in_the_bundle_is_refused_again(sandbox, source, dest, dc, workdir):
    other = trustme.CA(organization_name="some other private CA")
    wrong = workdir / "other-ca.pem"
    other.cert_pem.write_to_path(str(wrong))
    configure(sandbox, dest, NAME, workdir / "wrong", full_settings("reindex.remote.whitelist", host_ports(source)), [wrong])
    body = body_for(source, SAMPLE_INDEX, "s13")
    with pytest.raises(TLSError) as e:
        copy(body, dc, opts(source))
    assert e.value.cause == "dest_untrusted_ca" and "ca check" in e.value.fix
    assert not index_exists(dc, "s13")
    assert choose_engine(body, dc, opts(source))[0] == "client"
