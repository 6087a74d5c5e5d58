"""Traffic between a host and its own workloads: which policy Felix applies (and which not).

Felix (iptables and nftables modes, ``rules/static.go``) treats the two local paths specially,
and so does regionmesh's agent (:mod:`regionmesh.dataplane.render`):

* **host → local workload** (source = an address of a HostEndpoint, destination = a
  WorkloadEndpoint on the same ``node``): the packet leaves through the workload's tap, not
  through the host endpoint's interface, and is locally generated, so it never reaches the
  FORWARD chain. Felix's ``cali-OUTPUT`` returns early for traffic to workload interfaces: no
  host-endpoint egress policy and no workload ingress policy apply ("it's generally very useful
  to be able to contact any local workload from the host"). The agent hooks no output filter
  chain at all. Verdict: allowed, on both sides.
* **local workload → its own host** (source = a WorkloadEndpoint, destination = an address of a
  HostEndpoint on the same ``node``): ``cali-INPUT`` sends packets from a workload interface to
  ``cali-wl-to-host`` with a goto, so host-endpoint *ingress* policy never applies. That chain
  accepts the OpenStack DHCP and DNS special cases first, then runs the workload's egress
  policy, then applies ``DefaultEndpointToHostAction`` (Felix's default ``Drop``; ``Accept`` and
  ``Return`` let it through).

Anything else (other hosts, forwarded traffic) is an ordinary flow. The preDNAT, doNotTrack
and applyOnForward stages are still not modelled. This module only classifies flows and builds
the verdicts of these special paths; the §2.5 loop is :mod:`.verdicts` (and :mod:`.naive`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from regionmesh.model import HostEndpoint, WorkloadEndpoint
from regionmesh.policy.flows import PROTOCOL_ICMPV6, PROTOCOL_UDP, Flow
from regionmesh.policy.ordering import Direction
from regionmesh.policy.trace import DirectionVerdict, EndpointId, FlowVerdict, steps

__all__ = [
    "DEFAULT_ENDPOINT_TO_HOST_ACTION",
    "EndpointToHostAction",
    "evaluate_local",
    "LocalPath",
    "host_to_workload_verdicts",
    "local_path",
    "resolve_action",
    "special_case_verdicts",
    "workload_to_host_special_case",
    "workload_to_host_verdict",
]

DEFAULT_ENDPOINT_TO_HOST_ACTION = "Drop"
"""Felix's default ``DefaultEndpointToHostAction``."""

EndpointToHostAction = Callable[[str], str]
"""node name → that host's ``DefaultEndpointToHostAction`` (``Drop``/``Accept``/``Return``)."""


class LocalPath(StrEnum):
    """A flow between a host and one of its own workloads."""

    HOST_TO_WORKLOAD = "host-to-local-workload"
    WORKLOAD_TO_HOST = "local-workload-to-host"


def _node(endpoint: object) -> str:
    spec = getattr(endpoint, "spec", None)
    return str(getattr(spec, "node", "") or "")


def local_path(src: object | None, dst: object | None) -> LocalPath | None:
    """Which special local path ``src`` → ``dst`` is, if any (both on the same, named node)."""
    # exact type tests: pydantic's metaclass makes isinstance() ~10× slower, and this runs for
    # every flow (workload ↔ workload, the common case, costs two type comparisons)
    s, d = type(src), type(dst)
    if s is HostEndpoint and d is WorkloadEndpoint:
        path = LocalPath.HOST_TO_WORKLOAD
    elif s is WorkloadEndpoint and d is HostEndpoint:
        path = LocalPath.WORKLOAD_TO_HOST
    else:
        return None
    node = _node(src)
    return path if node and node == _node(dst) else None


def host_to_workload_verdicts(
    src: EndpointId, dst: EndpointId, node: str
) -> tuple[DirectionVerdict, DirectionVerdict]:
    """Egress of the host endpoint and ingress of the workload for host → local workload."""
    return (
        DirectionVerdict(src, Direction.EGRESS, "Allow", (steps.host_to_local_workload(node),)),
        DirectionVerdict(
            dst, Direction.INGRESS, "Allow", (steps.host_to_local_workload_ingress(node),)
        ),
    )


def workload_to_host_special_case(flow: Flow) -> str | None:
    """The OpenStack special case ``cali-wl-to-host`` accepts ``flow`` by, before policy."""
    if flow.ip_version == 4:
        if flow.protocol == PROTOCOL_UDP and flow.src_port == 68 and flow.dst_port == 67:
            return "DHCP"
    else:
        if flow.protocol == PROTOCOL_ICMPV6 and flow.icmp_type in (130, 131, 132, 133, 135, 136):
            return "IPv6 ND and MLD"
        if flow.protocol == PROTOCOL_UDP and flow.src_port == 546 and flow.dst_port == 547:
            return "DHCPv6"
    if flow.protocol == PROTOCOL_UDP and flow.dst_port == 53:
        return "DNS"
    return None


def workload_to_host_verdict(dst: EndpointId, node: str, action: str) -> DirectionVerdict:
    """The host side of local workload → its own host, after the workload's egress allowed."""
    verdict = "Deny" if action.capitalize() == "Drop" else "Allow"
    return DirectionVerdict(
        dst, Direction.INGRESS, verdict, (steps.endpoint_to_host(node, action.capitalize()),)
    )


def special_case_verdicts(
    src: EndpointId, dst: EndpointId, node: str, what: str
) -> tuple[DirectionVerdict, DirectionVerdict]:
    """Both sides of a workload → own host flow accepted by an OpenStack special case."""
    step = steps.endpoint_to_host_special_case(node, what)
    return (
        DirectionVerdict(src, Direction.EGRESS, "Allow", (step,)),
        DirectionVerdict(dst, Direction.INGRESS, "Allow", (step,)),
    )


def resolve_action(action: EndpointToHostAction | str | None, node: str) -> str:
    """The ``DefaultEndpointToHostAction`` of ``node`` (Felix's default when unknown)."""
    if action is None:
        return DEFAULT_ENDPOINT_TO_HOST_ACTION
    value = action if isinstance(action, str) else action(node)
    return (value or DEFAULT_ENDPOINT_TO_HOST_ACTION).capitalize()


def evaluate_local(
    src: WorkloadEndpoint | HostEndpoint | None,
    dst: WorkloadEndpoint | HostEndpoint | None,
    flow: Flow,
    workload_egress: Callable[[], DirectionVerdict],
    endpoint_to_host: EndpointToHostAction | str | None = None,
) -> FlowVerdict | None:
    """The verdict of a host ↔ own-workload flow, or None when ``src`` → ``dst`` is not one.

    ``workload_egress`` computes the source workload's ordinary egress verdict (the caller's
    §2.5 loop); it is called only for local workload → host flows that no special case takes.
    """
    path = local_path(src, dst)
    if path is None or src is None or dst is None:
        return None
    node = _node(src)
    src_id = EndpointId(src.KIND, src.metadata.namespace, src.metadata.name)
    dst_id = EndpointId(dst.KIND, dst.metadata.namespace, dst.metadata.name)
    if path is LocalPath.HOST_TO_WORKLOAD:
        return FlowVerdict(flow, *host_to_workload_verdicts(src_id, dst_id, node))
    special = workload_to_host_special_case(flow)
    if special is not None:
        return FlowVerdict(flow, *special_case_verdicts(src_id, dst_id, node, special))
    egress = workload_egress()
    action = resolve_action(endpoint_to_host, node)
    return FlowVerdict(flow, egress, workload_to_host_verdict(dst_id, node, action))
