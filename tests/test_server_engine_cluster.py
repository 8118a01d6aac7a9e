"""The server engine against a 2-node Elasticsearch 7.17.29 destination, an older
destination, ``run --attach`` and ``--engine auto`` through the real CLI.

Nodes: the 2-node destination ``pair`` (the same one test_sandbox.py checks forms one
cluster; started here if that file did not run), configured ONCE through the library
(bundle + settings + restart of both nodes) to pull from two sources: the session's
ES 7.17.29 source and the ES 8.8.2 source ``es88_source``. The last test restarts one node
with a different allowlist (one more node start, ~15-25 s on 2 cores) and leaves it so.
``test_auto_picks_client_*`` uses the session's shared, unconfigured destination and
deletes what it wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from remote_reindex.engines.options import ServerOptions
from remote_reindex.engines.progress import Progress
from remote_reindex.engines.server import choose_engine, copy, explain_reindex_error
from remote_reindex.engines.server.tasks import get_status
from remote_reindex.errors import PreflightError
from remote_reindex.sandbox import SAMPLE_INDEX
from remote_reindex.sandbox.sandbox import start_nodes

from test_server_engine_support import body_for, configure, count_of, docs_of, full_settings, index_exists, remote_of

pytestmark = pytest.mark.nodes

PAIR = "pair"


class Collect(Progress):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def cli(*args: object, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "remote_reindex.cli.main", *map(str, args)], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def opts(source, **kw) -> ServerOptions:
    return ServerOptions(source_ca=str(source.ca_file), poll_interval=0.3, **kw)


def node_ids(client) -> dict[str, str]:
    """node id -> node name."""
    answer = client.call("GET", "/_nodes", params={"filter_path": "nodes.*.name"})
    return {node_id: n["name"] for node_id, n in answer["nodes"].items()}


@pytest.fixture(scope="module")
def pair(sandbox, source, es88_source, extra_destination, tmp_path_factory):
    side = extra_destination("elasticsearch", name=PAIR, nodes=2)
    hosts = [f"localhost:{source.node.http_port}", f"localhost:{es88_source.node.http_port}"]
    # one bundle holding both private CAs, one allowlist naming both sources
    configure(sandbox, side, PAIR, tmp_path_factory.mktemp("pair"), full_settings("reindex.remote.whitelist", hosts),
              [source.ca_file, es88_source.ca_file])
    return side


@pytest.fixture(scope="module")
def pc(pair):
    with pair.client(timeout=120) as c:
        c.call("GET", "/_cluster/health", params={"wait_for_nodes": "2", "timeout": "60s"})
        yield c


@pytest.fixture(scope="module")
def sc(source):
    with source.client(timeout=120) as c:
        yield c


# -- 1. tasks spread over the destination's nodes ------------------------------------------


def test_partitions_spread_round_robin_over_both_nodes(source, pair, pc, sc):
    ids = node_ids(pc)
    assert sorted(ids.values()) == ["pair-1", "pair-2"]
    progress = Collect()
    summary = copy(body_for(source, SAMPLE_INDEX, "pair-products"), pc, opts(source, partitions=2, parallel=2), progress)
    [s] = summary.indices
    assert summary.complete and (s.total, s.created, s.version_conflicts, s.failed) == (source.docs, source.docs, 0, 0)
    assert len(s.task_ids) == 3  # 2 ranges + the documents without the field
    # a task id is "<id of the node that runs it>:<n>": sent round-robin, they ran on both nodes
    ran_on = {ids[t.split(":")[0]] for t in s.task_ids}
    assert ran_on == {"pair-1", "pair-2"}, s.task_ids
    other = pair.nodes[1].host_port
    assert any(m.startswith("tasks go round-robin to the destination nodes") and other.split(":")[1] in m for m in progress.messages), progress.messages
    assert docs_of(pc, "pair-products") == docs_of(sc, SAMPLE_INDEX)
    pc.call("DELETE", "/pair-products")


# -- 2. run --attach through the CLI ---------------------------------------------------------


def test_cli_attach_follows_a_running_task_to_the_end(source, pair, pc, sc):
    # started by "someone else" on the second node, throttled so it is still running when we attach
    with pair.nodes[1].client(timeout=60) as second:
        resp = second.request("POST", "/_reindex", params={"wait_for_completion": "false", "requests_per_second": 400},
                              body={"source": {"remote": remote_of(source), "index": SAMPLE_INDEX, "size": 100}, "dest": {"index": "pair-attach"}})
        assert resp.status == 200, resp.data[:300]
        task_id = resp.json()["task"]
    assert not get_status(pc, task_id).completed
    r = cli("run", "--attach", task_id, "--dest", pair.url, "--json")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    report = orjson.loads(r.stdout)
    assert report["engine"] == "server" and report["complete"] is True
    assert report["created"] == report["total"] == source.docs
    [index] = report["indices"]
    assert (index["index"], index["dest_index"], index["task_ids"]) == (SAMPLE_INDEX, "pair-attach", [task_id])
    assert count_of(pc, "pair-attach") == source.docs
    assert source.password_file.read_text().strip() not in r.stdout.decode() + err
    pc.call("DELETE", "/pair-attach")


def test_cli_attach_unknown_or_malformed_task_id(pair, pc):
    known_node = next(iter(node_ids(pc)))
    r = cli("run", "--attach", f"{known_node}:987654321", "--dest", pair.url)
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 6, lines
    assert lines[0] == f"error: task {known_node}:987654321 is not known to {pair.node.host_port} (finished long ago and its result was removed, or a wrong id)"
    assert lines[1].startswith("fix: List running reindex tasks with GET _tasks?actions=*reindex") and len(lines) == 2
    r = cli("run", "--attach", "not-a-task", "--dest", pair.url)
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and lines[0] == "error: 'not-a-task' is not a task id" and len(lines) == 2, lines


# -- 3. a destination older than the source ------------------------------------------------


def test_older_destination_refused_before_writing(es88_source, pc):
    body = body_for(es88_source, SAMPLE_INDEX, "pair-88")
    with pytest.raises(PreflightError) as e:
        copy(body, pc, opts(es88_source))
    assert e.value.cause == "dest_older_than_source"
    assert e.value.message.startswith("the destination (Elasticsearch 7.17.29) is older than the source (Elasticsearch 8.8.2)"), e.value.message
    assert "the guide's note under step 3" in e.value.fix and "--engine client" in e.value.fix
    engine, why = choose_engine(body, pc, opts(es88_source))
    assert engine == "client" and "older than the source" in why
    assert not index_exists(pc, "pair-88")


def test_older_destination_server_error_is_translated(es88_source, pc):
    # the destination's own answer, raw: allowlisted and trusted, it fails on the 8.x response
    resp = pc.request("POST", "/_reindex", body={"source": {"remote": remote_of(es88_source), "index": SAMPLE_INDEX}, "dest": {"index": "pair-88-raw"}})
    answer = resp.json()
    assert resp.status == 500, answer
    raw = orjson.dumps(answer).decode()
    assert "remote is likely not an Elasticsearch instance" in raw and "Required [_type]" in raw
    e = explain_reindex_error(answer, status=resp.status, dest_label="the destination", source_label="the source")
    assert e.cause == "dest_older_than_source" and "a destination older than the source cannot pull from it" in e.message
    assert "step 3" in e.fix
    # through the engine, blind (the source not readable from here, preflight skipped): the task's error, translated
    with pytest.raises(PreflightError) as caught:
        copy(body_for(es88_source, SAMPLE_INDEX, "pair-88-blind"), pc, ServerOptions(skip_preflight=True, copy_metadata=False, poll_interval=0.3))
    assert caught.value.cause == "dest_older_than_source"
    assert "Required [_type]" in caught.value.message or "not an Elasticsearch instance" in caught.value.message
    for name in ("pair-88-raw", "pair-88-blind"):
        assert not index_exists(pc, name)


# -- 4. --engine auto picks the client engine when the destination cannot pull -----------------


def test_auto_picks_client_on_the_unconfigured_destination(source, destination, sc, tmp_path: Path):
    password = source.password_file.read_text().strip()
    body = tmp_path / "body.json"
    body.write_bytes(orjson.dumps({
        "source": {"remote": {**remote_of(source), "password": "${H7_SOURCE_PASSWORD}"}, "index": SAMPLE_INDEX},
        "dest": {"index": "auto-client-products"},
    }))
    try:
        r = cli("run", body, "--dest", destination.url, "--engine", "auto", "--source-ca", source.ca_file, "--json",
                env={"H7_SOURCE_PASSWORD": password})
        err = r.stderr.decode()
        assert r.returncode == 0, err
        reason = [line for line in err.splitlines() if line.startswith("engine: ")]
        assert len(reason) == 1, err
        # the empty probe _reindex's own answer, translated
        assert reason[0] == (f"engine: client (the destination cannot pull: the destination {destination.node.host_port} may not pull from "
                             f"localhost:{source.node.http_port}: it is not in reindex.remote.whitelist (guide step 4))")
        report = orjson.loads(r.stdout)
        assert report["engine"] == "client" and report["complete"] is True
        assert report["created"] == report["total"] == source.docs
        assert password not in r.stdout.decode() + err
        with destination.client(timeout=120) as dc:
            assert docs_of(dc, "auto-client-products") == docs_of(sc, SAMPLE_INDEX)
            assert not index_exists(dc, "remote-reindex-probe")  # the probe wrote nothing
    finally:
        with destination.client(timeout=60) as dc:
            dc.request("DELETE", "/auto-client-products")


# -- 1b. the per-node allowlist check names the node that lacks the line ------------------------


def test_allowlist_check_names_the_node_without_the_line(sandbox, source, pair, pc):
    """Last in this file: leaves pair-2 with another allowlist (costs one node restart)."""
    second = pair.nodes[1]
    second.merge_config({"reindex.remote.whitelist": ["localhost:1"]})
    t0 = time.monotonic()
    second.stop()
    start_nodes([second], sandbox.user)
    pc.call("GET", "/_cluster/health", params={"wait_for_nodes": "2", "timeout": "60s"})
    restart_s = time.monotonic() - t0
    port = source.node.http_port
    with pytest.raises(PreflightError) as e:
        copy(body_for(source, SAMPLE_INDEX, "pair-1b"), pc, opts(source))
    assert e.value.cause == "not_allowlisted"
    assert e.value.message == (f"destination node(s) pair-2 may not pull from localhost:{port}: it is not in reindex.remote.whitelist "
                               "(they allow pair-2: reindex.remote.whitelist=['localhost:1']) (guide step 4)")
    assert "every destination node" in e.value.fix
    assert not index_exists(pc, "pair-1b")
    print(f"pair-2 restart took {restart_s:.1f} s")
