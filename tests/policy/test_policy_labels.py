"""Effective labels (policy-model.md §2.2): stripping, forced labels, profile inheritance."""

from tests.policy.builders import R1, gnetset, hep, netset, profile, wep

from regionmesh.policy import (
    NAMESPACE_LABEL,
    ORCHESTRATOR_LABEL,
    SERVICE_ACCOUNT_LABEL,
    effective_labels,
)


def test_workload_strips_pcns_pcsa_and_adds_system_labels() -> None:
    ep = wep(
        "vm1",
        ["10.0.0.1"],
        {"app": "web", "pcns.role": "admin", "pcsa.x": "y", NAMESPACE_LABEL: "spoofed"},
        service_account="robot",
    )
    labels = effective_labels(ep)
    assert labels == {
        "app": "web",
        NAMESPACE_LABEL: R1,
        ORCHESTRATOR_LABEL: "openstack",
        SERVICE_ACCOUNT_LABEL: "robot",
    }


def test_workload_profiles_own_labels_win_first_profile_wins() -> None:
    profiles = {
        "p1": profile("p1", labels_to_apply={"tier": "one", "env": "prod", "pcns.team": "a"}),
        "p2": profile("p2", labels_to_apply={"tier": "two", "zone": "z2"}),
    }
    ep = wep("vm1", ["10.0.0.1"], {"env": "own"}, profiles=["p1", "p2", "missing"])
    labels = effective_labels(ep, profiles)
    assert labels["env"] == "own"
    assert labels["tier"] == "one"
    assert labels["zone"] == "z2"
    # pcns.* from a profile (how kns.<ns> works) is kept; only own pcns.* labels are stripped.
    assert labels["pcns.team"] == "a"
    # a lookup function works as well as a mapping
    assert effective_labels(ep, profiles.get) == labels


def test_network_set_inherits_namespace_profile() -> None:
    profiles = {"kns.ns1": profile("kns.ns1", labels_to_apply={"pcns.team": "blue"})}
    ns = netset("ext", ["192.0.2.0/24"], {"role": "ext"}, ns="ns1")
    assert effective_labels(ns, profiles) == {
        "role": "ext",
        "pcns.team": "blue",
        NAMESPACE_LABEL: "ns1",
    }


def test_global_network_set_and_host_endpoint_have_no_namespace_label() -> None:
    profiles = {"hp": profile("hp", labels_to_apply={"from-profile": "1", "role": "p"})}
    assert effective_labels(gnetset("g", ["192.0.2.0/24"], {"a": "b"}), profiles) == {"a": "b"}
    h = hep("h1", ["10.9.0.1"], {"role": "host"}, profiles=["hp"])
    assert effective_labels(h, profiles) == {"role": "host", "from-profile": "1"}
