"""The DHCP agent's pure logic: what is served, subnet choice, rendering, datastore choice."""

from __future__ import annotations

import ipaddress

import dhcp_support as ds
import pytest

from regionmesh.dhcp.agent import DhcpState
from regionmesh.dhcp.records import (
    SubnetIndex,
    dhcp_endpoint,
    endpoint_prefix,
    parse_subnet_record,
    why_not_served,
)
from regionmesh.dhcp.render import (
    DnsmasqFiles,
    NetworkDhcp,
    desired_networks,
    dnsmasq_args,
    render_hosts,
    render_opts,
    server_addresses,
)
from regionmesh.errors import ValidationError
from regionmesh.openstack.calico_options import CalicoOptions, ComputeNodeConfig
from regionmesh.openstack.calico_options import compute_node_datastore as choose_datastore

HOST = "cmp-1"
SUB_A = ds.subnet(
    "sub-a",
    "10.65.0.0/16",
    network_id=ds.NET_A,
    gateway="10.65.0.1",
    routes=(("192.168.0.0/16", "10.65.0.254"),),
    dns=("10.1.1.1", "10.1.1.2"),
)
# the same CIDR again, in another network (allowed across networks): only network-id decides
SUB_B = ds.subnet("sub-b", "10.65.0.0/16", network_id=ds.NET_B, gateway="10.65.255.254")


def _subnet(s: object, legacy: bool = False) -> object:
    return parse_subnet_record(s.id, ds.subnet_value(s), legacy=legacy)  # type: ignore[attr-defined]


def _index(*subnets: object, legacy: tuple[object, ...] = ()) -> SubnetIndex:
    index = SubnetIndex()
    for s in subnets:
        index.v2[s.id] = _subnet(s)  # type: ignore[attr-defined,assignment]
    for s in legacy:
        index.v1[s.id] = _subnet(s, legacy=True)  # type: ignore[attr-defined,assignment]
    return index


# ---------------------------------------------------------------------------- which endpoints


def test_prefix_is_this_hosts_endpoints_in_this_regions_namespace() -> None:
    assert endpoint_prefix("asia-central", "felix-host-1") == (
        "/calico/resources/v3/projectcalico.org/workloadendpoints/"
        "openstack-region-asia-central/felix--host--1-openstack-"
    )
    assert endpoint_prefix(None, "h").startswith(
        "/calico/resources/v3/projectcalico.org/workloadendpoints/openstack/h-openstack-"
    )
    # a host whose name extends ours is not inside our prefix, nor we in its
    mine, theirs = endpoint_prefix("east", "cmp"), endpoint_prefix("east", "cmp-openstack")
    key_theirs, _ = ds.stored_wep(ds.port("p1", "cmp-openstack", ["10.65.0.2"]), "east")
    assert key_theirs.startswith(theirs) and not key_theirs.startswith(mine)


def test_served_only_for_this_host_in_this_region() -> None:
    p = ds.port("port-1", HOST, ["10.65.0.2"])
    assert why_not_served(ds.wep(p, "east"), host=HOST, region="east") is None
    other_region = why_not_served(ds.wep(p, "west"), host=HOST, region="east")
    assert other_region is not None and "openstack-region-west" in other_region
    no_region = why_not_served(ds.wep(p, None), host=HOST, region="east")
    assert no_region is not None and "'openstack'" in no_region
    other_host = why_not_served(
        ds.wep(ds.port("port-1", "cmp-2", ["10.65.0.2"]), "east"), host=HOST, region="east"
    )
    assert other_host is not None and "cmp-2" in other_host


def test_state_drops_other_regions_hosts_and_garbage() -> None:
    state = DhcpState(host=HOST, region="east")
    for region, host, ip in (
        ("east", HOST, "10.65.0.2"),
        ("west", HOST, "10.65.0.3"),
        ("east", "cmp-2", "10.65.0.4"),
    ):
        key, value = ds.stored_wep(ds.port(f"p-{ip}", host, [ip]), region)
        state.apply_endpoint(key, value, 5)
    state.apply_endpoint("/calico/resources/v3/projectcalico.org/workloadendpoints/x/y", b"{no", 6)
    assert [e.addresses for e in state.endpoints.values()] == [("10.65.0.2",)]
    key, _ = ds.stored_wep(ds.port("p-10.65.0.2", HOST, ["10.65.0.2"]), "east")
    state.apply_endpoint(key, None, 7)
    assert state.endpoints == {}


