"""``lint-settings``: find what is wrong in a destination's reindex settings before a
restart finds it. Every problem carries its line number and the line as it should be.

ruamel.yaml's round-trip loader keeps the line of every key and sequence item. Nested
YAML (``reindex: {remote: {whitelist: ...}}``) is flattened to dotted keys, as the
destination does.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from ..bundle import CLOUD_CONFIG_DIR, BundleContents, check_target, read_bundle
from ..errors import RemoteReindexError, UsageError
from .generate import CA_KEY, FLAVORS, MODE_KEY, NONE_WARNING, VERIFICATION_MODES
from .remotes import normalize_remote

WHITELIST = "reindex.remote.whitelist"
ALLOWLIST = "reindex.remote.allowlist"
TRUSTSTORE_KEY = "reindex.ssl.truststore.path"
KNOWN_REINDEX_SSL = {
    "certificate_authorities", "verification_mode", "supported_protocols", "cipher_suites",
    "truststore.path", "truststore.password", "truststore.secure_password", "truststore.type", "truststore.algorithm",
    "keystore.path", "keystore.password", "keystore.secure_password", "keystore.key_password",
    "keystore.secure_key_password", "keystore.type", "keystore.algorithm",
    "certificate", "key", "key_passphrase", "secure_key_passphrase",
}  # fmt: skip
# Settings of the destination's OWN TLS that people put the source's CA into by mistake.
OWN_TLS_CA_KEYS = re.compile(r"^(xpack\.security\.(http|transport)\.ssl|xpack\.ssl|plugins\.security\.ssl\.(http|transport))\.(certificate_authorities|pemtrustedcas_filepath)$")


@dataclass
class Problem:
    line: int
    severity: str  # error | warning
    key: str
    message: str
    fixed: str | None = None  # the line as it should read; None when the fix is to delete or decide

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LintReport:
    file: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.severity == "warning" for p in self.problems)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "file": self.file, "errors": self.errors, "warnings": self.warnings, "problems": [p.to_dict() for p in self.problems]}


@dataclass
class Setting:
    key: str  # dotted, flattened
    written_key: str  # as written on its line (the last segment of a nested map)
    value: Any
    line: int  # 1-based line of the key
    item_lines: list[int] = field(default_factory=list)  # for sequences
    flow: bool = True  # sequence written on the key's line ([a, b])


def flatten(node: CommentedMap, prefix: str = "") -> list[Setting]:
    out: list[Setting] = []
    for k in node:
        key = f"{prefix}{k}"
        line = node.lc.key(k)[0] + 1
        value = node[k]
        if isinstance(value, CommentedMap):
            out += flatten(value, key + ".")
            continue
        setting = Setting(key, str(k), value, line)
        if isinstance(value, CommentedSeq):
            setting.item_lines = [value.lc.item(i)[0] + 1 for i in range(len(value))]
            setting.flow = bool(value.fa.flow_style()) or all(n == line for n in setting.item_lines)
        out.append(setting)
    return out


def _indent(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def _unique(values: list[str | None]) -> list[str]:
    """Drop the entries that could not be fixed (None) and repeats; keep the order."""
    return list(dict.fromkeys(v for v in values if v is not None))


def _flow(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


class _Linter:
    def __init__(self, text: str, file: str, flavor: str | None, version: str | None, bundle: BundleContents | None, target: str | None) -> None:
        self.lines = text.splitlines()
        self.report = LintReport(file)
        self.flavor = flavor
        self.major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else None
        self.bundle = bundle
        self.target = target

    def add(self, line: int, severity: str, key: str, message: str, fixed: str | None = None) -> None:
        self.report.problems.append(Problem(line, severity, key, message, fixed))

    def src(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    def rename(self, s: Setting, new_key: str) -> str | None:
        """The key's line with the key renamed; only possible when the key is written flat."""
        if s.written_key != s.key:
            return None
        return self.src(s.line).replace(s.key, new_key, 1)

    def key_line(self, s: Setting, value_text: str) -> str:
        return f"{_indent(self.src(s.line))}{s.written_key}: {value_text}"

    # -- the allowlist ----------------------------------------------------------------

    def check_allowlist(self, s: Setting) -> None:
        if s.key == ALLOWLIST and self.flavor == "elasticsearch":
            self.add(s.line, "error", s.key, "Elasticsearch does not know reindex.remote.allowlist (that is OpenSearch's name): use reindex.remote.whitelist", self.src(s.line).replace("allowlist", "whitelist", 1))
        if s.key == WHITELIST and self.flavor == "opensearch":
            fixed = self.src(s.line).replace("whitelist", "allowlist", 1)
            if self.major is not None and self.major >= 3:
                self.add(s.line, "error", s.key, "OpenSearch 3 removed reindex.remote.whitelist: use reindex.remote.allowlist", fixed)
            else:
                self.add(s.line, "warning", s.key, "reindex.remote.whitelist is deprecated in OpenSearch 2.x (still accepted) and removed in 3.0: use reindex.remote.allowlist", fixed)
        value = s.value
        if value is None or value == "" or value == []:
            self.add(s.line, "error", s.key, f"{s.key} is empty: remote reindex will refuse every source", self.key_line(s, '["HOST:PORT"]'))
            return
        if isinstance(value, dict):
            self.add(s.line, "error", s.key, f"{s.key} must be a list of HOST:PORT, not a map", self.key_line(s, '["HOST:PORT"]'))
            return
        if isinstance(value, str):
            entries = [e.strip() for e in value.split(",")] if "," in value else [value]
            fixed_entries = _unique([self._fix_entry(s, e, s.line, report=False)[0] for e in entries])
            if "," in value:
                self.add(s.line, "error", s.key, f"{s.key} is a comma-separated string where a YAML list is expected", self.key_line(s, _flow(fixed_entries or ["HOST:PORT"])))
                return
            self._fix_entry(s, entries[0], s.line, report=True, fixed_line=self.key_line(s, _flow(fixed_entries or ["HOST:PORT"])))
            return
        values = [str(v) for v in value]
        fixed_all = _unique([self._fix_entry(s, v, s.line, report=False)[0] for v in values])
        for v, line in zip(values, s.item_lines):
            if s.flow:
                fixed_line: str | None = self.key_line(s, _flow(fixed_all or ["HOST:PORT"]))
            else:
                src = self.src(line)
                fixed_entry = self._fix_entry(s, v, line, report=False)[0]
                fixed_line = f"{src[: src.index('-')]}- {json.dumps(fixed_entry)}" if fixed_entry is not None else None
            self._fix_entry(s, v, line, report=True, fixed_line=fixed_line)

    def _fix_entry(self, s: Setting, entry: str, line: int, *, report: bool, fixed_line: str | None = None) -> tuple[str | None, list[tuple[str, str]]]:
        """(the entry as it should be, or None when it cannot be fixed and is left out of the
        fixed line; [(severity, message)]). A missing port is fixed as 9200 (the default)."""
        problems: list[tuple[str, str]] = []
        stripped = entry.strip()
        if stripped != entry:
            problems.append(("error", f"{entry!r} has spaces around it: the destination matches entries literally"))
        rest = stripped.split("://", 1)[-1]
        fixed: str | None
        if rest.split("/", 1)[0].split(":", 1)[0] == "*":
            problems.append(("warning", f"{stripped!r} allows any host: the destination will reindex from any server it can reach; list the source's HOST:PORT instead"))
        if stripped == "*":
            fixed = stripped
        else:
            if "://" in stripped:
                problems.append(("error", f"{stripped!r} has a scheme: entries are HOST:PORT only (the destination never matches it)"))
            if "/" in rest:
                problems.append(("error", f"{stripped!r} has a path: entries are HOST:PORT only"))
            try:
                fixed = normalize_remote(stripped).entry
            except RemoteReindexError as exc:
                if exc.message.startswith("no port"):
                    host = rest.split("/", 1)[0]
                    fixed = f"{host}:9200"
                    problems.append(("error", f"{stripped!r} has no port: the destination matches host AND port (9200 assumed in the fixed line)"))
                elif exc.message.startswith("invalid port"):
                    fixed = None
                    problems.append(("error", f"{stripped!r} has an invalid port: a port is a number from 1 to 65535 or * (left out of the fixed line)"))
                else:
                    fixed = stripped
                    problems.append(("error", f"{stripped!r}: {exc.message}"))
        if report:
            for severity, message in problems:
                self.add(line, severity, s.key, message, fixed_line)
        return fixed, problems

    # -- certificate authorities -----------------------------------------------------

    def expected_ca(self, path: str) -> str | None:
        """The path the bundle implies, in the style (cloud / relative / absolute) the user wrote."""
        b = self.bundle
        target = self.target or ("cloud" if path.startswith(CLOUD_CONFIG_DIR + "/") else "self-managed")
        if target == "cloud":
            want = f"{CLOUD_CONFIG_DIR}/{b.relative_path}" if b else None
            if want is None and not path.startswith(CLOUD_CONFIG_DIR + "/"):
                return f"{CLOUD_CONFIG_DIR}/{path.lstrip('/').split('/', 2)[-1] if path.startswith('/') else path}"
            return want
        if b is None:
            return None
        if path.startswith(CLOUD_CONFIG_DIR + "/"):
            # Said self-managed, wrote Elastic Cloud's folder: a copy-paste from Cloud docs; on
            # a node of one's own the bundle sits in the config dir, which a relative path names.
            return b.relative_path
        # an absolute path: where the config folder is cannot be told from it (the CA may sit
        # in it or below it); a relative path is resolved against it, wherever it is
        return b.relative_path

    def check_ca(self, s: Setting) -> None:
        value = s.value
        if isinstance(value, str) and "," in value:
            parts = [p.strip() for p in value.split(",")]
            self.add(s.line, "error", s.key, f"{s.key} is a comma-separated string where a YAML list is expected", self.key_line(s, _flow(parts)))
            return
        if value is None or value == "" or value == [] or isinstance(value, dict):
            self.add(s.line, "error", s.key, f"{s.key} must be a path (or list of paths) to a PEM file", self.key_line(s, _flow([self.expected_ca("") or "NAME/cacert.pem"])))
            return
        paths = [value] if isinstance(value, str) else [str(v) for v in value]
        lines = [s.line] if isinstance(value, str) else s.item_lines
        for path, line in zip(paths, lines):
            want = self.expected_ca(path)
            if want is None or path == want:
                continue
            if isinstance(value, str) or s.flow:
                fixed_paths = _unique([self.expected_ca(p) or p for p in paths])
                fixed = self.key_line(s, _flow(fixed_paths) if not isinstance(value, str) else json.dumps(fixed_paths[0]))
            else:
                src = self.src(line)
                earlier = [self.expected_ca(p) or p for p in paths[: paths.index(path)]]
                # the fixed path is already on an earlier line: the fix is to delete this one
                fixed = None if want in earlier else f"{src[: src.index('-')]}- {json.dumps(want)}"
            where = f"the bundle holds {self.bundle.relative_path}" if self.bundle else f"Elastic Cloud unpacks bundles under {CLOUD_CONFIG_DIR}/"
            self.add(line, "error", s.key, f"CA path {path!r} does not match: {where}", fixed)

    def check_mode(self, s: Setting) -> None:
        mode = str(s.value) if s.value is not None else ""
        if mode == "none":
            self.add(s.line, "warning", s.key, NONE_WARNING.replace("verification_mode", "verification_mode:"), self.key_line(s, "full"))
        elif mode not in VERIFICATION_MODES:
            guess = difflib.get_close_matches(mode.lower(), VERIFICATION_MODES, n=1)
            self.add(s.line, "error", s.key, f"unknown verification mode {mode!r}: use full, certificate or none", self.key_line(s, guess[0] if guess else "full"))

    # -- keys in the wrong place -----------------------------------------------------

    def check_key(self, s: Setting, keys: set[str]) -> None:
        key = s.key
        for prefix in ("persistent.", "transient."):
            if key.startswith(prefix + "reindex."):
                self.add(s.line, "error", key, f"{key[len(prefix):]} is a static node setting: it cannot be a {prefix[:-1]} cluster setting", None)
                return
        last = key.rsplit(".", 1)[-1]
        if OWN_TLS_CA_KEYS.match(key) and CA_KEY not in keys:
            paths = [s.value] if isinstance(s.value, str) else [str(v) for v in (s.value or [])]
            self.add(s.line, "warning", key, f"{key} configures this cluster's own TLS, not its connection to the remote: remote reindex reads {CA_KEY}", f"{CA_KEY}: {_flow(paths)}")
            return
        if key.startswith("reindex.ssl."):
            rest = key[len("reindex.ssl."):]
            if rest not in KNOWN_REINDEX_SSL:
                guess = difflib.get_close_matches(rest, sorted(KNOWN_REINDEX_SSL), n=1)
                fixed = self.rename(s, f"reindex.ssl.{guess[0]}") if guess else None
                self.add(s.line, "error", key, f"unknown setting {key}" + (f" (did you mean reindex.ssl.{guess[0]}?)" if guess else ""), fixed)
            return
        if key.startswith("reindex.remote.") and key not in (WHITELIST, ALLOWLIST):
            if last in ("certificate_authorities", "verification_mode", "truststore") or ".ssl." in key:
                right = f"reindex.ssl.{last}"
                self.add(s.line, "error", key, f"{key} is not a setting: TLS for remote reindex lives under reindex.ssl.*", self.rename(s, right))
            return
        if key in ("certificate_authorities", "ssl.certificate_authorities", "verification_mode", "ssl.verification_mode"):
            right = f"reindex.ssl.{last}"
            self.add(s.line, "error", key, f"{key} is not a setting: remote reindex reads {right}", self.rename(s, right))

    def run(self, settings: list[Setting]) -> LintReport:
        keys = {s.key for s in settings}
        for s in settings:
            self.check_key(s, keys)
            if s.key in (WHITELIST, ALLOWLIST):
                self.check_allowlist(s)
            elif s.key == CA_KEY:
                self.check_ca(s)
            elif s.key == MODE_KEY:
                self.check_mode(s)
        if CA_KEY in keys and TRUSTSTORE_KEY in keys:
            ts = next(s for s in settings if s.key == TRUSTSTORE_KEY)
            self.add(ts.line, "error", TRUSTSTORE_KEY, f"both {CA_KEY} and {TRUSTSTORE_KEY} are set: the destination refuses to start; keep one (delete this line to use the PEM bundle)", None)
        # With --bundle the file is the destination's whole reindex config, not a fragment.
        if self.bundle is not None and WHITELIST not in keys and ALLOWLIST not in keys:
            name = ALLOWLIST if self.flavor == "opensearch" and (self.major is None or self.major >= 3) else WHITELIST
            self.add(0, "error", name, f"no {name}: the destination will refuse every remote", f'{name}: ["HOST:PORT"]')
        if self.bundle is not None and CA_KEY not in keys and TRUSTSTORE_KEY not in keys:
            want = self.expected_ca("") or self.bundle.relative_path
            self.add(0, "error", CA_KEY, f"no {CA_KEY}: the bundle ({self.bundle.relative_path}) is not referenced, the destination will not trust the source", f"{CA_KEY}: {_flow([want])}")
        if WHITELIST in keys and ALLOWLIST in keys:
            s = next(s for s in settings if s.key == WHITELIST)
            self.add(s.line, "error", WHITELIST, f"both {WHITELIST} and {ALLOWLIST} are set: keep the one your destination knows", None)
        self.report.problems.sort(key=lambda p: (p.line, p.severity != "error"))
        return self.report


