"""One local Elasticsearch/OpenSearch node: install, configure, start, wait, stop.

A ``Node`` owns a folder ``<dir>`` holding the unpacked distribution (``<dir>/<dist>/``),
its data and logs. Everything in it belongs to the node user. Ports are free loopback
ports picked at install time. A failed start raises ``SandboxError`` with the last lines
of the node's log and leaves no process behind. ``to_state``/``from_state`` let another
process (``sandbox status``/``down``) find and stop the node later.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ruamel.yaml import YAML

from ..cluster import Auth, ClusterClient
from ..errors import ConnectError, RemoteReindexError, SandboxError
from .certs import NodeCertificates
from .distributions import (
    Distribution,
    Progress,
    fetch_distribution,
    fetch_reindex_module_jars,
    find_java_home,
    install_reindex_module,
    unpack_distribution,
)
from .users import NodeUser, chown_tree, ensure_node_user, write_file_realm_user

DEFAULT_HEAP = "512m"
START_TIMEOUT = float(os.environ.get("REMOTE_REINDEX_SANDBOX_START_TIMEOUT", "180"))
STOP_TIMEOUT = 60.0


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel picks it), never one this
    process handed out before: nodes installed together must not get the same port."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise SandboxError("no free loopback port found", "Stop some local services or nodes and retry.")


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_under(path: Path) -> list[int]:
    """Pids of processes whose command line mentions ``path`` (our node's JVM and launcher)."""
    needle = str(path).encode()
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # Only a JVM whose arguments name the folder, or a launcher script inside it:
        # never an editor or `tail -f` that merely mentions a log file there.
        is_jvm = argv[0].endswith(b"/java") or argv[0] == b"java"
        is_launcher = any(a.startswith(needle + b"/bin/") for a in argv[:2])
        if (is_launcher or (is_jvm and any(needle in a for a in argv))) and _pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@dataclass
class NodeTLS:
    """HTTPS on the node: the certificate files it presents (copied into its config)."""

    certificates: NodeCertificates


@dataclass
class NodeLogin:
    """A file-realm user created on a secured node. The password stays in its file."""

    username: str
    password_file: Path

    def auth(self) -> Auth:
        return Auth.basic(self.username, self.password_file.read_text().strip())


@dataclass
class Node:
    """A single-node cluster (or one member of a local multi-node cluster).

    ``settings`` are extra config entries written after ours (they win). ``security``
    turns on x-pack security (basic auth + HTTPS when ``tls`` is given); without it
    the node is plain HTTP with security disabled.
    """

    name: str
    dist: Distribution
    dir: Path
    settings: dict[str, Any] = field(default_factory=dict)
    tls: NodeTLS | None = None
    login: NodeLogin | None = None
    reindex_module: bool = False
    heap: str = DEFAULT_HEAP
    http_port: int = 0
    transport_port: int = 0
    cluster_name: str = ""
    pid: int | None = None
    # multi-node clusters: transport addresses of every member, and its initial masters
    seed_hosts: list[str] = field(default_factory=list)
    initial_masters: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = Path(self.dir)
        if not self.cluster_name:
            self.cluster_name = f"rr-{self.name}"
        if not self.http_port:
            self.http_port = free_port()
        if not self.transport_port:
            self.transport_port = free_port()

    # -- where things are -------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.dir / f"{self.dist.flavor}-{self.dist.version}"

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def config_file(self) -> Path:
        return self.config_dir / self.dist.config_file_name

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def pid_file(self) -> Path:
        return self.dir / "node.pid"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / f"{self.cluster_name}.log"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        # "localhost": the name in the certificate's SANs, and what the guide's allowlist uses.
        return f"{self.scheme}://localhost:{self.http_port}"

    @property
    def host_port(self) -> str:
        return f"localhost:{self.http_port}"

    @property
    def ca_file(self) -> Path | None:
        return self.tls.certificates.ca_file if self.tls else None

    def client(self, **kw: Any) -> ClusterClient:
        """A client with the node's CA and login (when it has them)."""
        auth = self.login.auth() if self.login else None
        return ClusterClient(self.url, ca_file=str(self.ca_file) if self.ca_file else None, auth=auth, **kw)

    # -- install -----------------------------------------------------------------------

    def install(self, progress: Progress | None = None, user: NodeUser | None = None) -> None:
        """Unpack the distribution, write config, certificates, users and modules."""
        user = user or ensure_node_user()
        zip_path = fetch_distribution(self.dist, progress)
        jars = fetch_reindex_module_jars(self.dist, progress) if self.reindex_module else None
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        home = unpack_distribution(zip_path, self.dir)
        if home != self.home:
            raise SandboxError(f"unexpected folder {home.name} in {zip_path.name}", "Delete the cached zip and run again.")
        if jars is not None:
            install_reindex_module(self.dist, self.home, jars)
        self.data_dir.mkdir()
        self.logs_dir.mkdir()
        if self.tls:
            certs_dir = self.config_dir / "certs"
            certs_dir.mkdir()
            c = self.tls.certificates
            shutil.copy2(c.chain_file, certs_dir / "node.crt")
            shutil.copy2(c.key_file, certs_dir / "node.key")
            shutil.copy2(c.ca_file, certs_dir / "ca.pem")
        if self.login:
            write_file_realm_user(self.config_dir, self.login.username, self.login.auth().secret or "")
        self.write_config()
        chown_tree(self.dir, user)

    def base_settings(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "cluster.name": self.cluster_name,
            "node.name": self.name,
            "network.host": "127.0.0.1",
            "http.port": self.http_port,
            "transport.port": self.transport_port,
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            # The shared test machine's disk may be fuller than the default watermarks allow.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        if self.seed_hosts:
            s["discovery.seed_hosts"] = list(self.seed_hosts)
            key = "cluster.initial_cluster_manager_nodes" if self.dist.flavor == "opensearch" else "cluster.initial_master_nodes"
            s[key] = list(self.initial_masters)
        else:
            s["discovery.type"] = "single-node"
        if self.dist.flavor == "elasticsearch":
            if self.dist.major < 9:
                s["xpack.ml.enabled"] = False
            if self.tls or self.login:
                s["xpack.security.enabled"] = True
                if self.dist.major >= 8:
                    s["xpack.security.transport.ssl.enabled"] = False
            else:
                s["xpack.security.enabled"] = False
            if self.tls:
                s.update(
                    {
                        "xpack.security.http.ssl.enabled": True,
                        "xpack.security.http.ssl.certificate": "certs/node.crt",
                        "xpack.security.http.ssl.key": "certs/node.key",
                        "xpack.security.http.ssl.certificate_authorities": ["certs/ca.pem"],
                    }
                )
        elif self.tls or self.login:
            raise SandboxError("the OpenSearch sandbox node has no security plugin", "Use an Elasticsearch node for a TLS source.")
        return s

    def write_config(self) -> None:
        settings = {**self.base_settings(), **self.settings}
        yaml = YAML()
        yaml.default_flow_style = False
        with open(self.config_file, "w") as fh:
            fh.write("# written by remote-reindex sandbox\n")
            yaml.dump(settings, fh)

    # -- run -----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        java_home = find_java_home(self.dist)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "OPENSEARCH_", "JAVA_", "_JAVA_", "JDK_"))}
        prefix = self.dist.env_prefix
        env[f"{prefix}_JAVA_HOME"] = str(java_home)
        env[f"{prefix}_JAVA_OPTS"] = f"-Xms{self.heap} -Xmx{self.heap}"
        env["HOME"] = str(self.dir)
        env["ES_TMPDIR" if prefix == "ES" else "OPENSEARCH_TMPDIR"] = str(self.dir / "tmp")
        return env

    def is_running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def start(self, timeout: float = START_TIMEOUT, user: NodeUser | None = None) -> None:
        """Start the node and wait until it answers ``_cluster/health`` (yellow or green).

        A port picked free at install time can be taken by someone else before the node
        binds it (other sandboxes run beside us): then new ports are picked and the start
        is retried, for a single node (a cluster member's ports are in its peers' config).
        """
        user = user or ensure_node_user()
        for attempt in range(3):
            try:
                self._start_once(timeout, user)
                return
            except SandboxError:
                if self.seed_hosts or attempt == 2 or not self._lost_a_port():
                    raise
                if self.server_log.exists():  # keep it, but out of the way of the next check
                    self.server_log.rename(self.server_log.with_name(f"{self.server_log.stem}.bind-failure-{attempt}.log"))
                self.http_port, self.transport_port = free_port(), free_port()
                self.write_config()  # rewritten in place: stays the node user's file

    def _lost_a_port(self) -> bool:
        return any("BindException" in line or "Address already in use" in line for line in self.log_tail(60))

    def _start_once(self, timeout: float, user: NodeUser) -> None:
        if self.is_running():
            return
        (self.dir / "tmp").mkdir(exist_ok=True)
        if not user.is_current:
            os.chown(self.dir / "tmp", user.uid, user.gid)
        self.pid_file.unlink(missing_ok=True)
        kwargs: dict[str, Any] = {}
        if not user.is_current:
            kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []}
        with open(self.console_log, "ab") as console:
            launcher = subprocess.Popen(
                [str(self.home / self.dist.launcher), "-d", "-p", str(self.pid_file)],
                cwd=self.dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI that started it, immune to its Ctrl-C
                **kwargs,
            )
        try:
            self._wait_ready(launcher, timeout)
        except BaseException:
            self.stop()
            raise
        finally:
            try:
                launcher.wait(timeout=30)  # ES 8+ launcher exits once the server is up
            except subprocess.TimeoutExpired:
                pass

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _wait_ready(self, launcher: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client(timeout=5, connect_timeout=2)
        last_problem = "no answer yet"
        try:
            while time.monotonic() < deadline:
                if self.pid is None:
                    self.pid = self._read_pid()
                code = launcher.poll()
                if code not in (None, 0):
                    raise self._start_failed(f"the launcher exited with code {code}")
                if self.pid is not None and not _pid_alive(self.pid):
                    raise self._start_failed("the node process exited")
                if code == 0 and self.pid is None and not processes_under(self.home):
                    raise self._start_failed("the node process exited")
                try:
                    resp = client.request("GET", "/_cluster/health", params={"wait_for_status": "yellow", "timeout": "1s"})
                    if resp.status == 200:
                        if self.pid is None:
                            self.pid = self._read_pid()
                        return
                    last_problem = f"_cluster/health answered {resp.status}"
                except ConnectError as exc:
                    last_problem = exc.message
                time.sleep(0.5)
        finally:
            client.close()
        raise self._start_failed(f"not healthy after {timeout:.0f} s ({last_problem})")

    def log_tail(self, lines: int = 15) -> list[str]:
        """The last lines of the node's own log (or its console output before the log exists)."""
        for path in (self.server_log, self.console_log):
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                return text.splitlines()[-lines:]
        return []

    def failure_reason(self) -> str:
        """The most telling line of a failed start: the innermost 'Caused by:', else an
        exception with a message, else the last ERROR line."""
        lines = self.log_tail(300)
        caused = [line for line in lines if line.startswith("Caused by: ")]
        if caused:
            return caused[-1][len("Caused by: "):].strip()
        thrown = [line for line in lines if re.match(r"^[\w.$]+(Exception|Error): \S", line)]
        if thrown:
            return thrown[-1].strip()
        errors = [line for line in lines if "][ERROR]" in line or " ERROR " in line]
        return (errors or lines or [""])[-1].strip()

    def _start_failed(self, why: str) -> SandboxError:
        tail = self.log_tail()
        reason = self.failure_reason()
        detail = "\n".join("    " + line[:300] for line in tail)
        message = f"{self.dist.label} node '{self.name}' did not start: {why}" + (f" -- {reason.strip()[:300]}" if reason else "")
        exc = SandboxError(message, f"Read the node's log: tail -n 50 {self.server_log if self.server_log.exists() else self.console_log}", cause="node_start_failed")
        exc.log_lines = tail  # type: ignore[attr-defined]
        exc.log_text = detail  # type: ignore[attr-defined]
        return exc

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; returns once no process of this node is
        left and both ports are free."""
        pids = set(processes_under(self.home))
        for pid in (self.pid, self._read_pid()):
            # A recorded pid counts only while it is still our node: pids get reused.
            if pid is not None and _pid_alive(pid) and self._owns(pid):
                pids.add(pid)
        for pid in pids:
            signal_process(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids | set(processes_under(self.home))):
            time.sleep(0.2)
        for pid in pids | set(processes_under(self.home)):
            signal_process(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not any(_pid_alive(p) for p in pids) and not processes_under(self.home) and self.ports_free():
                break
            time.sleep(0.2)
        else:
            raise SandboxError(
                f"node '{self.name}' did not stop: a process or port {self.http_port}/{self.transport_port} is still in use",
                f"Find it with 'ss -ltnp | grep {self.http_port}' and stop it.",
            )
        self.pid = None

    def _owns(self, pid: int) -> bool:
        try:
            return str(self.home).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def ports_free(self) -> bool:
        return port_is_free(self.http_port) and port_is_free(self.transport_port)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    def remove(self) -> None:
        """Stop and delete the node's folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def healthy(self) -> bool:
        if not self.is_running():
            return False
        try:
            with self.client(timeout=5, connect_timeout=2) as c:
                return c.request("GET", "/_cluster/health").status == 200
        except RemoteReindexError:
            return False

    # -- config edits (what a hosted service does with "user settings") ----------------

    def read_config(self) -> dict[str, Any]:
        yaml = YAML(typ="safe")
        return dict(yaml.load(self.config_file.read_text()) or {})

    def merge_config(self, extra: Mapping[str, Any]) -> None:
        """Merge settings into the config file (flat keys; a nested mapping is flattened)."""
        yaml = YAML()
        current = yaml.load(self.config_file.read_text()) or {}
        for key, value in flatten_settings(extra).items():
            current[key] = value
        with open(self.config_file, "w") as fh:
            yaml.dump(current, fh)
        self.settings.update(flatten_settings(extra))

    # -- persistence ---------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flavor": self.dist.flavor,
            "version": self.dist.version,
            "dir": str(self.dir),
            "settings": self.settings,
            "tls": {k: str(v) for k, v in asdict(self.tls.certificates).items()} if self.tls else None,
            "login": {"username": self.login.username, "password_file": str(self.login.password_file)} if self.login else None,
            "reindex_module": self.reindex_module,
            "heap": self.heap,
            "http_port": self.http_port,
            "transport_port": self.transport_port,
            "cluster_name": self.cluster_name,
            "pid": self.pid,
            "seed_hosts": self.seed_hosts,
            "initial_masters": self.initial_masters,
        }

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> "Node":
        tls = NodeTLS(NodeCertificates(**{k: Path(v) for k, v in s["tls"].items()})) if s.get("tls") else None
        login = NodeLogin(s["login"]["username"], Path(s["login"]["password_file"])) if s.get("login") else None
        return cls(
            name=s["name"],
            dist=Distribution(s["flavor"], s["version"]),
            dir=Path(s["dir"]),
            settings=dict(s.get("settings") or {}),
            tls=tls,
            login=login,
            reindex_module=bool(s.get("reindex_module")),
            heap=s.get("heap", DEFAULT_HEAP),
            http_port=int(s["http_port"]),
            transport_port=int(s["transport_port"]),
            cluster_name=s.get("cluster_name", ""),
            pid=s.get("pid"),
            seed_hosts=list(s.get("seed_hosts") or []),
            initial_masters=list(s.get("initial_masters") or []),
        )


def signal_process(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def flatten_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"reindex": {"remote": {"whitelist": [...]}}}`` -> ``{"reindex.remote.whitelist": [...]}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_settings(value, full + "."))
        else:
            flat[full] = list(value) if isinstance(value, (list, tuple)) else value
    return flat
