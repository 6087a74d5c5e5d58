"""Fixtures for the OpenStack side: a real two-region Neutron cloud on a real etcd.

``neutron_cloud`` (session scope) starts, through :mod:`neutron_harness`, a private MariaDB
and two neutron-server 29 instances (regions ``one`` and ``two``) whose ML2 driver is
regionmesh, both pointed at the ``etcd_server`` fixture of tests/conftest.py. It is started
once per session, only when a test asks for it, and torn down at the end; its start-up times
are printed in the terminal summary. Missing pieces make the tests fail, never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from neutron_harness import NeutronCloud, neutron_cloud

from regionmesh.datastore import Datastore, open_datastore

REGIONS = ["one", "two"]
_TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def neutron(etcd_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NeutronCloud]:
    """Two regions of neutron-server with the regionmesh driver, sharing one etcd."""
    base: Path = tmp_path_factory.mktemp("neutron")
    # the address-group mirrors (issue 13) are off by default; these regions run them
    mirrors = {region: {"address_group_mirrors": "true"} for region in REGIONS}
    with neutron_cloud(base, REGIONS, etcd_server.url, mirrors) as cloud:
        yield cloud
    _TIMINGS.update(cloud.timings)


@pytest.fixture(scope="session")
def cloud_store(etcd_server: Any) -> Iterator[Datastore]:
    """A regionmesh datastore client on the cloud's etcd, for checking what was written."""
    store = open_datastore(etcd_server.url)
    yield store
    store.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMINGS:
        terminalreporter.write_sep("-", "neutron harness timings (s)")
        for step, secs in _TIMINGS.items():
            terminalreporter.write_line(f"{step:>20}: {secs:6.2f}")
