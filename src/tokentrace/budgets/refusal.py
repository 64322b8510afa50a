"""``CallRefused``: the base of the exceptions a sink raises to stop a call before its request is sent.

The recorder records such a call as ``blocked`` and lets the exception reach the caller; the wrappers let it
through. ``BudgetExceeded`` is one. Stdlib only, so nothing needs to import a concrete refuser to catch it.
"""

from __future__ import annotations

from contextvars import ContextVar


class CallRefused(Exception):  # noqa: N818 - a refusal, not an error of tokentrace's
    """A call was refused before its request left the process: nothing was sent, nothing was spent."""


counted_only: ContextVar[bool] = ContextVar("tokentrace_counted_only", default=False)
"""True while a call is started that sinks must count but never refuse (a request to a host not yet seen to answer
like an LLM API, ``wire.hosts``)."""
