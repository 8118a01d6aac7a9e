"""Step 4 of the guide: the destination's static ``reindex.*`` node settings, generated
(``generate``) and checked (``lint``)."""

from .generate import SettingsPlan, generate_settings
from .lint import LintReport, Problem, lint_settings, lint_text
from .remotes import normalize_remote, normalize_remotes

__all__ = [
    "LintReport",
    "Problem",
    "SettingsPlan",
    "generate_settings",
    "lint_settings",
    "lint_text",
    "normalize_remote",
    "normalize_remotes",
]
