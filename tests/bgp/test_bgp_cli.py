"""``regionmesh bgp`` refusals (before BIRD is touched) and ``calicoctl node status`` errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from regionmesh.cli.main import calicoctl_cli, regionmesh_cli
from regionmesh.datastore import open_datastore, resolve_config
from regionmesh.datastore.resources import ResourceClient
from regionmesh.model import codec


def _cfg(tmp_path: Path, **params: str) -> str:
    path = tmp_path / "felix.cfg"
    path.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in params.items()))
    return str(path)


def test_invalid_region_same_message_as_the_agent(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, FelixHostname="h1", OpenstackRegion="Bad_Region")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    runner = CliRunner()
    bgp = runner.invoke(regionmesh_cli, ["bgp", "--config-file", cfg, "--address",
                                         "10.0.0.1/24", "--datastore", db])  # fmt: skip
    agent = runner.invoke(regionmesh_cli, ["agent", "--config-file", cfg, "--datastore", db])
    assert bgp.exit_code == 1 and agent.exit_code == 1
    bgp_msg = bgp.output.split("configuration error: ", 1)[1]
    agent_msg = agent.output.split("configuration error: ", 1)[1]
    assert bgp_msg == agent_msg and "OpenstackRegion" in bgp_msg


def test_refuses_an_address_another_node_claims(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    store = open_datastore(resolve_config(url=db))
    try:
        ResourceClient(store).create(codec.decode({
            "apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "other"},
            "spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}},
        }))  # fmt: skip
    finally:
        store.close()
    cfg = _cfg(tmp_path, FelixHostname="h1", OpenstackRegion="one")
    result = CliRunner().invoke(regionmesh_cli, [
        "bgp", "--config-file", cfg, "--address", "10.0.0.1/24", "--datastore", db,
        "--run-dir", str(tmp_path / "run"),
    ])  # fmt: skip
    assert result.exit_code == 1
    assert "Node other already claims address 10.0.0.1 (spec.bgp.ipv4Address)" in result.output
    store = open_datastore(resolve_config(url=db))
    try:
        assert ResourceClient(store).find("Node", "h1") is None  # nothing written
    finally:
        store.close()


def test_bad_address_options(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, FelixHostname="h1")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    runner = CliRunner()
    for args, message in (
        (["--address", "10.0.0.1"], "must be an IPv4 address in CIDR form"),
        (["--address6", "10.0.0.1/24"], "must be an IPv6 address in CIDR form"),
        ([], "needs --address"),
        (["--address", "10.0.0.1/24", "--run-dir", "/tmp/" + "d" * 120], "is too long"),
    ):
        result = runner.invoke(
            regionmesh_cli, ["bgp", "--config-file", cfg, "--datastore", db, *args]
        )
        assert result.exit_code == 1 and message in result.output, result.output


def test_node_status_without_a_daemon(tmp_path: Path) -> None:
    result = CliRunner().invoke(calicoctl_cli, ["node", "status", "--run-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "Calico process is not running" in result.output
    assert str(tmp_path / "bird.ctl") in result.output


def test_register_node_keeps_operator_fields(tmp_path: Path) -> None:
    from regionmesh.bgp.daemon import register_node

    store = open_datastore(resolve_config(url=f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        client = ResourceClient(store)
        client.create(codec.decode({
            "apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": "h1", "labels": {"route-reflector": "true"}},
            "spec": {"bgp": {"ipv4Address": "10.9.9.9/24", "routeReflectorClusterID": "244.0.0.1"}},
        }))  # fmt: skip
        node = register_node(client, "h1", "10.0.0.1/24", "fd00::1/64", asn=65001)
        assert node.metadata.labels == {"route-reflector": "true"}
        assert node.spec.bgp is not None
        assert node.spec.bgp.ipv4_address == "10.0.0.1/24"
        assert node.spec.bgp.ipv6_address == "fd00::1/64"
        assert node.spec.bgp.route_reflector_cluster_id == "244.0.0.1"
        assert node.spec.bgp.as_number == 65001
        again = register_node(client, "h1", "10.0.0.1/24", "fd00::1/64", asn=65001)
        assert again.metadata.resource_version == node.metadata.resource_version  # no rewrite
        fresh = register_node(client, "h2", "10.0.0.2/24", None)
        assert fresh.spec.bgp is not None and fresh.spec.bgp.ipv6_address == ""
    finally:
        store.close()
