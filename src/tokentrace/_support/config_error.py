"""``ConfigError``: the one exception for configuration that cannot work (a leaf module, so that ``budgets`` and
``config`` can both use it without importing each other)."""

from __future__ import annotations


class ConfigError(ValueError):
    """An instrument() argument, TOKENTRACE_* variable or configuration file that cannot be used."""
