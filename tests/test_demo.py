"""``remote-reindex demo`` for real: its own sandbox (two nodes), the five steps, the
comparison, the by-hand commands, and nothing left running afterwards."""

from __future__ import annotations

import shutil
import subprocess
import sys

import orjson
import pytest

from remote_reindex.sandbox import new_home, processes_under


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "remote_reindex.cli.main", *args], capture_output=True, timeout=timeout)


def test_bad_docs_is_refused_before_anything_starts(tmp_path):
    r = run_cli("demo", "--docs", "0", "--home", str(tmp_path / "h"))
    assert r.returncode == 2
    text = r.stderr.decode()
    assert "error: --docs must be between 1 and 2000000, not 0" in text and "fix:" in text
    assert "Traceback" not in text
    assert not (tmp_path / "h").exists()


@pytest.mark.nodes
def test_demo_end_to_end_leaves_nothing_behind():
    home = new_home("pytest-demo-")
    try:
        r = run_cli("demo", "--docs", "500", "--home", str(home), "--json")
        log = r.stderr.decode()
        assert r.returncode == 0, log[-3000:]
        result = orjson.loads(r.stdout)
        assert result["ok"] and result["equal"]
        assert result["source_docs"] == result["dest_docs"] == 500
        assert [s["step"] for s in result["steps"]] == [0, 1, 2, 3, 4, 5]
        assert all(s["ok"] and s["lines"] for s in result["steps"])
        for n in range(1, 6):
            assert f"Step {n}:" in log
        step4 = "\n".join(result["steps"][4]["lines"])
        assert "before: --engine auto would pick client" in step4 and "reindex.remote.whitelist" in step4
        assert "after: --engine auto picks server" in step4
        assert "every document equal by _id and _source" in result["steps"][5]["lines"]
        by_hand = "\n".join(result["by_hand"])
        for command in ("ca fetch", "ca check", "--password-file", "bundle --ca", "settings --remote", "configure-destination", "run ", "--engine server"):
            assert command in by_hand
        # the password never shows; it was in a file that the teardown removed with the nodes
        assert '"password"' not in r.stdout.decode()
        assert not result["kept"]
        assert not processes_under(home / "nodes") and not (home / "nodes").exists()
    finally:
        if (home / "state.json").exists():
            run_cli("sandbox", "down", "--home", str(home), timeout=300)
        shutil.rmtree(home, ignore_errors=True)
