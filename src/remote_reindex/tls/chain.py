"""Step 1 of the guide: read the certificate chain a server presents, explain it, and
decide which certificate the destination should trust.

Reading the chain needs a handshake with verification off (we do not know the CA yet:
that is the point). Python 3.11 has no public API for the peer's whole chain;
``SSLObject.get_unverified_chain()`` exists privately (public from 3.13) and returns every
certificate the server sent, in the order sent.

Trust is judged as the destination (Java) and curl judge it: any certificate in the CA
file can anchor the chain (``VERIFY_X509_PARTIAL_CHAIN``, see ``tls.context``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import socket
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID

from ..errors import ConnectError, TimeoutError_, TLSError, UsageError
from .context import load_certificates, make_ssl_context

# A certificate that ends within this many days gets a warning: the copy may outlive it.
EXPIRY_WARNING_DAYS = 30


# -- one certificate, described -------------------------------------------------------


@dataclass(frozen=True)
class CertSummary:
    """What a person needs to know about one certificate, in plain values (JSON-ready)."""

    subject: str
    issuer: str
    sans: list[str]
    not_before: str
    not_after: str
    sha256: str
    is_ca: bool
    self_signed: bool
    key: str  # "RSA 2048", "EC secp256r1", ...
    expired: bool
    not_yet_valid: bool
    days_left: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, as ``AB:CD:...`` like ``openssl x509 -fingerprint -sha256``."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def subject_alt_names(cert: x509.Certificate) -> list[str]:
    """DNS names and IP addresses, prefixed like OpenSSL prints them (``DNS:``, ``IP:``)."""
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    names = [f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
    names += [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)]
    return names


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca)
    except x509.ExtensionNotFound:
        return False


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not self-signed"
        return False


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
        return True
    except Exception:  # noqa: BLE001
        return False


def key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def summarize(cert: x509.Certificate, now: dt.datetime | None = None) -> CertSummary:
    now = now or _now()
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=subject_alt_names(cert),
        not_before=nb.isoformat(),
        not_after=na.isoformat(),
        sha256=fingerprint(cert),
        is_ca=is_ca(cert),
        self_signed=is_self_signed(cert),
        key=key_description(cert),
        expired=now > na,
        not_yet_valid=now < nb,
        days_left=(na - now).days,
    )


def to_pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


# -- host names -----------------------------------------------------------------------


def host_matches(cert: x509.Certificate, host: str) -> bool:
    """Whether ``host`` is in the certificate's SANs, as the destination's ``full`` mode checks
    (one-label wildcards for DNS names; exact match for IP addresses; no CN fallback)."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for san in subject_alt_names(cert):
        kind, _, value = san.partition(":")
        if ip is not None:
            if kind == "IP" and ipaddress.ip_address(value) == ip:
                return True
            continue
        if kind != "DNS":
            continue
        pattern = value.rstrip(".").lower()
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host:
            first, rest = host.split(".", 1)
            if first and rest == pattern[2:]:
                return True
    return False


# -- reading a presented chain --------------------------------------------------------


def parse_host_port(value: str, *, what: str = "HOST:PORT") -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``https://host:port/...`` -> (host, port). The port is
    required: guessing 9200 vs 443 would read the wrong server's chain."""
    raw = value.strip()
    text = raw.split("://", 1)[1] if "://" in raw else raw
    text = text.split("/", 1)[0]
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or not host:
            raise UsageError(f"invalid IPv6 address in {raw!r}", f"Write {what} as [ADDRESS]:PORT, e.g. [::1]:9200.")
    else:
        if text.count(":") > 1:
            raise UsageError(f"IPv6 address without brackets in {raw!r}", f"Write {what} as [ADDRESS]:PORT, e.g. [::1]:9200.")
        host, _, port_text = text.partition(":")
    if not host:
        raise UsageError(f"no host in {raw!r}", f"Write {what}, e.g. localhost:9200.")
    if not port_text:
        raise UsageError(f"no port in {raw!r}", f"Write {what} with the port, e.g. {host}:9200.")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"invalid port {port_text!r} in {raw!r}", "The port must be a number from 1 to 65535.")
    return host, int(port_text)


