"""Pure rendering: the dataplane's desired state → nft table models (Felix's nftables layout).

Given the current :class:`~regionmesh.dataplane.state.DesiredState` (what the messages said,
kept in :mod:`.state`), this module produces the
chains, sets and verdict-map elements of ``table ip calico`` and ``table ip6 calico``
(agent-dataplane.md §3, §6):

* base chains ``raw-PREROUTING`` (mark workload traffic, DHCP exception, RPF anti-spoofing),
  ``nat-PREROUTING`` (floating-IP DNAT, then the OpenStack metadata DNAT, v4 only),
  ``nat-OUTPUT`` (floating-IP DNAT for host-originated traffic), ``nat-POSTROUTING``
  (floating-IP hairpin SNAT), ``filter-INPUT`` (VM→host:
  special cases, the VM's egress policy, then ``DefaultEndpointToHostAction``) and
  ``filter-FORWARD`` (VM egress then VM ingress, accept on the accept mark);
* dispatch chains that look the interface up in a verdict map and drop unknown interfaces of
  the workload prefixes (fail closed);
* per endpoint ``filter-cali-tw-<tap>`` (to the VM) and ``filter-cali-fw-<tap>`` (from the
  VM): conntrack fast path, source anti-spoofing, tiers with accept/pass marks and end-of-tier
  drops, profiles, final drop;
* per policy/profile ``filter-cali-pi-/po-/pri-/pro-<id>`` chains, one rule (or one rule per
  OR-alternative) per message rule;
* one named set per IP set and family: plain ``ipv4_addr`` sets when every member is a host
  address, ``flags interval`` sets (members collapsed, no overlaps) only when real CIDRs occur.
* ``nat-cali-fip-dnat`` / ``nat-cali-fip-snat`` (Felix ``cali-fip-dnat``/``cali-fip-snat``,
  ``rules/nat.go``): per floating IP of every local endpoint ``daddr <ext> dnat to <int>``, and
  for hairpin only ``saddr <int> daddr <int> snat to <ext>``. The DNAT runs at dstnat priority,
  before the forward filter, so policy sees the internal address.

Every rule carries a ``cali:<hash>`` comment so a resync can spot drift. Nothing here does
I/O or remembers what was programmed: diffing is the driver's, scripting is :mod:`.tables`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Callable, Iterable

from regionmesh.dataplane import names
from regionmesh.dataplane.messages import (
    Action,
    ActivePolicyUpdate,
    ActiveProfileUpdate,
    EndpointToHostAction,
    HostConfig,
    NatMapping,
    PortRange,
    Rule,
    TierDefaultAction,
    WorkloadEndpointUpdate,
)
from regionmesh.dataplane.state import DesiredState
from regionmesh.dataplane.tables import (
    ChainModel,
    TableModel,
    collapse,
    interval_element,
)

# Felix's mark bits, allocated from IptablesMarkMask 0xffff0000 lowest first (§3.2).
MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
MARK_SCRATCH0 = 0x80000
MARK_SCRATCH1 = 0x100000


def _clear(bits: int) -> str:
    return f"{~bits & 0xFFFFFFFF:#x}"


CLEAR_ALL = _clear(MARK_ACCEPT | MARK_PASS | MARK_SCRATCH0 | MARK_SCRATCH1)
CLEAR_FORWARD = _clear(MARK_PASS | MARK_SCRATCH0 | MARK_SCRATCH1)
CLEAR_ACCEPT_PASS = _clear(MARK_ACCEPT | MARK_PASS)
CLEAR_PASS = _clear(MARK_PASS)
SET_ACCEPT = f"meta mark set mark | {MARK_ACCEPT:#x}"
SET_PASS = f"meta mark set mark | {MARK_PASS:#x}"
IF_ACCEPTED = f"meta mark & {MARK_ACCEPT:#x} == {MARK_ACCEPT:#x}"
IF_NOT_PASSED = f"meta mark & {MARK_PASS:#x} == 0"
IF_WORKLOAD = f"meta mark & {MARK_SCRATCH0:#x} == {MARK_SCRATCH0:#x}"

METADATA_IP = "169.254.169.254"
LOG_PREFIX = "calico-packet: "
_HOOKS = {
    "raw-PREROUTING": "type filter hook prerouting priority raw; policy accept;",
    "nat-PREROUTING": "type nat hook prerouting priority dstnat; policy accept;",
    # nft 1.0.6 accepts the dstnat/srcnat keywords only on prerouting/postrouting: numbers
    # here (dstnat = -100 on output, Felix's srcnat + 10 on postrouting).
    "nat-OUTPUT": "type nat hook output priority -100; policy accept;",
    "nat-POSTROUTING": "type nat hook postrouting priority 110; policy accept;",
    "filter-INPUT": "type filter hook input priority filter; policy accept;",
    "filter-FORWARD": "type filter hook forward priority filter; policy accept;",
}


def nft_family(family: int) -> str:
    """The nft table family for an IP version."""
    return "ip" if family == 4 else "ip6"


def tagged(body: str, text: str = "") -> str:
    """A rule line with Felix-style ``cali:<hash>`` comment (plus optional human text)."""
    digest = hashlib.blake2b(body.encode(), digest_size=12).digest()
    tag = "cali:" + base64.urlsafe_b64encode(digest).decode()[:16]
    comment = f"{tag}; {text[:100]}" if text else tag
    return f'{body} comment "{comment}"'


# -------------------------------------------------------------------- rules ----


class UnknownIPSet(Exception):
    """Internal: a rule names an IP set the dataplane does not have (contract violation)."""


def _ports(ports: tuple[PortRange, ...]) -> str:
    items = [str(p.first) if p.first == p.last else f"{p.first}-{p.last}" for p in ports]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _nets_expr(nets: Iterable[str]) -> str:
    parsed = [ipaddress.ip_network(n, strict=False) for n in nets]
    items = [interval_element(n) for n in collapse(parsed)]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _family_nets(nets: tuple[str, ...], family: int) -> tuple[list[str], bool]:
    """(nets of this family, catch-all present) for one net list."""
    mine = [n for n in nets if ipaddress.ip_network(n, strict=False).version == family]
    catch_all = any(ipaddress.ip_network(n, strict=False).prefixlen == 0 for n in mine)
    return mine, catch_all


def rule_bodies(rule: Rule, family: int, set_exists: Callable[[str], bool]) -> list[str]:  # noqa: C901 - one nft match per rule field, in nft order
    """nft match text for ``rule`` in ``family`` (no action); one entry per OR-alternative.

    Empty when the rule cannot match in this family (policy-model.md §2.7). Raises
    :class:`UnknownIPSet` if it names an IP set that does not exist.
    """
    if rule.ip_version not in (None, family):
        return []
    if (rule.protocol == 1 and family == 6) or (rule.protocol == 58 and family == 4):
        return []
    ip = nft_family(family)
    parts: list[str] = []
    if rule.protocol is not None:
        parts.append(f"meta l4proto {rule.protocol}")
    if rule.not_protocol is not None:
        parts.append(f"meta l4proto != {rule.not_protocol}")
    for nets, neg, where in (
        (rule.src_nets, False, "saddr"),
        (rule.not_src_nets, True, "saddr"),
        (rule.dst_nets, False, "daddr"),
        (rule.not_dst_nets, True, "daddr"),
    ):
        if not nets:
            continue
        mine, catch_all = _family_nets(nets, family)
        if not mine:
            return []  # only the other family's CIDRs: never matches here
        if neg:
            if catch_all:
                return []  # "not anywhere" matches nothing
            parts.append(f"{ip} {where} != {_nets_expr(mine)}")
        elif not catch_all:
            parts.append(f"{ip} {where} {_nets_expr(mine)}")

    def ref(set_id: str) -> str:
        if not set_exists(set_id):
            raise UnknownIPSet(set_id)
        return "@" + names.set_name(set_id, family)

    for ids, neg, where in (
        (rule.src_ipset_ids, False, "saddr"),
        (rule.not_src_ipset_ids, True, "saddr"),
        (rule.dst_ipset_ids, False, "daddr"),
        (rule.not_dst_ipset_ids, True, "daddr"),
    ):
        for set_id in ids:
            parts.append(f"{ip} {where} {'!= ' if neg else ''}{ref(set_id)}")
    if rule.src_ports:
        parts.append(f"th sport {_ports(rule.src_ports)}")
    if rule.not_src_ports:
        parts.append(f"th sport != {_ports(rule.not_src_ports)}")
    if rule.not_dst_ports:
        parts.append(f"th dport != {_ports(rule.not_dst_ports)}")
    for set_id in rule.not_dst_named_port_ipset_ids:
        parts.append(f"{ip} daddr . meta l4proto . th dport != {ref(set_id)}")
    icmp = "icmp" if family == 4 else "icmpv6"
    if rule.icmp is not None:
        parts.append(f"{icmp} type {rule.icmp.type}")
        if rule.icmp.code is not None:
            parts.append(f"{icmp} code {rule.icmp.code}")
    if rule.not_icmp is not None:
        if rule.not_icmp.code is None:
            parts.append(f"{icmp} type != {rule.not_icmp.type}")
        else:
            t, c = rule.not_icmp.type, rule.not_icmp.code
            parts.append(f"{icmp} type . {icmp} code != {{ {t} . {c} }}")
    # Destination ports and named ports are ORed: one rule per alternative gives the same
    # first-match result for every action.
    alternatives: list[str] = []
    if rule.dst_ports:
        alternatives.append(f"th dport {_ports(rule.dst_ports)}")
    for set_id in rule.dst_named_port_ipset_ids:
        alternatives.append(f"{ip} daddr . meta l4proto . th dport {ref(set_id)}")
    base = " ".join(parts)
    if not alternatives:
        return [base]
    return [f"{base} {alt}".strip() for alt in alternatives]


_ACTIONS = {
    Action.ALLOW: f"{SET_ACCEPT} return",
    Action.DENY: "drop",
    Action.PASS: f"{SET_PASS} return",
    Action.LOG: f'log prefix "{LOG_PREFIX}" level info',
}


def rules_chain(
    rules: tuple[Rule, ...], family: int, set_exists: Callable[[str], bool]
) -> ChainModel:
    """A policy or profile chain. Fails closed (drops) if a rule names an unknown IP set."""
    lines: list[str] = []
    try:
        for rule in rules:
            action = _ACTIONS[rule.action]
            for body in rule_bodies(rule, family, set_exists):
                text = f"{rule.action.value} {rule.rule_id}".strip()
                lines.append(tagged(f"{body} {action}".strip(), text))
    except UnknownIPSet as exc:
        return ChainModel((tagged("drop", f"fail closed: unknown IP set {exc.args[0]}"),))
    return ChainModel(tuple(lines))


def policy_chains(
    policy_id: str,
    msg: ActivePolicyUpdate | ActiveProfileUpdate,
    family: int,
    set_exists: Callable[[str], bool],
    profile: bool = False,
) -> dict[str, ChainModel]:
    """The inbound and outbound chains of one policy (or profile)."""
    name = names.profile_chain if profile else names.policy_chain
    return {
        name(policy_id, True): rules_chain(msg.inbound_rules, family, set_exists),
        name(policy_id, False): rules_chain(msg.outbound_rules, family, set_exists),
    }


# ---------------------------------------------------------------- endpoints ----


def endpoint_chain(
    ep: WorkloadEndpointUpdate,
    family: int,
    to_workload: bool,
    policy_exists: Callable[[str], bool],
    profile_exists: Callable[[str], bool],
) -> ChainModel:
    """``filter-cali-tw-<tap>`` (``to_workload``) or ``filter-cali-fw-<tap>`` for one family."""
    ip = nft_family(family)
    lines = [
        tagged("ct state established,related accept"),
        tagged("ct state invalid drop"),
    ]
    if not ep.admin_up:
        lines.append(tagged("drop", "Endpoint admin disabled"))
        return ChainModel(tuple(lines))
    lines.append(tagged(f"meta mark set mark & {CLEAR_ACCEPT_PASS}"))
    if not to_workload:
        nets = ep.ipv4_nets if family == 4 else ep.ipv6_nets
        if nets:
            lines.append(tagged(f"{ip} saddr != {_nets_expr(nets)} drop", "Anti-spoof"))
        else:
            lines.append(tagged("drop", "Anti-spoof: endpoint has no address of this family"))
        lines.append(tagged("udp dport 4789 drop", "Drop VXLAN encapped packets from workloads"))
        if family == 4:
            lines.append(tagged("meta l4proto 4 drop", "Drop IPinIP encapped packets"))
    for tier in ep.tiers:
        policies = tier.ingress_policies if to_workload else tier.egress_policies
        if not policies:
            continue
        lines.append(tagged(f"meta mark set mark & {CLEAR_PASS}", f"Start of tier {tier.name}"))
        for pid in policies:
            if not policy_exists(pid):
                lines.append(tagged("drop", f"fail closed: unknown policy {pid}"))
                return ChainModel(tuple(lines))
            chain = names.policy_chain(pid, to_workload)
            lines.append(tagged(f"{IF_NOT_PASSED} jump {chain}"))
            lines.append(tagged(f"{IF_ACCEPTED} return", "Return if policy accepted"))
        if tier.default_action is not TierDefaultAction.PASS:
            lines.append(
                tagged(
                    f"{IF_NOT_PASSED} drop",
                    f"End of tier {tier.name}. Drop if no policies passed packet",
                )
            )
    for prof in ep.profile_ids:
        if not profile_exists(prof):
            lines.append(tagged("drop", f"fail closed: unknown profile {prof}"))
            return ChainModel(tuple(lines))
        lines.append(tagged(f"jump {names.profile_chain(prof, to_workload)}"))
        lines.append(tagged(f"{IF_ACCEPTED} return", "Return if profile accepted"))
    lines.append(tagged("drop", "Drop if no profiles matched"))
    return ChainModel(tuple(lines))


def dispatch_verdicts(ep: WorkloadEndpointUpdate) -> dict[str, tuple[str, str]]:
    """Map name → (interface, verdict) for the endpoint's two dispatch-map elements."""
    return {
        names.FROM_WL_DISPATCH: (ep.name, f"goto {names.endpoint_chain(ep.name, False)}"),
        names.TO_WL_DISPATCH: (ep.name, f"goto {names.endpoint_chain(ep.name, True)}"),
    }


