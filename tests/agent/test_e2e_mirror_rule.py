"""Real TCP across two regions for a rule written with ``--remote-address-group two.client``.

The topology, agents and VMs of test_e2e_regions.py (one agent process per region, VMs in
network namespaces, one etcd), without the operator's GNP. Instead, region one's SG ``web``
carries what a tenant writes with the OpenStack client only: an ingress TCP/80 rule whose
remote address group is region one's mirror of region two's SG ``client``, translated by the
driver's own translation (a MirroredGroup, as neutron_db reads a mirror). VM B in region one
is in an SG with the same id as ``client`` (the mirror must not select it: the rule is pinned
to region two).
"""

from __future__ import annotations

import agent_support as s
import pytest
from test_e2e_regions import APPLY_BOUND, HOSTS, VMS, World, _start_agent, _wait_flow, world

from regionmesh.openstack.address_groups import MirroredGroup, MirrorRef
from regionmesh.openstack.translate import (
    NeutronRule,
    NeutronSecurityGroup,
    security_group_to_policy,
)

pytestmark = [pytest.mark.root, pytest.mark.etcd, pytest.mark.timeout(240)]

__all__ = ["world"]  # the fixture, imported from the agent e2e module

MIRROR_ID = "ag-mirror-of-two-client"


def web_sg() -> NeutronSecurityGroup:
    base = s.egress_only_sg(s.SG_WEB, "web")
    rule = NeutronRule(
        "web-from-two-client", s.SG_WEB, "ingress", "IPv4", protocol="tcp",
        port_range_min=80, port_range_max=80, remote_address_group_id=MIRROR_ID,
    )  # fmt: skip
    return NeutronSecurityGroup(s.SG_WEB, "web", (*base.rules, rule))


def seed(w: World) -> None:
    mirror = MirroredGroup(
        [f"{VMS['c'][1]}/32"], ref=MirrorRef("two", s.SG_CLIENT), group_id=MIRROR_ID,
        name="two.client",
    )  # fmt: skip
    docs = [
        s.sg_doc(s.egress_only_sg(sg), region)
        for region in ("one", "two")
        for sg in (s.SG_CLIENT, s.SG_OTHER, s.SG_BASE)
    ]
    docs.append(s.sg_doc(s.egress_only_sg(s.SG_WEB), "two"))
    docs.append(
        security_group_to_policy(web_sg(), region="one", address_groups={MIRROR_ID: mirror})
    )
    docs += [s.wep_doc(w.ports[vm], VMS[vm][0]) for vm in VMS]
    docs.append(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "FelixConfiguration",
            "metadata": {"name": "default"},
            "spec": {"interfacePrefix": "tap", "endpointReportingEnabled": True},
        }
    )
    s.apply_docs(w.store, docs)


def test_mirror_rule_real_tcp_across_regions(world: World, tmp_path: object) -> None:
    w = world
    seed(w)
    for vm in VMS:
        for port in (80, 81):
            w.topo.listen(w.vms[vm], w.ip(vm), port)
    for region in HOSTS:
        _start_agent(w, region, str(tmp_path))
    # C (region two, SG client) → A (region one, SG web) on TCP 80: the mirror rule
    _wait_flow(w, "c", "a", True, 30.0)
    assert not w.probe("c", "a", 81), "client reached web on port 81"
    assert not w.probe("e", "a"), "region one's SG other reached web:80"
    # B is in region one with the same SG id as client: the mirror is region two's only
    assert not w.probe("b", "a"), "region one's member of the client SG id reached web:80"
    # live: C leaves SG client in region two → closed, no change to region one's policy
    c_doc = s.wep_doc(w.ports["c"], "two")
    del c_doc["metadata"]["labels"][f"sg.projectcalico.org/openstack-{s.SG_CLIENT}"]
    s.apply_docs(w.store, [c_doc])
    _wait_flow(w, "c", "a", False, APPLY_BOUND)
    s.apply_docs(w.store, [s.wep_doc(w.ports["c"], "two")])
    _wait_flow(w, "c", "a", True, APPLY_BOUND)
