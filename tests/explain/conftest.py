"""Fixtures of the explain tests (the scenario itself is in explain_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from explain_support import build_cloud


@pytest.fixture
def cloud_url(tmp_path: Path) -> str:
    """A fresh embedded store holding the example two-region cloud (no operator policy)."""
    url = f"sqlite:///{tmp_path}/cloud.db"
    build_cloud(url)
    return url
