"""One small, version-aware HTTP layer for every Elasticsearch/OpenSearch version."""

from .auth import Auth
from .client import ClusterClient, ClusterInfo, Response

__all__ = ["Auth", "ClusterClient", "ClusterInfo", "Response"]
