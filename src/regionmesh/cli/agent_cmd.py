"""``regionmesh agent``: run the per-host agent (Felix's ``calico-felix``) in the foreground.

Parses the command line, sets up logging, builds the real dataplane (nftables via ``nft``, routes
via netlink, in the network namespace the process runs in) and runs
:mod:`regionmesh.agent.agent`. Exit status: 0 after ``--once`` or SIGTERM/SIGINT, 1 for a bad
configuration (message names parameter, value and rule) or a failed ``--once``. A datastore
configuration change restarts the agent in-process (a fresh calc graph and dataplane whose first
apply replaces the table atomically), where Felix would exit for its supervisor.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

import click

from regionmesh.agent.config import DEFAULT_CONFIG_FILE, AgentConfig
from regionmesh.cli.context import CliContext
from regionmesh.dataplane.api import Dataplane
from regionmesh.errors import ConfigError, RegionmeshError

LOG = logging.getLogger("regionmesh.agent")


def kernel_dataplane(config: AgentConfig) -> Dataplane:
    """The real dataplane: ``nft`` transactions and netlink routes in this network namespace.

    Routes to taps carry route protocol ``DeviceRouteProtocol`` (Felix's, default 3 = boot):
    ``regionmesh bgp`` announces exactly those.
    """
    from regionmesh.dataplane.driver import NftDataplane
    from regionmesh.dataplane.runner import NetlinkRoutes, SubprocessNft

    return NftDataplane(SubprocessNft(), NetlinkRoutes(protocol=config.device_route_protocol))


def _setup_logging(level: str) -> None:
    numeric = logging.getLevelName(level.strip().upper() or "INFO")
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(
        level=numeric,
        stream=sys.stderr,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        force=True,
    )


@click.command("agent", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config-file",
    default=DEFAULT_CONFIG_FILE,
    show_default=True,
    metavar="FILE",
    help="Felix-style INI config file (a missing file is ignored, as Felix does)",
)
@click.option("--once", is_flag=True, help="sync, program the dataplane, report status, exit")
@click.option(
    "--datastore",
    "datastore_url",
    default=None,
    metavar="URL",
    help="datastore URL (default: $REGIONMESH_DATASTORE, then the file's/FELIX_* "
    "DatastoreType/EtcdEndpoints, then Calico's DATASTORE_TYPE/ETCD_* env, then defaults)",
)
@click.pass_context
def agent_cmd(ctx: click.Context, config_file: str, once: bool, datastore_url: str | None) -> None:
    """Run the per-host agent: watch the datastore and program this host's nftables."""
    from regionmesh.agent.agent import RESTART, start  # the calc graph loads only for the agent

    parent = ctx.find_object(CliContext)
    url = datastore_url or (parent.url if parent is not None else None)
    _setup_logging(os.environ.get("FELIX_LOGSEVERITYSCREEN", "INFO"))
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("Received signal %d: stopping", signum)
        stop.set()

    if not once:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    start_time = time.monotonic()
    store = None
    while True:
        try:
            started = start(
                config_file,
                url=url,
                env=os.environ,
                dataplane_factory=kernel_dataplane,
                store=store,
                start_time=start_time,
            )
        except ConfigError as exc:
            click.echo(f"regionmesh agent: configuration error: {exc}", err=True)
            raise SystemExit(1) from exc
        except RegionmeshError as exc:
            click.echo(f"regionmesh agent: cannot start: {exc}", err=True)
            raise SystemExit(1) from exc
        store = started.store
        agent = started.agent
        _setup_logging(agent.config.log_severity)
        LOG.info(
            "Agent starting: hostname=%s region=%s interval=%.1fs ttl=%.1fs",
            agent.hostname,
            agent.region or "(none)",
            agent.config.reporting_interval,
            agent.config.reporting_ttl,
        )
        if once:
            try:
                agent.run_once()
            except RegionmeshError as exc:
                click.echo(f"regionmesh agent --once failed: {exc}", err=True)
                raise SystemExit(1) from exc
            finally:
                started.close()
            LOG.info("Programmed %d update(s); exiting (--once)", agent.stats.updates)
            return
        rc = agent.run(stop)
        if rc != RESTART or stop.is_set():
            started.close()
            return
        LOG.warning("Restarting the agent in-process: %s", agent.restart_reason)
