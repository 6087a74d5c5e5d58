"""The diagnosis engine behind ``regionmesh doctor``: datastore facts across regions → findings.

Two halves. :func:`diagnose` is pure: it takes a :class:`StoreFacts` (what the datastore holds:
endpoints, BGP Nodes, heartbeats, subnets, recorded findings, size) and returns :class:`Finding` objects,
each naming the object, the values and the fix. :func:`collect` reads those facts from a
:class:`~regionmesh.datastore.api.Datastore`. Comparing one host's config files (which needs
both the agent's and the Neutron side's readers) and printing are :mod:`regionmesh.cli.doctor`'s
job; policy semantics are not looked at here (that is ``explain``/``verify``).
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore
from regionmesh.model.regions import (
    NO_REGION_NAMESPACE,
    REGION_NAMESPACE_PREFIX,
    region_namespace,
    region_of_namespace,
    region_problem,
)

WEP_PREFIX = keys.resource_prefix("workloadendpoints")
NODE_PREFIX = keys.resource_prefix("nodes")
NP_PREFIX = keys.resource_prefix("networkpolicies")
FELIX_PREFIX = "/calico/felix/v2/"
DHCP_V2_PREFIX = "/calico/dhcp/v2/"
FINDINGS_PREFIX = "/calico/regionmesh/v1/findings/"
ETCD_DEFAULT_QUOTA = 2 * 1024 * 1024 * 1024
"""etcd's default ``--quota-backend-bytes`` (2 GiB)."""
STALE_AFTER_SECS = 300.0
"""A heartbeat older than this is stale (networking-calico warns at the same age)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: what, where, the values involved, and how to fix it."""

    code: str
    object: str
    message: str
    fix: str
    severity: str = "error"
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["values"] = dict(self.values)
        return d


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The parts of a WorkloadEndpoint the doctor needs."""

    namespace: str
    name: str
    node: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One ``/calico/felix/v2/<region-string>/host/<host>/…`` status record."""

    region_string: str
    host: str
    live: bool
    time: str | None


@dataclass(frozen=True, slots=True)
class Subnet:
    """A DHCP subnet record of one region."""

    region_string: str
    subnet_id: str
    cidr: str


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """The BGP addresses of one Calico ``Node`` (as stored, CIDR form or empty)."""

    name: str
    ipv4_address: str = ""
    ipv6_address: str = ""


@dataclass
class StoreFacts:
    """Everything :func:`diagnose` looks at, read from one datastore."""

    endpoints: list[Endpoint] = field(default_factory=list)
    nodes: list[NodeFacts] = field(default_factory=list)
    policy_namespaces: set[str] = field(default_factory=set)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    subnets: list[Subnet] = field(default_factory=list)
    recorded: list[dict[str, Any]] = field(default_factory=list)
    mirror_status: list[dict[str, Any]] = field(default_factory=list)
    """The address-group mirror status records (``/calico/regionmesh/v1/mirrors/…``)."""
    namespace_revisions: dict[str, int] = field(default_factory=dict)
    """Highest mod_revision of WorkloadEndpoints and NetworkPolicies per namespace."""
    size_bytes: int = 0
    quota_bytes: int = ETCD_DEFAULT_QUOTA
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def _region_of_string(region_string: str) -> str | None:
    return region_string[len("region-") :] if region_string.startswith("region-") else None


