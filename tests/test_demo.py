"""``remote-reindex demo`` for real: its own sandbox (two nodes), the five steps, the
comparison, the by-hand commands, and nothing left running afterwards."""

from __future__ import annotations

import shutil
import signal
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


def signal_when(args: list[str], marker: str, sig: int, *, stream: str = "stderr", timeout: float = 600) -> tuple[int, str]:
    """Start the CLI, read ``stream`` line by line until ``marker`` shows, send ``sig``; returns
    (exit code, everything it printed on both streams)."""
    proc = subprocess.Popen([sys.executable, "-m", "remote_reindex.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        pipe = getattr(proc, stream)
        for line in pipe:
            seen.append(line)
            if marker in line:
                proc.send_signal(sig)
                break
        else:
            pytest.fail(f"{marker!r} never printed: {''.join(seen)[-3000:]}")
        rest_out, rest_err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(seen) + rest_out + rest_err


@pytest.mark.nodes
def test_demo_terminated_stops_the_nodes_it_started():
    home = new_home("pytest-demo-term-")
    try:
        # --keep: a kept sandbox is for a finished demo; an interrupted one is stopped all the same
        code, text = signal_when(["demo", "--docs", "200", "--keep", "--home", str(home)], "Step 2:", signal.SIGTERM, stream="stdout")
        assert code == 143, text[-3000:]
        assert text.strip().splitlines()[-2:] == [
            "error: terminated: the nodes this command started were stopped",
            "fix: run the command again; 'remote-reindex sandbox status' shows what still runs (a sandbox that was up "
            "before, or kept with --keep), 'remote-reindex sandbox down' stops it",
        ]
        assert "Traceback" not in text
        assert not processes_under(home / "nodes") and not (home / "state.json").exists()
    finally:
        if (home / "state.json").exists():
            run_cli("sandbox", "down", "--home", str(home), timeout=300)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.nodes
def test_sandbox_up_terminated_while_loading_stops_both_nodes():
    home = new_home("pytest-up-term-")
    try:
        code, text = signal_when(["sandbox", "up", "--docs", "200000", "--home", str(home)], "loading 200000 documents", signal.SIGTERM)
        assert code == 143, text[-3000:]
        assert "error: terminated: the nodes this command started were stopped" in text and "Traceback" not in text
        assert not processes_under(home / "nodes")
        status = run_cli("sandbox", "status", "--home", str(home))
        assert status.returncode == 0 and b"no sandbox" in status.stdout
    finally:
        run_cli("sandbox", "down", "--home", str(home), timeout=300)
        shutil.rmtree(home, ignore_errors=True)