def open_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection, with the failures a user can act on told apart."""
    where = f"{host}:{port}"
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        raise ConnectError(f"cannot resolve the host {host!r}", "Check the host name (typo?) and this machine's DNS.", cause="dns") from None
    except ConnectionRefusedError:
        raise ConnectError(
            f"connection refused by {where}",
            "Check the host and port, and that the cluster is running and reachable from here.",
            cause="connection_refused",
        ) from None
    except (socket.timeout, TimeoutError):
        raise TimeoutError_(f"timed out connecting to {where}", "Check that the host and port are reachable from here (firewall?), or raise --timeout.", cause="timeout") from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {where}: {exc.strerror or exc}", "Check the host, port and network.", cause="connection_failed") from None


def chain_of(sock: ssl.SSLSocket) -> list[x509.Certificate]:
    """Every certificate the peer sent, in the order sent."""
    sslobj = getattr(sock, "_sslobj", None)
    getter = getattr(sock, "get_unverified_chain", None) or getattr(sslobj, "get_unverified_chain", None)
    if getter is not None:
        raw = getter() or []
        return [x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER) if hasattr(c, "public_bytes") else c) for c in raw]  # type: ignore[attr-defined]
    der = sock.getpeercert(binary_form=True)  # fallback: the leaf only
    return [x509.load_der_x509_certificate(der)] if der else []


def verified_chain_of(sock: ssl.SSLSocket) -> list[x509.Certificate]:
    """The chain OpenSSL built and trusted, leaf first; its last element is the anchor."""
    sslobj = getattr(sock, "_sslobj", None)
    getter = getattr(sock, "get_verified_chain", None) or getattr(sslobj, "get_verified_chain", None)
    if getter is None:
        return []
    return [x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER)) for c in (getter() or [])]  # type: ignore[attr-defined]


def _handshake_failure(exc: ssl.SSLError, where: str) -> TLSError:
    text = str(exc).lower()
    if "wrong version number" in text or "record layer failure" in text or "packet length too long" in text or "http request" in text:
        return TLSError(
            f"{where} does not speak TLS (plain HTTP on this port?)",
            "Check the port: the cluster's HTTPS port is usually 9200; a plain-HTTP cluster needs no CA.",
            cause="not_tls",
        )
    return TLSError(f"TLS handshake with {where} failed: {exc.reason or exc}", "Check that this is the cluster's HTTPS port.", cause="tls")


def fetch_presented_chain(host: str, port: int, *, servername: str | None = None, timeout: float = 10.0) -> tuple[list[x509.Certificate], str]:
    """Handshake without verification, only to read the certificates. Returns (chain, TLS version)."""
    ctx = make_ssl_context(verify=False)
    where = f"{host}:{port}"
    sni = servername or host.strip("[]")
    sock = open_tcp(host.strip("[]"), port, timeout)
    try:
        try:
            with ctx.wrap_socket(sock, server_hostname=_sni(sni)) as tls:
                return chain_of(tls), tls.version() or ""
        except ssl.SSLError as exc:
            raise _handshake_failure(exc, where) from None
        except (socket.timeout, TimeoutError):
            raise TimeoutError_(f"{where} accepted the connection but did not complete a TLS handshake in {timeout:g}s", "Check that this is the cluster's HTTPS port, or raise --timeout.", cause="timeout") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            raise TLSError(f"{where} closed the connection during the TLS handshake", "Check that this is the cluster's HTTPS port (not a transport port such as 9300).", cause="not_tls") from None
    finally:
        sock.close()


def _sni(name: str) -> str | None:
    """SNI must not carry an IP address; Python sends none for IPs anyway but wants a value."""
    return name or None


# -- deciding what to trust -----------------------------------------------------------


def order_chain(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, then each issuer found among the certificates sent. Servers usually send
    them in this order already; some do not. Certificates that do not link are appended."""
    if not certs:
        return []
    ordered = [certs[0]]
    rest = list(certs[1:])
    while rest:
        nxt = next((c for c in rest if issued_by(ordered[-1], c)), None)
        if nxt is None or nxt in ordered:
            break
        ordered.append(nxt)
        rest.remove(nxt)
    return ordered + [c for c in rest if c not in ordered]


