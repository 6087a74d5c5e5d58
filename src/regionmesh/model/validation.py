"""calicoctl's defaulting and validation of v3 resources (policy-model.md §2.6 and §3).

* :func:`apply_defaults` — what the Calico client does before validating a write: policy
  ``types`` from the rules, ``spec.tier: default`` and the ``projectcalico.org/tier`` label,
  the ``default`` namespace for namespaced kinds, tier ``defaultAction: Deny`` (the built-in
  tiers ``default``/``kube-admin``/``kube-baseline`` also get their fixed order), and the
  WorkloadEndpoint name and namespace/orchestrator labels.
* :func:`validate` — every rule of §3 (names, labels/annotations, selectors, rules, per-kind
  specs), returning *all* problems as :class:`~regionmesh.errors.FieldError` with JSON paths.
* :func:`check` — validate and raise one :class:`~regionmesh.errors.ValidationError`.

Checks that need the datastore (the tier must exist, ``knp.default.*`` names are refused on
write, ``resourceVersion`` on create) are the datastore's and the CLI's business. Decoding
(unknown fields, JSON types, port syntax) happened before, in :mod:`regionmesh.model.codec`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from regionmesh.errors import FieldError, ValidationError
from regionmesh.model import bgp_checks
from regionmesh.model.bgp import BGPConfiguration, BGPPeer, Node
from regionmesh.model.config import DURATION_FIELDS, FelixConfiguration, parse_go_duration
from regionmesh.model.endpoints import (
    EndpointPort,
    HostEndpoint,
    WorkloadEndpoint,
    WorkloadEndpointPort,
    workload_endpoint_name,
)
from regionmesh.model.meta import NAMESPACE_LABEL, ORCHESTRATOR_LABEL, Resource
from regionmesh.model.policy import (
    DEFAULT_TIER,
    POLICY_TYPES,
    GlobalNetworkPolicy,
    NetworkPolicy,
    Profile,
    Tier,
)
from regionmesh.model.regions import region_problem
from regionmesh.model.rules import ACTIONS, EntityRule, ICMPFields, Rule
from regionmesh.model.sets import GlobalNetworkSet, NetworkSet
from regionmesh.model.values import PROTOCOL_NUMBERS, Port, Protocol
from regionmesh.selector import SelectorError, parse

__all__ = [
    "NAMESPACE_LABEL",
    "ORCHESTRATOR_LABEL",
    "TIER_LABEL",
    "apply_defaults",
    "check",
    "default_policy_types",
    "validate",
]

TIER_LABEL = "projectcalico.org/tier"

MAX_SELECTOR_LENGTH = 1024
MAX_RULES_PER_DIRECTION = 1024
MAX_ANNOTATIONS_SIZE = 256 * 1024
DEFAULT_TIER_ORDER = 1_000_000.0
RESERVED_TIERS: dict[str, tuple[float, str]] = {
    "default": (DEFAULT_TIER_ORDER, "Deny"),
    "kube-admin": (1_000.0, "Pass"),
    "kube-baseline": (10_000_000.0, "Pass"),
}

# --- name and label syntax -------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
DNS_LABEL_RE = re.compile(rf"^{_LABEL}$")
DNS_SUBDOMAIN_RE = re.compile(rf"^{_SUBDOMAIN}$")
POLICY_NAME_RE = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
NP_SPECIAL_NAME_RE = re.compile(rf"^(knp|ossg)\.default\.{_SUBDOMAIN}$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_INTERFACE_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_INTERFACE_PREFIX_RE = re.compile(r"^[a-zA-Z0-9_-]{1,15}(,[a-zA-Z0-9_-]{1,15})*$")
_MAC_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_CIDR_TEXT_RE = re.compile(r"^[0-9A-Fa-f:.]+(/\d{1,3})?$")

_NAME_REASONS = {
    "label": (
        "name must consist of lower case alphanumeric characters or '-', and must start and "
        f"end with an alphanumeric character (regex: {DNS_LABEL_RE.pattern})"
    ),
    "policy": (
        "name must consist of lower case alphanumeric characters or '-' with at most one '.', "
        f"and must start and end with an alphanumeric character (regex: {POLICY_NAME_RE.pattern})"
    ),
    "subdomain": (
        "name must consist of lower case alphanumeric characters, '-' or '.', and must start "
        f"and end with an alphanumeric character (regex: {DNS_SUBDOMAIN_RE.pattern})"
    ),
}


class _Errors:
    """Collects FieldErrors; methods are the individual §3 checks."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, value: object, reason: str) -> None:
        self.items.append(FieldError(path, value, reason))

    # -- metadata -------------------------------------------------------------------------

    def name(self, name: str, kind: str, max_len: int = 253) -> None:
        path = "metadata.name"
        if kind == "label":
            ok = bool(DNS_LABEL_RE.match(name))
        elif kind == "policy":
            ok = bool(POLICY_NAME_RE.match(name))
        elif kind == "np":
            ok = bool(POLICY_NAME_RE.match(name) or NP_SPECIAL_NAME_RE.match(name))
            kind = "policy"
        else:
            ok = bool(DNS_SUBDOMAIN_RE.match(name))
        if not ok:
            self.add(path, name, _NAME_REASONS[kind])
        size = len(name.encode())
        if size > max_len:
            self.add(path, name, f"name is too long by {size - max_len} bytes")

    def labels(self, path: str, labels: Mapping[str, str]) -> None:
        for key, value in labels.items():
            problem = _qualified_name_problem(key)
            if problem:
                self.add(path, key, f"invalid label key {key!r}: {problem}")
            if len(value) > 63:
                self.add(path, value, f"label {key!r}: value must be no more than 63 characters")
            elif not _LABEL_VALUE_RE.match(value):
                self.add(
                    path,
                    value,
                    f"label {key!r}: a valid label value must be empty or consist of "
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )

    def annotations(self, path: str, annotations: Mapping[str, str]) -> None:
        total = 0
        for key, value in annotations.items():
            problem = _qualified_name_problem(key.lower())
            if problem:
                self.add(path, key, f"invalid annotation key {key!r}: {problem}")
            total += len(key.encode()) + len(value.encode())
        if total > MAX_ANNOTATIONS_SIZE:
            self.add(
                path,
                f"{total} bytes",
                f"annotations size must be no more than {MAX_ANNOTATIONS_SIZE} bytes",
            )

    def metadata(self, res: Resource) -> None:
        meta = res.metadata
        if res.info.namespaced:
            if not meta.namespace:
                self.add("metadata.namespace", "", f"namespace is required for {res.KIND}")
            elif not DNS_LABEL_RE.match(meta.namespace) or len(meta.namespace) > 63:
                self.add(
                    "metadata.namespace",
                    meta.namespace,
                    "namespace must be a DNS-1123 label of at most 63 characters",
                )
        elif meta.namespace:
            self.add(
                "metadata.namespace",
                meta.namespace,
                f"{res.KIND} is not namespaced; metadata.namespace must be empty",
            )
        self.labels("metadata.labels", meta.labels)
        self.annotations("metadata.annotations", meta.annotations)

    # -- selectors ------------------------------------------------------------------------

    def selector(
        self, path: str, text: str, *, allow_global_alone: bool = False, always: bool = False
    ) -> None:
        if not text and not always:
            return
        if len(text) > MAX_SELECTOR_LENGTH:
            self.add(
                path,
                text,
                f"selector is too long ({len(text)} characters, maximum {MAX_SELECTOR_LENGTH})",
            )
            return
        try:
            parsed = parse(text)
        except SelectorError as exc:
            self.add(path, text, f"invalid selector: {exc.reason} (at column {exc.column})")
            return
        if "global(" in text:
            if not allow_global_alone:
                self.add(
                    path,
                    text,
                    "global() can only be used in an EntityRule namespaceSelector",
                )
            elif str(parsed) != "global()":
                self.add(path, text, "global() cannot be combined with other selectors")

    # -- rules ----------------------------------------------------------------------------

    def rules(self, path: str, rules: list[Rule], *, direction: str, kind: str) -> None:
        if len(rules) > MAX_RULES_PER_DIRECTION:
            self.add(
                path,
                f"{len(rules)} rules",
                f"at most {MAX_RULES_PER_DIRECTION} rules are allowed per direction",
            )
        for i, rule in enumerate(rules):
            self.rule(f"{path}[{i}]", rule, direction=direction, kind=kind)

    def rule(self, path: str, rule: Rule, *, direction: str, kind: str) -> None:
        if rule.action not in ACTIONS:
            self.add(
                f"{path}.action",
                rule.action,
                "action is required"
                if not rule.action
                else "action must be one of " + ", ".join(ACTIONS),
            )
        if rule.ip_version is not None and rule.ip_version not in (4, 6):
            self.add(f"{path}.ipVersion", rule.ip_version, "ipVersion must be 4 or 6")
        for field, proto in (("protocol", rule.protocol), ("notProtocol", rule.not_protocol)):
            if proto is None:
                continue
            self.protocol(f"{path}.{field}", proto)
            if proto.value == "ICMP" and rule.ip_version == 6:
                self.add(f"{path}.{field}", proto.value, "protocol ICMP cannot be used with IPv6")
            if proto.value == "ICMPv6" and rule.ip_version == 4:
                self.add(f"{path}.{field}", proto.value, "protocol ICMPv6 cannot be used with IPv4")
        for field, icmp in (("icmp", rule.icmp), ("notICMP", rule.not_icmp)):
            if icmp is not None:
                self.icmp(f"{path}.{field}", icmp, rule.protocol)
        for side in ("source", "destination"):
            self.entity(f"{path}.{side}", getattr(rule, side), kind=kind)
        self.rule_ports(path, rule)
        self.rule_cidrs(path, rule)
        self.rule_services(path, rule, direction=direction, kind=kind)
        if rule.http is not None:
            self.http(path, rule, direction=direction)
        if rule.metadata is not None:
            self.annotations(f"{path}.metadata.annotations", rule.metadata.annotations)

    def protocol(self, path: str, proto: Protocol) -> None:
        if isinstance(proto.value, int):
            if not 1 <= proto.value <= 255:
                self.add(path, proto.value, "protocol number invalid")
        elif proto.value not in PROTOCOL_NUMBERS:
            self.add(path, proto.value, "protocol name invalid")

    def icmp(self, path: str, icmp: ICMPFields, protocol: Protocol | None) -> None:
        if icmp.type is not None and not 0 <= icmp.type <= 254:
            self.add(f"{path}.type", icmp.type, "ICMP type must be between 0 and 254")
        if icmp.code is not None:
            if not 0 <= icmp.code <= 255:
                self.add(f"{path}.code", icmp.code, "ICMP code must be between 0 and 255")
            if icmp.type is None:
                self.add(f"{path}.code", icmp.code, "ICMP code specified without an ICMP type")
        if protocol is None or protocol.value not in ("ICMP", "ICMPv6", 1, 58):
            self.add(
                path,
                icmp.model_dump(exclude_none=True),
                "ICMP fields require protocol to be set to ICMP or ICMPv6",
            )

    def entity(self, path: str, side: EntityRule, *, kind: str) -> None:
        self.selector(f"{path}.selector", side.selector)
        self.selector(f"{path}.notSelector", side.not_selector)
        self.selector(f"{path}.namespaceSelector", side.namespace_selector, allow_global_alone=True)
        if side.service_accounts is not None:
            self.selector(f"{path}.serviceAccounts.selector", side.service_accounts.selector)
            for i, sa in enumerate(side.service_accounts.names):
                if not DNS_SUBDOMAIN_RE.match(sa):
                    self.add(
                        f"{path}.serviceAccounts.names[{i}]",
                        sa,
                        "service account name must be a DNS-1123 subdomain",
                    )
        for field, ports in (("ports", side.ports), ("notPorts", side.not_ports)):
            for i, port in enumerate(ports):
                self.port(f"{path}.{field}[{i}]", port)

    def port(self, path: str, port: Port) -> None:
        if port.is_named:
            if not _iana_name_ok(port.name):
                self.add(
                    path,
                    port.name,
                    "invalid port name: must be a valid IANA service name (1-15 lower-case "
                    "letters, digits or '-', with at least one letter, no '--', not starting "
                    "or ending with '-')",
                )
        elif port.min < 1 or port.max < 1:
            self.add(
                path,
                str(port),
                "port range invalid, port number must be between 1 and 65535",
            )

    def rule_ports(self, path: str, rule: Rule) -> None:
        ports = [*rule.source.all_ports, *rule.destination.all_ports]
        if not ports:
            return
        if rule.protocol is not None:
            if rule.protocol.is_known and not rule.protocol.supports_ports:
                self.add(
                    f"{path}.protocol",
                    rule.protocol.value,
                    "rules that specify ports must set protocol to TCP or UDP or SCTP",
                )
        elif any(not p.is_named for p in ports):
            self.add(
                f"{path}.protocol",
                None,
                "rules with numeric port or port range must set protocol to TCP or UDP or SCTP",
            )

    def rule_cidrs(self, path: str, rule: Rule) -> None:
        versions: set[int] = set()
        for side in ("source", "destination"):
            entity: EntityRule = getattr(rule, side)
            for field, nets in (("nets", entity.nets), ("notNets", entity.not_nets)):
                for i, text in enumerate(nets):
                    where = f"{path}.{side}.{field}[{i}]"
                    net = self.cidr(where, text, strict=True)
                    if net is None:
                        continue
                    versions.add(net.version)
                    if field == "notNets" and net.prefixlen == 0:
                        self.add(
                            where,
                            text,
                            "catch-all CIDR in negation creates logical contradiction",
                        )
        if len(versions) > 1:
            self.add(path, "IPv4 and IPv6", "rule contains both IPv4 and IPv6 CIDRs")
        elif rule.ip_version is not None and versions and rule.ip_version not in versions:
            self.add(
                f"{path}.ipVersion",
                rule.ip_version,
                "rule IP version doesn't match CIDR version",
            )

    def cidr(
        self, path: str, text: str, *, strict: bool
    ) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        net = _parse_cidr(text, strict=False)
        if net is None:
            self.add(path, text, "invalid CIDR: expected an IP address or address/prefix-length")
            return None
        if strict and _parse_cidr(text, strict=True) is None:
            self.add(
                path,
                text,
                f"CIDR has host bits set; must be strictly masked (e.g. {net.with_prefixlen})",
            )
        return net

    def ip(self, path: str, text: str, version: int | None = None) -> None:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            self.add(path, text, "invalid IP address")
            return
        if version is not None and addr.version != version:
            self.add(path, text, f"must be an IPv{version} address")

    def rule_services(self, path: str, rule: Rule, *, direction: str, kind: str) -> None:
        for side in ("source", "destination"):
            entity: EntityRule = getattr(rule, side)
            svc = entity.services
            if svc is None:
                continue
            where = f"{path}.{side}.services"
            if not svc.name:
                self.add(f"{where}.name", "", "services must specify a name")
            if kind == GlobalNetworkPolicy.KIND and not svc.namespace:
                self.add(
                    f"{where}.namespace",
                    "",
                    "services in a GlobalNetworkPolicy must specify a namespace",
                )
            if (
                entity.selector
                or entity.not_selector
                or entity.namespace_selector
                or entity.service_accounts is not None
                or entity.nets
                or entity.not_nets
            ):
                self.add(
                    where,
                    svc.name,
                    "services cannot be combined with selector, notSelector, "
                    "namespaceSelector, serviceAccounts, nets or notNets",
                )
            if side == "destination" and (entity.ports or entity.not_ports):
                self.add(where, svc.name, "services cannot be combined with destination ports")
            if (direction, side) not in (("ingress", "source"), ("egress", "destination")):
                self.add(
                    where,
                    svc.name,
                    "services can only be used in the source of ingress rules and the "
                    "destination of egress rules",
                )

    def http(self, path: str, rule: Rule, *, direction: str) -> None:
        assert rule.http is not None
        where = f"{path}.http"
        if rule.action != "Allow":
            self.add(where, rule.action, "http match is only allowed on Allow rules")
        if rule.protocol is not None and rule.protocol.value not in ("TCP", 6):
            self.add(where, rule.protocol.value, "http match requires protocol TCP (or none)")
        if direction == "egress":
            self.add(where, "egress", "http match is not allowed in egress rules")
        seen: set[str] = set()
        for i, method in enumerate(rule.http.methods):
            if method in seen:
                self.add(f"{where}.methods[{i}]", method, "http methods must be unique")
            seen.add(method)
        for i, hp in enumerate(rule.http.paths):
            p = f"{where}.paths[{i}]"
            if bool(hp.exact) == bool(hp.prefix):
                self.add(p, hp.model_dump(), "a path must set exactly one of exact or prefix")
                continue
            value = hp.exact or hp.prefix
            if not value.startswith("/") or any(c in value for c in "?# "):
                self.add(
                    p,
                    value,
                    "a path must start with '/' and must not contain '?', '#' or spaces",
                )

    # -- per-kind specs -------------------------------------------------------------------

    def policy(self, res: GlobalNetworkPolicy | NetworkPolicy) -> None:
        spec = res.spec
        self.name(res.name, "np" if isinstance(res, NetworkPolicy) else "policy")
        if spec.tier and (not DNS_SUBDOMAIN_RE.match(spec.tier) or len(spec.tier) > 253):
            self.add("spec.tier", spec.tier, "tier must be a DNS-1123 subdomain")
        self.selector("spec.selector", spec.selector, always=True)
        self.selector("spec.serviceAccountSelector", spec.service_account_selector, always=True)
        seen: set[str] = set()
        for i, t in enumerate(spec.types):
            if t not in POLICY_TYPES:
                self.add(f"spec.types[{i}]", t, "type must be Ingress or Egress")
            elif t in seen:
                self.add(f"spec.types[{i}]", t, f"'{t}' type specified more than once")
            seen.add(t)
        hints: set[str] = set()
        for i, h in enumerate(spec.performance_hints):
            if h != "AssumeNeededOnEveryNode":
                self.add(
                    f"spec.performanceHints[{i}]",
                    h,
                    "performance hint must be AssumeNeededOnEveryNode",
                )
            elif h in hints:
                self.add(f"spec.performanceHints[{i}]", h, "performance hints must be unique")
            hints.add(h)
        self.rules("spec.ingress", spec.ingress, direction="ingress", kind=res.KIND)
        self.rules("spec.egress", spec.egress, direction="egress", kind=res.KIND)
        if isinstance(res, GlobalNetworkPolicy):
            g = res.spec
            self.selector("spec.namespaceSelector", g.namespace_selector)
            if g.pre_dnat and g.do_not_track:
                self.add("spec.preDNAT", True, "preDNAT and doNotTrack cannot both be true")
            if g.do_not_track and not g.apply_on_forward:
                self.add(
                    "spec.applyOnForward",
                    False,
                    "applyOnForward must be true if doNotTrack is true",
                )
            if g.pre_dnat and not g.apply_on_forward:
                self.add(
                    "spec.applyOnForward", False, "applyOnForward must be true if preDNAT is true"
                )
            if g.pre_dnat and g.egress:
                self.add("spec.egress", len(g.egress), "preDNAT policy cannot have egress rules")
            if g.pre_dnat and "Egress" in g.types:
                self.add("spec.types", g.types, "preDNAT policy cannot have 'Egress' type")

    def tier(self, res: Tier) -> None:
        self.name(res.name, "label", max_len=63)
        action = res.spec.default_action
        if action is not None and action not in ("Deny", "Pass"):
            self.add("spec.defaultAction", action, "defaultAction must be Deny or Pass")
        reserved = RESERVED_TIERS.get(res.name)
        if reserved is not None:
            order, fixed_action = reserved
            if res.spec.order is not None and res.spec.order != order:
                given = res.spec.order
                self.add(
                    "spec.order",
                    int(given) if float(given).is_integer() else given,
                    f"the {res.name} tier must have order {int(order)}",
                )
            if action is not None and action != fixed_action:
                self.add(
                    "spec.defaultAction",
                    action,
                    f"the {res.name} tier must have defaultAction {fixed_action}",
                )

    def profile(self, res: Profile) -> None:
        self.name(res.name, "subdomain")
        self.rules("spec.ingress", res.spec.ingress, direction="ingress", kind=res.KIND)
        self.rules("spec.egress", res.spec.egress, direction="egress", kind=res.KIND)
        self.labels("spec.labelsToApply", res.spec.labels_to_apply)

    def endpoint_ports(
        self, path: str, ports: Iterable[WorkloadEndpointPort | EndpointPort]
    ) -> None:
        for i, port in enumerate(ports):
            p = f"{path}[{i}]"
            if not _iana_name_ok(port.name):
                self.add(f"{p}.name", port.name, "port name must be a valid IANA service name")
            if port.protocol is None or not port.protocol.supports_ports:
                self.add(
                    f"{p}.protocol",
                    None if port.protocol is None else port.protocol.value,
                    "endpoint port protocol must be TCP, UDP or SCTP",
                )
            if not 1 <= port.port <= 65535:
                self.add(f"{p}.port", port.port, "port number must be between 1 and 65535")

    def profiles(self, path: str, names: list[str]) -> None:
        for i, name in enumerate(names):
            if not DNS_SUBDOMAIN_RE.match(name):
                self.add(f"{path}[{i}]", name, "profile name must be a DNS-1123 subdomain")

    def workload_endpoint(self, res: WorkloadEndpoint) -> None:
        spec = res.spec
        required = {
            "node": spec.node,
            "orchestrator": spec.orchestrator,
            ("pod" if spec.orchestrator == "k8s" else "workload"): spec.workload_or_pod,
            "endpoint": spec.endpoint,
        }
        missing = [k for k, v in required.items() if not v]
        for k in missing:
            self.add(f"spec.{k}", "", f"WorkloadEndpoint must specify {k}")
        if not res.name:
            self.add("metadata.name", "", "name is required")
        elif not missing:
            expected = spec.expected_name()
            if res.name != expected:
                self.add(
                    "metadata.name",
                    res.name,
                    "the WorkloadEndpoint name does not match the primary identifiers "
                    f"assigned in the Spec: expected name {expected}",
                )
        if len(res.name.encode()) > 253:
            self.add("metadata.name", res.name, f"name is too long by {len(res.name) - 253} bytes")
        for i, text in enumerate(spec.ip_networks):
            self.cidr(f"spec.ipNetworks[{i}]", text, strict=False)
        nets = [n for n in (_parse_cidr(t, strict=False) for t in spec.ip_networks) if n]
        for i, nat in enumerate(spec.ip_nats):
            self.ip(f"spec.ipNATs[{i}].internalIP", nat.internal_ip)
            self.ip(f"spec.ipNATs[{i}].externalIP", nat.external_ip)
            try:
                internal = ipaddress.ip_address(nat.internal_ip)
            except ValueError:
                continue
            if not any(internal.version == n.version and internal in n for n in nets):
                self.add(
                    f"spec.ipNATs[{i}].internalIP",
                    nat.internal_ip,
                    "NAT is not in the endpoint networks",
                )
        if spec.ipv4_gateway:
            self.ip("spec.ipv4Gateway", spec.ipv4_gateway, 4)
        if spec.ipv6_gateway:
            self.ip("spec.ipv6Gateway", spec.ipv6_gateway, 6)
        if spec.interface_name and not _INTERFACE_RE.match(spec.interface_name):
            self.add(
                "spec.interfaceName",
                spec.interface_name,
                "interface name must be 1-15 characters from [a-zA-Z0-9_.-]",
            )
        if spec.mac and not _MAC_RE.match(spec.mac):
            self.add("spec.mac", spec.mac, "invalid MAC address")
        self.profiles("spec.profiles", spec.profiles)
        self.endpoint_ports("spec.ports", spec.ports)
        for i, text in enumerate(spec.allow_spoofed_source_prefixes):
            self.cidr(f"spec.allowSpoofedSourcePrefixes[{i}]", text, strict=False)
        if spec.qos_controls is not None:
            for field, value in spec.qos_controls.model_dump(by_alias=True).items():
                if value is not None and value < 0:
                    self.add(f"spec.qosControls.{field}", value, "must not be negative")

    def host_endpoint(self, res: HostEndpoint) -> None:
        spec = res.spec
        self.name(res.name, "subdomain")
        if not spec.node:
            self.add("spec.node", "", "HostEndpoint must specify node")
        if not spec.interface_name and not spec.expected_ips:
            self.add(
                "spec",
                "",
                "HostEndpoint must specify interfaceName or expectedIPs",
            )
        if (
            spec.interface_name
            and spec.interface_name != "*"
            and not _INTERFACE_RE.match(spec.interface_name)
        ):
            self.add(
                "spec.interfaceName",
                spec.interface_name,
                "interface name must be '*' or 1-15 characters from [a-zA-Z0-9_.-]",
            )
        for i, text in enumerate(spec.expected_ips):
            self.ip(f"spec.expectedIPs[{i}]", text)
        self.profiles("spec.profiles", spec.profiles)
        self.endpoint_ports("spec.ports", spec.ports)

    def network_set(self, res: NetworkSet | GlobalNetworkSet) -> None:
        self.name(res.name, "subdomain")
        if NAMESPACE_LABEL in res.metadata.labels:
            self.add(
                "metadata.labels",
                NAMESPACE_LABEL,
                f"{NAMESPACE_LABEL} is not a valid label name",
            )
        for i, text in enumerate(res.spec.nets):
            self.cidr(f"spec.nets[{i}]", text, strict=False)

    def felix_configuration(self, res: FelixConfiguration) -> None:
        self.name(res.name, "subdomain")
        spec = res.spec
        for field, value in spec.model_dump(by_alias=True, exclude_none=True).items():
            check = _FELIX_CHECKS.get(field)
            problem = check(value) if check is not None else None
            if problem:
                self.add(f"spec.{field}", value, problem)


