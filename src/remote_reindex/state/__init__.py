"""Job state in one SQLite file: what was copied, so a run can resume."""

from .job import describe_job, open_job_state, remove_state
from .store import JobState, StateStore, default_state_path, job_fingerprint

__all__ = ["JobState", "StateStore", "default_state_path", "job_fingerprint", "open_job_state", "describe_job", "remove_state"]
