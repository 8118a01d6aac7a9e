"""``remote-reindex verify``: compare source and destination by counts and content digests."""

from .compare import IndexResult, VerifyOptions, VerifyResult, verify
from .digest import BucketDigests, bucket_of, canonical_source, compare_id_digests, doc_digest

__all__ = [
    "BucketDigests",
    "IndexResult",
    "VerifyOptions",
    "VerifyResult",
    "bucket_of",
    "canonical_source",
    "compare_id_digests",
    "doc_digest",
    "verify",
]
