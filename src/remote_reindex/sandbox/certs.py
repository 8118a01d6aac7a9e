"""The sandbox's private PKI: root CA -> intermediate CA -> server leaf, minted with trustme.

This reproduces the guide's situation: the node presents leaf + intermediate (not the
root), and the file a user must hand to the destination is the root CA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class NodeCertificates:
    """Where the certificate files are, relative names for the node's config."""

    ca_file: Path  # the root CA, PEM: what users (and the destination) must trust
    chain_file: Path  # leaf + intermediate, PEM: what the node presents
    key_file: Path  # the leaf's private key (PKCS#8 PEM)
    intermediate_file: Path  # the intermediate alone, PEM (for tests of partial trust)


def issue_node_certificates(directory: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS, *, organization: str = "remote-reindex sandbox") -> NodeCertificates:
    """Mint a fresh private CA and a server certificate for ``hosts`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = trustme.CA(organization_name=organization, organization_unit_name="root CA")
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert(*hosts, common_name=hosts[0], organization_name=organization, organization_unit_name="node")

    files = NodeCertificates(
        ca_file=directory / "ca.pem",
        chain_file=directory / "node.crt",
        key_file=directory / "node.key",
        intermediate_file=directory / "intermediate.pem",
    )
    files.ca_file.write_bytes(root.cert_pem.bytes())
    # cert_chain_pems = [leaf, intermediate]: the root stays out, as on real servers.
    files.chain_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    files.intermediate_file.write_bytes(intermediate.cert_pem.bytes())
    files.key_file.write_bytes(leaf.private_key_pem.bytes())
    os.chmod(files.key_file, 0o600)
    return files
