"""A local simulated LLM provider speaking the real wire formats (JSON and SSE), with deterministic usage.

Needs the ``simulator`` extra (starlette, uvicorn). See ``rules`` for how usage is computed and ``wire`` for
the ``x-sim-*`` request headers that inject latency and errors.
"""

from __future__ import annotations

from .server import Simulator, build_app
from .transport import async_client, sync_client

__all__ = ["Simulator", "async_client", "build_app", "sync_client"]
