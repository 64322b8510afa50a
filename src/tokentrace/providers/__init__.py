"""Provider support: one module per SDK (``openai``, ``anthropic``, ``google_genai``), each a PATCHES table.

The shared parts each have their own module: ``_contract`` (what a provider module supplies), ``_fields``
(tolerant field readers), ``_capture`` (opt-in content capture), ``_stainless`` (openai/anthropic helpers),
``_prompt`` (prompt sizing for budgets). The contract is re-exported here for the wrappers and instrumentor.
"""

from ._contract import Endpoint, Options, Patch, Prepared, RequestWrapper, ResultKind, StreamAccumulator

__all__ = ["Endpoint", "Options", "Patch", "Prepared", "RequestWrapper", "ResultKind", "StreamAccumulator"]
