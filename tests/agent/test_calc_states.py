"""State-sequence tests of the whole calc graph, run through every expander and flush strategy."""

from __future__ import annotations

import pytest
from tests.agent.states import (
    EMPTY,
    EXPANDERS,
    FLUSH_STRATEGIES,
    HOST,
    R1,
    R2,
    State,
    eid,
    gnp,
    gns,
    hep,
    key_of,
    netset,
    np,
    ossg_policy,
    pid,
    profile,
    run_steps,
    sg_label,
    tier,
    wep,
)

from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.dataplane.messages import NatMapping
from regionmesh.dataplane.recording import RecordingDataplane

# --------------------------------------------------------------- two-region OpenStack ----
vm1 = wep(HOST, R1, "p1", ["10.1.0.1"], ["sga"])
vm2 = wep("cmp2", R1, "p2", ["10.1.0.2"], ["sga"])
vm2_moved = wep("cmp2", R1, "p2", ["10.1.0.2"], ["sgb"])
vm3 = wep("cmp2", R1, "p3", ["10.1.0.3"], ["sgb"])
vm4 = wep(HOST, R2, "p4", ["10.2.0.4", "fd00::4"], ["sgc"])
vm5 = wep("cmp3", R2, "p5", ["10.2.0.5"], ["sgc", "sga"])  # sga label, but region two
sg_a = ossg_policy(
    R1,
    "sga",
    ingress=[
        {"action": "Allow", "protocol": "TCP", "source": {"selector": f"has({sg_label('sga')})"}},
        {"action": "Allow", "ipVersion": 4, "source": {"nets": ["192.168.0.0/16"]}},
    ],
    egress=[{"action": "Allow"}],
)
sg_b = ossg_policy(R1, "sgb", ingress=[{"action": "Allow"}], egress=[{"action": "Allow"}])
sg_c = ossg_policy(
    R2,
    "sgc",
    ingress=[{"action": "Allow", "source": {"selector": f"has({sg_label('sgc')})"}}],
    egress=[{"action": "Allow"}],
)
seed = gnp(
    "allow-tcp-80",
    selector='projectcalico.org/orchestrator == "openstack"',
    types=["Ingress"],
    ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}],
)
SEL_A = f'(projectcalico.org/namespace == "{R1}" && has({sg_label("sga")}))'
SEL_C = f'(projectcalico.org/namespace == "{R2}" && has({sg_label("sgc")}))'

openstack_full = (
    EMPTY.named("two regions")
    .with_resources(vm1, vm2, vm3, vm4, vm5, sg_a, sg_b, sg_c, seed)
    .with_ipset(SEL_A, ["10.1.0.1", "10.1.0.2"])
    .with_ipset(SEL_C, ["10.2.0.4", "fd00::4", "10.2.0.5"])
    .with_policies(pid(sg_a), pid(sg_c), pid(seed))
    .with_endpoint(eid(vm1), (("default", (pid(seed), pid(sg_a)), (pid(sg_a),), "Deny"),))
    .with_endpoint(eid(vm4), (("default", (pid(seed), pid(sg_c)), (pid(sg_c),), "Deny"),))
)
openstack_label_change = (
    openstack_full.named("vm2 leaves sga").with_resources(vm2_moved).with_ipset(SEL_A, ["10.1.0.1"])
)
openstack_policy_deleted = (
    openstack_label_change.named("sga deleted")
    .without(sg_a)
    .without_ipset(SEL_A)
    .with_policies(pid(sg_c), pid(seed))
    .with_endpoint(eid(vm1), (("default", (pid(seed),), (), "Deny"),))
)
openstack_vm_gone = (
    openstack_policy_deleted.named("vm4 deleted")
    .without(vm4)
    .without_ipset(SEL_C)  # sgc no longer selects a local endpoint: inactive
    .with_policies(pid(seed))
    .without_endpoint(eid(vm4))
)

