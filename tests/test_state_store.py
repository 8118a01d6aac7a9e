"""Unit tests of the SQLite job state (no nodes)."""

from __future__ import annotations

import pytest

from remote_reindex.errors import UsageError
from remote_reindex.state import StateStore, job_fingerprint

BODY = {"source": {"remote": {"host": "https://h:9200", "username": "u", "password": "s3cret-pw"}, "index": "a"}, "dest": {"index": "b"}}


def test_fingerprint_ignores_secrets_and_is_stable():
    other_pw = {**BODY, "source": {**BODY["source"], "remote": {**BODY["source"]["remote"], "password": "different"}}}
    assert job_fingerprint(BODY, "http://d:9200", "client") == job_fingerprint(other_pw, "http://d:9200/", "client")
    assert job_fingerprint(BODY, "http://d:9200", "client") != job_fingerprint(BODY, "http://d:9200", "server")


def test_cursor_roundtrip_and_no_secret_on_disk(tmp_path):
    path = tmp_path / "s.sqlite"
    store = StateStore(path)
    job = store.open_job(job_fingerprint(BODY, "http://d:9200", "client"), "a -> b", "client")
    assert not job.resumed
    job.save("a", "0", position={"search_after": [5, "x"]}, docs_done=10, status="running")
    job.save("a", "0", docs_done=20)
    store.close()
    again = StateStore(path).open_job(job_fingerprint(BODY, "http://d:9200", "client"), "a -> b", "client")
    assert again.resumed
    (c,) = again.cursors("a")
    assert (c.position, c.docs_done, c.status) == ({"search_after": [5, "x"]}, 20, "running")
    assert b"s3cret-pw" not in path.read_bytes()


def test_state_of_another_job_is_refused(tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    store.open_job("f1", "a -> b", "client")
    with pytest.raises(UsageError) as exc:
        store.open_job("f2", "c -> d", "client")
    assert exc.value.message == f"state file {tmp_path / 's.sqlite'} belongs to another job (a -> b)"


def test_corrupted_state_file_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError) as exc:
        StateStore(path)
    assert exc.value.message.startswith(f"state file {path} is not a remote-reindex state file or is corrupted")


def test_state_in_a_missing_folder_is_refused_and_nothing_is_created(tmp_path):
    from remote_reindex.plan.body import body_from_dict
    from remote_reindex.state import open_job_state

    body = body_from_dict({"source": {"remote": {"host": "https://h:9200"}, "index": "a"}, "dest": {"index": "b"}})
    missing = tmp_path / "nonexistent" / "x.sqlite"
    with pytest.raises(UsageError) as exc:
        open_job_state(body, "http://d:9200", "d:9200", "client", state_file=str(missing))
    assert (exc.value.message, exc.value.fix) == (
        f"the folder of --state {missing} does not exist: {missing.parent}",
        "Create the folder first, or give --state a file in an existing folder.",
    )
    assert not missing.parent.exists()
    ok = open_job_state(body, "http://d:9200", "d:9200", "client", state_file=str(tmp_path / "x.sqlite"))
    assert ok.path == tmp_path / "x.sqlite"


def test_run_refuses_a_state_file_in_a_missing_folder_before_connecting(tmp_path):
    from typer.testing import CliRunner

    from remote_reindex.cli.main import app

    body = tmp_path / "body.json"
    body.write_text('{"source": {"remote": {"host": "https://127.0.0.1:1"}, "index": "a"}, "dest": {"index": "b"}}')
    missing = tmp_path / "nonexistent" / "x.sqlite"
    result = CliRunner().invoke(app, ["run", str(body), "--dest", "http://127.0.0.1:1", "--state", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: the folder of --state {missing} does not exist: {missing.parent}",
        "fix: Create the folder first, or give --state a file in an existing folder.",
    ]
    assert not missing.parent.exists()
