"""Options of a copy, one dataclass per engine plus what they share. Built by the CLI
(or by library users) and passed to ``engines.client.copy`` / ``engines.server.copy``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CommonOptions:
    parallel: int | None = None  # indices (server) / slices (client) at once; None: from the source's shards
    plan_only: bool = False  # --plan: print what would happen, write nothing
    copy_metadata: bool = True  # mappings + settings before data, aliases after
    include_hidden: bool = False  # expand patterns to hidden/system indices too
    source_ca: str | None = None  # CA file for the source as seen from here
    source_insecure: bool = False  # --source-insecure: no verification of the source (warned)


@dataclass
class ClientOptions(CommonOptions):
    read_mode: str = "auto"  # auto | pit | scroll
    transform: str | None = None  # module:function, called per document
    bulk_bytes: int = 8 * 1024 * 1024
    bulk_docs: int = 5000
    bulk_in_flight: int = 2  # per index
    read_size: int | None = None  # documents per read; default from the body's source.size or 1000
    keep_alive: str = "5m"
    dead_letter_file: str | None = None  # default: ./remote-reindex-dead-letter-<index>.ndjson
    max_retries: int = 8


@dataclass
class ServerOptions(CommonOptions):
    partitions: int = 1
    partition_field: str | None = None
    requests_per_second: float | None = None
    skip_preflight: bool = False
    poll_interval: float = 1.0
    spread_over_nodes: bool = True
