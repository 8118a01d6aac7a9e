"""The server engine: drive the destination's own ``POST _reindex`` with ``source.remote``.

``copy`` (checks, plan, one task per index or partition, N at a time), ``attach`` (follow
a task started earlier), ``choose_engine`` (``--engine auto``), and the task controls
``rethrottle`` / ``cancel_task``. Errors come back in plain words mapped to the guide's
steps (``translate.explain_reindex_error``).
"""

from .engine import attach, choose_engine, copy, task_body
from .tasks import cancel_task, get_status, rethrottle
from .translate import explain_reindex_error

__all__ = ["attach", "cancel_task", "choose_engine", "copy", "explain_reindex_error", "get_status", "rethrottle", "task_body"]