# ------------------------------------------------------------- floating IPs ----


def endpoint_nats(ep: WorkloadEndpointUpdate, family: int) -> tuple[NatMapping, ...]:
    """The endpoint's floating IPs of one family."""
    return ep.ipv4_nats if family == 4 else ep.ipv6_nats


def floating_ip_maps(
    endpoints: Iterable[WorkloadEndpointUpdate], family: int
) -> tuple[dict[str, str], dict[str, str]]:
    """(DNATs external → internal, SNATs internal → external) over all endpoints of a family.

    As Felix's ``floatingIPManager``: a floating IP claimed for several internal addresses
    maps to the one that sorts first (as text), and an internal address with several
    floating IPs is SNATed to the first of them.
    """
    dnats: dict[str, str] = {}
    for ep in endpoints:
        for nat in endpoint_nats(ep, family):
            ext = str(ipaddress.ip_address(nat.external))
            internal = str(ipaddress.ip_address(nat.internal))
            current = dnats.get(ext)
            if current is None or internal < current:
                dnats[ext] = internal
    snats: dict[str, str] = {}
    for ext, internal in dnats.items():
        current = snats.get(internal)
        if current is None or ext < current:
            snats[internal] = ext
    return dnats, snats


def fip_chains(endpoints: Iterable[WorkloadEndpointUpdate], family: int) -> dict[str, ChainModel]:
    """``nat-cali-fip-dnat`` and ``nat-cali-fip-snat`` for one family (Felix ``rules/nat.go``).

    DNAT runs in prerouting and output (so the forward filter and the endpoint's ingress
    policy see the internal address); SNAT matches only hairpin traffic (the VM reaching its
    own floating IP), so the VM sees the reply come from the floating IP.
    """
    ip = nft_family(family)
    dnats, snats = floating_ip_maps(endpoints, family)
    dnat = tuple(
        tagged(f"{ip} daddr {ext} dnat to {dnats[ext]}", "Floating IP") for ext in sorted(dnats)
    )
    snat = tuple(
        tagged(f"{ip} saddr {i} {ip} daddr {i} snat to {snats[i]}", "Floating IP hairpin")
        for i in sorted(snats)
    )
    return {names.FIP_DNAT: ChainModel(dnat), names.FIP_SNAT: ChainModel(snat)}


