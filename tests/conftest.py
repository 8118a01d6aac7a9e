"""Session-wide real nodes for every test file.

``sandbox``: a TLS source (Elasticsearch 7.17.29, private CA root -> intermediate -> leaf,
file-realm user, ``products`` index with SANDBOX_DOCS sample documents) and an Elasticsearch
7.17.29 destination with the reindex module that neither trusts the CA nor allowlists the
source. Started once per test session in its own home, stopped at the end.

More nodes start only when a test asks for them, and live until the session ends:
``opensearch_destination`` (OpenSearch 2.19.6 + reindex module), ``es9_destination``
(Elasticsearch 9.2.0 on JDK 25, no reindex module), ``throttled_destination`` (ES 7.17.29
with a write pool of 1 and a queue of 1: real per-item 429s), ``second_source`` (another
TLS source with a DIFFERENT private CA), and the ``extra_destination`` factory for anything
else (e.g. one destination per test that ``configure_destination`` may change).

The shared destinations must stay as they are: a test that wants to change a destination's
settings starts its own with ``extra_destination``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest

from remote_reindex.sandbox import DestinationSide, Sandbox, SourceSide, new_home
from remote_reindex.sandbox.sandbox import DEFAULT_HOME

SANDBOX_DOCS = int(os.environ.get("REMOTE_REINDEX_TEST_DOCS", "2000"))
OWNER_FILE = ".pytest-owner"


def _sweep_abandoned_homes() -> None:
    """Stop nodes left by a test session that was killed before its teardown (the machine
    is shared: leaked 512 MB JVMs add up). Only homes whose owning process is gone."""
    for owner in DEFAULT_HOME.parent.glob(f"pytest-*/{OWNER_FILE}"):
        try:
            pid = int(owner.read_text().strip())
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (ValueError, OSError):
            continue
        try:
            Sandbox(owner.parent).down()
        except Exception:  # noqa: BLE001 - best effort: never fail a session over a sweep
            continue
        shutil.rmtree(owner.parent, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    # `timeout`/CI send SIGTERM: turn it into KeyboardInterrupt so session fixtures still
    # stop their nodes instead of leaving them running.
    if threading.current_thread() is threading.main_thread():
        def _interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, _interrupt)
    # Job state files (run's default --state) go to a folder of this session, inherited by
    # the CLI subprocesses: runs of one test never look like an earlier, finished job, and
    # nothing is left in the user's ~/.local/state.
    state_home = Path(tempfile.mkdtemp(prefix="rr-test-state-"))
    os.environ["XDG_STATE_HOME"] = str(state_home)
    config.add_cleanup(lambda: shutil.rmtree(state_home, ignore_errors=True))


@pytest.fixture(scope="session")
def sandbox_home() -> Iterator[Path]:
    _sweep_abandoned_homes()
    home = new_home("pytest-")
    (home / OWNER_FILE).write_text(f"{os.getpid()}\n")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def sandbox(sandbox_home: Path) -> Iterator[Sandbox]:
    """Source ES 7.17.29 over HTTPS with a private CA + ES 7.17.29 destination (untrusting)."""
    sb = Sandbox(sandbox_home)
    try:
        sb.up(docs=SANDBOX_DOCS)
        yield sb
    finally:
        sb.down()


@pytest.fixture(scope="session")
def source(sandbox: Sandbox) -> SourceSide:
    assert sandbox.source is not None
    return sandbox.source


@pytest.fixture(scope="session")
def destination(sandbox: Sandbox) -> DestinationSide:
    assert sandbox.destination is not None
    return sandbox.destination


@pytest.fixture(scope="session")
def extra_destination(sandbox: Sandbox) -> Iterator[Callable[..., DestinationSide]]:
    """Factory: ``extra_destination("opensearch", settings={...}, name="x")`` starts a new
    destination (or returns the one already started under that name); stopped at session end."""
    started: dict[str, DestinationSide] = {}

    def start(kind: str = "elasticsearch", *, settings: Mapping[str, Any] | None = None, name: str | None = None, nodes: int = 1) -> DestinationSide:
        key = name or f"{kind}-{len(started) + 1}"
        if key not in started:
            started[key] = sandbox.start_extra_destination(kind, name=key, settings=settings, nodes=nodes)
        return started[key]

    yield start
    for key in list(started):
        sandbox.stop_extra(key)


@pytest.fixture(scope="session")
def opensearch_destination(extra_destination: Callable[..., DestinationSide]) -> DestinationSide:
    """OpenSearch 2.19.6 with the reindex module; no allowlist, does not trust the source's CA."""
    return extra_destination("opensearch", name="opensearch")


@pytest.fixture(scope="session")
def es9_destination(extra_destination: Callable[..., DestinationSide]) -> DestinationSide:
    """Elasticsearch 9.2.0 (JDK 25), security off, no reindex module: a client-side copy target."""
    return extra_destination("elasticsearch-9", name="es9")


@pytest.fixture(scope="session")
def throttled_destination(extra_destination: Callable[..., DestinationSide]) -> DestinationSide:
    """ES 7.17.29 whose write pool has 1 thread and a queue of 1: concurrent bulks get per-item 429s."""
    return extra_destination("elasticsearch", name="throttled", settings={"thread_pool.write.size": 1, "thread_pool.write.queue_size": 1})


@pytest.fixture(scope="session")
def second_source(sandbox: Sandbox) -> Iterator[SourceSide]:
    """Another ES 7.17.29 TLS source with its OWN private CA (the first CA must not verify it)."""
    side = sandbox.start_extra_source("7.17.29", name="source-2", docs=200, seed=7)
    yield side
    sandbox.stop_extra("source-2")


@pytest.fixture(scope="session")
def es88_source(sandbox: Sandbox) -> Iterator[SourceSide]:
    """An Elasticsearch 8.8.2 TLS source (its own private CA) with 1,000 sample documents."""
    side = sandbox.start_extra_source("8.8.2", name="source-88", docs=1000, seed=88)
    yield side
    sandbox.stop_extra("source-88")