def test_allowed_ips_are_not_served() -> None:
    p = ds.port("port-1", HOST, ["10.65.0.2"], allowed_pairs=("10.65.0.50", "10.65.7.0/24"))
    ep = dhcp_endpoint(ds.wep(p, "east"))
    assert ep.addresses == ("10.65.0.2",)
    nets = desired_networks([ep], _index(SUB_A))
    assert [h.ip for h in nets[ds.NET_A].hosts] == ["10.65.0.2"]


# ---------------------------------------------------------------------------- subnet choice


def test_repeated_cidrs_are_told_apart_by_network_id() -> None:
    index = _index(SUB_A, SUB_B)
    a = dhcp_endpoint(ds.wep(ds.port("pa", HOST, ["10.65.0.2"], network_id=ds.NET_A), "east"))
    b = dhcp_endpoint(
        ds.wep(
            ds.port("pb", HOST, ["10.65.0.2"], network_id=ds.NET_B, mac="fa:16:3e:00:00:02"), "east"
        )
    )
    nets = desired_networks([a, b], index)
    assert set(nets) == {ds.NET_A, ds.NET_B}
    assert nets[ds.NET_A].subnets[0].gateway_ip == "10.65.0.1"
    assert nets[ds.NET_B].subnets[0].gateway_ip == "10.65.255.254"
    # without the annotation an address inside two networks' subnets is not guessed
    assert index.subnet_for("10.65.0.2", None) is None
    assert _index(SUB_A).subnet_for("10.65.0.2", None) is not None


def test_v2_first_then_legacy_v1_per_network() -> None:
    legacy_a = ds.subnet("old-a", "10.65.0.0/16", network_id=ds.NET_A, gateway="10.65.0.9")
    legacy_b = ds.subnet("old-b", "10.66.0.0/16", network_id=ds.NET_B, gateway="10.66.0.1")
    index = _index(SUB_A, legacy=(legacy_a, legacy_b))
    chosen_a = index.subnet_for("10.65.3.3", ds.NET_A)
    assert chosen_a is not None and (chosen_a.id, chosen_a.legacy) == ("sub-a", False)
    chosen_b = index.subnet_for("10.66.3.3", ds.NET_B)
    assert chosen_b is not None and (chosen_b.id, chosen_b.legacy) == ("old-b", True)
    assert index.subnet_for("10.99.0.1", ds.NET_A) is None


def test_state_reads_v2_of_its_region_and_v1() -> None:
    state = DhcpState(host=HOST, region="east")
    state.apply_subnet("/calico/dhcp/v2/region-east/subnet/sub-a", ds.subnet_value(SUB_A))
    state.apply_subnet("/calico/dhcp/v1/subnet/sub-b", ds.subnet_value(SUB_B))
    state.apply_subnet("/calico/dhcp/v2/region-east/subnet/bad", b'{"cidr": 5}')
    assert set(state.subnets.v2) == {"sub-a"} and set(state.subnets.v1) == {"sub-b"}
    state.apply_subnet("/calico/dhcp/v2/region-east/subnet/sub-a", None)
    assert state.subnets.v2 == {}


def test_subnet_record_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_subnet_record("s1", b'{"network_id": "n", "cidr": "10.0.0.0/33", "gateway_ip": "x"}')
    assert {f.path for f in exc.value.fields} == {"cidr", "gateway_ip"}
    with pytest.raises(ValidationError):
        parse_subnet_record("s1", b"[]")


# ---------------------------------------------------------------------------- rendering


def _network(*, gateway: str | None = "10.65.0.1", mtu: int | None = 1450) -> NetworkDhcp:
    s = ds.subnet(
        "sub-a",
        "10.65.0.0/16",
        gateway=gateway,
        routes=(("192.168.0.0/16", "10.65.0.254"),),
        dns=("10.1.1.1", "10.1.1.2"),
    )
    eps = [
        dhcp_endpoint(
            ds.wep(ds.port("port-1", HOST, ["10.65.0.2"], fqdn="web-1.example.org."), "east")
        ),
        dhcp_endpoint(
            ds.wep(ds.port("port-2", HOST, ["10.65.255.254"], mac="FA:16:3E:00:00:02"), "east")
        ),
    ]
    mtus = {"tapport-1": mtu, "tapport-2": (mtu + 50) if mtu else None}
    return desired_networks(eps, _index(s), lambda iface: mtus.get(iface))[ds.NET_A]


