"""The one place where an ``ssl.SSLContext`` is made.

Why a hand-made context: ``requests`` merges ``REQUESTS_CA_BUNDLE`` over a session's
``verify=`` and these machines set it, so a user's private CA would silently lose to the
system bundle. Here an explicit CA file is loaded as the *only* trust, whatever the
environment says.

Why ``VERIFY_X509_PARTIAL_CHAIN``: the destination (Java) and curl accept any
certificate listed in the CA file as a trust anchor, so the guide's usual file (the
intermediate, or the whole ``openssl s_client -showcerts`` output without the root)
works there. Python's default would reject that same file; with the flag we judge trust
as the destination will.
"""

from __future__ import annotations

import re
import ssl
import sys
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import UsageError

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+.+?\s+-----END CERTIFICATE-----", re.S)


def pem_blocks(data: bytes) -> list[bytes]:
    """Every PEM certificate block in ``data``; text around them (s_client output) is ignored."""
    return [m.group(0) + b"\n" for m in _PEM_CERT.finditer(data)]


def read_ca_bytes(path: str | Path) -> bytes:
    """The bytes of a CA file, or a ``UsageError`` that says what is wrong with the path."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"CA file not found: {p}", "Give the path of a PEM file with the source's CA certificate.") from None
    except IsADirectoryError:
        raise UsageError(f"CA file is a directory: {p}", "Give the path of a PEM file, not a folder.") from None
    except PermissionError:
        raise UsageError(f"CA file is not readable: {p}", "Check the file's permissions.") from None


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Parse every certificate in a PEM file; a clear error when there is none."""
    p = Path(path)
    data = read_ca_bytes(p)
    blocks = pem_blocks(data)
    if not blocks and b"PRIVATE KEY-----" in data:
        raise UsageError(
            f"{p} holds a private key, not a CA certificate",
            "Give the CA's certificate ('-----BEGIN CERTIFICATE-----'; 'remote-reindex ca fetch HOST:PORT -o ca.pem' writes it), never a key.",
        )
    if not blocks:
        raise UsageError(
            f"no PEM certificate in {p}",
            "The CA file must hold '-----BEGIN CERTIFICATE-----' blocks (run 'remote-reindex ca fetch HOST:PORT -o ca.pem').",
        )
    certs = []
    for block in blocks:
        try:
            # System bundles hold a few old roots with non-positive serials: cryptography warns on
            # each, which would land in the user's terminal as a traceback-like line.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise UsageError(f"a certificate in {p} does not parse", "Re-export the CA as PEM (base64 between BEGIN/END CERTIFICATE lines).") from None
    return certs


def make_ssl_context(ca_file: str | Path | None = None, *, verify: bool = True, check_hostname: bool = True) -> ssl.SSLContext:
    """A client context.

    - ``ca_file`` given: trust exactly the certificates in it (partial chains allowed).
    - no ``ca_file``: the system's default trust (which may come from ``SSL_CERT_FILE``).
    - ``verify=False``: no verification at all; callers must have warned the user.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = check_hostname
    if ca_file is not None:
        load_certificates(ca_file)  # validates and gives a clear error before OpenSSL's cryptic one
        blocks = pem_blocks(Path(ca_file).read_bytes())
        ctx.load_verify_locations(cadata=b"".join(blocks).decode("ascii"))
    else:
        ctx.load_default_certs()
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if sys.version_info >= (3, 13):  # 3.13 turned strict mode on by default; Java is not that strict
        ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return ctx


def warn_insecure(stream=None) -> None:
    """The warning printed whenever verification is turned off by an explicit flag."""
    print(
        "WARNING: TLS verification is OFF (--insecure): the server's identity is not checked; "
        "anyone on the path can read the data and credentials.",
        file=stream or sys.stderr,
    )
