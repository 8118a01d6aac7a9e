"""The sandbox: a private-CA source and a destination that does not trust it yet.

``Sandbox(home)`` keeps everything under one folder: node folders, the CA file users are
given, the source password file (0600) and ``state.json`` (no secrets). Another process
finds the running nodes again from that state, so ``up``, ``status``, ``down`` and the
tests of other parts can each be a separate process. Each home is independent: tests and
users with different homes never collide (ports are picked free per node).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import stat
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import orjson
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ..cluster import ClusterClient
from ..errors import RemoteReindexError, SandboxError, UsageError
from ..tls.context import pem_blocks
from .certs import issue_node_certificates
from .data import DEFAULT_SEED, SAMPLE_INDEX, load_sample_index
from .distributions import Distribution, Progress
from .node import Node, NodeLogin, NodeTLS, flatten_settings, processes_under, signal_process
from .users import NodeUser, ensure_node_user, generate_password, write_password_file

DEFAULT_HOME = Path("/var/tmp/remote-reindex/sandbox")
HOME_ENV = "REMOTE_REINDEX_SANDBOX_HOME"
SOURCE_VERSIONS = ("7.17.29", "8.8.2")
DESTINATIONS: dict[str, tuple[Distribution, bool]] = {
    # kind: (distribution, with the assembled reindex module)
    "elasticsearch": (Distribution("elasticsearch", "7.17.29"), True),
    "opensearch": (Distribution("opensearch", "2.19.6"), True),
    "elasticsearch-9": (Distribution("elasticsearch", "9.2.0"), False),
}
SOURCE_USER = "reindexer"
STATE_FILE = "state.json"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def new_home(prefix: str = "sandbox-", parent: str | Path | None = None) -> Path:
    """A fresh, empty sandbox home the node user can enter (for tests and parallel runs):
    under ``$REMOTE_REINDEX_TEST_HOMES`` or /var/tmp/remote-reindex, never a 0700 temp dir."""
    base = Path(parent or os.environ.get("REMOTE_REINDEX_TEST_HOMES") or DEFAULT_HOME.parent)
    base.mkdir(parents=True, exist_ok=True)
    if base.stat().st_uid == os.geteuid():
        os.chmod(base, 0o755)
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.chmod(home, 0o755)
    return home


def _quiet(_: str) -> None:
    pass


@dataclass
class SourceSide:
    """A TLS source node and what a user needs to reach it."""

    node: Node
    index: str
    docs: int
    seed: int

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def ca_file(self) -> Path:
        assert self.node.tls is not None
        return self.node.tls.certificates.ca_file

    @property
    def intermediate_file(self) -> Path:
        assert self.node.tls is not None
        return self.node.tls.certificates.intermediate_file

    @property
    def username(self) -> str:
        assert self.node.login is not None
        return self.node.login.username

    @property
    def password_file(self) -> Path:
        assert self.node.login is not None
        return self.node.login.password_file

    def client(self, **kw: Any) -> ClusterClient:
        return self.node.client(**kw)

    def to_state(self) -> dict[str, Any]:
        return {"node": self.node.to_state(), "index": self.index, "docs": self.docs, "seed": self.seed}

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> "SourceSide":
        return cls(Node.from_state(s["node"]), s["index"], int(s["docs"]), int(s.get("seed", DEFAULT_SEED)))


@dataclass
class DestinationSide:
    """A destination cluster: one node, or several forming one cluster."""

    kind: str
    nodes: list[Node]

    @property
    def node(self) -> Node:
        return self.nodes[0]

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def config_dir(self) -> Path:
        return self.node.config_dir

    @property
    def config_file(self) -> Path:
        return self.node.config_file

    def client(self, **kw: Any) -> ClusterClient:
        return self.node.client(**kw)

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "nodes": [n.to_state() for n in self.nodes]}

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> "DestinationSide":
        return cls(s["kind"], [Node.from_state(n) for n in s["nodes"]])


def start_nodes(nodes: list[Node], user: NodeUser) -> None:
    """Start nodes side by side (a multi-node cluster only gets healthy when all run);
    if any fails, stop them all and raise the first error."""
    errors: list[BaseException] = []

    def run(node: Node) -> None:
        try:
            node.start(user=user)
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), name=f"start-{n.name}") for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for n in nodes:
            try:
                n.stop()
            except RemoteReindexError:
                pass
        raise errors[0]


def check_home_traversable(home: Path, user: NodeUser) -> None:
    """The node user must be able to reach its folders: no parent may be closed to it."""
    if user.is_current:
        return
    for parent in [home, *home.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == user.uid:
            continue
        if not st.st_mode & stat.S_IXOTH:
            raise UsageError(
                f"the sandbox home {home} is inside {parent}, which the node user '{user.name}' cannot enter (mode {stat.filemode(st.st_mode)})",
                f"Use a home under /var/tmp (--home /var/tmp/remote-reindex/NAME or {HOME_ENV}).",
            )


class Sandbox:
    """Local nodes reproducing the guide: TLS source with a private CA + an untrusting destination."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = Path(home) if home else default_home()
        self.home = self.home.absolute()
        self.source: SourceSide | None = None
        self.destination: DestinationSide | None = None
        self.extra_sources: dict[str, SourceSide] = {}
        self.extra_destinations: dict[str, DestinationSide] = {}
        self.warnings: list[str] = []
        self._user: NodeUser | None = None
        self._load()

    # -- state -----------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.home / STATE_FILE

    @property
    def user(self) -> NodeUser:
        if self._user is None:
            self._user = ensure_node_user()
        return self._user

    def _load(self) -> None:
        try:
            raw = orjson.loads(self.state_file.read_bytes())
        except FileNotFoundError:
            return
        except orjson.JSONDecodeError:
            raise SandboxError(f"the sandbox state {self.state_file} is damaged", f"Stop any leftover node and delete {self.home}.") from None
        self.source = SourceSide.from_state(raw["source"]) if raw.get("source") else None
        self.destination = DestinationSide.from_state(raw["destination"]) if raw.get("destination") else None
        self.extra_sources = {k: SourceSide.from_state(v) for k, v in (raw.get("extra_sources") or {}).items()}
        self.extra_destinations = {k: DestinationSide.from_state(v) for k, v in (raw.get("extra_destinations") or {}).items()}
        self.warnings = list(raw.get("warnings") or [])

    def save(self) -> None:
        data = {
            "home": str(self.home),
            "source": self.source.to_state() if self.source else None,
            "destination": self.destination.to_state() if self.destination else None,
            "extra_sources": {k: v.to_state() for k, v in self.extra_sources.items()},
            "extra_destinations": {k: v.to_state() for k, v in self.extra_destinations.items()},
            "warnings": self.warnings,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.state_file)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One command at a time per home (two `up`s racing would start four nodes)."""
        self._ensure_home()
        with open(self.home / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _ensure_home(self) -> None:
        check_home_traversable(self.home, self.user)
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            if self.home.stat().st_uid == os.geteuid():
                os.chmod(self.home, 0o755)
            probe = self.home / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UsageError(
                f"cannot use {self.home} as the sandbox home: {exc.strerror or exc}",
                f"Pick a folder you can write with --home DIR (or {HOME_ENV}).",
            ) from None

    def all_nodes(self) -> list[Node]:
        nodes: list[Node] = []
        if self.source:
            nodes.append(self.source.node)
        if self.destination:
            nodes.extend(self.destination.nodes)
        for s in self.extra_sources.values():
            nodes.append(s.node)
        for d in self.extra_destinations.values():
            nodes.extend(d.nodes)
        return nodes

    @property
    def is_up(self) -> bool:
        return self.source is not None and self.destination is not None

    # -- building blocks (public: tests of other parts start extra nodes with these) ---

    def _new_source(self, name: str, version: str, docs: int, seed: int, progress: Progress) -> SourceSide:
        if version not in SOURCE_VERSIONS:
            raise UsageError(f"unsupported source version {version!r}", f"Use one of: {', '.join(SOURCE_VERSIONS)}.")
        pki = issue_node_certificates(self.home / "pki" / name, organization=f"remote-reindex sandbox {name}")
        os.chmod(self.home / "pki", 0o755)
        password = generate_password()
        password_file = write_password_file(self.home / f"{name}-password", password)
        node = Node(
            name=name,
            dist=Distribution("elasticsearch", version),
            dir=self.home / "nodes" / name,
            tls=NodeTLS(pki),
            login=NodeLogin(SOURCE_USER, password_file),
        )
        return SourceSide(node, SAMPLE_INDEX, docs, seed)

    def _new_destination(self, name: str, kind: str, settings: Mapping[str, Any] | None, nodes: int = 1) -> DestinationSide:
        if kind not in DESTINATIONS:
            raise UsageError(f"unknown destination kind {kind!r}", f"Use one of: {', '.join(DESTINATIONS)}.")
        if nodes < 1:
            raise UsageError(f"--destination-nodes must be 1 or more, not {nodes}", "Give a node count of 1 to 5.")
        dist, module = DESTINATIONS[kind]
        extra = flatten_settings(settings or {})
        names = [name] if nodes == 1 else [f"{name}-{i}" for i in range(1, nodes + 1)]
        members = [Node(name=n, dist=dist, dir=self.home / "nodes" / n, settings=dict(extra), reindex_module=module, cluster_name=f"rr-{name}") for n in names]
        if nodes > 1:
            seeds = [f"127.0.0.1:{m.transport_port}" for m in members]
            for m in members:
                m.seed_hosts = seeds
                m.initial_masters = names
        return DestinationSide(kind, members)

    def _install(self, nodes: list[Node], progress: Progress) -> None:
        (self.home / "nodes").mkdir(exist_ok=True)
        os.chmod(self.home / "nodes", 0o755)
        for node in nodes:
            progress(f"installing {node.dist.label} as '{node.name}'" + (" (+ reindex module)" if node.reindex_module else "") + "...")
            node.install(progress, self.user)

    def _load_source(self, source: SourceSide, progress: Progress) -> None:
        if source.docs <= 0:
            return
        progress(f"loading {source.docs} documents into '{source.index}' on the source...")
        step = max(source.docs // 4, 20_000)
        marks = iter(range(step, source.docs, step))
        next_mark = next(marks, None)

        def loaded(done: int) -> None:
            nonlocal next_mark
            if next_mark is not None and done >= next_mark:
                progress(f"  {done}/{source.docs} documents loaded")
                next_mark = next(marks, None)

        with source.client(timeout=120) as client:
            load_sample_index(client, source.docs, index=source.index, seed=source.seed, progress=loaded)

    def start_extra_destination(self, kind: str = "elasticsearch", *, name: str | None = None, settings: Mapping[str, Any] | None = None, nodes: int = 1, progress: Progress = _quiet) -> DestinationSide:
        """Start one more destination (e.g. ``{"thread_pool.write.size": 1, "thread_pool.write.queue_size": 1}``,
        or ``kind="elasticsearch-9"``); ``down`` stops it with the rest. Returns the running side."""
        with self._lock():
            name = name or f"dest-{kind}-{len(self.extra_destinations) + 1}"
            if name in self.extra_destinations:
                raise UsageError(f"an extra destination named {name!r} exists already", "Pick another name, or stop it with stop_extra(name).")
            side = self._new_destination(name, kind, settings, nodes)
            self._install(side.nodes, progress)
            self.extra_destinations[name] = side
            self.save()
            progress(f"starting {side.node.dist.label} '{name}'...")
            try:
                start_nodes(side.nodes, self.user)
            except BaseException:
                # Forget it (the folder and its log stay until `down`): the name is free again.
                del self.extra_destinations[name]
                self.save()
                raise
            self.save()
            return side

    def start_extra_source(self, version: str = "7.17.29", *, name: str | None = None, docs: int = 0, seed: int = DEFAULT_SEED, progress: Progress = _quiet) -> SourceSide:
        """Start one more TLS source, with its OWN fresh private CA and password."""
        with self._lock():
            name = name or f"source-{len(self.extra_sources) + 2}"
            if name in self.extra_sources or name == "source":
                raise UsageError(f"an extra source named {name!r} exists already", "Pick another name.")
            side = self._new_source(name, version, docs, seed, progress)
            self._install([side.node], progress)
            self.extra_sources[name] = side
            self.save()
            progress(f"starting source {side.node.dist.label} '{name}'...")
            try:
                start_nodes([side.node], self.user)
            except BaseException:
                del self.extra_sources[name]
                self.save()
                raise
            self.save()
            self._load_source(side, progress)
            return side

    def stop_extra(self, name: str) -> None:
        """Stop and remove one extra node or cluster by name."""
        with self._lock():
            side: Any = self.extra_destinations.pop(name, None) or self.extra_sources.pop(name, None)
            if side is None:
                raise UsageError(f"no extra node named {name!r}", "See 'remote-reindex sandbox status' for the names.")
            for node in side.nodes if isinstance(side, DestinationSide) else [side.node]:
                node.remove()
            self.save()

    # -- the commands ------------------------------------------------------------------

    def up(
        self,
        *,
        source_version: str = "7.17.29",
        destination: str = "elasticsearch",
        docs: int = 100_000,
        destination_nodes: int = 1,
        seed: int = DEFAULT_SEED,
        progress: Progress = _quiet,
    ) -> bool:
        """Bring the sandbox up; returns False when it was up already and is reused."""
        if source_version not in SOURCE_VERSIONS:
            raise UsageError(f"unsupported source version {source_version!r}", f"Use one of: {', '.join(SOURCE_VERSIONS)}.")
        if destination not in DESTINATIONS:
            raise UsageError(f"unknown destination {destination!r}", f"Use one of: {', '.join(DESTINATIONS)}.")
        if docs < 0:
            raise UsageError(f"--docs must be 0 or more, not {docs}", "Give a document count such as --docs 2000.")
        with self._lock():
            self._load()
            if self.is_up:
                return self._reuse(source_version, destination, progress)
            self._clean_leftovers()
            warnings = []
            dest_dist = DESTINATIONS[destination][0]
            if dest_dist.flavor == "elasticsearch" and tuple(map(int, dest_dist.version.split("."))) < tuple(map(int, source_version.split("."))):
                warnings.append(
                    f"the destination (Elasticsearch {dest_dist.version}) is older than the source (Elasticsearch {source_version}): "
                    "the guide forbids this and a remote _reindex will fail (remote is likely not an Elasticsearch instance)"
                )
            self.source = self._new_source("source", source_version, docs, seed, progress)
            self.destination = self._new_destination("destination", destination, None, destination_nodes)
            self.warnings = warnings
            self._install([self.source.node, *self.destination.nodes], progress)
            self.save()
            progress(f"starting source {self.source.node.dist.label} (HTTPS, private CA) and destination {dest_dist.label}...")
            try:
                start_nodes([self.source.node, *self.destination.nodes], self.user)
                self.save()
                self._load_source(self.source, progress)
            except BaseException:
                # Stop everything but keep the folders: the error points at a log in them.
                # The next `up` or `down` clears them.
                self._stop_all()
                self.source = self.destination = None
                self.state_file.unlink(missing_ok=True)
                raise
            self.save()
            return True

    def _stop_all(self) -> None:
        for node in self.all_nodes():
            try:
                node.stop()
            except RemoteReindexError:
                pass

    def _reuse(self, source_version: str, destination: str, progress: Progress) -> bool:
        assert self.source and self.destination
        if self.source.node.dist.version != source_version or self.destination.kind != destination:
            raise UsageError(
                f"a sandbox with source {self.source.node.dist.version} and destination {self.destination.kind} is already up in {self.home}",
                "Run 'remote-reindex sandbox down' first, or use another --home.",
            )
        stopped = [n for n in [self.source.node, *self.destination.nodes] if not n.healthy()]
        if stopped:
            progress(f"restarting {', '.join(n.name for n in stopped)}...")
            for n in stopped:
                n.stop()
            start_nodes(stopped, self.user)
            self.save()
        return False

    def _clean_leftovers(self) -> None:
        """A previous run that died half-way: stop what it left and start from scratch."""
        nodes_dir = self.home / "nodes"
        if nodes_dir.is_dir():
            for node_dir in nodes_dir.iterdir():
                for pid in processes_under(node_dir):
                    signal_process(pid, signal.SIGKILL)
            shutil.rmtree(nodes_dir, ignore_errors=True)

    def _teardown(self) -> None:
        errors: list[RemoteReindexError] = []
        for node in self.all_nodes():
            try:
                node.remove()
            except RemoteReindexError as exc:
                errors.append(exc)
        self._clean_leftovers()
        shutil.rmtree(self.home / "pki", ignore_errors=True)
        for p in [self.home / "ca.pem", *self.home.glob("*-password"), self.state_file]:
            p.unlink(missing_ok=True)
        self.source = self.destination = None
        self.extra_sources, self.extra_destinations = {}, {}
        if errors:
            raise errors[0]

    def down(self) -> int:
        """Stop every node, wait until their processes are gone and ports free, delete their
        folders. Returns how many nodes were stopped."""
        if not self.home.is_dir():  # nothing to stop: do not create a home (and a .lock) for it
            return 0
        with self._lock():
            self._load()
            count = len(self.all_nodes())
            self._teardown()
            return count

    def status(self, live: bool = True) -> dict[str, Any]:
        """What is up, where, and how to log in (the password file, never the password)."""
        self._load()
        result: dict[str, Any] = {"home": str(self.home), "up": self.is_up, "source": None, "destination": None}
        if self.source:
            result["source"] = self._source_status(self.source, live)
        if self.destination:
            result["destination"] = self._destination_status(self.destination, live)
        if self.extra_sources:
            result["extra_sources"] = {k: self._source_status(v, live) for k, v in self.extra_sources.items()}
        if self.extra_destinations:
            result["extra_destinations"] = {k: self._destination_status(v, live) for k, v in self.extra_destinations.items()}
        if self.warnings:
            result["warnings"] = self.warnings
        return result

    def _source_status(self, s: SourceSide, live: bool) -> dict[str, Any]:
        node = s.node
        running = node.healthy() if live else None
        docs: int | None = s.docs
        if running:
            try:
                with s.client(timeout=10) as c:
                    resp = c.request("GET", f"/{s.index}/_count")
                    docs = int(resp.json()["count"]) if resp.status == 200 else 0
            except RemoteReindexError:
                pass
        return {
            "url": node.url,
            "host_port": node.host_port,
            "flavor": node.dist.flavor,
            "version": node.dist.version,
            "username": s.username,
            "password_file": str(s.password_file),
            "ca_file": str(s.ca_file),
            "intermediate_file": str(s.intermediate_file),
            "index": s.index,
            "docs": docs,
            "seed": s.seed,
            "running": running,
            "pid": node.pid,
            "node_dir": str(node.dir),
            "log": str(node.server_log),
        }

    def _destination_status(self, d: DestinationSide, live: bool) -> dict[str, Any]:
        node = d.node
        return {
            "url": node.url,
            "host_port": node.host_port,
            "kind": d.kind,
            "flavor": node.dist.flavor,
            "version": node.dist.version,
            "reindex_module": node.reindex_module,
            "config_dir": str(node.config_dir),
            "config_file": str(node.config_file),
            "nodes": [n.url for n in d.nodes],
            "running": all(n.healthy() for n in d.nodes) if live else None,
            "pid": node.pid,
            "node_dir": str(node.dir),
            "log": str(node.server_log),
        }

    # -- what a hosted service does when you upload an extension + save user settings ---

    def configure_destination(self, bundle: str | Path, settings_file: str | Path, *, target: str | None = None, progress: Progress = _quiet) -> dict[str, Any]:
        """Unpack a CA bundle (``NAME.zip`` holding ``NAME/cacert.pem``) into the destination's
        config dir, merge the settings YAML into its config file, restart, wait for health.
        ``target``: the name of an extra destination instead of the main one."""
        bundle, settings_file = Path(bundle), Path(settings_file)
        name, members = validate_bundle(bundle)
        settings = read_settings_yaml(settings_file)
        with self._lock():
            self._load()
            if target is None:
                side = self.destination
                if side is None:
                    raise SandboxError(f"no sandbox is up in {self.home}", f"Run 'remote-reindex sandbox up --home {self.home}' first.", cause="not_up")
            else:
                side = self.extra_destinations.get(target)
                if side is None:
                    raise UsageError(f"no extra destination named {target!r} in {self.home}", "See 'remote-reindex sandbox status' for the names.")
            backups = {node.name: (node.config_file.read_text(), dict(node.settings)) for node in side.nodes}
            translated = {k: _cloud_path(v, side.config_dir) for k, v in flatten_settings(settings).items()}
            for key, value in translated.items():
                if value != flatten_settings(settings)[key]:
                    progress(f"{key}: /app/config/ is the config dir on Elastic Cloud; here it is {side.config_dir}")
            for node in side.nodes:
                _unpack_bundle(bundle, members, name, node.config_dir, self.user)
                node.merge_config({k: _cloud_path(v, node.config_dir) for k, v in flatten_settings(settings).items()})
                if not self.user.is_current:
                    os.chown(node.config_file, self.user.uid, self.user.gid)
            self.save()
            progress(f"restarting the destination ({len(side.nodes)} node(s))...")
            for node in side.nodes:
                node.stop()
            try:
                start_nodes(side.nodes, self.user)
            except SandboxError as exc:
                reason = side.node.failure_reason() or exc.message
                progress("the destination did not start with the new settings: rolling back...")
                for node in side.nodes:
                    node.config_file.write_text(backups[node.name][0])
                    node.settings = backups[node.name][1]
                start_nodes(side.nodes, self.user)
                self.save()
                raise SandboxError(
                    f"the destination refused the new settings and was rolled back to its previous config: {reason[:300]}",
                    "Fix the settings (or the bundle) and run configure-destination again.",
                    cause="settings_rejected",
                ) from None
            self.save()
            return {"bundle": name, "extracted_to": str(side.config_dir / name), "settings": translated, "config_file": str(side.config_file)}


def _cloud_path(value: Any, config_dir: Path) -> Any:
    """Elastic Cloud unpacks bundles under /app/config/: point such paths at our config dir."""
    if isinstance(value, str) and value.startswith("/app/config/"):
        return str(config_dir / value[len("/app/config/"):])
    if isinstance(value, list):
        return [_cloud_path(v, config_dir) for v in value]
    return value


def _unpack_bundle(bundle: Path, members: list[str], name: str, config_dir: Path, user: NodeUser) -> Path:
    target = config_dir / name
    if target.exists():
        shutil.rmtree(target)
    with zipfile.ZipFile(bundle) as zf:
        for member in members:
            zf.extract(member, config_dir)
    if not user.is_current:
        for path in [target, *target.rglob("*")]:
            os.lchown(path, user.uid, user.gid)
    return target


def validate_bundle(bundle: Path) -> tuple[str, list[str]]:
    """Check a CA bundle as the hosted service does: a zip whose single top folder NAME
    holds ``NAME/cacert.pem`` with at least one PEM certificate. Returns (NAME, members)."""
    if not bundle.is_file():
        raise UsageError(f"bundle not found: {bundle}", "Give the path of the zip made by 'remote-reindex bundle'.")
    try:
        with zipfile.ZipFile(bundle) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            tops = {m.split("/", 1)[0] for m in zf.namelist()}
            unsafe = [m for m in zf.namelist() if m.startswith("/") or ".." in Path(m).parts]
            if unsafe:
                raise UsageError(f"the bundle {bundle.name} has unsafe paths ({unsafe[0]})", "Rebuild it with 'remote-reindex bundle'.")
            if len(tops) != 1 or not members or all("/" not in m for m in members):
                raise UsageError(
                    f"the bundle {bundle.name} must hold exactly one folder NAME with NAME/cacert.pem (found: {', '.join(sorted(tops)) or 'nothing'})",
                    "Rebuild it with 'remote-reindex bundle' (it writes NAME.zip with NAME/cacert.pem).",
                )
            name = tops.pop()
            if f"{name}/cacert.pem" not in members:
                raise UsageError(f"the bundle {bundle.name} has no {name}/cacert.pem", "Put the CA certificate at NAME/cacert.pem inside the zip.")
            if not pem_blocks(zf.read(f"{name}/cacert.pem")):
                raise UsageError(f"{name}/cacert.pem in {bundle.name} holds no PEM certificate", "Put the source's CA certificate (PEM) into the bundle.")
    except zipfile.BadZipFile:
        raise UsageError(f"{bundle} is not a zip file", "Give the zip made by 'remote-reindex bundle'.") from None
    return name, members


def read_settings_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"settings file not found: {path}", "Give the YAML file written by 'remote-reindex settings'.") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError):
        raise UsageError(f"settings file cannot be read: {path}", "Give a readable YAML file.") from None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"settings file {path} is not valid YAML{where}", "Fix the YAML (keys like reindex.remote.whitelist: [\"host:port\"]).") from None
    if data is None:
        raise UsageError(f"settings file {path} is empty", "Write the destination settings into it (reindex.remote.whitelist, reindex.ssl.*).")
    if not isinstance(data, dict):
        raise UsageError(f"settings file {path} must be a mapping of setting: value", "Write lines like 'reindex.remote.whitelist: [\"host:port\"]'.")
    return data