# ------------------------------------------------------------------------ tiers + Pass ----
admin_deny_ssh = gnp(
    "admin.deny-ssh",
    tier="admin",
    order=10,
    selector="all()",
    types=["Ingress"],
    ingress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [22]}}],
)
default_allow = gnp(
    "default-allow", selector="all()", ingress=[{"action": "Allow"}], egress=[{"action": "Allow"}]
)
default_allow_first = gnp(
    "zz-first",
    order=1,
    selector="all()",
    types=["Egress"],
    egress=[{"action": "Pass"}],
)
tiers_pass = (
    EMPTY.named("admin tier passes")
    .with_resources(vm1, tier("admin", 10, "Pass"), admin_deny_ssh, default_allow)
    .with_policies(pid(admin_deny_ssh), pid(default_allow))
    .with_endpoint(
        eid(vm1),
        (
            ("admin", (pid(admin_deny_ssh),), (), "Pass"),
            ("default", (pid(default_allow),), (pid(default_allow),), "Deny"),
        ),
    )
)
tiers_deny = (
    tiers_pass.named("admin tier denies")
    .with_resources(tier("admin", 10, "Deny"), default_allow_first)
    .with_policies(pid(admin_deny_ssh), pid(default_allow), pid(default_allow_first))
    .with_endpoint(
        eid(vm1),
        (
            ("admin", (pid(admin_deny_ssh),), (), "Deny"),
            (
                "default",
                (pid(default_allow),),
                (pid(default_allow_first), pid(default_allow)),
                "Deny",
            ),
        ),
    )
)
tiers_missing = (
    tiers_deny.named("admin tier missing")
    .without(tier("admin", 10))
    .with_endpoint(
        eid(vm1),
        (
            (
                "default",
                (pid(default_allow),),
                (pid(default_allow_first), pid(default_allow)),
                "Deny",
            ),
            ("admin", (pid(admin_deny_ssh),), (), "Deny"),
        ),
    )
)

# --------------------------------------------------------------------- profile fallback ----
pvm1 = wep(HOST, R1, "p1", ["10.1.0.1"], profiles=["prof-a"])
pvm2 = wep("cmp2", R1, "p2", ["10.1.0.2"], profiles=["prof-a"])
team_blue = gnp(
    "team-blue",
    selector='team == "blue"',
    types=["Ingress"],
    ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}],
)
prof_rules = {
    "ingress": [{"action": "Allow", "source": {"selector": 'team == "blue"'}}],
    "egress": [{"action": "Allow"}],
}
profile_blue = (
    EMPTY.named("profile labels select")
    .with_resources(pvm1, pvm2, team_blue, profile("prof-a", {"team": "blue"}, **prof_rules))
    .with_ipset('team == "blue"', ["10.1.0.1", "10.1.0.2"])
    .with_policies(pid(team_blue))
    .with_profiles("prof-a")
    .with_endpoint(eid(pvm1), (("default", (pid(team_blue),), (), "Deny"),), ("prof-a",))
)
profile_red = (
    profile_blue.named("profile labels change")
    .with_resources(profile("prof-a", {"team": "red"}, **prof_rules))
    .with_ipset('team == "blue"', [])
    .with_policies()
    .with_endpoint(eid(pvm1), (), ("prof-a",))
)
profile_missing = (
    profile_red.named("profile deleted: deny-all stays")
    .without(profile("prof-a"))
    .without_ipset('team == "blue"')
)

# ------------------------------------------------------------------------- named ports ----
nvm1 = wep(HOST, R1, "p1", ["10.1.0.1"], ports=[{"name": "http", "protocol": "TCP", "port": 8080}])
nvm2 = wep(
    "cmp2",
    R1,
    "p2",
    ["10.1.0.2"],
    ports=[
        {"name": "http", "protocol": "TCP", "port": 8081},
        {"name": "http", "protocol": "UDP", "port": 53},
    ],
)
nvm2_changed = wep(
    "cmp2", R1, "p2", ["10.1.0.2"], ports=[{"name": "http", "protocol": "TCP", "port": 9090}]
)
web = gnp(
    "web",
    selector="all()",
    types=["Ingress"],
    ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http", 443]}}],
)
named_ports = (
    EMPTY.named("named ports")
    .with_resources(nvm1, nvm2, web)
    .with_named_port_set("all()", 6, "http", [("10.1.0.1", 8080), ("10.1.0.2", 8081)])
    .with_policies(pid(web))
    .with_endpoint(eid(nvm1), (("default", (pid(web),), (), "Deny"),))
)
named_ports_changed = (
    named_ports.named("named port moves")
    .with_resources(nvm2_changed)
    .with_named_port_set("all()", 6, "http", [("10.1.0.1", 8080), ("10.1.0.2", 9090)])
)

# ---------------------------------------------------- network sets and host endpoints ----
from_db = gnp(
    "from-db",
    selector="all()",
    types=["Ingress"],
    ingress=[{"action": "Allow", "source": {"selector": 'role == "db"'}}],
)
db_members = (
    EMPTY.named("sets and host endpoints are members")
    .with_resources(
        vm1,
        from_db,
        gns("db-nets", ["192.168.0.0/16", "10.9.0.7/32"], {"role": "db"}),
        netset(R1, "db-ns", ["172.16.0.0/12"], {"role": "db"}),
        hep("h1", "cmp9", ["10.200.0.1"], {"role": "db"}),
        gns("other", ["10.99.0.0/16"], {"role": "web"}),
    )
    .with_ipset('role == "db"', ["192.168.0.0/16", "10.9.0.7", "172.16.0.0/12", "10.200.0.1"])
    .with_policies(pid(from_db))
    .with_endpoint(eid(vm1), (("default", (pid(from_db),), (), "Deny"),))
)

