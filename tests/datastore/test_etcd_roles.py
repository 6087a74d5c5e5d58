"""The least-privilege plan (no etcd): ranges come from keys.py, end in '/', and never give a
region component anything of another region or the global resources."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from regionmesh.cli.main import regionmesh_cli
from regionmesh.datastore import etcd_roles as er
from regionmesh.datastore import keys
from regionmesh.errors import ConfigError

R = keys.RESOURCES_PREFIX
PLAN = er.build_plan(["one", "two"])


def role(name: str) -> er.Role:
    found = PLAN.role(name)
    assert found is not None, name
    return found


def allows(r: er.Role, perm: str, key: str) -> bool:
    want = er.Grant(perm, er.KeyRange.single(key))
    return any(g.covers(want) for g in r.grants)


def test_every_prefix_ends_in_a_slash_and_look_alikes_are_outside() -> None:
    for r in PLAN.roles:
        for g in r.grants:
            if g.range.end is not None:
                assert g.range.is_prefix and g.range.key.endswith("/"), (r.name, g)
    n1 = role("neutron-region-one")
    assert allows(n1, er.WRITE, f"{R}workloadendpoints/openstack-region-one/x")
    assert not allows(n1, er.WRITE, f"{R}workloadendpoints/openstack-region-one-b/x")
    assert not allows(n1, er.WRITE, f"{R}workloadendpoints/openstack-region-onex/x")
    with pytest.raises(ValueError, match="must end in '/'"):
        er.KeyRange.prefix(f"{R}workloadendpoints/openstack-region-one")


def test_neutron_writes_only_its_region_and_named_shared_keys() -> None:
    n1 = role("neutron-region-one")
    ns = "openstack-region-one"
    for key in (
        keys.resource_key("workloadendpoints", "h-openstack-x-eth0", ns),
        keys.resource_key("networkpolicies", "ossg.default.sg", ns),
        keys.subnet_key("one", "s1"),
        keys.neutron_election_key("one"),
        keys.round_trip_key("one"),
        keys.compaction_last_key(),
        keys.compaction_trigger_key(),
        keys.region_subnet_registry_prefix("one") + "s1",
        keys.findings_prefix("one") + "region-mismatch/h",
    ):
        assert allows(n1, er.READWRITE, key), key
    for key in (
        keys.resource_key("workloadendpoints", "x", "openstack-region-two"),
        keys.resource_key("networkpolicies", "x", "openstack-region-two"),
        keys.resource_key("globalnetworkpolicies", "allow-all"),
        keys.resource_key("tiers", "default"),
        keys.resource_key("clusterinformations", "default"),
        keys.resource_key("felixconfigurations", "default"),
        keys.felix_status_key("two", "cmp"),
        keys.felix_status_key("one", "cmp"),
        keys.subnet_key("two", "s2"),
        keys.neutron_election_key("two"),
        keys.LEGACY_NEUTRON_ELECTION_KEY,
    ):
        assert not allows(n1, er.WRITE, key), key
    # reads the overlap guard and the status watcher need
    for key in (
        keys.subnet_key("two", "s2"),
        keys.region_subnet_registry_prefix("two") + "s2",
        keys.felix_status_key("one", "cmp"),
        keys.felix_status_key("two", "cmp"),
        keys.resource_key("clusterinformations", "default"),
    ):
        assert allows(n1, er.READ, key), key
    assert not allows(n1, er.READ, keys.resource_key("globalnetworkpolicies", "x"))
    assert not allows(
        n1, er.READ, keys.resource_key("workloadendpoints", "x", "openstack-region-two")
    )


def test_agent_reads_all_resources_and_writes_only_its_status() -> None:
    a1 = role("felix-region-one")
    assert allows(a1, er.READ, keys.resource_key("globalnetworkpolicies", "x"))
    assert allows(a1, er.READ, keys.resource_key("workloadendpoints", "x", "openstack-region-two"))
    assert allows(a1, er.READWRITE, keys.felix_status_key("one", "cmp"))
    assert not allows(a1, er.WRITE, keys.felix_status_key("two", "cmp"))
    assert not any(g.perm != er.READ and g.range.key.startswith(R) for g in a1.grants), (
        "an agent must not write any resource"
    )
    per_host = er.build_plan(["one"], {"one": ["cmp-a"]})
    ah = per_host.role("felix-region-one-cmp-a")
    assert ah is not None and ah.host == "cmp-a"
    assert allows(ah, er.WRITE, keys.felix_status_key("one", "cmp-a"))
    assert not allows(ah, er.WRITE, keys.felix_status_key("one", "cmp-b"))
    assert not allows(ah, er.WRITE, keys.round_trip_key("one"))


def test_dhcp_only_reads_its_region() -> None:
    d1 = role("dhcp-region-one")
    assert all(g.perm == er.READ for g in d1.grants)
    assert allows(d1, er.READ, keys.resource_key("workloadendpoints", "x", "openstack-region-one"))
    assert allows(d1, er.READ, keys.subnet_key("one", "s"))
    assert allows(d1, er.READ, keys.legacy_subnet_key("s"))
    assert not allows(d1, er.READ, keys.subnet_key("two", "s"))


def test_operator_owns_global_kinds_and_no_region_component_does() -> None:
    op = role(er.OPERATOR_USER)
    for plural in ("globalnetworkpolicies", "tiers", "globalnetworksets", "bgppeers", "ippools"):
        assert allows(op, er.WRITE, keys.resource_key(plural, "x")), plural
    assert not allows(
        op, er.WRITE, keys.resource_key("workloadendpoints", "x", "openstack-region-one")
    )
    for r in PLAN.roles:
        if r.component != er.OPERATOR:
            assert not allows(r, er.WRITE, keys.resource_key("globalnetworkpolicies", "x")), r.name


def test_compare_names_missing_and_extra() -> None:
    want = role("dhcp-region-one").grants
    extra = er.Grant(er.WRITE, er.KeyRange.prefix(f"{R}globalnetworkpolicies/"))
    have = [*want[1:], extra, er.Grant(er.READ, er.KeyRange.prefix(keys.subnet_dir("one") + "/x/"))]
    missing, extras = er.compare(want, have)
    assert missing == [want[0]]
    assert extras == [extra]  # a narrower read inside a wanted range is not extra


def test_bad_regions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="Region_1"):
        er.build_plan(["Region_1"])
    with pytest.raises(ConfigError, match="twice"):
        er.build_plan(["one", "one"])
    with pytest.raises(ConfigError, match="not in --regions"):
        er.build_plan(["one"], {"two": ["h"]})


def test_plan_command_outputs() -> None:
    runner = CliRunner()
    res = runner.invoke(regionmesh_cli, ["etcd-auth", "plan", "--regions", "one,two", "-o", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [u["name"] for u in data["users"]][:3] == [
        "neutron-region-one",
        "felix-region-one",
        "dhcp-region-one",
    ]
    assert data["root"] == {"user": "root", "role": "root"}
    res = runner.invoke(regionmesh_cli, ["etcd-auth", "plan", "--regions", "one", "-o", "yaml"])
    assert yaml.safe_load(res.output)["regions"] == ["one"]
    res = runner.invoke(regionmesh_cli, ["etcd-auth", "plan", "--regions", "one"])
    assert f"readwrite  {R}workloadendpoints/openstack-region-one/*" in res.output
    res = runner.invoke(regionmesh_cli, ["etcd-auth", "plan", "--regions", "one", "-o", "etcdctl"])
    assert (
        "etcdctl role grant-permission neutron-region-one readwrite /calico/compaction/v1/last"
        in res.output
    )
    res = runner.invoke(regionmesh_cli, ["etcd-auth", "plan", "--regions", "One"])
    assert res.exit_code == 1 and "'One' is invalid" in res.output


def test_address_group_mirrors_add_reads_of_every_region_only_when_asked() -> None:
    plain = er.build_plan(["one", "two"]).role("neutron-region-one")
    plan = er.build_plan(["one", "two"], address_group_mirrors=True)
    n1 = plan.role("neutron-region-one")
    assert plain is not None and n1 is not None
    other = keys.resource_key("workloadendpoints", "x", "openstack-region-two")
    other_np = keys.resource_key("networkpolicies", "ossg.default.sg", "openstack-region-two")
    assert not allows(plain, er.READ, other)
    assert allows(n1, er.READ, other) and allows(n1, er.READ, other_np)
    assert not allows(n1, er.WRITE, other) and not allows(n1, er.WRITE, other_np)
    assert allows(n1, er.READWRITE, keys.mirror_status_key("one"))
    assert not allows(n1, er.WRITE, keys.mirror_status_key("two"))
    assert not allows(n1, er.READ, keys.resource_key("globalnetworkpolicies", "x"))
