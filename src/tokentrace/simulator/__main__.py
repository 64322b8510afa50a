"""``python -m tokentrace.simulator``: the simulated provider as a server of its own, in the foreground, for an app,
LiteLLM or a browser demo run apart from it (``docs/simulator.md``). Ctrl-C stops it.

The flags set what a request gets when it sends no ``x-sim-*`` header of its own: latency, the delay between
streamed chunks, and an injected failure on every call.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

Failure = StrEnum("Failure", ["none", "429", "500", "400", "malformed", "cut", "no-usage"])

app = typer.Typer(add_completion=False, help=__doc__.partition("\n\n")[0] if __doc__ else None)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")] = 8000,
    latency_ms: Annotated[float, typer.Option(min=0, help="Wait before each answer (x-sim-latency-ms).")] = 0.0,
    chunk_delay_ms: Annotated[float, typer.Option(
        min=0, help="Wait between streamed chunks (x-sim-chunk-delay-ms).")] = 0.0,
    error: Annotated[Failure, typer.Option(help="Fail every call this way (x-sim-error).")] = Failure.none,
) -> None:
    """Serve every wire format the simulator speaks until interrupted."""
    import uvicorn

    from .server import build_app

    defaults: dict[str, object] = {"latency_ms": latency_ms, "chunk_delay_ms": chunk_delay_ms}
    if error is not Failure.none:
        defaults["error"] = error.value
    typer.echo(f"tokentrace simulator on http://{host}:{port} (OpenAI: http://{host}:{port}/v1)", err=True)
    uvicorn.run(build_app(**defaults), host=host, port=port, log_level="warning", lifespan="off", access_log=False)


if __name__ == "__main__":
    app()
