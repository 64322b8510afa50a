"""What tokentrace serves over HTTP: ``/metrics`` (``metrics``) and ``GET /usage`` (``usage``, also as the ASGI app
``tokentrace.usage_app``). Reads the ledger's reports and the budgets' standing; never imports ``cli``."""
