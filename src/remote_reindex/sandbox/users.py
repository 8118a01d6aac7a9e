"""Who runs the nodes, and who logs in to them.

Elasticsearch and OpenSearch refuse to run as root, so when we are root the nodes run as a
dedicated OS user (created once). The source's login is a file-realm user: a bcrypt hash in
``config/users`` and a role in ``config/users_roles``; its generated password is written
only to a 0600 file, never to output, logs or process arguments.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from ..errors import SandboxError

NODE_USER = "esnode"


@dataclass(frozen=True)
class NodeUser:
    name: str
    uid: int
    gid: int

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()


def ensure_node_user(name: str = NODE_USER) -> NodeUser:
    """The OS user the nodes run as: ``name`` when we are root (created if missing), else us."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return NodeUser(me.pw_name, me.pw_uid, me.pw_gid)
    try:
        entry = pwd.getpwnam(name)
        return NodeUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    except KeyError:
        pass
    # Several sandboxes may start at once: serialize the creation, then look again.
    with open("/var/lock/remote-reindex-useradd.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            proc = subprocess.run(
                ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                capture_output=True,
                text=True,
            )
            if proc.returncode not in (0, 9):  # 9: the user exists already
                raise SandboxError(f"cannot create the node user {name!r}: {proc.stderr.strip()}", f"Create it by hand (useradd {name}) and run again.")
            entry = pwd.getpwnam(name)
    return NodeUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def chown_tree(path: Path, user: NodeUser) -> None:
    """Give a whole node folder to the node user (no-op when that is us)."""
    if user.is_current:
        return
    os.chown(path, user.uid, user.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.uid, user.gid)


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def write_password_file(path: Path, password: str) -> Path:
    """Write the password to a file readable by its owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.chmod(path, 0o600)
    return path


def write_file_realm_user(config_dir: Path, username: str, password: str, role: str = "superuser") -> None:
    """Add a file-realm user (bcrypt hash, as ``elasticsearch-users`` writes it)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
    users = config_dir / "users"
    roles = config_dir / "users_roles"
    existing = [line for line in (users.read_text().splitlines() if users.exists() else []) if not line.startswith(f"{username}:")]
    users.write_text("\n".join(existing + [f"{username}:{hashed}"]) + "\n")
    roles.write_text(f"{role}:{username}\n")
    os.chmod(users, 0o640)
