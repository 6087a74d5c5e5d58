"""Shared scenario for the explain tests: the example two-region cloud in a real sqlite store.

The cloud is written by ``regionmesh.openstack.cloud.apply_cloud`` (the code behind
``regionmesh cloud apply``) from ``examples/two-region-cloud.yaml``; the seed GNP is
``examples/allow-tcp-80.yaml``. Endpoint names are looked up by VM name through the cloud's
deterministic ids.
"""

from __future__ import annotations

from pathlib import Path

from regionmesh.cli.explain_cmds import load_resources
from regionmesh.cli.resources import prepare
from regionmesh.datastore import open_datastore
from regionmesh.datastore.resources import ResourceClient
from regionmesh.examples import CLOUD as CLOUD_NAME
from regionmesh.examples import POLICY as POLICY_NAME
from regionmesh.examples import example_path
from regionmesh.model import Resource, WorkloadEndpoint
from regionmesh.openstack import cloud as cloud_mod
from regionmesh.policy import Snapshot

REPO = Path(__file__).resolve().parents[2]
CLOUD = example_path(CLOUD_NAME)
SEED = example_path(POLICY_NAME)
REGION_OF = {
    "web-1": "one", "web-2": "one", "admin-1": "one",
    "client-1": "two", "client-2": "two", "batch-1": "two",
}  # fmt: skip


def build_cloud(url: str) -> None:
    """Write the example cloud into the store at ``url``."""
    store = open_datastore(url)
    try:
        cloud_mod.apply_cloud(store, cloud_mod.load_cloud(CLOUD))
    finally:
        store.close()


def seed_resources() -> list[Resource]:
    """The seed GNP, decoded and validated like ``calicoctl apply`` does."""
    items = prepare(str(SEED), None)
    assert all(p.valid for p in items)
    return [p.resource for p in items if p.resource is not None]


def apply_seed(url: str) -> None:
    store = open_datastore(url)
    try:
        ResourceClient(store).write_all("apply", seed_resources())
    finally:
        store.close()


def resources(url: str) -> list[Resource]:
    store = open_datastore(url)
    try:
        return load_resources(ResourceClient(store))
    finally:
        store.close()


def wep_ref(snap: Snapshot, vm: str) -> str:
    """``namespace/name`` of the WorkloadEndpoint of cloud VM ``vm``."""
    workload = cloud_mod.cloud_id(REGION_OF[vm], "vm", vm)
    for ep in snap.endpoints():
        if isinstance(ep, WorkloadEndpoint) and ep.spec.workload == workload:
            return f"{ep.metadata.namespace}/{ep.metadata.name}"
    raise AssertionError(f"no endpoint for {vm}")