def _one_of(*allowed: str, ignore_case: bool = False) -> Callable[[Any], str | None]:
    folded = {a.lower() for a in allowed}

    def check(value: Any) -> str | None:
        ok = value.lower() in folded if ignore_case else value in allowed
        return None if ok else "must be one of " + ", ".join(allowed)

    return check


def _port_number(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number between 0 and 65535"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def _duration(value: Any) -> str | None:
    return None if parse_go_duration(value) >= 0 else "duration must not be negative"


def _region(value: Any) -> str | None:
    problem = region_problem(value) if value else None
    return f"must be {problem}" if problem else None


def _interface_prefix(value: Any) -> str | None:
    if _INTERFACE_PREFIX_RE.match(value):
        return None
    return "must be a comma-separated list of interface name prefixes"


def _mark_mask(value: Any) -> str | None:
    return None if 0 <= value <= 0xFFFFFFFF else "must be a 32-bit mask"


_SEVERITY = _one_of("Trace", "Debug", "Info", "Warning", "Error", "Fatal", ignore_case=True)
_FELIX_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "openstackRegion": _region,
    "metadataPort": _port_number,
    "healthPort": _port_number,
    "prometheusMetricsPort": _port_number,
    "maxIpsetSize": _non_negative,
    "iptablesMarkMask": _mark_mask,
    "interfacePrefix": _interface_prefix,
    "nftablesMode": _one_of("Enabled", "Disabled", "Auto"),
    "iptablesBackend": _one_of("Legacy", "NFT", "Auto", ignore_case=True),
    "defaultEndpointToHostAction": _one_of("Drop", "Accept", "Return"),
    "chainInsertMode": _one_of("Insert", "Append", ignore_case=True),
    "iptablesFilterAllowAction": _one_of("Accept", "Return"),
    "iptablesMangleAllowAction": _one_of("Accept", "Return"),
    "ipForwarding": _one_of("Enabled", "Disabled"),
    "floatingIPs": _one_of("Enabled", "Disabled"),
    "workloadSourceSpoofing": _one_of("Disabled", "Any"),
    "logSeverityFile": _SEVERITY,
    "logSeverityScreen": _SEVERITY,
    "logSeveritySys": _SEVERITY,
    **{name: _duration for name in DURATION_FIELDS},
}