@dataclass
class ChainReport:
    """The answer of step 1: the chain, which certificate to write, why, and what mode to use."""

    host: str
    port: int | None
    chain: list[CertSummary]
    trust: list[x509.Certificate] = field(repr=False)
    trust_reason: str = ""
    root_sent: bool = False
    warnings: list[str] = field(default_factory=list)
    verification_mode: str = "full"
    verification_reason: str = ""
    anchor: CertSummary | None = None  # when checked against a CA file: which certificate anchored
    tls_version: str = ""

    @property
    def pem(self) -> str:
        return to_pem(self.trust)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "tls_version": self.tls_version,
            "chain": [c.to_dict() for c in self.chain],
            "root_sent": self.root_sent,
            "trust": [summarize(c).to_dict() for c in self.trust],
            "trust_reason": self.trust_reason,
            "anchor": self.anchor.to_dict() if self.anchor else None,
            "warnings": self.warnings,
            "verification_mode": self.verification_mode,
            "verification_reason": self.verification_reason,
            "pem": self.pem,
        }


HOW_TO_GET_ROOT = (
    "ask the team that runs the source's PKI for the root CA certificate (PEM), "
    "then run 'remote-reindex ca fetch HOST:PORT --from-file root.pem -o ca.pem' to check it anchors this chain"
)


def choose_trust(chain: list[x509.Certificate]) -> tuple[list[x509.Certificate], str, bool, list[str]]:
    """(certificates to write, why, root sent?, warnings) for a chain as the server sent it."""
    ordered = order_chain(chain)
    leaf, top = ordered[0], ordered[-1]
    warnings: list[str] = []
    if len(ordered) == 1 and is_self_signed(leaf):
        why = "the server's certificate is self-signed: it is its own CA, so it is the certificate to trust"
        warnings.append(
            "a self-signed certificate is trusted only as itself: when the server's certificate is replaced or renewed, "
            "the destination stops trusting the source until the CA file is updated"
        )
        return [leaf], why, True, warnings
    if is_self_signed(top) and len(ordered) > 1:
        return [top], f"the server sent its root CA ({top.subject.rfc4514_string()}): trusting the root survives certificate renewals", True, warnings
    if top is leaf:
        why = "the server sent only its own certificate (no CA): writing the leaf, the only certificate available"
        warnings.append(
            "the root was not sent and neither was the issuing CA: trusting the server's own certificate breaks at its next renewal; "
            + HOW_TO_GET_ROOT
        )
        if not is_ca(leaf):
            warnings.append("the server did not send its intermediate CA: Java (the destination) does not download missing intermediates either")
        return [leaf], why, False, warnings
    why = (
        f"the root was not sent (the usual case): writing the top-most certificate the server sent, "
        f"{top.subject.rfc4514_string()}, issued by {top.issuer.rfc4514_string()}"
    )
    warnings.append(
        "the root CA was not sent: the destination (Java) and curl accept this intermediate as a trust anchor, "
        "but trust breaks if the source's certificate is reissued by another intermediate; " + HOW_TO_GET_ROOT
    )
    return [top], why, False, warnings


def recommend_mode(leaf: x509.Certificate, host: str) -> tuple[str, str]:
    """``full`` when the host the destination will use is in the SANs, else ``certificate`` with what it gives up."""
    sans = subject_alt_names(leaf)
    if host_matches(leaf, host):
        return "full", f"{host} is in the certificate's SANs ({', '.join(sans)}): the destination can check the chain and the host name"
    listed = ", ".join(sans) if sans else "none"
    return "certificate", (
        f"{host} is not in the certificate's SANs (SANs: {listed}): 'full' would fail. Either point the destination at one of "
        "those names, or use 'certificate', which checks the chain but not the host name: any server holding a "
        "certificate from the same CA could then pose as the source"
    )


def validity_warnings(chain: list[x509.Certificate], now: dt.datetime | None = None) -> list[str]:
    out = []
    for cert in chain:
        s = summarize(cert, now)
        if s.expired:
            out.append(f"{s.subject} expired on {s.not_after}: the destination will refuse it")
        elif s.not_yet_valid:
            out.append(f"{s.subject} is not valid before {s.not_before}: the destination will refuse it until then")
        elif s.days_left < EXPIRY_WARNING_DAYS:
            out.append(f"{s.subject} expires in {s.days_left} days ({s.not_after}): renew it before a long copy")
    return out


