"""Throwaway local nodes reproducing the guide's situation: a source speaking TLS with a
private CA (root -> intermediate -> leaf) and basic auth, and a destination that neither
trusts that CA nor allowlists the source yet."""

from .certs import NodeCertificates, issue_node_certificates
from .data import SAMPLE_INDEX, SAMPLE_MAPPING, load_sample_index, sample_document, sample_documents, sample_id
from .distributions import Distribution, cache_root, fetch_distribution, fetch_reindex_module_jars
from .node import Node, NodeLogin, NodeTLS, free_port, port_is_free, processes_under
from .sandbox import DESTINATIONS, SOURCE_VERSIONS, DestinationSide, Sandbox, SourceSide, default_home, new_home, validate_bundle

__all__ = [
    "DESTINATIONS", "SAMPLE_INDEX", "SAMPLE_MAPPING", "SOURCE_VERSIONS", "DestinationSide", "Distribution", "Node",
    "NodeCertificates", "NodeLogin", "NodeTLS", "Sandbox", "SourceSide", "cache_root", "default_home", "new_home",
    "fetch_distribution", "fetch_reindex_module_jars", "free_port", "issue_node_certificates", "load_sample_index",
    "port_is_free", "processes_under", "sample_document", "sample_documents", "sample_id", "validate_bundle",
]
