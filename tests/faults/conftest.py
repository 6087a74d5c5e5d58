"""Fixtures for the fault tests: a fresh real 3-member etcd cluster per test.

Every test in ``tests/faults/`` is marked ``faults`` and ``etcd`` (``-m "not faults"`` skips the
long ones; the README's test command runs them). ``REGIONMESH_FAULT_STALL_SECONDS`` sets how
long the SIGSTOP test freezes a member (default 30, the issue's figure).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from regionmesh.testing.etcd_cluster import EtcdCluster
from regionmesh.testing.etcd_server import EtcdNotAvailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under tests/faults as ``faults`` and ``etcd``."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.etcd)


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster (members m1..m3), killed and removed afterwards."""
    try:
        c = EtcdCluster(3).start()
    except EtcdNotAvailable as exc:
        pytest.fail(f"cannot start the etcd cluster: {exc}", pytrace=False)
    try:
        yield c
    finally:
        c.close()