def analyze_chain(chain: list[x509.Certificate], host: str, port: int | None = None, *, tls_version: str = "") -> ChainReport:
    if not chain:
        raise TLSError(f"{host}:{port} sent no certificate", "Check that this is the cluster's HTTPS port.", cause="tls")
    ordered = order_chain(chain)
    trust, why, root_sent, warnings = choose_trust(ordered)
    mode, mode_reason = recommend_mode(ordered[0], host)
    return ChainReport(
        host=host,
        port=port,
        chain=[summarize(c) for c in ordered],
        trust=trust,
        trust_reason=why,
        root_sent=root_sent,
        warnings=validity_warnings(ordered) + warnings,
        verification_mode=mode,
        verification_reason=mode_reason,
        tls_version=tls_version,
    )


def find_anchor(chain: list[x509.Certificate], ca_certs: list[x509.Certificate]) -> x509.Certificate | None:
    """Which certificate of the CA file anchors ``chain`` (partial chains allowed, like Java):
    the file's certificate that issued the top of the chain (the root, usually), else the
    highest certificate of the chain that is in the file. Highest wins because that is the
    one that survives a renewal of the certificates below it."""
    ca_der = {c.public_bytes(serialization.Encoding.DER): c for c in ca_certs}
    ordered = order_chain(chain)
    for ca in ca_certs:
        if issued_by(ordered[-1], ca) and ca.public_bytes(serialization.Encoding.DER) not in {c.public_bytes(serialization.Encoding.DER) for c in ordered}:
            return ca
    for cert in reversed(ordered):
        hit = ca_der.get(cert.public_bytes(serialization.Encoding.DER))
        if hit is not None:
            return hit
    return None


def anchor_warnings(anchor: x509.Certificate, leaf: x509.Certificate) -> list[str]:
    if anchor == leaf and not is_self_signed(leaf):
        return [
            "the CA file anchors trust at the server's own certificate (the leaf): trust breaks at its next renewal; "
            f"put the issuing CA ({leaf.issuer.rfc4514_string()}) in the CA file instead"
        ]
    if anchor == leaf:
        return ["the CA file holds the server's self-signed certificate: trust breaks when that certificate is replaced"]
    return []


def fetch_chain_report(
    host: str,
    port: int,
    *,
    servername: str | None = None,
    from_file: str | Path | None = None,
    timeout: float = 10.0,
) -> ChainReport:
    """Step 1 end to end: read the server's chain, decide what to trust.

    With ``from_file`` (the root from the PKI team, or the guide's s_client output), the
    file's certificates must anchor the presented chain; they are what gets written.
    """
    chain, version = fetch_presented_chain(host, port, servername=servername, timeout=timeout)
    report = analyze_chain(chain, servername or host, port, tls_version=version)
    if from_file is not None:
        ca_certs = load_certificates(from_file)
        anchor = find_anchor(chain, ca_certs)
        if anchor is None:
            raise TLSError(
                f"no certificate in {from_file} anchors the chain of {host}:{port} (its top certificate is issued by {order_chain(chain)[-1].issuer.rfc4514_string()})",
                "Get the CA that issued that certificate from the source's PKI team, or run without --from-file to see the chain.",
                cause="untrusted_issuer",
            )
        report.anchor = summarize(anchor)
        report.trust = ca_certs
        report.trust_reason = f"{from_file} anchors the chain at {anchor.subject.rfc4514_string()}"
        report.root_sent = report.root_sent
        report.warnings = [w for w in report.warnings if HOW_TO_GET_ROOT not in w] + anchor_warnings(anchor, order_chain(chain)[0])
    return report


def file_report(path: str | Path, host: str | None = None) -> ChainReport:
    """``ca fetch --from-file FILE`` without a server: explain the file's certificates."""
    certs = load_certificates(path)
    ordered = order_chain(certs)
    report = analyze_chain(ordered, host or "", None)
    report.trust = certs
    report.trust_reason = f"the certificates in {path} (PEM blocks only; any text around them is dropped)"
    if not host:
        report.verification_mode, report.verification_reason = "", "give HOST:PORT to get a verification-mode recommendation"
    report.warnings = [w for w in report.warnings if HOW_TO_GET_ROOT not in w]
    if not any(is_ca(c) or is_self_signed(c) for c in certs):
        report.warnings.append(f"no certificate in {path} is a CA: trusting a leaf breaks at its next renewal; get the issuing CA")
    return report
