"""Order-independent content digests of an index, bucketed by ``_id``.

Each document contributes ``blake2b(_id, canonical _source)`` to one of N buckets chosen
by a hash of its ``_id`` alone, so both clusters put a document in the same bucket no
matter what its content is. A bucket keeps a count and the *sum* (mod 2**128) of its
documents' digests: addition is commutative, so the order documents arrive in (slices,
shards, scroll pages) does not matter, and memory is O(buckets) however large the index.
A sum rather than XOR so that a document read twice does not cancel itself out.

Numbers are compared by their exact value, not as doubles: search answers are decoded
with :func:`decode_exact` (integers of any size, float literals as ``Decimal``), so a
copy that rounds ``1.00000000000000000001`` to ``1.0``, turns ``1e400`` into
``"Infinity"`` (Elasticsearch's own remote ``_reindex`` does both) or ``3.0`` into ``3``
(elasticdump) is found, while ``2.50`` and ``2.5`` (the same value, other spelling) are equal.
"""

from __future__ import annotations

import decimal
import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec

DEFAULT_BUCKETS = 256
_MOD = 1 << 128


_EXACT = decimal.Context(prec=10_000)  # normalize() rounds to the context's precision: make that never


def _float_literal(text: str) -> decimal.Decimal:
    """A JSON float literal as its exact value in one spelling per value: ``2.50`` and
    ``2.5`` alike, ``1e2`` and ``100.0`` alike, but never equal to an integer (``3.0``
    is not ``3``: a copy that drops the fraction changed the document)."""
    value = decimal.Decimal(text).normalize(_EXACT)
    if value.as_tuple().exponent == 0:  # an integral value written as a float
        return decimal.Decimal(f"{value}.0")
    return value


_decoder = msgspec.json.Decoder(float_hook=_float_literal)
_encoder = msgspec.json.Encoder(order="sorted", decimal_format="number")


def decode_exact(raw: bytes) -> Any:
    """Parse a JSON answer keeping every number exact (see the module doc)."""
    return _decoder.decode(raw)


def canonical_source(source: Any) -> bytes:
    """The ``_source`` as bytes that do not depend on key order, whitespace or the spelling
    of a float. For documents from :func:`decode_exact`."""
    return _encoder.encode(source if source is not None else {})


def bucket_of(doc_id: str, buckets: int = DEFAULT_BUCKETS) -> int:
    """A stable bucket for ``doc_id``: the same on every machine, run and Python version
    (unlike ``hash()``, which is salted per process)."""
    h = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8, person=b"rr-bucket").digest()
    return int.from_bytes(h, "big") % buckets


def doc_digest(doc_id: str, source: Any) -> int:
    """128-bit digest of one document's identity and content."""
    h = hashlib.blake2b(digest_size=16, person=b"rr-doc")
    h.update(doc_id.encode("utf-8"))
    h.update(b"\0")
    h.update(canonical_source(source))
    return int.from_bytes(h.digest(), "big")


@dataclass
class BucketDigests:
    """Per bucket: how many documents, and the sum of their digests."""

    buckets: int = DEFAULT_BUCKETS
    counts: list[int] = field(default_factory=list)
    sums: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * self.buckets
        if not self.sums:
            self.sums = [0] * self.buckets

    def add(self, doc_id: str, source: Any) -> None:
        b = bucket_of(doc_id, self.buckets)
        self.counts[b] += 1
        self.sums[b] = (self.sums[b] + doc_digest(doc_id, source)) % _MOD

    def merge(self, other: "BucketDigests") -> "BucketDigests":
        """Fold another partial result (one slice's) into this one."""
        if other.buckets != self.buckets:
            raise ValueError("cannot merge digests with different bucket counts")
        for b in range(self.buckets):
            self.counts[b] += other.counts[b]
            self.sums[b] = (self.sums[b] + other.sums[b]) % _MOD
        return self

    @property
    def total(self) -> int:
        return sum(self.counts)

    def unequal_buckets(self, other: "BucketDigests") -> list[int]:
        return [b for b in range(self.buckets) if self.counts[b] != other.counts[b] or self.sums[b] != other.sums[b]]


@dataclass
class IdDifferences:
    """The outcome of comparing two ``{_id: digest}`` maps of the same buckets."""

    missing: list[str] = field(default_factory=list)  # in the source, not in the destination
    extra: list[str] = field(default_factory=list)  # in the destination, not in the source
    different: list[str] = field(default_factory=list)  # in both, with other content


def compare_id_digests(source: dict[str, int], dest: dict[str, int]) -> IdDifferences:
    """Which ids are missing, extra or different; each list sorted for stable output."""
    diff = IdDifferences()
    for doc_id, digest in source.items():
        other = dest.get(doc_id)
        if other is None:
            diff.missing.append(doc_id)
        elif other != digest:
            diff.different.append(doc_id)
    diff.extra = [doc_id for doc_id in dest if doc_id not in source]
    diff.missing.sort()
    diff.extra.sort()
    diff.different.sort()
    return diff


def plan_rounds(unequal: Iterable[int], sizes: list[int], budget: int) -> list[list[int]]:
    """Group unequal buckets into drill-down rounds whose documents (``sizes[b]``: both
    sides together) fit in ``budget`` ids held in memory. A bucket bigger than the budget
    still gets a round of its own: it cannot be split further without another pass."""
    rounds: list[list[int]] = []
    current: list[int] = []
    held = 0
    for b in unequal:
        if current and held + sizes[b] > budget:
            rounds.append(current)
            current, held = [], 0
        current.append(b)
        held += sizes[b]
    if current:
        rounds.append(current)
    return rounds
