"""The error hierarchy. Every error a user can meet says what is wrong (``message``,
one line) and what to do about it (``fix``, one line); the CLI prints both and exits
with ``exit_code``. No traceback, and never a secret in either line.

    RemoteReindexError
    ├── UsageError               bad input: flags, files, bodies (exit 2)
    ├── ConnectError             could not talk to a cluster at all
    │   ├── TLSError             handshake / verification failed (cause says why)
    │   └── TimeoutError_
    ├── ClusterError             the cluster answered with an error status
    │   └── AuthError            401 / 403
    ├── PreflightError           a check before writing failed; nothing was written
    ├── CopyError                a copy ran but did not move every document
    ├── SandboxError             the local throwaway nodes could not be managed
    └── MismatchError            verify: the destination differs from the source
"""

from __future__ import annotations

from typing import Any


class RemoteReindexError(Exception):
    """Base class. ``cause`` is a short stable code (for ``--json`` and tests)."""

    exit_code: int = 1
    default_cause: str = "error"

    def __init__(self, message: str, fix: str = "", *, cause: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.cause = cause or self.default_cause
        if exit_code is not None:
            self.exit_code = exit_code

    def to_dict(self) -> dict[str, Any]:
        return {"ok": False, "cause": self.cause, "message": self.message, "fix": self.fix}


class UsageError(RemoteReindexError):
    exit_code = 2
    default_cause = "usage"


class ConnectError(RemoteReindexError):
    exit_code = 3
    default_cause = "connection_failed"


class TLSError(ConnectError):
    exit_code = 4
    default_cause = "tls"


class TimeoutError_(ConnectError):  # noqa: N801 - avoid shadowing the builtin
    exit_code = 5
    default_cause = "timeout"


class ClusterError(RemoteReindexError):
    """The cluster answered, but with an error. Keeps status and parsed body."""

    exit_code = 6
    default_cause = "cluster_error"

    def __init__(self, message: str, fix: str = "", *, status: int = 0, body: Any = None, **kw: Any) -> None:
        super().__init__(message, fix, **kw)
        self.status = status
        self.body = body


class AuthError(ClusterError):
    exit_code = 7
    default_cause = "auth_failed"


class PreflightError(RemoteReindexError):
    exit_code = 8
    default_cause = "preflight"


class CopyError(RemoteReindexError):
    exit_code = 9
    default_cause = "incomplete"


class SandboxError(RemoteReindexError):
    exit_code = 10
    default_cause = "sandbox"


class MismatchError(RemoteReindexError):
    """``verify`` found the destination different from the source (not a usage problem)."""

    exit_code = 11
    default_cause = "different"
