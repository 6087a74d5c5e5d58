"""``regionmesh bgp`` (the per-host routing process) and ``calicoctl node status``.

``regionmesh bgp`` parses its options, sets up logging and SIGTERM/SIGINT handling, and runs
:mod:`regionmesh.bgp.daemon`. Exit status: 0 after SIGTERM/SIGINT, 1 for a bad configuration
(invalid region — the agent's message —, an address another Node claims, a bad option) or when
BIRD cannot run at all.

``calicoctl node status`` reads the local BIRD's control socket in ``--run-dir`` (default
``/var/run/calico``, where calico-node keeps it; pass the same directory as to ``regionmesh
bgp`` when several run on one machine, since unix sockets are not separated by network
namespace) and prints the daemon's state and one row per peer; exit 1 with a clear message when
no BGP daemon runs there.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

import click

from regionmesh.agent.config import DEFAULT_CONFIG_FILE
from regionmesh.cli.context import CliContext, fail
from regionmesh.errors import ConfigError, RegionmeshError

LOG = logging.getLogger("regionmesh.bgp")
DEFAULT_RUN_DIR = "/var/run/calico"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_RUN_DIR_HELP = (
    "directory of BIRD's control socket (bird.ctl), pid file and configuration; one per "
    "instance when several run on one machine"
)


def _setup_logging(level: str) -> None:
    numeric = logging.getLevelName(level.strip().upper() or "INFO")
    logging.basicConfig(
        level=numeric if isinstance(numeric, int) else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        force=True,
    )


@click.command("bgp", context_settings=CONTEXT)
@click.option(
    "--config-file",
    default=DEFAULT_CONFIG_FILE,
    show_default=True,
    metavar="FILE",
    help="the agent's Felix-style config file (FelixHostname, OpenstackRegion, Etcd*)",
)
@click.option(
    "--address", default=None, metavar="CIDR", help="this host's IPv4 address, e.g. 10.0.0.1/24"
)
@click.option(
    "--address6", default=None, metavar="CIDR", help="this host's IPv6 address, e.g. fd00::1/64"
)
@click.option(
    "--as",
    "asn",
    type=int,
    default=None,
    metavar="N",
    help="this node's AS number (Node.spec.bgp.asNumber)",
)
@click.option(
    "--run-dir", default=DEFAULT_RUN_DIR, show_default=True, metavar="DIR", help=_RUN_DIR_HELP
)
@click.option(
    "--bird", "bird", default="bird", show_default=True, metavar="PATH", help="the BIRD 2 binary"
)
@click.option(
    "--datastore",
    "datastore_url",
    default=None,
    metavar="URL",
    help="datastore URL (default: as the agent chooses)",
)
@click.pass_context
def bgp_cmd(  # noqa: PLR0913
    ctx: click.Context,
    config_file: str,
    address: str | None,
    address6: str | None,
    asn: int | None,
    run_dir: str,
    bird: str,
    datastore_url: str | None,
) -> None:  # fmt: skip
    """Run BIRD for this host: register its Node, peer with the others, announce its VMs."""
    from regionmesh.bgp.daemon import Options, start

    parent = ctx.find_object(CliContext)
    url = datastore_url or (parent.url if parent is not None else None)
    _setup_logging(os.environ.get("FELIX_LOGSEVERITYSCREEN", "INFO"))
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("Received signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    options = Options(config_file, address, address6, asn, run_dir, url, bird)
    try:
        started = start(options)
    except ConfigError as exc:
        fail(f"regionmesh bgp: configuration error: {exc}")
    except RegionmeshError as exc:
        fail(f"regionmesh bgp: cannot start: {exc}")
    daemon = started.daemon
    _setup_logging(daemon.config.log_severity)
    LOG.info(
        "BGP starting: node=%s region=%s addresses=%s run dir=%s",
        daemon.local.name,
        daemon.config.region or "(none)",
        ", ".join(filter(None, (daemon.local.ipv4, daemon.local.ipv6))),
        run_dir,
    )
    try:
        daemon.run(stop)
    except RegionmeshError as exc:
        fail(f"regionmesh bgp: {exc}")
    finally:
        started.close()


@click.group("node", context_settings=CONTEXT)
def node_group() -> None:
    """Commands about this host's Calico node."""


@node_group.command("status", context_settings=CONTEXT)
@click.option(
    "--run-dir", default=DEFAULT_RUN_DIR, show_default=True, metavar="DIR", help=_RUN_DIR_HELP
)
def node_status_cmd(run_dir: str) -> None:
    """The local BGP daemon's state and its peers (from BIRD's control socket)."""
    from regionmesh.bgp.bird import BirdControl, RunDir
    from regionmesh.bgp.status import bgp_peers, format_node_status, parse_protocols, parse_status

    sock = RunDir(run_dir).socket
    control = BirdControl(sock)
    try:
        daemon = parse_status(control.command("show status"))
        protocols = parse_protocols(control.command("show protocols all"))
    except RegionmeshError as exc:
        fail(
            f"Calico process is not running: {exc}. Is 'regionmesh bgp --run-dir {run_dir}' "
            "running on this host?"
        )
    click.echo(format_node_status(daemon, bgp_peers(protocols), sock), nl=False)