# ------------------------------------------------------------------ static ----


def static_chains(config: HostConfig, family: int) -> dict[str, ChainModel]:
    """Base chains, dispatch chains and the workload-to-host chain for one family."""
    wild = [f'"{p}*"' for p in config.interface_prefixes]
    chains: dict[str, ChainModel] = {}

    def add(name: str, *lines: str) -> None:
        chains[name] = ChainModel(tuple(lines), _HOOKS.get(name))

    raw = [tagged(f"meta mark set mark & {CLEAR_ALL}")]
    raw += [tagged(f"iifname {w} meta mark set mark | {MARK_SCRATCH0:#x}") for w in wild]
    if family == 4:
        raw.append(
            tagged(
                f"{IF_WORKLOAD} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept",
                "OpenStack DHCP from 0.0.0.0",
            )
        )
    else:
        raw.append(tagged(f"{IF_WORKLOAD} ip6 saddr fe80::/10 accept", "Link-local"))
    raw.append(tagged(f"{IF_WORKLOAD} fib saddr . mark . iif oif 0 drop", "RPF check failed"))
    add("raw-PREROUTING", tagged("jump raw-cali-PREROUTING"))
    add("raw-cali-PREROUTING", *raw)

    # Felix StaticNATPreroutingChains/OutputChains/PostroutingChains (OpenStack): floating
    # IPs first, then the metadata DNAT. The fip chains themselves are fip_chains().
    nat = [tagged(f"jump {names.FIP_DNAT}")]
    if family == 4 and config.metadata_addr is not None:
        target = f"{config.metadata_addr}:{config.metadata_port}"
        nat += [
            tagged(
                f"iifname {w} ip daddr {METADATA_IP} tcp dport 80 dnat to {target}",
                "OpenStack metadata",
            )
            for w in wild
        ]
    add("nat-PREROUTING", tagged("jump nat-cali-PREROUTING"))
    add("nat-cali-PREROUTING", *nat)
    add("nat-OUTPUT", tagged("jump nat-cali-OUTPUT"))
    add("nat-cali-OUTPUT", tagged(f"jump {names.FIP_DNAT}"))
    add("nat-POSTROUTING", tagged("jump nat-cali-POSTROUTING"))
    add("nat-cali-POSTROUTING", tagged(f"jump {names.FIP_SNAT}"))

    add("filter-INPUT", tagged("jump filter-cali-INPUT"))
    add("filter-cali-INPUT", *[tagged(f"iifname {w} goto {names.WL_TO_HOST}") for w in wild])
    to_host: list[str] = []
    if family == 4:
        if config.metadata_addr is not None:
            to_host.append(
                tagged(
                    f"ip daddr {config.metadata_addr} tcp dport {config.metadata_port} accept",
                    "OpenStack metadata special case",
                )
            )
        to_host.append(tagged("udp sport 68 udp dport 67 accept", "OpenStack DHCP special case"))
    else:
        to_host.append(
            tagged("icmpv6 type { 130, 131, 132, 133, 135, 136 } accept", "IPv6 ND and MLD")
        )
        to_host.append(tagged("udp sport 546 udp dport 547 accept", "OpenStack DHCPv6"))
    to_host.append(tagged("udp dport 53 accept", "OpenStack DNS special case"))
    to_host.append(tagged(f"jump {names.FROM_WL_DISPATCH}"))
    verdict = {
        EndpointToHostAction.DROP: "drop",
        EndpointToHostAction.RETURN: "return",
        EndpointToHostAction.ACCEPT: "accept",
    }[config.default_endpoint_to_host_action]
    to_host.append(tagged(verdict, "Configured DefaultEndpointToHostAction"))
    add(names.WL_TO_HOST, *to_host)

    add(
        "filter-FORWARD",
        tagged("jump filter-cali-FORWARD"),
        tagged(f"{IF_ACCEPTED} accept", "Policy explicitly accepted packet."),
    )
    fwd = [tagged(f"meta mark set mark & {CLEAR_FORWARD}")]
    fwd += [tagged(f"iifname {w} jump {names.FROM_WL_DISPATCH}") for w in wild]
    fwd += [tagged(f"oifname {w} jump {names.TO_WL_DISPATCH}") for w in wild]
    add("filter-cali-FORWARD", *fwd)
    add(
        names.FROM_WL_DISPATCH,
        tagged(f"iifname vmap @{names.FROM_WL_DISPATCH}"),
        tagged("counter drop", "Unknown interface"),
    )
    add(
        names.TO_WL_DISPATCH,
        tagged(f"oifname vmap @{names.TO_WL_DISPATCH}"),
        tagged("counter drop", "Unknown interface"),
    )
    return chains


