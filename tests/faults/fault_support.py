"""Helpers shared by the fault tests (polling, the configured stall duration)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

STALL_SECONDS = float(os.environ.get("REGIONMESH_FAULT_STALL_SECONDS", "30"))


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll until ``predicate()`` is truthy; fail naming ``what``; return the seconds taken."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started
