"""Reading the datastore into a policy :class:`~regionmesh.policy.Snapshot` for the CLI.

Shared by explain/verify/diff/graph (:mod:`.explain_cmds`) and the demo (:mod:`.demo`): which
kinds a snapshot needs, loading them through the
:class:`~regionmesh.datastore.resource_client.ResourceClient`, and FelixConfiguration's
``DefaultEndpointToHostAction`` per node. Evaluating flows is :mod:`regionmesh.policy`'s job,
printing is :mod:`.views`'.
"""

from __future__ import annotations

from collections.abc import Callable

from regionmesh.cli.context import CliContext, fail
from regionmesh.datastore.resource_client import ResourceClient
from regionmesh.errors import RegionmeshError
from regionmesh.model import FelixConfiguration, Resource
from regionmesh.policy import Snapshot
from regionmesh.policy.hostlocal import DEFAULT_ENDPOINT_TO_HOST_ACTION

SNAPSHOT_KINDS = (
    "Tier",
    "Profile",
    "GlobalNetworkPolicy",
    "NetworkPolicy",
    "WorkloadEndpoint",
    "HostEndpoint",
    "NetworkSet",
    "GlobalNetworkSet",
)


def load_resources(client: ResourceClient) -> list[Resource]:
    """Every resource a Snapshot looks at, from the datastore."""
    out: list[Resource] = []
    for kind in SNAPSHOT_KINDS:
        out.extend(client.list(kind).items)
    return out


def endpoint_to_host_actions(client: ResourceClient) -> Callable[[str], str]:
    """node → ``DefaultEndpointToHostAction`` from FelixConfiguration ``node.<node>`` over
    ``default`` (Felix's ``Drop`` when neither sets it). A host's felix.cfg or environment may
    still override it; explain cannot see those."""
    by_name: dict[str, str] = {}
    for res in client.list("FelixConfiguration").items:
        if isinstance(res, FelixConfiguration) and res.spec.default_endpoint_to_host_action:
            by_name[res.metadata.name] = res.spec.default_endpoint_to_host_action
    fallback = by_name.get("default", DEFAULT_ENDPOINT_TO_HOST_ACTION)
    return lambda node: by_name.get(f"node.{node}", fallback)


def flow_context(
    cli: CliContext,
) -> tuple[list[Resource], Snapshot, Callable[[str], str]]:
    """The resources, their snapshot and the per-node endpoint-to-host action; exit 1 if the
    store fails."""
    resources, snap = read_snapshot(cli)
    try:
        actions = endpoint_to_host_actions(cli.client())
    except RegionmeshError as exc:
        fail(f"cannot read resources from the datastore: {exc}")
    return resources, snap, actions


def read_snapshot(cli: CliContext) -> tuple[list[Resource], Snapshot]:
    """Every policy-relevant resource and their Snapshot; exit 1 if the store fails."""
    try:
        resources = load_resources(cli.client())
    except RegionmeshError as exc:
        fail(f"cannot read resources from the datastore: {exc}")
    return resources, Snapshot(resources)
