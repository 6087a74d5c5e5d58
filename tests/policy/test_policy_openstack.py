"""Two OpenStack regions sharing one datastore (policy-model.md §2.9, openstack-driver.md §8).

Region one has VMs in security group a7734e61…, region two in 85cc3048…; both regions' SGs
are written by networking-calico as ``ossg.default.<id>`` NetworkPolicies WITHOUT types; the
operator's seed GNP ``allow-tcp-80`` opens TCP 80 across regions.
"""

from tests.policy.builders import R1, R2, np, rule, wep

from regionmesh.model import WorkloadEndpoint, codec
from regionmesh.policy import Flow, Snapshot, evaluate_flow, explain_flow, naive_evaluate_flow

SG_A = "a7734e61-b545-452d-a3cd-0189cbd9747a"
SG_B = "85cc3048-abc3-43cc-89b3-377341426ac5"
SG_C = "0f0f0f0f-1111-2222-3333-444444444444"
LBL = "sg.projectcalico.org/openstack-"

SEED_GNP = codec.decode(
    {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "allow-tcp-80"},
        "spec": {
            "selector": f"has({LBL}{SG_A})",
            "types": ["Ingress"],
            "ingress": [
                {
                    "action": "Allow",
                    "protocol": "TCP",
                    "source": {"selector": f"has({LBL}{SG_B})"},
                    "destination": {"ports": [80]},
                }
            ],
        },
    }
)


def vm(name: str, ip: str, ns: str, *sgs: str) -> WorkloadEndpoint:
    labels = {f"{LBL}{sg}": f"name-{sg[:4]}" for sg in sgs}
    labels["projectcalico.org/namespace"] = ns
    labels["projectcalico.org/orchestrator"] = "openstack"
    return wep(name, [ip], labels, ns=ns)


def sg_policy(sg: str, ns: str, *, remote_groups: tuple[str, ...] = ()) -> object:
    """What networking-calico writes: default-SG style, no types, no order."""
    ingress = [
        rule(ipVersion=4, source={"selector": f"has({LBL}{g})"}) for g in (sg, *remote_groups)
    ]
    ingress.append(
        rule(
            ipVersion=4, protocol=6, destination={"ports": [22]}, source={"nets": ["192.0.2.0/24"]}
        )
    )
    return np(
        f"ossg.default.{sg}",
        f"has({LBL}{sg})",
        ns=ns,
        ingress=ingress,
        egress=[rule(ipVersion=4), rule(ipVersion=6)],
    )


WEB1 = vm("web1", "10.1.0.10", R1, SG_A)
WEB1B = vm("web1b", "10.1.0.11", R1, SG_A)
APP2 = vm("app2", "10.2.0.20", R2, SG_B)
OTHER2 = vm("other2", "10.2.0.30", R2, SG_C)
APP1 = vm("app1", "10.1.0.40", R1, SG_B)  # SG_B id used in region one too (same-region member)
RESOURCES = [
    SEED_GNP,
    WEB1,
    WEB1B,
    APP2,
    OTHER2,
    APP1,
    sg_policy(SG_A, R1, remote_groups=(SG_B,)),
    sg_policy(SG_B, R2),
    sg_policy(SG_C, R2),
    sg_policy(SG_B, R1),
]
SNAP = Snapshot(RESOURCES)


def check(src: WorkloadEndpoint, dst: WorkloadEndpoint, flow: Flow) -> bool:
    got = evaluate_flow(SNAP, src, dst, flow)
    assert got.to_dict() == naive_evaluate_flow(RESOURCES, src, dst, flow).to_dict()
    return got.allowed


def tcp(src: WorkloadEndpoint, dst: WorkloadEndpoint, port: int) -> Flow:
    s = src.spec.ip_networks[0].split("/")[0]
    d = dst.spec.ip_networks[0].split("/")[0]
    return Flow.make(s, d, "TCP", 50000, port)


def test_cross_region_tcp_80_from_source_group_allowed() -> None:
    v = evaluate_flow(SNAP, APP2, WEB1, tcp(APP2, WEB1, 80))
    assert v.allowed
    assert v.ingress is not None
    step = v.ingress.trace[0]
    assert step.policy is not None and step.policy.name == "allow-tcp-80"
    assert v.egress is not None and v.egress.trace[0].policy is not None
    assert v.egress.trace[0].policy.name == f"ossg.default.{SG_B}"
    assert check(APP2, WEB1, tcp(APP2, WEB1, 80))


def test_cross_region_port_81_denied_by_end_of_tier() -> None:
    assert not check(APP2, WEB1, tcp(APP2, WEB1, 81))
    v = evaluate_flow(SNAP, APP2, WEB1, tcp(APP2, WEB1, 81))
    assert v.ingress is not None
    assert v.ingress.trace[-1].message == "end of tier default: implicit deny"


def test_other_group_denied() -> None:
    assert not check(OTHER2, WEB1, tcp(OTHER2, WEB1, 80))


def test_np_remote_group_rule_only_sees_same_region() -> None:
    # SG_A's own policy lists SG_B as a remote group: it admits the region-one SG_B member on
    # any port, but not the region-two member (port 443 is not covered by the GNP).
    assert check(APP1, WEB1, tcp(APP1, WEB1, 443))
    assert not check(APP2, WEB1, tcp(APP2, WEB1, 443))
    # same-SG traffic within region one is allowed on any port by the default-SG rule
    assert check(WEB1B, WEB1, tcp(WEB1B, WEB1, 5432))


def test_sg_policy_without_types_polices_egress() -> None:
    # An SG policy stored without types governs egress too: with no egress rules, the VM's
    # egress ends in the implicit deny of the default tier (as Neutron's SG semantics expect).
    res = [APP2, WEB1, np(f"ossg.default.{SG_B}", f"has({LBL}{SG_B})", ns=R2, ingress=[])]
    v = evaluate_flow(Snapshot(res), APP2, WEB1, tcp(APP2, WEB1, 80))
    assert v.egress is not None and not v.egress.allowed
    assert v.egress.trace[-1].message == "end of tier default: implicit deny"


def test_external_admin_net_to_vm_ssh() -> None:
    flow = Flow.make("192.0.2.5", "10.1.0.10", "TCP", 50000, 22)
    (v,) = explain_flow(SNAP, flow)
    assert v.egress is None
    assert v.allowed
