"""Node distributions and the reindex module, fetched once with Maven into a per-user cache.

Only Maven Central is used (``mvn``), the same place the guide's versions are published as
integration-test zips. A file already in the cache is reused without any network, so a
machine that fetched once can run the sandbox offline. Downloads go to a temporary folder
and are renamed into place, so parallel sandboxes never see half a file.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import SandboxError

Progress = Callable[[str], None]

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


def cache_root() -> Path:
    """``$REMOTE_REINDEX_CACHE`` or ``~/.cache/remote-reindex`` (per user)."""
    env = os.environ.get("REMOTE_REINDEX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "remote-reindex"


@dataclass(frozen=True)
class Distribution:
    """One node distribution: which product, which version."""

    flavor: str  # "elasticsearch" | "opensearch"
    version: str

    def __post_init__(self) -> None:
        if self.flavor not in ("elasticsearch", "opensearch"):
            raise SandboxError(f"unknown node flavor {self.flavor!r}", "Use 'elasticsearch' or 'opensearch'.")

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def group_id(self) -> str:
        return "org.opensearch.distribution.integ-test-zip" if self.flavor == "opensearch" else "org.elasticsearch.distribution.integ-test-zip"

    @property
    def artifact(self) -> str:
        return f"{self.group_id}:{self.flavor}:{self.version}:zip"

    @property
    def zip_name(self) -> str:
        return f"{self.flavor}-{self.version}.zip"

    @property
    def label(self) -> str:
        return f"{'OpenSearch' if self.flavor == 'opensearch' else 'Elasticsearch'} {self.version}"

    # -- how a node of this distribution is run --------------------------------------

    @property
    def config_file_name(self) -> str:
        return "opensearch.yml" if self.flavor == "opensearch" else "elasticsearch.yml"

    @property
    def launcher(self) -> str:
        return "bin/opensearch" if self.flavor == "opensearch" else "bin/elasticsearch"

    @property
    def env_prefix(self) -> str:
        """Prefix of the launcher's JAVA_HOME / JAVA_OPTS variables."""
        return "OPENSEARCH" if self.flavor == "opensearch" else "ES"

    @property
    def min_java(self) -> int:
        # ES 9.x needs JDK 21+; everything else the guide uses runs on 17.
        return 21 if self.flavor == "elasticsearch" and self.major >= 9 else 11

    @property
    def max_java(self) -> int:
        # ES 7.17/8.x and OpenSearch 2.x are not supported on the newest JDKs.
        return 99 if self.flavor == "elasticsearch" and self.major >= 9 else 21

    # -- the reindex module (Maven Central has it only for these lines) ---------------

    @property
    def reindex_module_artifact(self) -> str | None:
        if self.flavor == "elasticsearch" and self.major == 7:
            return f"org.elasticsearch.plugin:reindex-client:{self.version}"
        if self.flavor == "opensearch":
            return f"org.opensearch.plugin:reindex-client:{self.version}"
        return None

    @property
    def reindex_plugin_class(self) -> str:
        return "org.opensearch.index.reindex.ReindexPlugin" if self.flavor == "opensearch" else "org.elasticsearch.reindex.ReindexPlugin"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock so two sandboxes fetching the same file wait for each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mvn(args: list[str], cwd: Path | None, what: str) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise SandboxError(
            f"{what} is not in the cache and Maven ('mvn') is not installed to fetch it",
            "Install Maven (apt-get install maven), or copy the file into " + str(cache_root() / "dist") + ".",
        )
    proc = subprocess.run([mvn, "-B", "-q", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise SandboxError(f"Maven could not fetch {what}: {tail[:400]}", "Check network access to Maven Central (repo.maven.apache.org) and retry.")


def fetch_distribution(dist: Distribution, progress: Progress | None = None) -> Path:
    """The distribution's zip, downloaded once into ``<cache>/dist``."""
    target_dir = cache_root() / "dist"
    target = target_dir / dist.zip_name
    if target.is_file():
        return target
    with _locked(target_dir / f".{dist.zip_name}.lock"):
        if target.is_file():  # another process fetched it while we waited
            return target
        if progress:
            progress(f"downloading {dist.label} from Maven Central...")
        with tempfile.TemporaryDirectory(dir=target_dir, prefix=".fetch-") as tmp:
            _mvn([f"{MAVEN_DEPENDENCY_PLUGIN}:copy", f"-Dartifact={dist.artifact}", f"-DoutputDirectory={tmp}"], None, dist.label)
            got = Path(tmp) / dist.zip_name
            if not got.is_file():
                raise SandboxError(f"Maven finished but {dist.zip_name} is missing", "Retry; if it persists, fetch it by hand into " + str(target_dir) + ".")
            os.replace(got, target)
    return target


_THROWAWAY_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>remote-reindex.sandbox</groupId>
  <artifactId>fetch-reindex-module</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""


def fetch_reindex_module_jars(dist: Distribution, progress: Progress | None = None) -> Path:
    """A folder with ``reindex-client`` and its dependencies, fetched once into ``<cache>/modules``."""
    coords = dist.reindex_module_artifact
    if coords is None:
        raise SandboxError(
            f"no reindex module for {dist.label} on Maven Central",
            "Use Elasticsearch 7.17.x or OpenSearch 2.x as a destination of _reindex from remote.",
        )
    target = cache_root() / "modules" / f"{dist.flavor}-reindex-{dist.version}"
    if (target / ".complete").is_file():
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if (target / ".complete").is_file():
            return target
        if progress:
            progress(f"downloading the reindex module for {dist.label} from Maven Central...")
        group, artifact, version = coords.split(":")
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(_THROWAWAY_POM.format(group=group, artifact=artifact, version=version))
            jars = work / "jars"
            _mvn([f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={jars}"], work, f"the reindex module of {dist.label}")
            if not any(jars.glob("reindex-client-*.jar")):
                raise SandboxError(f"Maven finished but reindex-client-{version}.jar is missing", "Retry the command.")
            (jars / ".complete").write_text(coords + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(jars, target)
    return target


def unpack_distribution(zip_path: Path, dest: Path) -> Path:
    """Unpack the zip into ``dest`` keeping file modes; returns the node's home folder."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            top = {name.split("/", 1)[0] for name in zf.namelist()}
            for info in zf.infolist():
                path = zf.extract(info, dest)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    os.chmod(path, mode)
    except zipfile.BadZipFile:
        raise SandboxError(f"the cached distribution {zip_path} is damaged", f"Delete {zip_path} and run the command again to fetch it anew.") from None
    if len(top) != 1:
        raise SandboxError(f"unexpected layout in {zip_path.name}", "Delete the file from the cache and fetch it again.")
    return dest / top.pop()


def install_reindex_module(dist: Distribution, node_home: Path, jars_dir: Path) -> Path:
    """Assemble ``modules/reindex`` the way the real distribution ships it.

    Jars already in ``lib/`` are skipped: a class twice on the classpath stops the node
    ("jar hell"). The descriptor's version keys must equal the node's version.
    """
    module = node_home / "modules" / "reindex"
    module.mkdir(parents=True, exist_ok=True)
    in_lib = {p.name for p in (node_home / "lib").glob("*.jar")}
    for jar in sorted(jars_dir.glob("*.jar")):
        if jar.name not in in_lib:
            shutil.copy2(jar, module / jar.name)
    if dist.flavor == "opensearch":
        descriptor = {
            "description": "The Reindex module adds APIs to reindex from one index to another or update documents in place.",
            "version": dist.version,
            "name": "reindex",
            "classname": dist.reindex_plugin_class,
            "java.version": "11",
            "opensearch.version": dist.version,
        }
    else:
        descriptor = {
            "description": "The Reindex module adds APIs to reindex from one index to another or update documents in place.",
            "version": dist.version,
            "name": "reindex",
            "classname": dist.reindex_plugin_class,
            "java.version": "1.8",
            "elasticsearch.version": dist.version,
            "extended.plugins": "",
            "has.native.controller": "false",
        }
    (module / "plugin-descriptor.properties").write_text("".join(f"{k}={v}\n" for k, v in descriptor.items()))
    # Remote reindex opens sockets to the source; the module's policy must allow it.
    (module / "plugin-security.policy").write_text('grant {\n  permission java.net.SocketPermission "*", "connect";\n};\n')
    return module


def _java_version(java_home: Path) -> int | None:
    release = java_home / "release"
    try:
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                v = line.split("=", 1)[1].strip().strip('"')
                first = v.split(".")[0]
                return 8 if first == "1" else int(first)
    except (OSError, ValueError):
        return None
    return None


def find_java_home(dist: Distribution) -> Path:
    """A JDK able to run ``dist``: the machine's default one when it is recent enough,
    else the newest under /usr/lib/jvm (ES 9.x -> Temurin 25 on these machines)."""
    candidates: list[Path] = []
    override = os.environ.get("REMOTE_REINDEX_JAVA_HOME")
    if override:
        candidates.append(Path(override))
    java = shutil.which("java")
    if java:
        candidates.append(Path(os.path.realpath(java)).parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        found = [p for p in jvm.iterdir() if p.is_dir() and not p.is_symlink() and (p / "bin" / "java").exists()]
        candidates.extend(sorted(found, key=lambda p: _java_version(p) or 0, reverse=True))
    for home in candidates:
        version = _java_version(home)
        if version is not None and dist.min_java <= version <= dist.max_java:
            return home
    raise SandboxError(
        f"no Java {dist.min_java}+ found to run {dist.label}",
        f"Install a JDK {dist.min_java} or newer (e.g. under /usr/lib/jvm), or set REMOTE_REINDEX_JAVA_HOME.",
    )


# Every distribution the sandbox and the test suite use, with whether the destination
# flavour of it needs the assembled reindex module.
ALL_DISTRIBUTIONS: tuple[tuple[Distribution, bool], ...] = (
    (Distribution("elasticsearch", "7.17.29"), True),
    (Distribution("elasticsearch", "8.8.2"), False),
    (Distribution("elasticsearch", "9.2.0"), False),
    (Distribution("opensearch", "2.19.6"), True),
)


def prefetch_all(progress: Progress | None = None) -> None:
    """Download every distribution and reindex module into the cache (no-op when cached)."""
    for dist, module in ALL_DISTRIBUTIONS:
        fetch_distribution(dist, progress)
        if module:
            fetch_reindex_module_jars(dist, progress)