# ---------------------------------------------- types, preDNAT, invalid = deleted ----
ingress_only = np(
    R1,
    "ingress-only",
    selector="all()",
    types=["Ingress"],
    ingress=[{"action": "Allow"}],
    egress=[{"action": "Allow"}],
)
pre_dnat = gnp(
    "pre-dnat",
    selector="all()",
    preDNAT=True,
    applyOnForward=True,
    types=["Ingress"],
    ingress=[{"action": "Deny"}],
)
invalid = np(R1, "broken", selector="has(", ingress=[{"action": "Allow"}])
types_state = (
    EMPTY.named("types, preDNAT, invalid")
    .with_resources(vm1, vm4, ingress_only, pre_dnat, invalid)
    .with_policies(pid(ingress_only))
    .with_endpoint(eid(vm1), (("default", (pid(ingress_only),), (), "Deny"),))
    .with_endpoint(eid(vm4))
)

# ---------------------------------------------------------- floating IPs (ipNATs) ----
fip_vm = wep(
    HOST,
    R1,
    "p6",
    ["10.1.0.6", "fd00::6"],
    ["sgb"],
    nats=[("10.1.0.6", "172.16.0.6"), ("fd00::6", "2001:db8::6")],
)
fip_moved = wep(HOST, R1, "p6", ["10.1.0.6", "fd00::6"], ["sgb"], nats=[("10.1.0.6", "172.16.0.7")])
fip_gone = wep(HOST, R1, "p6", ["10.1.0.6", "fd00::6"], ["sgb"])
SGB_TIERS = (("default", (pid(sg_b),), (pid(sg_b),), "Deny"),)
fips_both = (
    EMPTY.named("floating IPs v4+v6")
    .with_resources(fip_vm, sg_b)
    .with_policies(pid(sg_b))
    .with_endpoint(
        eid(fip_vm),
        SGB_TIERS,
        nats=(("10.1.0.6", "172.16.0.6"), ("fd00::6", "2001:db8::6")),
    )
)
fips_moved = (
    fips_both.named("floating IP re-associated")
    .with_resources(fip_moved)
    .with_endpoint(eid(fip_vm), SGB_TIERS, nats=(("10.1.0.6", "172.16.0.7"),))
)
fips_gone = (
    fips_moved.named("floating IP released")
    .with_resources(fip_gone)
    .with_endpoint(eid(fip_vm), SGB_TIERS)
)

SEQUENCES: dict[str, list[State]] = {
    "openstack": [
        openstack_full,
        openstack_label_change,
        openstack_policy_deleted,
        openstack_vm_gone,
    ],
    "tiers": [tiers_pass, tiers_deny, tiers_missing],
    "profiles": [profile_blue, profile_red, profile_missing],
    "named-ports": [named_ports, named_ports_changed],
    "sets": [db_members],
    "types": [types_state],
    "mixed": [openstack_full, tiers_pass, named_ports, db_members, profile_blue],
    "floating-ips": [fips_both, fips_moved, fips_gone],
}


@pytest.mark.parametrize("flush", FLUSH_STRATEGIES)
@pytest.mark.parametrize("expander", sorted(EXPANDERS))
@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
def test_state_sequence(sequence: str, expander: str, flush: str) -> None:
    run_steps(EXPANDERS[expander](SEQUENCES[sequence]), flush)


def test_invalid_resource_is_really_invalid() -> None:
    """The 'invalid' fixture must fail model validation, or the types test proves nothing."""
    from regionmesh.model.validation import validate

    assert validate(invalid)
    assert not validate(ingress_only)


def test_ipnat_outside_the_endpoint_networks_is_never_programmed() -> None:
    """Calico's validator refuses such a WEP ("NAT is not in the endpoint networks"); the
    resolver at least never DNATs to an address the VM does not own, nor across families."""
    bad = wep(
        HOST,
        R1,
        "p7",
        ["10.1.0.7"],
        nats=[("10.9.9.9", "172.16.0.9"), ("10.1.0.7", "2001:db8::7"), ("10.1.0.7", "172.16.0.8")],
    )
    graph = CalcGraph(HOST)
    dp = RecordingDataplane()
    graph.in_sync()
    graph.on_updates([ResourceUpdate(*key_of(bad), bad)])
    for msg in graph.flush():
        dp.on_update(msg)
    ep = dp.endpoints.get(eid(bad))
    if ep is not None:  # the model may one day reject the whole WEP, as Calico does
        assert ep.ipv4_nats == (NatMapping("10.1.0.7", "172.16.0.8"),)
        assert ep.ipv6_nats == ()
