"""Job state in one SQLite file: what was copied, so a run can resume."""

from .store import JobState, StateStore, default_state_path, job_fingerprint

__all__ = ["JobState", "StateStore", "default_state_path", "job_fingerprint"]
