"""Host ↔ its own workloads: Felix applies no host-endpoint policy (regionmesh.policy.hostlocal).

Every verdict is computed by the indexed evaluator and by the naive oracle, which must agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.policy.builders import ALLOW, DENY, gnp, hep, np, rule, wep

from regionmesh.model import HostEndpoint, Resource, WorkloadEndpoint
from regionmesh.policy import Flow, FlowVerdict, Snapshot, StepKind, evaluate_flow
from regionmesh.policy.naive import naive_evaluate_flow

HOST_IP = "10.9.0.1"
VM_IP = "10.0.0.5"
VM = wep("vm", [VM_IP], {"app": "db"})  # node cmp1, like the builders' host endpoints
HOST = hep("cmp1-eth0", [HOST_IP], {"role": "host"})
TO_VM = Flow.make(HOST_IP, VM_IP, "TCP", 40000, 5432)
TO_HOST = Flow.make(VM_IP, HOST_IP, "TCP", 40000, 8080)


def on_node(endpoint: HostEndpoint, node: str) -> HostEndpoint:
    return endpoint.model_copy(update={"spec": endpoint.spec.model_copy(update={"node": node})})


def flow_verdict(
    resources: Sequence[Resource],
    src: WorkloadEndpoint | HostEndpoint,
    dst: WorkloadEndpoint | HostEndpoint,
    flow: Flow,
    endpoint_to_host: str | None = None,
) -> FlowVerdict:
    world = [*resources, src, dst]
    got = evaluate_flow(Snapshot(world), src, dst, flow, endpoint_to_host=endpoint_to_host)
    want = naive_evaluate_flow(world, src, dst, flow, endpoint_to_host=endpoint_to_host)
    assert got.to_dict() == want.to_dict()
    return got


def test_host_to_local_workload_without_any_host_endpoint_policy_is_allowed() -> None:
    # a HostEndpoint with no policy and no profile denies traffic of the host's own processes
    # through its interface, but host → local workload does not cross that interface
    v = flow_verdict([np("db", "app == 'db'", ingress=[ALLOW])], HOST, VM, TO_VM)
    assert v.allowed
    assert v.egress is not None and v.egress.endpoint.kind == "HostEndpoint"
    assert [s.kind for s in v.egress.trace] == [StepKind.HOST_LOCAL]
    assert "host endpoint policy does not apply" in v.egress.trace[0].message


def test_host_endpoint_egress_deny_does_not_apply_to_local_workloads() -> None:
    deny_out = gnp("host-out", "role == 'host'", types=["Egress"], egress=[DENY])
    assert flow_verdict([deny_out], HOST, VM, TO_VM).allowed
    # ... and neither does the workload's ingress policy (Felix's OUTPUT chain returns early)
    closed = np("db", "app == 'db'", ingress=[rule(action="Deny")])
    v = flow_verdict([deny_out, closed], HOST, VM, TO_VM)
    assert v.allowed and v.ingress is not None
    assert [s.kind for s in v.ingress.trace] == [StepKind.HOST_LOCAL]
    # from ANOTHER host the host endpoint's egress policy applies as before
    other = on_node(HOST, "cmp2")
    remote = flow_verdict([deny_out], other, VM, TO_VM)
    assert not remote.allowed
    assert remote.egress is not None and remote.egress.trace[-1].action == "Deny"


def test_workload_to_own_host_skips_host_endpoint_ingress() -> None:
    host_in = gnp("host-in", "role == 'host'", ingress=[ALLOW])
    egress_ok = np("db-out", "app == 'db'", types=["Egress"], egress=[ALLOW])
    # Felix's default DefaultEndpointToHostAction is Drop, whatever the HEP ingress allows
    v = flow_verdict([host_in, egress_ok], VM, HOST, TO_HOST)
    assert not v.allowed
    assert v.egress is not None and v.egress.allowed
    assert v.ingress is not None and [s.kind for s in v.ingress.trace] == [
        StepKind.ENDPOINT_TO_HOST
    ]
    assert "DefaultEndpointToHostAction Drop" in v.ingress.trace[0].message
    for action in ("Accept", "Return", "ACCEPT"):
        assert flow_verdict([egress_ok], VM, HOST, TO_HOST, action).allowed
    # the workload's egress policy still runs first
    egress_no = np("db-out", "app == 'db'", types=["Egress"], egress=[DENY])
    assert not flow_verdict([host_in, egress_no], VM, HOST, TO_HOST, "Accept").allowed


def test_workload_to_own_host_dhcp_and_dns_special_cases() -> None:
    egress_no = np("db-out", "app == 'db'", types=["Egress"], egress=[DENY])
    dns = Flow.make(VM_IP, HOST_IP, "UDP", 40000, 53)
    dhcp = Flow.make(VM_IP, HOST_IP, "UDP", 68, 67)
    for flow in (dns, dhcp):
        v = flow_verdict([egress_no], VM, HOST, flow)
        assert v.allowed
        assert v.egress is not None and v.egress.trace[0].kind == StepKind.ENDPOINT_TO_HOST
    assert not flow_verdict([egress_no], VM, HOST, Flow.make(VM_IP, HOST_IP, "UDP", 68, 68)).allowed


def test_workload_to_another_host_uses_host_endpoint_ingress() -> None:
    host_in = gnp("host-in", "role == 'host'", ingress=[DENY])
    egress_ok = np("db-out", "app == 'db'", types=["Egress"], egress=[ALLOW])
    v = flow_verdict([host_in, egress_ok], VM, on_node(HOST, "cmp2"), TO_HOST, "Accept")
    assert not v.allowed
    assert v.ingress is not None and v.ingress.trace[-1].policy is not None
    assert v.ingress.trace[-1].policy.name == "host-in"
