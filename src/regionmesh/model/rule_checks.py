"""Checks of policy and profile rules (policy-model.md §3.4): action, protocol, ICMP, entity
selectors, ports, CIDRs, services and HTTP matches.

:class:`RuleProblems` extends :class:`~regionmesh.model.names.Problems` with one method per
rule part; which resources have rules and how they are walked is
:mod:`regionmesh.model.kind_checks`' business.
"""

from __future__ import annotations

import functools
import ipaddress

from regionmesh.model.names import (
    CIDR_TEXT_RE,
    DNS_SUBDOMAIN_RE,
    MAX_RULES_PER_DIRECTION,
    Problems,
    iana_name_ok,
)
from regionmesh.model.policy import GlobalNetworkPolicy
from regionmesh.model.rules import ACTIONS, EntityRule, ICMPFields, Rule
from regionmesh.model.values import PROTOCOL_NUMBERS, Port, Protocol


class RuleProblems(Problems):
    """The rule checks, on top of the metadata and selector checks."""

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
            if not iana_name_ok(port.name):
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
        net = parse_cidr(text, strict=False)
        if net is None:
            self.add(path, text, "invalid CIDR: expected an IP address or address/prefix-length")
            return None
        if strict and parse_cidr(text, strict=True) is None:
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


@functools.lru_cache(maxsize=4096)  # pure, and ip_network objects are immutable
def parse_cidr(text: str, *, strict: bool) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not CIDR_TEXT_RE.match(text):
        return None
    try:
        return ipaddress.ip_network(text, strict=strict)
    except ValueError:
        return None
