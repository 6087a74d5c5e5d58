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


def use_test_helpers() -> None:
    """Make the agent and DHCP test helpers (``agent_support``, ``dhcp_support``) importable."""
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    for sub in ("agent", "dhcp", ""):
        path = os.path.normpath(os.path.join(here, "..", sub))
        if path not in sys.path:
            sys.path.append(path)
