"""A tiny WSGI app for the gunicorn fleet test: each request makes one LLM call; /metrics sums every worker.

Configured by environment: TT_LEDGER, TT_SIM_PORT, TT_LIMIT_USD, TT_PRICES (JSON); gunicorn's ``post_fork``
(``fleet_gunicorn.py``) calls ``tokentrace.instrument()`` in each worker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

_local = threading.local()


def _client() -> Any:
    client = getattr(_local, "client", None)
    if client is None:
        import openai

        from tokentrace.simulator import sync_client

        client = openai.OpenAI(api_key="sk-test", base_url="https://api.openai.com/v1", max_retries=0,
                               http_client=sync_client(int(os.environ["TT_SIM_PORT"])))
        _local.client = client
    return client


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/metrics":
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(registry)]
    from tokentrace import BudgetExceeded

    try:
        _client().chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                          messages=[{"role": "user", "content": "one two three"}])
    except BudgetExceeded:
        start_response("429 Too Many Requests", [("Content-Type", "text/plain")])
        return [b"budget"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
