"""What a test does when something it needs is not installed: skip locally, fail under ``CI=true``.

``.ci/run`` installs every server and tool the tests use, so in CI a missing one is a broken set-up, never a
reason to pass.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the tests that need it must run)")
    pytest.skip(message)
