"""The sample index: realistic ~1 KB documents, explicit mapping, deterministic by seed.

Fields cover what a copy must carry faithfully: analyzed text, keywords, integers,
floats, dates, booleans, arrays, an object and a nested array. The same seed always gives
the same documents, so tests can compare exact contents after a copy.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import orjson

from ..cluster import ClusterClient
from ..errors import SandboxError

SAMPLE_INDEX = "products"
DEFAULT_SEED = 42

SAMPLE_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "sku": {"type": "keyword"},
        "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
        "description": {"type": "text"},
        "category": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "price": {"type": "double"},
        "stock": {"type": "integer"},
        "rating": {"type": "float"},
        "in_stock": {"type": "boolean"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
        "seller": {
            "properties": {
                "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "country": {"type": "keyword"},
                "since": {"type": "date", "format": "yyyy-MM-dd"},
            }
        },
        "reviews": {
            "type": "nested",
            "properties": {
                "user": {"type": "keyword"},
                "stars": {"type": "integer"},
                "text": {"type": "text"},
                "at": {"type": "date"},
            },
        },
    },
}

SAMPLE_SETTINGS: dict[str, Any] = {"number_of_shards": 2, "number_of_replicas": 0}

_WORDS = (
    "alpine bamboo canvas durable ergonomic featherweight graphite heritage insulated jersey "
    "kevlar leather modular nylon organic portable quilted recycled stainless titanium ultralight "
    "vintage waterproof wool compact foldable breathable reinforced adjustable classic premium "
    "handmade washable rugged slim thermal reflective padded lightweight everyday travel outdoor"
).split()
_NOUNS = "backpack jacket kettle lantern mug tent stove bottle boots gloves hammock blanket knife chair lamp".split()
_CATEGORIES = ["camping", "hiking", "kitchen", "apparel", "lighting", "furniture", "tools"]
_COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "NL", "SE", "CA", "AU"]
_FIRST = "Ada Björn Chiara Dmitri Emeka Fatima Gustavo Hana Ivan Júlia Kenji Leila Mateo Nadia Oskar".split()
_LAST = "Andersson Bianchi Costa Dubois Eze Fischer García Horvat Ito Jensen Kowalski Lopez Müller".split()
_EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def sample_document(i: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Document number ``i`` (0-based) of the sample set; the same for the same (i, seed)."""
    rng = random.Random(seed * 1_000_003 + i)
    created = _EPOCH + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400), microseconds=rng.randrange(0, 1000) * 1000)
    noun = rng.choice(_NOUNS)
    reviews = []
    for _ in range(rng.randint(1, 3)):
        reviews.append(
            {
                "user": f"user{rng.randrange(10_000):04d}",
                "stars": rng.randint(1, 5),
                "text": _sentence(rng, rng.randint(8, 16)),
                "at": _iso(created + timedelta(days=rng.randint(1, 400))),
            }
        )
    return {
        "sku": f"SKU-{seed}-{i:08d}",
        "title": f"{rng.choice(_WORDS).capitalize()} {rng.choice(_WORDS)} {noun}",
        "description": " ".join(_sentence(rng, rng.randint(10, 18)) for _ in range(3)),
        "category": rng.choice(_CATEGORIES),
        "tags": sorted(rng.sample(_WORDS, rng.randint(2, 5))),
        "price": round(rng.uniform(2, 900), 2),
        "stock": rng.randint(0, 5000),
        "rating": round(rng.uniform(1, 5), 1),
        "in_stock": rng.random() > 0.2,
        "created_at": _iso(created),
        "updated_at": _iso(created + timedelta(hours=rng.randint(0, 20_000))),
        "seller": {
            "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            "country": rng.choice(_COUNTRIES),
            "since": (_EPOCH - timedelta(days=rng.randint(0, 3000))).strftime("%Y-%m-%d"),
        },
        "reviews": reviews,
    }


def sample_id(i: int) -> str:
    return f"p{i:08d}"


def sample_documents(count: int, seed: int = DEFAULT_SEED, start: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(start, start + count):
        yield sample_id(i), sample_document(i, seed)


def create_sample_index(client: ClusterClient, index: str = SAMPLE_INDEX, *, shards: int = 2) -> None:
    body = {"settings": {**SAMPLE_SETTINGS, "number_of_shards": shards}, "mappings": SAMPLE_MAPPING}
    client.call("PUT", f"/{index}", body=body)


def load_sample_index(
    client: ClusterClient,
    count: int,
    *,
    index: str = SAMPLE_INDEX,
    seed: int = DEFAULT_SEED,
    batch: int = 2000,
    create: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Create ``index`` (explicit mapping, 2 shards, 0 replicas) and bulk-load ``count``
    sample documents; returns the count the index reports after a refresh."""
    if create:
        create_sample_index(client, index)
    done = 0
    while done < count:
        n = min(batch, count - done)
        lines = bytearray()
        for doc_id, doc in sample_documents(n, seed, start=done):
            lines += orjson.dumps({"index": {"_index": index, "_id": doc_id}}) + b"\n"
            lines += orjson.dumps(doc) + b"\n"
        result = client.call("POST", "/_bulk", body=bytes(lines), content_type="application/x-ndjson", timeout=120)
        if result.get("errors"):
            first = next((it for it in result["items"] if next(iter(it.values())).get("error")), None)
            reason = next(iter(first.values()))["error"] if first else "unknown"
            raise SandboxError(f"loading sample documents into {index} failed: {reason}", "Check the node's log; the node may be short of disk or memory.")
        done += n
        if progress:
            progress(done)
    client.call("POST", f"/{index}/_refresh")
    got = int(client.call("GET", f"/{index}/_count")["count"])
    if got != count:
        raise SandboxError(f"{index} holds {got} documents after loading {count}", "Check the node's log and retry.")
    return got
