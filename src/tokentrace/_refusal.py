"""``CallRefused``: the base of the exceptions a sink raises to stop a call before its request is sent.

The recorder records such a call as ``blocked`` and lets the exception reach the caller; the wrappers let it
through. ``BudgetExceeded`` is one. Stdlib only, so nothing needs to import a concrete refuser to catch it.
"""

from __future__ import annotations


class CallRefused(Exception):  # noqa: N818 - a refusal, not an error of tokentrace's
    """A call was refused before its request left the process: nothing was sent, nothing was spent."""
