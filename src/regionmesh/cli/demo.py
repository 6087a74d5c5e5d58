"""``regionmesh demo``: the project's main job, end to end, in under a minute.

1. Builds the two-region cloud of ``two-region-cloud.yaml`` (package data,
   :mod:`regionmesh.examples`) through ``regionmesh cloud apply``'s code
   (:mod:`regionmesh.openstack.cloud`) into a TEMPORARY embedded datastore (or the one given
   with ``--datastore``/``-c``);
2. prints the region-by-region connectivity matrix and the cross-region flows;
3. previews ``allow-tcp-80.yaml`` (what-if), applies it like ``calicoctl apply``, prints
   the matrix again and the explain trace of one cross-region pair (client-1 → web-1 TCP/80);
4. as root (unless ``--no-dataplane``): builds one network namespace per compute host and per
   VM (the VMs' taps, MACs and addresses come from the WorkloadEndpoints), starts one
   ``regionmesh agent`` per host on the same datastore, and proves the flows with real TCP: an
   allowed cross-region flow connects, a denied one does not. Hosts reach each other's VMs
   through ``regionmesh bgp`` (one BIRD 2 per host, full mesh) when ``bird`` is installed,
   else through static routes (a BGP stand-in); the demo says which it used.

Everything it creates (namespaces, veths, agent and server processes, the temporary store) is
removed on success, failure, Ctrl-C or SIGTERM. Verdicts come from :mod:`regionmesh.policy`;
programming the kernel is the agent's job; the namespaces, agents and probes of step 4 are
:mod:`.demo_dataplane`; this module only orchestrates and prints.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click
import yaml

from regionmesh import examples
from regionmesh.cli.context import CONTEXT, CliContext, cli_context, datastore_options
from regionmesh.cli.demo_dataplane import (
    ALLOWED,
    DENIED,
    PORT,
    Dataplane,
    DemoVm,
    dataplane_problem,
)
from regionmesh.cli.snapshots import load_resources
from regionmesh.cli.verbs import prepare
from regionmesh.cli.views import render_edges, render_explanation, render_matrix, render_what_if
from regionmesh.errors import RegionmeshError
from regionmesh.model import Resource, WorkloadEndpoint
from regionmesh.openstack import cloud as cloud_mod
from regionmesh.policy import Snapshot
from regionmesh.policy.connectivity import compute_connectivity
from regionmesh.policy.flowspec import EndpointRef, FlowSpec, check_flow
from regionmesh.policy.whatif import what_if
from regionmesh.testing.netns import Topology

__all__ = ["DemoVm", "run_demo"]

CLOUD_FILE = examples.example_path(examples.CLOUD)
POLICY_FILE = examples.example_path(examples.POLICY)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _vms(cloud_file: Path, snap: Snapshot) -> dict[str, DemoVm]:
    raw = yaml.safe_load(cloud_file.read_text())
    by_workload = {e.spec.workload: e for e in snap.endpoints() if isinstance(e, WorkloadEndpoint)}
    out: dict[str, DemoVm] = {}
    for region in raw["regions"]:
        for vm in region.get("vms", []):
            ep = by_workload.get(cloud_mod.cloud_id(region["name"], "vm", vm["name"]))
            if ep is not None:
                out[vm["name"]] = DemoVm(
                    vm["name"], region["name"], vm["host"], str(vm["ips"][0]), ep
                )
    return out


class _Demo:
    def __init__(self, cli: CliContext, echo: Callable[[str], None]) -> None:
        self.cli = cli
        self.echo = echo
        self.step = 0

    def section(self, title: str) -> None:
        self.step += 1
        self.echo("")
        self.echo(click.style(f"== {self.step}. {title}", bold=True))

    def snapshot(self) -> tuple[list[Resource], Snapshot]:
        resources = load_resources(self.cli.client())
        return resources, Snapshot(resources)

    def show_connectivity(self, snap: Snapshot) -> None:
        conn = compute_connectivity(snap)
        self.echo("VM pairs allowed / all VM pairs, and what is allowed (rows: from, cols: to):")
        self.echo(render_matrix(conn))
        self.echo("cross-region flows allowed:")
        self.echo(render_edges(conn, cross_region_only=True))


def run_demo(
    cli: CliContext,
    *,
    dataplane: bool = True,
    keep: bool = False,
    cloud_file: Path = CLOUD_FILE,
    policy_file: Path = POLICY_FILE,
    echo: Callable[[str], None] = click.echo,
) -> int:
    """Run the demo; returns the exit status (0: every step and proof worked)."""
    started = time.monotonic()
    for path in (cloud_file, policy_file):
        if not path.is_file():
            echo(f"demo: {path} not found (the package is installed without its examples)")
            return 1
    tmpdir = tempfile.mkdtemp(prefix="regionmesh-demo-")
    sandbox = Topology(run_id=secrets.token_hex(2), prefix="rmdemo")
    if cli.url is None and cli.config_file is None:
        cli.url = f"sqlite:///{tmpdir}/demo.db"
        where = f"{cli.url} (temporary)"
    else:
        where = "the datastore given on the command line"
    demo = _Demo(cli, echo)
    try:
        with _sigterm_as_interrupt():
            code = _run(demo, sandbox, tmpdir, where, dataplane, cloud_file, policy_file)
    except KeyboardInterrupt:
        echo("\ndemo interrupted; cleaning up")
        code = 130
    except RegionmeshError as exc:
        echo(f"demo failed: {exc}")
        code = 1
    finally:
        sandbox.close()
        cli.close()
        if keep:
            echo(f"kept {tmpdir}")
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)
    echo(f"\ndemo finished in {time.monotonic() - started:.1f} s (exit {code})")
    return code


def _run(
    demo: _Demo,
    sandbox: Topology,
    tmpdir: str,
    where: str,
    dataplane: bool,
    cloud_file: Path,
    policy_file: Path,
) -> int:
    echo = demo.echo
    demo.section(f"two-region cloud from {cloud_file.name} → {where}")
    cloud = cloud_mod.load_cloud(cloud_file)
    result = cloud_mod.apply_cloud(demo.cli.store(), cloud)
    echo(
        f"regionmesh cloud apply: {result.count('created')} created, "
        f"{result.count('updated')} updated, {result.count('unchanged')} unchanged "
        f"(regions {', '.join(r.name for r in cloud.regions)})"
    )
    resources_now, snap = demo.snapshot()
    vms = _vms(cloud_file, snap)
    for vm in vms.values():
        sgs = sorted(
            k.split("openstack-", 1)[1]
            for k in vm.endpoint.metadata.labels
            if k.startswith("sg-name.projectcalico.org/")
        )
        echo(f"  region {vm.region:4} {vm.host:10} {vm.name:9} {vm.ip:10} SG {', '.join(sgs)}")

    demo.section("who can reach whom BEFORE the cross-region policy")
    demo.show_connectivity(snap)

    demo.section(f"what-if: regionmesh apply --dry-run -f {policy_file.name}")
    items = prepare(str(policy_file), None)
    bad = [p for p in items if not p.valid]
    if bad:
        raise RegionmeshError(f"{policy_file}: {bad[0].errors}")
    changes = [p.resource for p in items if p.resource is not None]
    echo(render_what_if(what_if(resources_now, changes)))

    sb: Dataplane | None = None
    if dataplane:
        problem = dataplane_problem()
        if problem:
            echo(f"\n(skipping the real-TCP proof: {problem}; run as root or pass --no-dataplane)")
        else:
            demo.section("dataplane: one agent per compute host, VMs in network namespaces")
            sb = Dataplane(sandbox, tmpdir, demo.cli.url or "", vms, echo)
            sb.build()
            sb.wait_routes()
            sb.wait_ready()
            ok = sb.probe(*ALLOWED)
            echo(f"  before the policy: {_pair(vms, ALLOWED)} TCP/{PORT}: {_word(ok)}")
            if ok:
                echo("  unexpected: the flow is open before the policy")
                return 1

    demo.section(f"apply {policy_file.name} (as calicoctl apply)")
    written = demo.cli.client().write_all("apply", changes)
    echo(f"Successfully applied {len(written)} resource(s)")
    _resources, snap = demo.snapshot()

    demo.section("who can reach whom AFTER")
    demo.show_connectivity(snap)

    src, dst = vms[ALLOWED[0]], vms[ALLOWED[1]]
    demo.section(
        f"explain {src.name} (region {src.region}) → {dst.name} (region {dst.region}) TCP/{PORT}"
    )
    echo(f"regionmesh explain --from {src.ref} \\\n    --to {dst.ref} --protocol TCP --port {PORT}")
    spec = FlowSpec(
        EndpointRef(src.endpoint.metadata.namespace, src.endpoint.metadata.name),
        EndpointRef(dst.endpoint.metadata.namespace, dst.endpoint.metadata.name),
        6,
        PORT,
    )
    echo(render_explanation(check_flow(snap, spec).verdict))

    if sb is not None:
        demo.section("prove it with real TCP")
        opened = sb.wait_probe(*ALLOWED, want=True, timeout=10.0)
        echo(f"  allowed  {_pair(vms, ALLOWED)} TCP/{PORT}: {_word(opened)}")
        denied_ok = not sb.probe(*DENIED)
        echo(f"  denied   {_pair(vms, DENIED)} TCP/{PORT}: {_word(not denied_ok)}")
        if not (opened and denied_ok):
            echo("  the dataplane does not match the policy verdicts; agent logs:")
            echo(sb.logs())
            return 1
        echo("  the kernel agrees with explain: policy verdicts proven with real TCP")
    return 0


def _pair(vms: dict[str, DemoVm], pair: tuple[str, str]) -> str:
    a, b = vms[pair[0]], vms[pair[1]]
    return f"{a.name} ({a.region}, {a.ip}) → {b.name} ({b.region}, {b.ip})"


def _word(connected: bool) -> str:
    return "CONNECTED" if connected else "blocked"


@click.command("demo", context_settings=CONTEXT)
@click.option(
    "--no-dataplane",
    is_flag=True,
    help="skip the agents/network namespaces/real TCP part (it also is skipped when not root)",
)
@click.option("--keep", is_flag=True, help="keep the temporary datastore file (prints its path)")
@datastore_options
@click.pass_context
def demo_cmd(ctx: click.Context, no_dataplane: bool, keep: bool) -> None:
    """Build the two-region cloud, apply allow-tcp-80, show who can reach whom before/after,
    explain one cross-region flow, and (as root) prove it with real TCP."""
    code = run_demo(cli_context(ctx), dataplane=not no_dataplane, keep=keep)
    if code:
        raise SystemExit(code)
