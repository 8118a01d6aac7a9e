"""Spread tasks over the destination's nodes: a remote reindex runs on the node that
received it (one IO thread there), so tasks sent round-robin to every HTTP node share the
work instead of piling onto the one endpoint the user named."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from ...cluster import ClusterClient
from ...errors import RemoteReindexError


def _publish_url(scheme: str, publish_address: str) -> str:
    """``name/1.2.3.4:9200`` or ``1.2.3.4:9200`` -> scheme://host:port (the name when
    published: it is what a certificate lists)."""
    host_part, _, port = publish_address.rpartition(":")
    name, _, ip = host_part.partition("/")
    host = name or ip or host_part
    return f"{scheme}://{host}:{port}"


def node_clients(dest: ClusterClient, notes: list[str] | None = None) -> list[ClusterClient]:
    """One client per destination node reachable from here with the same trust and login;
    the user's endpoint first. Nodes that cannot be reached (or whose certificate does
    not name their published address) are left out, with a note."""
    clients = [dest]
    try:
        answer = dest.call("GET", "/_nodes/http", params={"filter_path": "nodes.*.http.publish_address,nodes.*.name"})
    except RemoteReindexError:
        return clients
    seen = {dest.host_port}
    for node in (answer or {}).get("nodes", {}).values():
        address = (node.get("http") or {}).get("publish_address")
        if not address:
            continue
        url = _publish_url(dest.scheme, address)
        try:
            client = ClusterClient(url, ca_file=dest.ca_file, verify=dest.verify, auth=dest.auth, maxsize=4, ca_flag=dest.ca_flag)
        except RemoteReindexError:
            continue
        if client.host_port in seen or _same_node(client, dest):
            client.close()
            continue
        try:
            client.call("GET", "/_nodes/_local", params={"filter_path": "nodes.*.name"}, timeout=10)
        except RemoteReindexError as exc:
            if notes is not None:
                notes.append(f"destination node {node.get('name', url)} at {url} is not reachable from here ({exc.message}); its share goes to the others")
            client.close()
            continue
        seen.add(client.host_port)
        clients.append(client)
    return clients


def _same_node(a: ClusterClient, b: ClusterClient) -> bool:
    """localhost:9200 and 127.0.0.1:9200 are one node."""
    local = {"localhost", "127.0.0.1", "::1"}
    return a.port == b.port and a.host in local and b.host in local


class RoundRobin:
    """Thread-safe rotation over the destination's node clients."""

    def __init__(self, clients: list[ClusterClient]) -> None:
        self.clients = clients
        self._cycle = itertools.cycle(clients)
        self._lock = threading.Lock()

    def next(self) -> ClusterClient:
        with self._lock:
            return next(self._cycle)

    def close_extra(self) -> None:
        for c in self.clients[1:]:
            c.close()

    def __len__(self) -> int:
        return len(self.clients)


def describe(clients: list[Any]) -> str:
    return ", ".join(c.host_port for c in clients)