# ------------------------------------------------------------------- table ----


def render_table(state: DesiredState, family: int) -> TableModel:
    """The complete table for ``family`` (used for the first apply and after any error)."""
    t = TableModel(nft_family(family), names.TABLE)

    def set_exists(set_id: str) -> bool:
        return set_id in state.ipsets

    for set_id, ipset in state.ipsets.items():
        t.sets[names.set_name(set_id, family)] = ipset.model(family)
    t.maps[names.FROM_WL_DISPATCH] = {}
    t.maps[names.TO_WL_DISPATCH] = {}
    t.chains.update(static_chains(state.config, family))
    t.chains.update(fip_chains(state.endpoints.values(), family))
    for pid, pol in state.policies.items():
        t.chains.update(policy_chains(pid, pol, family, set_exists))
    for pid, prof in state.profiles.items():
        t.chains.update(policy_chains(pid, prof, family, set_exists, profile=True))
    for ep in state.endpoints.values():
        for to_wl in (True, False):
            t.chains[names.endpoint_chain(ep.name, to_wl)] = endpoint_chain(
                ep, family, to_wl, state.policies.__contains__, state.profiles.__contains__
            )
        for mname, (key, verdict) in dispatch_verdicts(ep).items():
            t.maps[mname][key] = verdict
    return t
