"""The composition root: ``instrument()`` resolves the settings, builds the recorder and its sinks, patches the SDKs
and hooks the HTTP clients (``instrumentor``); the wrappers every patched method runs (``wrappers``), how patches are
applied and removed (``patching``), batch results (``batch_results``), the SIGTERM flush (``sigterm``) and the
OpenTelemetry ``opentelemetry-instrument`` entry point (``otel_entry_point``). The only package that may import every
other one (except ``cli``); no other package imports it, except the wire layer's hooks, which read the active
recorder from ``wrappers``.
"""
