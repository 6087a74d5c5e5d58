"""``regionmesh dhcp-agent``: the compute host's region-aware DHCP agent, in the foreground.

Reads neutron.conf (``[DEFAULT] host``, ``[calico] openstack_region`` and the datastore
options) with :func:`regionmesh.openstack.config.load_config_files`, chooses the datastore
(:func:`regionmesh.openstack.dhcp_agent.choose_datastore`) and runs
:class:`~regionmesh.openstack.dhcp_agent.DhcpAgent` with a
:class:`~regionmesh.openstack.dnsmasq.DnsmasqSupervisor` until SIGTERM/SIGINT. Exit status 0
after a signal, 1 for a bad configuration (the message names option, value and rule) or a
datastore that cannot be opened. Also runnable as ``python -m regionmesh.cli.dhcp_cmd``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType

import click

from regionmesh.cli.context import CliContext
from regionmesh.datastore import open_datastore
from regionmesh.errors import AuthenticationFailed, RegionmeshError
from regionmesh.model.regions import region_namespace
from regionmesh.openstack.config import load_config_files
from regionmesh.openstack.dhcp_agent import DhcpAgent, choose_datastore
from regionmesh.openstack.dnsmasq import DEFAULT_STATE_DIR, DNSMASQ, DnsmasqSupervisor, tap_mtu

LOG = logging.getLogger("regionmesh.dhcp_agent")
DEFAULT_NEUTRON_CONF = "/etc/neutron/neutron.conf"


def _fail(message: str) -> None:
    click.echo(f"regionmesh dhcp-agent: {message}", err=True)
    raise SystemExit(1)


@click.command("dhcp-agent", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config-file",
    "config_files",
    multiple=True,
    metavar="FILE",
    help=f"neutron.conf-style file, repeatable, later wins [default: {DEFAULT_NEUTRON_CONF}]",
)
@click.option(
    "--datastore",
    "datastore_url",
    default=None,
    metavar="URL",
    help="datastore URL (default: $REGIONMESH_DATASTORE, then neutron.conf's [calico] "
    "datastore/etcd_*, then Calico's DATASTORE_TYPE/ETCD_* env, then 127.0.0.1:2379)",
)
@click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    metavar="DIR",
    help="where each network's dnsmasq files live (must be searchable by others)",
)
@click.option("--dnsmasq", "dnsmasq_binary", default=DNSMASQ, show_default=True, metavar="PATH")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.pass_context
def dhcp_agent_cmd(
    ctx: click.Context,
    config_files: tuple[str, ...],
    datastore_url: str | None,
    state_dir: str,
    dnsmasq_binary: str,
    log_level: str,
) -> None:
    """Serve DHCP to this host's VMs in its region (one dnsmasq per network)."""
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        force=True,
    )
    parent = ctx.find_object(CliContext)
    url = datastore_url or (parent.url if parent is not None else None)
    try:
        node = load_config_files(list(config_files) or [DEFAULT_NEUTRON_CONF])
        host = node.host or socket.gethostname()
        region = node.calico.openstack_region
        store = open_datastore(choose_datastore(url, node, os.environ))
    except RegionmeshError as exc:
        _fail(str(exc))
        return
    try:  # wrong etcd credentials are a start-up error; an unreachable store is retried later
        store.current_revision()
    except AuthenticationFailed as exc:
        store.close()
        _fail(str(exc))
        return
    except RegionmeshError as exc:
        LOG.warning("cannot reach the datastore yet: %s", exc)
    try:
        supervisor = DnsmasqSupervisor(state_dir, binary=dnsmasq_binary)
    except RegionmeshError as exc:
        store.close()
        _fail(str(exc))
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("received signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    LOG.info("host %s, region %s (%s)", host, region or "-", region_namespace(region))
    try:
        DhcpAgent(store, supervisor, host=host, region=region, mtu_of=tap_mtu).run(stop)
    finally:
        store.close()


if __name__ == "__main__":  # pragma: no cover - exercised by the netns test as a subprocess
    dhcp_agent_cmd(prog_name="regionmesh dhcp-agent")
