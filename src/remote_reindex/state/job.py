"""Opening the state file of one ``run``: which file, start over or resume, and the
one-line messages around it. The engines get a ``JobState``; this module decides which."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .store import JobState, StateStore, default_state_path, job_fingerprint

if TYPE_CHECKING:
    from ..plan.body import ReindexBody


def describe_job(body: "ReindexBody", dest_host_port: str, engine: str) -> str:
    """A one-line, secret-free name for the job (stored in the state file, shown to the user)."""
    src = body.remote.host_port if body.remote is not None else "the destination itself"
    dest_index = f" -> {body.dest_index}" if body.dest_index else ""
    return f"{engine} copy of {','.join(body.indices)} from {src}{dest_index} on {dest_host_port}"


def remove_state(path: Path) -> None:
    """``--restart``: forget the job (the file and SQLite's side files)."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def open_job_state(
    body: "ReindexBody", dest_url: str, dest_host_port: str, engine: str, *,
    state_file: str | os.PathLike[str] | None = None, restart: bool = False, resume: bool = False,
) -> JobState:
    """The job's state: the given ``--state`` file or the default one for this body and
    destination. ``restart`` deletes it first; ``resume`` insists that there is one."""
    fingerprint = job_fingerprint(body.raw, dest_url, engine)
    path = Path(state_file) if state_file else default_state_path(fingerprint)
    if restart and resume:
        raise UsageError("--restart and --resume contradict each other", "Use --resume to continue the job, or --restart to copy everything again.")
    if state_file and not path.parent.is_dir():  # only the default state folder is ever created
        raise UsageError(f"the folder of --state {path} does not exist: {path.parent}", "Create the folder first, or give --state a file in an existing folder.")
    if restart:
        remove_state(path)
    elif resume and not path.exists():
        raise UsageError(f"nothing to resume: there is no state file {path}", "Run without --resume to start the job (or give the --state file of the earlier run).")
    store = StateStore(path)
    job = store.open_job(fingerprint, describe_job(body, dest_host_port, engine), engine)
    return job
