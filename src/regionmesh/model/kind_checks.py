"""Per-kind spec checks (policy-model.md §3.5-3.9), dispatched through :mod:`regionmesh.model.kinds`.

:class:`KindProblems` adds one method per kind family (policies, tiers, profiles, endpoints,
network sets, FelixConfiguration) to the rule checks; :data:`KIND_CHECKS` maps the
``KindInfo.checks`` name of each kind to its method, so a new kind is registered as data in
:mod:`regionmesh.model.kinds` rather than by extending an isinstance chain. The public
pipeline (metadata first, then the kind's checks) is :mod:`regionmesh.model.validation`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from regionmesh.model import bgp_checks
from regionmesh.model.cluster_config import FelixConfiguration
from regionmesh.model.defaults import RESERVED_TIERS
from regionmesh.model.endpoints import (
    EndpointPort,
    HostEndpoint,
    WorkloadEndpoint,
    WorkloadEndpointPort,
)
from regionmesh.model.felix_params import FELIX_CHECKS
from regionmesh.model.meta import NAMESPACE_LABEL, Resource
from regionmesh.model.names import (
    DNS_SUBDOMAIN_RE,
    INTERFACE_RE,
    MAC_RE,
    iana_name_ok,
)
from regionmesh.model.policy import (
    POLICY_TYPES,
    GlobalNetworkPolicy,
    NetworkPolicy,
    Profile,
    Tier,
)
from regionmesh.model.rule_checks import RuleProblems, parse_cidr
from regionmesh.model.sets import GlobalNetworkSet, NetworkSet


class KindProblems(RuleProblems):
    """The per-kind checks, on top of the rule, metadata and selector checks."""

    def name_only(self, res: Resource) -> None:
        self.name(res.name, "subdomain")

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
            if not iana_name_ok(port.name):
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
        nets = [n for n in (parse_cidr(t, strict=False) for t in spec.ip_networks) if n]
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
        if spec.interface_name and not INTERFACE_RE.match(spec.interface_name):
            self.add(
                "spec.interfaceName",
                spec.interface_name,
                "interface name must be 1-15 characters from [a-zA-Z0-9_.-]",
            )
        if spec.mac and not MAC_RE.match(spec.mac):
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
            and not INTERFACE_RE.match(spec.interface_name)
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
            check = FELIX_CHECKS.get(field)
            problem = check(value) if check is not None else None
            if problem:
                self.add(f"spec.{field}", value, problem)


KIND_CHECKS: dict[str, Callable[[KindProblems, Any], None]] = {
    "policy": KindProblems.policy,
    "tier": KindProblems.tier,
    "profile": KindProblems.profile,
    "workload_endpoint": KindProblems.workload_endpoint,
    "host_endpoint": KindProblems.host_endpoint,
    "network_set": KindProblems.network_set,
    "felix_configuration": KindProblems.felix_configuration,
    "node": bgp_checks.check_node,
    "bgp_configuration": bgp_checks.check_bgp_configuration,
    "bgp_peer": bgp_checks.check_bgp_peer,
    "name_only": KindProblems.name_only,
}
"""``KindInfo.checks`` → the method that checks a resource of that kind."""


def check_kind(problems: KindProblems, resource: Resource) -> None:
    """Run the checks registered for ``resource``'s kind (its name only if none are)."""
    KIND_CHECKS[resource.info.checks](problems, resource)
