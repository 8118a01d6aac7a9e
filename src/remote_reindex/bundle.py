"""Step 3 of the guide: package the CA as ``NAME.zip`` holding ``NAME/cacert.pem``.

Everything is validated before anything is written: a bundle that reaches the
destination with a key, a CSR or a DER blob in it only fails later, at a restart,
far from the cause. The zip is deterministic (fixed timestamps, modes and order) so the
same CA gives byte-identical bundles and a re-upload can be recognised as a no-op.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import UsageError
from .tls.chain import CertSummary, is_ca, is_self_signed, summarize, validity_warnings
from .tls.context import pem_blocks, read_ca_bytes

DEFAULT_NAME = "my_source_ca"
CA_FILE_NAME = "cacert.pem"
TARGETS = ("cloud", "self-managed")
CLOUD_CONFIG_DIR = "/app/config"
NAME_RULE = re.compile(r"^[a-z0-9_-]+$")
# 1980-01-01 is the earliest date a zip can hold; any fixed value makes the output reproducible.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def check_name(name: str) -> str:
    if not NAME_RULE.match(name or ""):
        raise UsageError(
            f"invalid bundle name {name!r}: use only lowercase letters, digits, '_' and '-'",
            f"e.g. --name {DEFAULT_NAME}",
        )
    return name


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}: use 'cloud' or 'self-managed'", "cloud = Elastic Cloud (ESS) destination; self-managed = your own elasticsearch.yml.")
    return target


def ca_path_for(name: str, target: str) -> str:
    """The value ``reindex.ssl.certificate_authorities`` must hold for this bundle.
    Elastic Cloud unpacks bundles under /app/config; on a self-managed node the zip is
    unpacked into the config dir and relative paths resolve against it."""
    check_target(target)
    rel = f"{name}/{CA_FILE_NAME}"
    return f"{CLOUD_CONFIG_DIR}/{rel}" if target == "cloud" else rel


# -- reading and validating CA files --------------------------------------------------


def read_ca_file(path: str | Path, *, der: bool = False) -> list[x509.Certificate]:
    """Certificates in one file, or a ``UsageError`` saying what the file is instead."""
    p = Path(path)
    data = read_ca_bytes(p)
    if not data.strip():
        raise UsageError(f"CA file is empty: {p}", "Write the CA certificate into it (get it with 'remote-reindex ca fetch HOST:PORT -o ca.pem').")
    if b"PRIVATE KEY-----" in data:
        raise UsageError(
            f"{p} holds a private key: refusing to bundle it",
            "Bundle only the CA certificate ('-----BEGIN CERTIFICATE-----'); a private key must never leave the source.",
        )
    if b"-----BEGIN CERTIFICATE REQUEST-----" in data or b"-----BEGIN NEW CERTIFICATE REQUEST-----" in data:
        raise UsageError(f"{p} is a certificate signing request (CSR), not a certificate", "Bundle the CA certificate that signs the source's certificates, not a request.")
    blocks = pem_blocks(data)
    if blocks:
        certs = []
        for block in blocks:
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                raise UsageError(f"a certificate in {p} does not parse", "Re-export the CA as PEM (base64 between BEGIN/END CERTIFICATE lines).") from None
        return certs
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise UsageError(f"no PEM certificate in {p}", "The file must hold '-----BEGIN CERTIFICATE-----' blocks.") from None
    if not der:
        raise UsageError(
            f"{p} is a DER (binary) certificate; the bundle must be PEM",
            f"Add --der to convert it, or run 'openssl x509 -inform der -in {p} -out ca.pem'.",
        )
    return [cert]


def certificate_warnings(path: str | Path, certs: list[x509.Certificate]) -> list[str]:
    warnings = []
    for cert in certs:
        if not is_ca(cert) and not is_self_signed(cert):
            warnings.append(
                f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate: it trusts only that one server "
                "certificate and breaks at its next renewal; prefer the CA that issued it"
            )
    warnings += [f"{path}: {w}" for w in validity_warnings(certs)]
    return warnings


def collect_certificates(paths: list[str | Path], *, der: bool = False) -> tuple[list[x509.Certificate], list[str]]:
    """Every certificate of every file, duplicates dropped, in the order given."""
    if not paths:
        raise UsageError("no CA file given", "Pass --ca FILE (repeat it for several sources).")
    seen: set[bytes] = set()
    certs: list[x509.Certificate] = []
    warnings: list[str] = []
    for path in paths:
        file_certs = read_ca_file(path, der=der)
        warnings += certificate_warnings(path, file_certs)
        for cert in file_certs:
            key = cert.public_bytes(serialization.Encoding.DER)
            if key not in seen:
                seen.add(key)
                certs.append(cert)
    return certs, warnings


# -- the zip --------------------------------------------------------------------------


def cacert_pem(certs: list[x509.Certificate]) -> bytes:
    """One PEM file; each block preceded by a subject comment (Java ignores text between blocks)."""
    parts = []
    for cert in certs:
        parts.append(f"# {cert.subject.rfc4514_string()}\n".encode())
        parts.append(cert.public_bytes(serialization.Encoding.PEM))
    return b"".join(parts)


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.create_system = 3  # unix, so the mode bits below are honoured
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def bundle_bytes(name: str, pem: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        dir_entry = _entry(f"{name}/", 0o40755)
        dir_entry.compress_type = zipfile.ZIP_STORED
        zf.writestr(dir_entry, b"")
        zf.writestr(_entry(f"{name}/{CA_FILE_NAME}", 0o100644), pem)
    return buf.getvalue()


@dataclass
class BundleResult:
    zip_path: Path
    name: str
    target: str
    settings_path: str
    certificates: list[CertSummary]
    warnings: list[str] = field(default_factory=list)
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "zip": str(self.zip_path),
            "name": self.name,
            "target": self.target,
            "entry": f"{self.name}/{CA_FILE_NAME}",
            "certificate_authorities": self.settings_path,
            "sha256": self.sha256,
            "certificates": [c.to_dict() for c in self.certificates],
            "warnings": self.warnings,
        }


def build_bundle(
    ca_files: list[str | Path],
    *,
    name: str = DEFAULT_NAME,
    out_dir: str | Path = ".",
    target: str = "cloud",
    der: bool = False,
    allow_expired: bool = False,
) -> BundleResult:
    """Validate every input, then write ``out_dir/NAME.zip`` atomically. Refuses a bundle
    whose certificates are all expired (the destination would refuse the source) unless
    ``allow_expired``."""
    check_name(name)
    check_target(target)
    out = Path(out_dir)
    if not out.is_dir():
        raise UsageError(f"output folder does not exist: {out}", "Create it first, or pass an existing folder with -o.")
    certs, warnings = collect_certificates(list(ca_files), der=der)
    summaries = [summarize(c) for c in certs]
    if not allow_expired and all(c.expired for c in summaries):
        first = summaries[0]
        more = f" and {len(summaries) - 1} more" if len(summaries) > 1 else ""
        raise UsageError(
            f"every certificate is expired ({first.subject} expired on {first.not_after}{more}): the destination would refuse the source",
            "Bundle the source's current CA (remote-reindex ca fetch HOST:PORT -o ca.pem), or pass --allow-expired to write it anyway.",
        )
    data = bundle_bytes(name, cacert_pem(certs))
    target_path = out / f"{name}.zip"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".zip.tmp", dir=out)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return BundleResult(
        zip_path=target_path,
        name=name,
        target=target,
        settings_path=ca_path_for(name, target),
        certificates=summaries,
        warnings=warnings,
        sha256=hashlib.sha256(data).hexdigest(),
    )


# -- reading a bundle back (lint-settings --bundle) -----------------------------------


@dataclass(frozen=True)
class BundleContents:
    name: str  # the folder
    file: str  # the PEM file inside it
    certificates: int

    @property
    def relative_path(self) -> str:
        return f"{self.name}/{self.file}"


def read_bundle(path: str | Path) -> BundleContents:
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except FileNotFoundError:
        raise UsageError(f"bundle not found: {p}", "Give the zip written by 'remote-reindex bundle'.") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise UsageError(f"{p} is not a zip file", "Give the zip written by 'remote-reindex bundle'.") from None
    with zf:
        files = [n for n in zf.namelist() if not n.endswith("/")]
        pems = [n for n in files if n.count("/") == 1 and n.lower().endswith((".pem", ".crt", ".cer"))]
        if len(pems) != 1:
            raise UsageError(
                f"{p} does not hold exactly one FOLDER/FILE.pem (found: {', '.join(files) or 'nothing'})",
                "Rebuild it with 'remote-reindex bundle --ca FILE --name NAME'.",
            )
        folder, file = pems[0].split("/")
        count = len(pem_blocks(zf.read(pems[0])))
    return BundleContents(folder, file, count)
