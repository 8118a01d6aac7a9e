"""The server engine with an OpenSearch 2.19.6 destination (``reindex.remote.allowlist``):
refused as not allowlisted, refused by the TLS check (PKIX) when only allowlisted, then a
copy equal to the source by ``_id`` and ``_source`` after bundle + settings. Its own
destination, so the shared one stays untouched; restarted twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from remote_reindex.engines.options import ServerOptions
from remote_reindex.engines.server import choose_engine, copy
from remote_reindex.errors import PreflightError, TLSError
from remote_reindex.sandbox import SAMPLE_INDEX

from test_server_engine_support import body_for, configure, docs_of, full_settings, index_exists

pytestmark = pytest.mark.nodes

NAME = "srv-os"
KEY = "reindex.remote.allowlist"


@pytest.fixture(scope="module")
def dest(extra_destination):
    return extra_destination("opensearch", name=NAME)


@pytest.fixture(scope="module")
def dc(dest):
    with dest.client(timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-engine-os")


def opts(source, **kw) -> ServerOptions:
    return ServerOptions(source_ca=str(source.ca_file), poll_interval=0.3, **kw)


def test_01_not_allowlisted(source, dc):
    body = body_for(source, SAMPLE_INDEX, "os-products")
    with pytest.raises(PreflightError) as e:
        copy(body, dc, opts(source))
    assert e.value.cause == "not_allowlisted"
    assert f"'{KEY}: [\"localhost:{source.node.http_port}\"]'" in e.value.fix
    with pytest.raises(PreflightError) as e2:  # OpenSearch's own words: "not allowlisted in reindex.remote.allowlist"
        copy(body, dc, opts(source, skip_preflight=True, copy_metadata=False))
    assert e2.value.cause == "not_allowlisted" and KEY in e2.value.fix
    assert not index_exists(dc, "os-products")
    assert choose_engine(body, dc, opts(source))[0] == "client"


def test_02_pkix_when_only_allowlisted(sandbox, source, dest, dc, workdir):
    configure(sandbox, dest, NAME, workdir / "wl", {KEY: [f"localhost:{source.node.http_port}"]}, [source.ca_file])
    body = body_for(source, SAMPLE_INDEX, "os-products")
    with pytest.raises(TLSError) as e:
        copy(body, dc, opts(source))
    assert e.value.cause == "dest_untrusted_ca" and "unable to find valid certification path" in e.value.message
    assert not index_exists(dc, "os-products")


def test_03_copy_after_bundle_and_settings(sandbox, source, dest, dc, workdir):
    configure(sandbox, dest, NAME, workdir / "full", full_settings(KEY, [f"localhost:{source.node.http_port}"]), [source.ca_file])
    body = body_for(source, SAMPLE_INDEX, "os-products")
    engine, _ = choose_engine(body, dc, opts(source))
    assert engine == "server"
    summary = copy(body, dc, opts(source, partitions=2))
    assert summary.complete
    [s] = summary.indices
    assert (s.total, s.created, s.updated) == (source.docs, source.docs, 0)
    with source.client(timeout=120) as sc:
        assert docs_of(dc, "os-products") == docs_of(sc, SAMPLE_INDEX)