def _age(time_text: str | None, now: datetime) -> float | None:
    if not time_text:
        return None
    try:
        then = datetime.fromisoformat(time_text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()


def _check_region_names(facts: StoreFacts) -> Iterable[Finding]:
    seen: dict[str, str] = {}
    for ep in facts.endpoints:
        r = region_of_namespace(ep.namespace)
        if r is not None:
            seen.setdefault(r, f"namespace {ep.namespace}")
    for ns in facts.policy_namespaces:
        r = region_of_namespace(ns)
        if r is not None:
            seen.setdefault(r, f"namespace {ns}")
    for hb in facts.heartbeats:
        r = _region_of_string(hb.region_string)
        if r is not None:
            seen.setdefault(r, f"heartbeat of host {hb.host}")
    for sn in facts.subnets:
        r = _region_of_string(sn.region_string)
        if r is not None:
            seen.setdefault(r, f"subnet {sn.subnet_id}")
    for region, where in sorted(seen.items()):
        problem = region_problem(region)
        if problem:
            yield Finding(
                "invalid-region-name",
                where,
                f"region {region!r} (seen in {where}) is not a valid region name: must be {problem}",
                "rename the region in [calico] openstack_region (neutron.conf, on controllers and "
                "compute nodes) and OpenstackRegion (felix.cfg) to a valid DNS-1123 label, then "
                "resync",
                values={"region": region},
            )


def _check_heartbeats(facts: StoreFacts) -> Iterable[Finding]:
    regions_of_host: dict[str, set[str]] = defaultdict(set)
    live_hosts: dict[str, list[Heartbeat]] = defaultdict(list)
    last_of_host: dict[str, list[Heartbeat]] = defaultdict(list)
    for hb in facts.heartbeats:
        regions_of_host[hb.host].add(hb.region_string)
        (live_hosts if hb.live else last_of_host)[hb.host].append(hb)
    for host, regions in sorted(regions_of_host.items()):
        if len(regions) > 1:
            yield Finding(
                "host-in-several-regions",
                f"host {host}",
                f"host {host} has heartbeats under several regions: {', '.join(sorted(regions))}",
                f"set one OpenstackRegion in /etc/calico/felix.cfg on {host} and delete the "
                f"stale keys under /calico/felix/v2/<region>/host/{host}/",
                values={"host": host, "regions": sorted(regions)},
            )
    # Endpoints bound to a host must be in the namespace of the region the host heartbeats in.
    ep_by_host: dict[str, list[Endpoint]] = defaultdict(list)
    for ep in facts.endpoints:
        ep_by_host[ep.node].append(ep)
    for host, eps in sorted(ep_by_host.items()):
        host_regions = regions_of_host.get(host, set())
        if len(host_regions) == 1:
            (rs,) = host_regions
            region = _region_of_string(rs)
            expected_ns = region_namespace(region)
            wrong = sorted({ep.namespace for ep in eps if ep.namespace != expected_ns})
            for ns in wrong:
                ep_region = region_of_namespace(ns)
                names = [ep.name for ep in eps if ep.namespace == ns]
                yield Finding(
                    "region-mismatch",
                    f"host {host}",
                    f"host {host} heartbeats under {rs} but {len(names)} endpoint(s) bound to it "
                    f"are in namespace {ns} (e.g. {names[0]}): the Neutron server of region "
                    f"{ep_region or '(none)'} sees no live agent on {host}, so port binding "
                    "there fails and VMs cannot launch",
                    f"make OpenstackRegion in /etc/calico/felix.cfg and [calico] "
                    f"openstack_region in neutron.conf on {host} both say "
                    f"{ep_region or '(unset)'} (or move the host to region {region}), then "
                    "restart the agent",
                    values={
                        "host": host,
                        "heartbeat_region": region,
                        "endpoint_region": ep_region,
                        "endpoints": names[:10],
                    },
                )
        if host not in live_hosts:
            last = last_of_host.get(host)
            if last:
                age = _age(last[0].time, facts.now)
                age_text = f"{age:.0f} s ago" if age is not None else "at an unknown time"
                yield Finding(
                    "stale-agent",
                    f"host {host}",
                    f"the agent on host {host} last reported {age_text} ({last[0].region_string}); "
                    f"its {len(eps)} endpoint(s) are not being updated",
                    f"check `regionmesh agent` on {host} (service running, datastore reachable)",
                    values={"host": host, "last_report": last[0].time, "endpoints": len(eps)},
                )
            else:
                yield Finding(
                    "missing-agent",
                    f"host {host}",
                    f"no agent has ever reported from host {host}, which has {len(eps)} "
                    "endpoint(s)",
                    f"install and start `regionmesh agent` on {host} with FelixHostname={host}",
                    values={"host": host, "endpoints": len(eps)},
                )
    for host, hbs in sorted(live_hosts.items()):
        for hb in hbs:
            age = _age(hb.time, facts.now)
            if age is not None and age > STALE_AFTER_SECS:
                yield Finding(
                    "stale-agent",
                    f"host {host}",
                    f"the heartbeat of host {host} ({hb.region_string}) says {hb.time}, "
                    f"{age:.0f} s ago, although its key is still live",
                    f"check the clock and the agent on {host}",
                    severity="warning",
                    values={"host": host, "time": hb.time},
                )


def _check_unregioned(facts: StoreFacts) -> Iterable[Finding]:
    namespaces = {ep.namespace for ep in facts.endpoints} | facts.policy_namespaces
    regioned = sorted(ns for ns in namespaces if ns.startswith(REGION_NAMESPACE_PREFIX))
    if NO_REGION_NAMESPACE in namespaces and regioned:
        count = sum(1 for ep in facts.endpoints if ep.namespace == NO_REGION_NAMESPACE)
        yield Finding(
            "unregioned-namespace",
            f"namespace {NO_REGION_NAMESPACE}",
            f"the store holds the unregioned namespace {NO_REGION_NAMESPACE!r} ({count} "
            f"endpoint(s)) next to regioned ones ({', '.join(regioned)}): a Neutron server "
            "without openstack_region shares this store with regioned ones",
            "set [calico] openstack_region on every Neutron server and compute node that uses "
            "this datastore, then run `regionmesh resync` in that region",
            values={"regioned_namespaces": regioned, "endpoints": count},
        )


def _check_subnets(facts: StoreFacts) -> Iterable[Finding]:
    nets = []
    for sn in facts.subnets:
        try:
            nets.append((ipaddress.ip_network(sn.cidr, strict=False), sn))
        except ValueError:
            continue
    nets.sort(key=lambda pair: (pair[0].version, int(pair[0].network_address)))
    for i, (net_a, a) in enumerate(nets):
        for net_b, b in nets[i + 1 :]:
            if net_b.version != net_a.version or int(net_b.network_address) > int(
                net_a.broadcast_address
            ):
                break
            if a.region_string != b.region_string and net_a.overlaps(net_b):
                yield Finding(
                    "overlapping-subnets",
                    f"subnet {a.subnet_id}",
                    f"subnet {a.subnet_id} {a.cidr} ({a.region_string}) overlaps subnet "
                    f"{b.subnet_id} {b.cidr} ({b.region_string}): cross-region policy by "
                    "address becomes ambiguous",
                    "renumber one of the subnets; the regionmesh Neutron driver refuses new "
                    "overlaps in precommit",
                    values={"a": asdict(a), "b": asdict(b)},
                )


def _check_size(facts: StoreFacts) -> Iterable[Finding]:
    if facts.quota_bytes and facts.size_bytes > 0.8 * facts.quota_bytes:
        pct = 100.0 * facts.size_bytes / facts.quota_bytes
        yield Finding(
            "datastore-size",
            "datastore",
            f"the datastore holds {facts.size_bytes} bytes, {pct:.0f}% of the quota "
            f"({facts.quota_bytes} bytes); etcd refuses writes when the quota is reached",
            "compact and defragment etcd, or raise --quota-backend-bytes",
            severity="warning" if pct < 95 else "error",
            values={"size_bytes": facts.size_bytes, "quota_bytes": facts.quota_bytes},
        )


def _recorded(facts: StoreFacts) -> Iterable[Finding]:
    """Findings recorded by the Neutron driver (e.g. a failed bind on a host of another region)."""
    for rec in facts.recorded:
        region = rec.get("region") or "(no region)"
        yield Finding(
            str(rec.get("kind", "recorded")),
            f"{rec.get('subject', rec.get('key', '?'))} (recorded by the Neutron server of "
            f"region {region} at {rec.get('time', '?')})",
            str(rec.get("message", "")),
            str(
                rec.get("fix") or f"see the message; delete the key {rec.get('key', '')} once fixed"
            ),
            values={k: v for k, v in rec.items() if k != "message"},
        )


# --- BGP: Nodes and their addresses (datastore only) --------------------------------------------


def _bgp_ip(text: str) -> str | None:
    """The address part of a Node's ``ipv4Address``/``ipv6Address`` (canonical), or None."""
    try:
        return str(ipaddress.ip_interface(text).ip) if text else None
    except ValueError:
        return None


def bgp_findings(facts: StoreFacts) -> Iterable[Finding]:
    """Nodes without a BGP address, BGP addresses used by several Nodes, and endpoints on hosts
    that have no Node. The last one only when BGP is in use (at least one Node is stored):
    without a Node the host's BGP daemon has no address, so its VMs are unreachable from
    other hosts."""
    if not facts.nodes:
        return
    by_address: dict[str, list[NodeFacts]] = defaultdict(list)
    for node in sorted(facts.nodes, key=lambda n: n.name):
        addresses = [a for a in (_bgp_ip(node.ipv4_address), _bgp_ip(node.ipv6_address)) if a]
        if not addresses:
            yield Finding(
                "node-without-bgp-address",
                f"node {node.name}",
                f"Node {node.name} has no usable BGP address (spec.bgp.ipv4Address and ipv6Address "
                "are unset or invalid): its BGP daemon cannot peer, so its VMs get no routes from "
                "other hosts and other hosts none to them",
                f"set spec.bgp.ipv4Address (CIDR form, e.g. 10.0.0.1/24) on Node {node.name}: "
                f"`calicoctl get node {node.name} -o yaml`, edit, `calicoctl apply -f`",
                values={"node": node.name},
            )
        for addr in addresses:
            by_address[addr].append(node)
    for addr, nodes in sorted(by_address.items()):
        if len(nodes) > 1:
            names = [n.name for n in nodes]
            yield Finding(
                "duplicate-bgp-address",
                f"node {names[0]}",
                f"BGP address {addr} is used by {len(names)} Nodes: {', '.join(names)}; "
                "their sessions and router ids collide and their routes overwrite each other",
                "give each Node its own spec.bgp address (the host's address on the fabric)",
                values={"address": addr, "nodes": names},
            )
    known = {n.name for n in facts.nodes}
    by_host: dict[str, list[Endpoint]] = defaultdict(list)
    for ep in facts.endpoints:
        if ep.node and ep.node not in known:
            by_host[ep.node].append(ep)
    for host, eps in sorted(by_host.items()):
        yield Finding(
            "endpoints-without-node",
            f"host {host}",
            f"{len(eps)} workload endpoint(s) are on host {host} (e.g. {eps[0].namespace}/"
            f"{eps[0].name}), which has no Node resource: with BGP in use, no host announces "
            "routes to these VMs",
            f"create Node {host} with spec.bgp.ipv4Address set to {host}'s fabric address "
            "(`calicoctl apply -f node.yaml`)",
            values={"host": host, "endpoints": [f"{e.namespace}/{e.name}" for e in eps[:10]]},
        )


def collect_nodes(store: Datastore) -> list[NodeFacts]:
    """Every stored Node's name and BGP addresses (values that are not JSON objects are skipped)."""
    out = []
    for kv in store.list(NODE_PREFIX).items:
        parsed = keys.parse_resource_key(kv.key)
        doc = _json(kv.value)
        if parsed is None or parsed[1] is not None or not isinstance(doc, dict):
            continue
        spec = doc.get("spec")
        bgp = spec.get("bgp") if isinstance(spec, dict) else None
        bgp = bgp if isinstance(bgp, dict) else {}
        out.append(
            NodeFacts(
                parsed[2], str(bgp.get("ipv4Address") or ""), str(bgp.get("ipv6Address") or "")
            )
        )
    return out


def diagnose(facts: StoreFacts) -> list[Finding]:
    """Every finding for the facts, in a stable order (pure)."""
    out: list[Finding] = []
    for check in (
        _check_region_names,
        _check_unregioned,
        _check_heartbeats,
        _check_subnets,
        _check_size,
        bgp_findings,
        _recorded,
    ):
        out.extend(check(facts))
    return out


def _json(value: bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return None


def collect(store: Datastore) -> StoreFacts:
    """Read the facts :func:`diagnose` needs from a datastore."""
    facts = StoreFacts()
    for kv in store.list(keys.MIRROR_STATUS_PREFIX).items:
        status = _json(kv.value)
        if isinstance(status, dict):
            facts.mirror_status.append(status)
    for kv in [*store.list(WEP_PREFIX).items, *store.list(NP_PREFIX).items]:
        ns_parsed = keys.parse_resource_key(kv.key)
        if ns_parsed is not None and ns_parsed[1]:
            space = ns_parsed[1]
            facts.namespace_revisions[space] = max(
                facts.namespace_revisions.get(space, 0), kv.mod_revision
            )
    for kv in store.list(WEP_PREFIX).items:
        parsed = keys.parse_resource_key(kv.key)
        doc = _json(kv.value)
        if parsed is None or not isinstance(doc, dict):
            continue
        _plural, ns, name = parsed
        node = str((doc.get("spec") or {}).get("node", ""))
        facts.endpoints.append(Endpoint(ns or "", name, node))
    facts.nodes = collect_nodes(store)
    for kv in store.list(NP_PREFIX).items:
        parsed = keys.parse_resource_key(kv.key)
        if parsed is not None and parsed[1]:
            facts.policy_namespaces.add(parsed[1])
    for kv in store.list(FELIX_PREFIX).items:
        st = keys.parse_felix_status_key(kv.key)
        live = True
        if st is None:
            parts = kv.key.split("/")
            # /calico/felix/v2/<rs>/host/<host>/last_reported_status
            if len(parts) == 7 and parts[4] == "host" and parts[6] == "last_reported_status":
                doc = _json(kv.value)
                t = doc.get("time") if isinstance(doc, dict) else None
                facts.heartbeats.append(Heartbeat(parts[3], parts[5], False, t))
            continue
        doc = _json(kv.value)
        t = doc.get("time") if isinstance(doc, dict) else None
        facts.heartbeats.append(Heartbeat(st.region_string, st.hostname, live, t))
    # a host with a live status key also has last_reported_status: keep only the live one
    live_pairs = {(h.region_string, h.host) for h in facts.heartbeats if h.live}
    facts.heartbeats = [
        h for h in facts.heartbeats if h.live or (h.region_string, h.host) not in live_pairs
    ]
    for kv in store.list(DHCP_V2_PREFIX).items:
        parts = kv.key.split("/")
        doc = _json(kv.value)
        if len(parts) == 7 and parts[5] == "subnet" and isinstance(doc, dict) and doc.get("cidr"):
            facts.subnets.append(Subnet(parts[4], parts[6], str(doc["cidr"])))
    for kv in store.list(FINDINGS_PREFIX).items:
        doc = _json(kv.value)
        if isinstance(doc, dict):
            doc.setdefault("key", kv.key)
            facts.recorded.append(doc)
    facts.size_bytes = sum(len(kv.key) + len(kv.value) for kv in store.list(keys.CALICO_ROOT).items)
    return facts
