"""Credentials. Secrets live only in memory and never show in ``repr``/``str``."""

from __future__ import annotations

import base64
import getpass
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class Auth:
    kind: str = "none"  # none | basic | api_key | bearer
    username: str | None = None
    _secret: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print the secret
        return f"Auth(kind={self.kind!r}, username={self.username!r}, secret={'***' if self._secret else None})"

    __str__ = __repr__

    @property
    def secret(self) -> str | None:
        return self._secret

    def headers(self) -> dict[str, str]:
        if self.kind == "basic":
            token = base64.b64encode(f"{self.username}:{self._secret}".encode()).decode()
            return {"authorization": f"Basic {token}"}
        if self.kind == "api_key":
            return {"authorization": f"ApiKey {self._secret}"}
        if self.kind == "bearer":
            return {"authorization": f"Bearer {self._secret}"}
        return {}

    @classmethod
    def basic(cls, username: str, password: str) -> "Auth":
        return cls("basic", username, password)

    @classmethod
    def api_key(cls, key: str) -> "Auth":
        return cls("api_key", None, key)

    @classmethod
    def bearer(cls, token: str) -> "Auth":
        return cls("bearer", None, token)


def _from_env(var: str, what: str) -> str:
    value = os.environ.get(var)
    if value is None or value == "":
        raise UsageError(f"environment variable {var} is not set (it should hold the {what})", f"export {var}=... before running, or use another way to pass the {what}.")
    return value


def _from_file(path: str) -> str:
    p = Path(path)
    try:
        value = p.read_text().strip()
    except FileNotFoundError:
        raise UsageError(f"password file not found: {p}", "Give the path of a file that holds only the password.") from None
    except (IsADirectoryError, PermissionError):
        raise UsageError(f"password file cannot be read: {p}", "Give a readable file that holds only the password.") from None
    if not value:
        raise UsageError(f"password file is empty: {p}", "Write the password into the file (one line).")
    return value


def resolve_auth(
    user: str | None = None,
    password_env: str | None = None,
    password_file: str | None = None,
    api_key_env: str | None = None,
    bearer_env: str | None = None,
    prompt: bool = True,
    who: str = "",
) -> Auth:
    """Build ``Auth`` from CLI options. Secrets come from env vars, files or a prompt,
    never from process arguments."""
    label = f"{who} " if who else ""
    flag = f"--{who}-" if who else "--"  # the options as the user typed them: --dest-user, --user
    given = [x for x in (user, api_key_env, bearer_env) if x]
    if len(given) > 1:
        raise UsageError(f"choose one {label}authentication: {flag}user, {flag}api-key-env or {flag}bearer-env", "Pass only one of them.")
    if api_key_env:
        return Auth.api_key(_from_env(api_key_env, "API key"))
    if bearer_env:
        return Auth.bearer(_from_env(bearer_env, "bearer token"))
    if user:
        if password_env and password_file:
            raise UsageError(f"both --{who + '-' if who else ''}password-env and --{who + '-' if who else ''}password-file given", "Pass only one of them.")
        if password_env:
            return Auth.basic(user, _from_env(password_env, "password"))
        if password_file:
            return Auth.basic(user, _from_file(password_file))
        if prompt:
            if not sys.stdin.isatty():  # getpass would warn, echo or read a pipe: refuse instead
                raise UsageError(f"no {label}password for user {user} (no terminal to ask)", f"Pass {flag}password-env VAR or {flag}password-file FILE.")
            try:
                return Auth.basic(user, getpass.getpass(f"{label}password for {user}: "))
            except (EOFError, KeyboardInterrupt):
                raise UsageError(f"no {label}password for user {user} (the prompt was closed)", f"Type the password at the prompt, or pass {flag}password-env VAR or {flag}password-file FILE.") from None
        raise UsageError(f"{label}user {user!r} given without a password", f"Add {flag}password-env VAR or {flag}password-file FILE.")
    if password_env or password_file:
        raise UsageError(f"{label}password given without a user", f"Add {flag}user NAME.")
    return Auth()