def lint_text(
    text: str,
    *,
    file: str = "<settings>",
    flavor: str | None = None,
    version: str | None = None,
    bundle: BundleContents | None = None,
    target: str | None = None,
) -> LintReport:
    if flavor is not None and flavor not in FLAVORS:
        raise UsageError(f"unknown flavor {flavor!r}: use elasticsearch or opensearch", "The flavor of the DESTINATION cluster.")
    if target is not None:
        check_target(target)
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        report = LintReport(file)
        reason = (exc.problem or exc.context or "invalid YAML").strip()
        if exc.context and exc.context_mark is not None:
            # "expected ']'" at the end of the file is found far from its cause: name where it began
            reason += f" ({exc.context.strip()} started on line {exc.context_mark.line + 1})"
            if line > len(text.splitlines()):
                line = exc.context_mark.line + 1
        report.problems.append(Problem(line, "error", "", f"YAML syntax error: {reason}", None))
        return report
    except Exception as exc:  # noqa: BLE001 - ruamel raises a few unmarked kinds too
        report = LintReport(file)
        report.problems.append(Problem(0, "error", "", f"YAML syntax error: {str(exc).splitlines()[0]}", None))
        return report
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        report = LintReport(file)
        report.problems.append(Problem(1, "error", "", "the file must be a YAML map of settings (key: value)", None))
        return report
    return _Linter(text, file, flavor, version, bundle, target).run(flatten(data))


def lint_settings(
    path: str | Path,
    *,
    bundle: str | Path | None = None,
    flavor: str | None = None,
    version: str | None = None,
    target: str | None = None,
) -> LintReport:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UsageError(f"settings file not found: {p}", "Give the path of the YAML file to check (elasticsearch.yml or the user settings).") from None
    except (IsADirectoryError, PermissionError):
        raise UsageError(f"settings file cannot be read: {p}", "Give a readable YAML file.") from None
    except UnicodeDecodeError:
        raise UsageError(f"settings file is not text: {p}", "Give a YAML file.") from None
    contents = read_bundle(bundle) if bundle is not None else None
    return lint_text(text, file=str(p), flavor=flavor, version=version, bundle=contents, target=target)
