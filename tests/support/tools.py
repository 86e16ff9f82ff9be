"""External tools the tests drive. A missing tool fails the test (no silent skips):
``make test`` and ``.ci/run`` install them."""

from __future__ import annotations

import shutil

import pytest


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; run `make deps` (Debian packages) first")
    return path
