"""One copy with elasticsearch-py's ``helpers.reindex`` (scroll + bulk), the baseline a
Python user would write. Runs inside bench/.venv-espy (created by bench/run.py with the
client line matching the source), never imported by the project.

    BENCH_SOURCE_PASSWORD=... python espy_copy.py SRC_URL CA_FILE USER INDEX DEST_URL TARGET CHUNK

The CA file is the only trust for the source (an explicit SSLContext: neither the
environment's REQUESTS_CA_BUNDLE nor the system store is consulted). Prints one JSON line.
"""

import json
import os
import ssl
import sys
import time

from elasticsearch import Elasticsearch, helpers


def main() -> None:
    src_url, ca_file, user, index, dest_url, target, chunk = sys.argv[1:8]
    context = ssl.create_default_context(cafile=ca_file)  # with cafile given, no default certificates are loaded
    source = Elasticsearch([src_url], http_auth=(user, os.environ["BENCH_SOURCE_PASSWORD"]), ssl_context=context, timeout=600)
    dest = Elasticsearch([dest_url], timeout=600)
    started = time.monotonic()
    ok, errors = helpers.reindex(source, index, target, target_client=dest, chunk_size=int(chunk), scroll="5m",
                                 scan_kwargs={"size": 1000}, bulk_kwargs={"request_timeout": 600})
    print(json.dumps({"ok": ok, "errors": len(errors) if isinstance(errors, list) else errors,
                      "seconds": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main()
