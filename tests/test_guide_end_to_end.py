"""The guide by hand, as a user types it: the commands of steps 1-5 (subprocesses, the
password only in a file and an environment variable) against the session's TLS source and
a destination of this test's own, applied as a hosted service does (unpack + merge +
restart). Checks exit codes, the two-line errors before configuration, the engine
``auto`` picks, and that the destination ends equal to the source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from remote_reindex.sandbox import SAMPLE_INDEX

from test_server_engine_support import docs_of

pytestmark = pytest.mark.nodes


def cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "remote_reindex.cli.main", *map(str, args)], capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_the_guide_step_by_step(sandbox, source, extra_destination, tmp_path: Path):
    dest = extra_destination("elasticsearch", name="guide")
    port = source.node.http_port
    work = tmp_path
    password = source.password_file.read_text().strip()
    env = {"SOURCE_PASSWORD": password}
    body = work / "body.json"
    body.write_bytes(orjson.dumps({
        "source": {"remote": {"host": f"https://localhost:{port}", "username": source.username, "password": "${SOURCE_PASSWORD}"}, "index": SAMPLE_INDEX},
        "dest": {"index": "guide-products"},
    }))

    # Before any configuration: the server engine refuses in two lines, writes nothing.
    r = cli("run", body, "--dest", dest.url, "--engine", "server", "--source-ca", source.ca_file, env=env)
    err = r.stderr.decode()
    assert r.returncode == 8, err
    assert f"error: destination node(s) guide may not pull from localhost:{port}" in err
    assert f"fix: Add the line 'reindex.remote.whitelist: [\"localhost:{port}\"]'" in err
    assert "Traceback" not in err and password not in err

    # Step 1: the server sends leaf + intermediate; the root comes from the PKI team (the sandbox's ca.pem).
    ca = work / "ca.pem"
    r = cli("ca", "fetch", f"localhost:{port}", "--from-file", source.ca_file, "-o", ca)
    assert r.returncode == 0, r.stderr.decode()
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # Step 2
    r = cli("ca", "check", f"https://localhost:{port}", "--ca", ca, "--user", source.username, "--password-file", source.password_file, "--index", SAMPLE_INDEX)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    # Step 3
    r = cli("bundle", "--ca", ca, "--name", "my_source_ca", "--target", "self-managed", "-o", work)
    assert r.returncode == 0, r.stderr.decode()
    # Step 4
    r = cli("settings", "--remote", f"localhost:{port}", "--bundle-name", "my_source_ca", "--target", "self-managed", "-o", work / "settings.yml")
    assert r.returncode == 0, r.stderr.decode()
    sandbox.configure_destination(work / "my_source_ca.zip", work / "settings.yml", target="guide")

    # Step 5: auto picks the server engine now, and says why.
    r = cli("run", body, "--dest", dest.url, "--engine", "auto", "--source-ca", ca, "--json", env=env)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "engine: server (the destination" in err and "probe" in err
    summary = orjson.loads(r.stdout)
    assert summary["engine"] == "server" and summary["complete"] is True
    assert summary["created"] == summary["total"] == source.docs
    assert password not in r.stdout.decode() + err
    with dest.client(timeout=120) as dc, source.client(timeout=120) as sc:
        assert docs_of(dc, "guide-products") == docs_of(sc, SAMPLE_INDEX)

    # Run again with --restart (a plain re-run finds the job complete in its state file):
    # the same documents are overwritten, nothing is added.
    r = cli("run", body, "--dest", dest.url, "--engine", "server", "--source-ca", ca, "--json", "--restart", env=env)
    assert r.returncode == 0, r.stderr.decode()
    again = orjson.loads(r.stdout)
    assert (again["created"], again["updated"]) == (0, source.docs)
