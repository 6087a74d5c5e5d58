"""Errors keep their cause: resync reports datastore/Neutron failures and lets bugs propagate;
the agent's heartbeat write raises the datastore's own error for ``--once``."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from regionmesh.agent.status import HeartbeatReporter
from regionmesh.datastore import Datastore, open_datastore
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.errors import DatastoreError, NeutronUnavailable
from regionmesh.openstack.reader import MemoryNeutron
from regionmesh.openstack.records import NeutronPort
from regionmesh.openstack.resync import resync
from regionmesh.openstack.writer import RegionWriter


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Datastore]:
    ds = open_datastore(f"sqlite://{tmp_path / 'store.db'}")
    yield ds
    ds.close()


class _Failing(MemoryNeutron):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def ports(self, **kw: Collection[str] | None) -> list[NeutronPort]:  # type: ignore[override]
        raise self.error


def test_a_neutron_failure_is_reported_with_its_type(store: Datastore) -> None:
    result = resync(RegionWriter(store, "one"), _Failing(NeutronUnavailable("db is away")))
    assert not result.ok
    assert result.error == "endpoints: NeutronUnavailable: db is away"
    assert set(result.phases) == {"subnets", "policies", "endpoints"}


def test_a_bug_is_not_swallowed(store: Datastore) -> None:
    with pytest.raises(KeyError, match="oops"):
        resync(RegionWriter(store, "one"), _Failing(KeyError("oops")))


def test_heartbeat_write_raises_the_datastore_error(tmp_path: Path) -> None:
    ds = SqliteDatastore(str(tmp_path / "hb.db"))
    hb = HeartbeatReporter(ds, hostname="h", region="one", interval=30, ttl=90)
    ds.close()  # the store is gone: writes fail
    with pytest.raises(DatastoreError, match="closed"):
        hb.write()
    assert hb.failures == 1
    assert hb.report() is False and hb.failures == 2
