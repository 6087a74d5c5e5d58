"""``regionmesh agent`` command line: invalid regions stop it before anything is touched."""

from __future__ import annotations

import os
import shutil
import subprocess

import agent_support as s
import pytest
from click.testing import CliRunner

from regionmesh.agent.felix_settings import load_local, merge
from regionmesh.agent.startup import datastore_config
from regionmesh.cli.main import regionmesh_cli

BAD_REGIONS = ["RegionOne", "us/east", "my_region", "-east", "a" * 47]


@pytest.mark.parametrize("region", BAD_REGIONS)
def test_invalid_region_in_file_exits_nonzero_before_opening_the_store(
    tmp_path: object, region: str
) -> None:
    db = os.path.join(str(tmp_path), "never.db")
    cfg = s.felix_cfg(os.path.join(str(tmp_path), "felix.cfg"), OpenstackRegion=region)
    result = CliRunner().invoke(
        regionmesh_cli,
        ["agent", "--config-file", cfg, "--once", "--datastore", f"sqlite:///{db}"],
        env={"REGIONMESH_DATASTORE": ""},
    )
    assert result.exit_code != 0
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "OpenstackRegion" in text and repr(region) in text and "DNS-1123" in text, text
    assert not os.path.exists(db), "the agent opened the datastore despite a bad region"


def test_invalid_region_from_environment_real_process(tmp_path: object) -> None:
    exe = shutil.which("regionmesh")
    assert exe, "the regionmesh console script is not installed"
    db = os.path.join(str(tmp_path), "never.db")
    env = dict(
        os.environ, FELIX_OPENSTACKREGION="RegionOne", REGIONMESH_DATASTORE=f"sqlite:///{db}"
    )
    proc = subprocess.run(
        [exe, "agent", "--config-file", os.path.join(str(tmp_path), "absent.cfg"), "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "invalid value 'RegionOne' for OpenstackRegion" in proc.stderr
    assert "at most 46 characters" in proc.stderr
    assert not os.path.exists(db)


def test_datastore_selection_precedence(tmp_path: object) -> None:
    cfg = s.felix_cfg(
        os.path.join(str(tmp_path), "felix.cfg"),
        DatastoreType="etcdv3",
        EtcdEndpoints="http://10.0.0.1:2379,http://10.0.0.2:2379",
    )
    config = merge(load_local(cfg, {}))
    # --datastore wins over everything.
    assert datastore_config(config, "sqlite:///x.db", {}).kind == "sqlite"
    # $REGIONMESH_DATASTORE next.
    env_url = {"REGIONMESH_DATASTORE": "etcd://10.9.9.9:2379"}
    assert datastore_config(config, None, env_url).endpoints == ["http://10.9.9.9:2379"]
    # Then the file's EtcdEndpoints, over Calico's ETCD_ENDPOINTS.
    calico_env = {"ETCD_ENDPOINTS": "http://10.7.7.7:2379"}
    got = datastore_config(config, None, calico_env)
    assert got.endpoints == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    # EtcdScheme + EtcdAddr from FELIX_* when no EtcdEndpoints.
    cfg2 = merge(load_local(None, {"FELIX_ETCDADDR": "10.1.1.1:4001"}))
    assert datastore_config(cfg2, None, {}).endpoints == ["http://10.1.1.1:4001"]
    # Nothing Felix-specific: Calico's environment.
    plain = merge(load_local(os.path.join(str(tmp_path), "absent.cfg"), {}))
    assert datastore_config(plain, None, calico_env).endpoints == ["http://10.7.7.7:2379"]
    # A missing TLS file is named.
    cfg3 = merge(load_local(None, {"FELIX_ETCDCAFILE": "/nonexistent/ca.pem"}))
    with pytest.raises(Exception, match="EtcdCaFile"):
        datastore_config(cfg3, None, {})
