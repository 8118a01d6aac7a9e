"""remote-reindex: move data between Elasticsearch/OpenSearch clusters when the source
speaks TLS with a private CA.

A library first; ``remote_reindex.cli`` is a thin layer over it.
"""

__version__ = "0.1.0"