@functools.lru_cache(maxsize=4096)  # pure; label keys repeat across thousands of endpoints
def _qualified_name_problem(key: str) -> str | None:
    """Kubernetes IsQualifiedName: ``[prefix/]name``; None when valid."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix):
            return "prefix part must be a lowercase DNS-1123 subdomain of at most 253 characters"
    else:
        return (
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an "
            "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME_RE.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )
    return None


def _iana_name_ok(name: str) -> bool:
    return (
        1 <= len(name) <= 15
        and bool(_IANA_NAME_RE.match(name))
        and "--" not in name
        and any(c.isalpha() for c in name)
    )


@functools.lru_cache(maxsize=4096)  # pure, and ip_network objects are immutable
def _parse_cidr(text: str, *, strict: bool) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not _CIDR_TEXT_RE.match(text):
        return None
    try:
        return ipaddress.ip_network(text, strict=strict)
    except ValueError:
        return None


# --- public pipeline -------------------------------------------------------------------------


def validate(resource: Resource) -> list[FieldError]:
    """Every §3 problem of ``resource`` (an empty list when it is valid)."""
    errs = _Errors()
    errs.metadata(resource)
    if isinstance(resource, GlobalNetworkPolicy | NetworkPolicy):
        errs.policy(resource)
    elif isinstance(resource, Tier):
        errs.tier(resource)
    elif isinstance(resource, Profile):
        errs.profile(resource)
    elif isinstance(resource, WorkloadEndpoint):
        errs.workload_endpoint(resource)
    elif isinstance(resource, HostEndpoint):
        errs.host_endpoint(resource)
    elif isinstance(resource, NetworkSet | GlobalNetworkSet):
        errs.network_set(resource)
    elif isinstance(resource, FelixConfiguration):
        errs.felix_configuration(resource)
    elif isinstance(resource, Node):
        bgp_checks.check_node(errs, resource)
    elif isinstance(resource, BGPConfiguration):
        bgp_checks.check_bgp_configuration(errs, resource)
    elif isinstance(resource, BGPPeer):
        bgp_checks.check_bgp_peer(errs, resource)
    else:
        errs.name(resource.name, "subdomain")
    return errs.items


def check(resource: Resource, *, where: str = "") -> None:
    """Raise ValidationError listing every problem of ``resource``; return if it is valid."""
    problems = validate(resource)
    if problems:
        place = f"{where} {resource.display_name}" if where else resource.display_name
        raise ValidationError(problems, where=place)


def default_policy_types(ingress: list[Rule], egress: list[Rule]) -> list[str]:
    """libcalico-go's ``types`` default: egress rules only → Egress; both → both; else Ingress."""
    if egress and ingress:
        return ["Ingress", "Egress"]
    if egress:
        return ["Egress"]
    return ["Ingress"]


