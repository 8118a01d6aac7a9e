"""A ``ClusterClient`` for the source named in the body, as seen from this machine."""

from __future__ import annotations

from ..cluster import Auth, ClusterClient
from .body import RemoteSource, time_value_seconds


def source_auth(remote: RemoteSource) -> Auth:
    if remote.api_key:
        return Auth.api_key(remote.api_key)
    if remote.username:
        return Auth.basic(remote.username, remote.password or "")
    return Auth()


def source_client(remote: RemoteSource, *, ca_file: str | None = None, insecure: bool = False, maxsize: int = 8) -> ClusterClient:
    """The source, with the user's CA as the only trust when given (the environment's bundle
    never overrides it), and the body's credentials, headers and timeouts."""
    return ClusterClient(
        remote.url,
        ca_file=ca_file,
        verify=not insecure,
        auth=source_auth(remote),
        headers=dict(remote.headers),
        timeout=time_value_seconds(remote.socket_timeout, 60.0),
        connect_timeout=time_value_seconds(remote.connect_timeout, 10.0),
        maxsize=maxsize,
        ca_flag="--source-ca",
    )
