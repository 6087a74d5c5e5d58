"""Connectivity, what-if diff and lint on the example two-region cloud (real sqlite store)."""

from __future__ import annotations

from explain_support import apply_seed, resources, seed_resources

from regionmesh.model import codec
from regionmesh.policy import Snapshot
from regionmesh.policy.connectivity import (
    OTHER_PROTOCOL,
    Access,
    Service,
    compute_connectivity,
    intervals_subtract,
    intervals_union,
)
from regionmesh.policy.whatif import apply_changes, lint_global_policies, what_if


def _gnp(name: str, selector: str, ingress: list[dict[str, object]]) -> object:
    return codec.decode(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"selector": selector, "types": ["Ingress"], "ingress": ingress},
        }
    )


def test_intervals() -> None:
    assert intervals_union([(5, 9), (1, 3), (4, 4), (20, 30)]) == ((1, 9), (20, 30))
    assert intervals_subtract(((0, 100),), ((10, 20), (50, 50))) == ((0, 9), (21, 49), (51, 100))
    assert intervals_subtract(((80, 80),), ((0, 65535),)) == ()
    assert Service(6, 80, 80).label == "TCP/80"
    assert Service(6, 0, 65535).label == "TCP"
    assert Service(1, 8 * 256, 8 * 256 + 255).label == "ICMP type 8"
    assert Service(1, 8 * 256, 8 * 256).label == "ICMP 8/0"
    a = Access({6: ((0, 65535),), 17: ((0, 65535),), 1: ((0, 65535),), OTHER_PROTOCOL: ((0, 0),)})
    assert a.labels() == ["any"]
    assert a.minus(Access({6: ((80, 80),)})).allowed[6] == ((0, 79), (81, 65535))


def test_matrix_before_and_after_seed(cloud_url: str) -> None:
    before = compute_connectivity(Snapshot(resources(cloud_url)))
    cells = before.matrix()
    assert before.regions == ["one", "two"]
    # nothing from two reaches web in one before the operator policy
    assert not any(e.src_region == "two" and e.dst_name == "web" for e in before.edges()), (
        before.edges()
    )
    assert cells[("one", "two")].vm_pairs == 0
    # admin allows TCP/22 from 10.0.0.0/8: both client and batch VMs of region two
    assert cells[("two", "one")].access.labels() == ["TCP/22"]
    assert cells[("two", "one")].vm_pairs == 3
    apply_seed(cloud_url)
    after = compute_connectivity(Snapshot(resources(cloud_url)))
    edge = next(e for e in after.edges() if e.src_name == "client" and e.dst_name == "web")
    assert (edge.src_region, edge.dst_region) == ("two", "one")
    assert edge.access.labels() == ["TCP/80"]
    assert (edge.src_vms, edge.dst_vms, edge.vm_pairs) == (2, 2, 4)
    assert after.matrix()[("two", "one")].vm_pairs == 7


def test_diff_adding_and_removing_the_seed_gnp(cloud_url: str) -> None:
    current = resources(cloud_url)
    seed = seed_resources()
    added = what_if(current, seed)
    assert [c.describe() for c in added.changes] == [
        "OPEN  two/client → one/web  TCP/80  (2 VMs → 2 VMs, 4 VM pairs)"
    ]
    assert added.warnings == []
    assert added.pairs_evaluated < added.pairs_total  # unchanged pairs are not re-evaluated
    removed = what_if(apply_changes(current, seed), seed, delete=True)
    assert [c.describe() for c in removed.changes] == [
        "CLOSE two/client → one/web  TCP/80  (2 VMs → 2 VMs, 4 VM pairs)"
    ]
    doc = removed.to_dict()
    assert doc["opened"] == []
    assert doc["closed"][0]["from"] == {"region": "two", "group": "client", "vms": 2}
    assert doc["closed"][0]["service"]["ports"] == [80, 80]


def test_diff_of_a_port_range_change_is_exact(cloud_url: str) -> None:
    current = resources(cloud_url)
    web = "has(sg-name.projectcalico.org/openstack-web)"
    client = "has(sg-name.projectcalico.org/openstack-client)"
    old = _gnp("r", web, [{"action": "Allow", "protocol": "TCP", "source": {"selector": client},
                           "destination": {"ports": ["8000:8100"]}}])  # fmt: skip
    new = _gnp("r", web, [{"action": "Allow", "protocol": "TCP", "source": {"selector": client},
                           "destination": {"ports": ["8050:8200", 443]}}])  # fmt: skip
    result = what_if([*current, old], [new])  # type: ignore[list-item]
    got = {(c.change, c.service.label) for c in result.changes}
    assert got == {("open", "TCP/443"), ("open", "TCP/8101-8200"), ("close", "TCP/8000-8049")}


def test_lint_warns_for_gnp_reaching_every_region(cloud_url: str) -> None:
    current = resources(cloud_url)
    wide = _gnp("allow-all-ssh", "all()", [{"action": "Allow", "protocol": "TCP",
                                           "destination": {"ports": [22]}}])  # fmt: skip
    scoped = _gnp(
        "scoped",
        "projectcalico.org/namespace == 'openstack-region-one'",
        [
            {
                "action": "Allow",
                "source": {"selector": "has(sg-name.projectcalico.org/openstack-web)"},
            }
        ],
    )
    result = what_if(current, [wide, scoped])  # type: ignore[list-item]
    assert len(result.warnings) == 1, [w.message for w in result.warnings]
    w = result.warnings[0]
    assert (w.policy, w.field, w.regions) == ("allow-all-ssh", "spec.selector", ("one", "two"))
    assert "all 2 regions" in w.message
    # the seed GNP names one SG per side, each in one region: no warning
    snap = Snapshot(apply_changes(current, seed_resources()))
    assert lint_global_policies(snap, seed_resources()) == []  # type: ignore[arg-type]