def apply_defaults(resource: Resource, *, default_namespace: str = "default") -> Resource:
    """Return a copy of ``resource`` with calicoctl's write-time defaults filled in."""
    meta = resource.metadata
    meta_update: dict[str, Any] = {}
    spec_update: dict[str, Any] = {}
    spec_obj: BaseModel | None = None
    if resource.info.namespaced and not meta.namespace:
        meta_update["namespace"] = default_namespace
    if isinstance(resource, GlobalNetworkPolicy | NetworkPolicy):
        spec = spec_obj = resource.spec
        tier = spec.tier or DEFAULT_TIER
        if not spec.tier:
            spec_update["tier"] = tier
        if meta.labels.get(TIER_LABEL) != tier:
            meta_update["labels"] = {**meta.labels, TIER_LABEL: tier}
        if not spec.types:
            spec_update["types"] = default_policy_types(spec.ingress, spec.egress)
    elif isinstance(resource, Tier):
        spec_obj = resource.spec
        reserved = RESERVED_TIERS.get(meta.name)
        if resource.spec.order is None and reserved is not None:
            # Calico's built-in tiers have a fixed order; an omitted order means that one
            # (otherwise a nil order would sort the default tier after every ordered tier).
            spec_update["order"] = reserved[0]
        if resource.spec.default_action is None:
            spec_update["default_action"] = reserved[1] if reserved is not None else "Deny"
    elif isinstance(resource, WorkloadEndpoint):
        spec_w = resource.spec
        namespace = meta_update.get("namespace", meta.namespace)
        labels = dict(meta.labels)
        labels[NAMESPACE_LABEL] = namespace
        if spec_w.orchestrator:
            labels[ORCHESTRATOR_LABEL] = spec_w.orchestrator
        if labels != meta.labels:
            meta_update["labels"] = labels
        if not meta.name and spec_w.node and spec_w.orchestrator and spec_w.endpoint:
            meta_update["name"] = workload_endpoint_name(
                spec_w.node, spec_w.orchestrator, spec_w.workload_or_pod, spec_w.endpoint
            )
    update: dict[str, Any] = {}
    if meta_update:
        update["metadata"] = meta.model_copy(update=meta_update)
    if spec_update and spec_obj is not None:
        update["spec"] = spec_obj.model_copy(update=spec_update)
    return resource.model_copy(update=update) if update else resource
