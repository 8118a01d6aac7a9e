"""Helpers shared by the server engine's real-node tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from remote_reindex.bundle import build_bundle
from remote_reindex.cluster import ClusterClient
from remote_reindex.plan.body import ReindexBody, body_from_dict
from remote_reindex.sandbox import DestinationSide, Sandbox, SourceSide


def remote_of(source: SourceSide, host: str | None = None, password: str | None = None) -> dict[str, Any]:
    return {
        "host": f"https://{host or 'localhost'}:{source.node.http_port}",
        "username": source.username,
        "password": password if password is not None else source.password_file.read_text().strip(),
    }


def body_for(source: SourceSide, index: str, dest_index: str, *, host: str | None = None, password: str | None = None, **source_extra: Any) -> ReindexBody:
    return body_from_dict({"source": {"remote": remote_of(source, host, password), "index": index, **source_extra}, "dest": {"index": dest_index}})


def docs_of(client: ClusterClient, index: str) -> dict[str, Any]:
    """Every document of a (small) index: ``{_id: _source}``."""
    client.call("POST", f"/{index}/_refresh")
    answer = client.call("POST", f"/{index}/_search", body={"size": 10_000, "sort": ["_doc"], "query": {"match_all": {}}})
    return {h["_id"]: h["_source"] for h in answer["hits"]["hits"]}


def count_of(client: ClusterClient, index: str) -> int:
    client.call("POST", f"/{index}/_refresh")
    return int(client.call("GET", f"/{index}/_count")["count"])


def index_exists(client: ClusterClient, index: str) -> bool:
    return client.request("HEAD", f"/{index}").status == 200


def configure(sandbox: Sandbox, dest: DestinationSide, name: str, workdir: Path, settings: dict[str, Any], ca_files: list[Path]) -> None:
    """What the guide's steps 3-4 do to a destination: bundle + settings + restart."""
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle([str(p) for p in ca_files], name="my_source_ca", out_dir=workdir, target="self-managed")
    settings_file = workdir / "settings.yml"
    settings_file.write_text("".join(f"{k}: {orjson.dumps(v).decode()}\n" for k, v in settings.items()))
    sandbox.configure_destination(bundle.zip_path, settings_file, target=name)


def full_settings(allowlist_key: str, host_ports: list[str]) -> dict[str, Any]:
    return {
        allowlist_key: host_ports,
        "reindex.ssl.certificate_authorities": ["my_source_ca/cacert.pem"],
        "reindex.ssl.verification_mode": "full",
    }