def test_hosts_file() -> None:
    assert render_hosts(_network()) == (
        "fa:16:3e:00:00:01,10.65.0.2,web-1\nfa:16:3e:00:00:02,10.65.255.254,host-10-65-255-254\n"
    )


def test_opts_file_router_dns_routes_and_smallest_mtu() -> None:
    assert render_opts(_network()) == (
        "tag:subnet-sub-a,option:router,10.65.0.1\n"
        "tag:subnet-sub-a,option:dns-server,10.1.1.1,10.1.1.2\n"
        "tag:subnet-sub-a,option:classless-static-route,192.168.0.0/16,10.65.0.254,"
        "0.0.0.0/0,10.65.0.1\n"
        "tag:subnet-sub-a,249,192.168.0.0/16,10.65.0.254,0.0.0.0/0,10.65.0.1\n"
        "tag:subnet-sub-a,option:mtu,1450\n"
    )


def test_no_gateway_means_no_router_and_a_free_server_address() -> None:
    net = _network(gateway=None, mtu=None)
    opts = render_opts(net)
    assert "tag:subnet-sub-a,option:router\n" in opts and "mtu" not in opts
    assert "0.0.0.0/0" not in opts  # no default route to repeat without a gateway
    # 10.65.255.254 is a VM's: the alias takes the next free one from the top
    assert server_addresses(net) == ["10.65.255.253/16"]
    assert server_addresses(_network()) == ["10.65.0.1/16"]


def test_dnsmasq_command_line() -> None:
    net = _network()
    args = dnsmasq_args(net, DnsmasqFiles("/st/net"), "/usr/sbin/dnsmasq")
    assert args[0] == "/usr/sbin/dnsmasq"
    for expected in (
        "--keep-in-foreground",
        "--port=0",
        "--bind-dynamic",
        "--interface=tap*",
        f"--interface=ns-{ds.NET_A[:11]}",
        f"--bridge-interface=ns-{ds.NET_A[:11]},tap*",
        "--dhcp-hostsfile=/st/net/host",
        "--dhcp-optsfile=/st/net/opts",
        "--dhcp-range=set:subnet-sub-a,10.65.0.0,static,255.255.0.0,86400s",
    ):
        assert expected in args
    # the command line depends on the subnets only: host changes are a SIGHUP, not a restart
    other = desired_networks(
        [dhcp_endpoint(ds.wep(ds.port("p9", HOST, ["10.65.9.9"]), "east"))],
        _index(ds.subnet("sub-a", "10.65.0.0/16")),
    )[ds.NET_A]
    assert dnsmasq_args(other, DnsmasqFiles("/st/net"))[1:] == args[1:]


def test_endpoint_without_subnet_record_waits() -> None:
    ep = dhcp_endpoint(ds.wep(ds.port("p", HOST, ["10.99.0.2"]), "east"))
    assert desired_networks([ep], _index(SUB_A)) == {}
    assert ipaddress.ip_network("10.65.0.0/16") == _index(SUB_A).v2["sub-a"].cidr


# ---------------------------------------------------------------------------- datastore choice


def _node(**calico: object) -> ComputeNodeConfig:
    configured = bool(calico)
    return ComputeNodeConfig(CalicoOptions(**calico), "h", configured)  # type: ignore[arg-type]


def test_datastore_precedence() -> None:
    env = {"ETCD_ENDPOINTS": "http://10.9.9.9:2379", "DATASTORE_TYPE": "etcdv3"}
    node = _node(etcd_host="10.1.1.1", etcd_port=2400)
    assert choose_datastore("etcd://10.2.2.2:1", node, env).endpoints == ["http://10.2.2.2:1"]
    from_env = choose_datastore(None, node, {**env, "REGIONMESH_DATASTORE": "etcd://10.3.3.3:2"})
    assert from_env.endpoints == ["http://10.3.3.3:2"]
    assert choose_datastore(None, node, env).endpoints == ["http://10.1.1.1:2400"]
    assert choose_datastore(None, _node(), env).endpoints == ["http://10.9.9.9:2379"]
    assert choose_datastore(None, _node(), {}).endpoints == ["http://127.0.0.1:2379"]
