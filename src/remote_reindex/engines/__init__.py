"""The two copy engines behind ``remote-reindex run``.

- ``server``: drives the destination's own ``POST _reindex`` with ``source.remote``.
- ``client``: reads the source here (sliced PIT/scroll) and writes ``_bulk`` to the destination.

Both report a ``RunSummary`` shaped like the ``_reindex`` response.
"""
