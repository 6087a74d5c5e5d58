"""Pure translation of Neutron objects into what regionmesh stores (networking-calico's shapes).

Inputs are small frozen dataclasses (:class:`NeutronPort`, :class:`NeutronSecurityGroup`,
:class:`NeutronRule`, :class:`NeutronSubnet`, ...) that the Neutron-facing glue
(:mod:`regionmesh.openstack.neutron_db`) fills from the database. Outputs are plain dicts in
the stored shape of openstack-driver.md §1.3:

* :func:`port_to_workload_endpoint`: a ``WorkloadEndpoint`` in ``openstack-region-<r>``, name,
  spec, labels and annotations byte-compatible with networking-calico (§2.2–2.5);
* :func:`security_group_to_policy`: a ``NetworkPolicy`` ``ossg.default.<sg-id>`` written
  without ``types`` (§3); a protocol Neutron holds as a digit string is written as that string
  (``--protocol 47`` → ``"protocol": "47"``), names as numbers (``tcp`` → 6), exactly as
  networking-calico does. Unlike networking-calico it fails closed: an address-group rule
  becomes that group's CIDRs, legacy ``icmpv6`` and numeric ICMP protocols keep ICMP
  type/code, and anything it does not understand raises :class:`TranslationError` instead of
  being widened;
* :func:`subnet_to_dhcp_record`: the ``/calico/dhcp/v2/<region_string>/subnet/<id>`` value.

The documents carry no ``uid``/``creationTimestamp``: :func:`with_server_metadata` adds them,
keeping those of an existing stored object. Keys, CAS and I/O belong to the driver and
:mod:`regionmesh.datastore`; nothing here imports Neutron or touches the network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from regionmesh.errors import FieldError, TranslationError
from regionmesh.model.regions import region_namespace

API_VERSION = "projectcalico.org/v3"
ORCHESTRATOR = "openstack"

SG_LABEL_PREFIX = "sg.projectcalico.org/openstack-"
SG_NAME_LABEL_PREFIX = "sg-name.projectcalico.org/openstack-"
SG_POLICY_PREFIX = "ossg.default."
NAMESPACE_LABEL = "projectcalico.org/namespace"
ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator"
PROJECT_ID_LABEL = "projectcalico.org/openstack-project-id"
PROJECT_NAME_LABEL = "projectcalico.org/openstack-project-name"
PROJECT_PARENT_ID_LABEL = "projectcalico.org/openstack-project-parent-id"
NETWORK_NAME_LABEL = "projectcalico.org/openstack-network-name"
NETWORK_ID_ANNOTATION = "openstack.projectcalico.org/network-id"
FQDN_ANNOTATION = "openstack.projectcalico.org/fqdn"

LABEL_MAX_LENGTH = 63
SG_NAME_MAX_LENGTH = LABEL_MAX_LENGTH - len(SG_NAME_LABEL_PREFIX)  # 27

ENDPOINT_OWNER_PREFIXES = ("compute:", "kuryr:container")
UNBOUND = "unbound"

# neutron_lib.constants.IP_PROTOCOL_MAP (neutron-lib 5.0.1); a harness test compares the two.
IP_PROTOCOL_MAP: Mapping[str, int] = {
    "ah": 51,
    "dccp": 33,
    "egp": 8,
    "esp": 50,
    "gre": 47,
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ip": 0,
    "ipip": 4,
    "ipv6-encap": 41,
    "ipv6-frag": 44,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ipv6-route": 43,
    "ospf": 89,
    "pgm": 113,
    "rsvp": 46,
    "sctp": 132,
    "tcp": 6,
    "udp": 17,
    "udplite": 136,
    "vrrp": 112,
}
_ICMP4, _ICMP6 = 1, 58
_PORT_PROTOCOLS = frozenset({6, 17, 132})  # the only protocols Calico accepts ports with
_ETHERTYPES = {"IPv4": 4, "IPv6": 6}


# ---------------------------------------------------------------------------- input types


@dataclass(frozen=True, slots=True)
class FixedIP:
    """One fixed IP of a port, with the gateway of its subnet (None when it has none)."""

    ip_address: str
    subnet_id: str = ""
    gateway_ip: str | None = None


@dataclass(frozen=True, slots=True)
class FloatingIP:
    """A floating IP whose ``fixed_port_id`` is the port."""

    fixed_ip_address: str
    floating_ip_address: str


@dataclass(frozen=True, slots=True)
class SecurityGroupRef:
    """A security group bound to a port: its id and (raw, unsanitised) name."""

    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """Keystone data for a project, when it could be looked up."""

    name: str
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class NeutronPort:
    """A port as the driver re-reads it from the Neutron DB, with the extra data it needs."""

    id: str
    network_id: str
    device_id: str
    device_owner: str
    mac_address: str
    host_id: str = ""
    vif_type: str = UNBOUND
    fixed_ips: tuple[FixedIP, ...] = ()
    allowed_address_pairs: tuple[str, ...] = ()
    security_groups: tuple[SecurityGroupRef, ...] = ()
    floating_ips: tuple[FloatingIP, ...] = ()
    project_id: str | None = None
    project: ProjectInfo | None = None
    network_name: str | None = None
    dns_fqdn: str | None = None
    migrating_to: str | None = None


@dataclass(frozen=True, slots=True)
class NeutronRule:
    """One security group rule, fields as in Neutron's API (protocol may be str, int or None)."""

    id: str
    security_group_id: str
    direction: str
    ethertype: str = "IPv4"
    protocol: str | int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    remote_address_group_id: str | None = None


@dataclass(frozen=True, slots=True)
class NeutronSecurityGroup:
    """A security group and its rules."""

    id: str
    name: str = ""
    rules: tuple[NeutronRule, ...] = ()


@dataclass(frozen=True, slots=True)
class HostRoute:
    """One ``host_routes`` entry of a subnet."""

    destination: str
    nexthop: str


@dataclass(frozen=True, slots=True)
class NeutronSubnet:
    """The subnet fields the DHCP record and the overlap check need."""

    id: str
    network_id: str
    cidr: str
    gateway_ip: str | None = None
    enable_dhcp: bool = True
    host_routes: tuple[HostRoute, ...] = ()
    dns_nameservers: tuple[str, ...] = ()
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None
    name: str = ""


# ---------------------------------------------------------------------------- helpers

_LABEL_BAD_CHARS = re.compile(r"[^-_.A-Za-z0-9]")
_LEADING_JUNK = re.compile(r"^[^A-Za-z0-9]+")
_TRAILING_JUNK = re.compile(r"[^A-Za-z0-9]+$")


def sanitize_label_value(value: str, max_length: int = LABEL_MAX_LENGTH) -> str:
    """networking-calico's ``sanitize_label_name_value``: truncate, ``_`` for bad characters,
    strip non-alphanumerics from both ends (``"Dan's Project"`` → ``Dan_s_Project``)."""
    value = _LABEL_BAD_CHARS.sub("_", value[:max_length])
    return _TRAILING_JUNK.sub("", _LEADING_JUNK.sub("", value))


def _escape_dashes(part: str) -> str:
    return part.replace("-", "--")


def workload_endpoint_name(node: str, orchestrator: str, workload: str, endpoint: str) -> str:
    """``<node>-<orchestrator>-<workload>-<endpoint>`` with every ``-`` inside a part doubled."""
    return "-".join(_escape_dashes(p) for p in (node, orchestrator, workload, endpoint))


def endpoint_name(host: str, port: NeutronPort) -> str:
    """The WorkloadEndpoint name of ``port`` on ``host`` (§2.2)."""
    return workload_endpoint_name(host, ORCHESTRATOR, port.device_id, port.id)


def interface_name(port_id: str) -> str:
    """Nova's tap device name for a port: ``tap`` + the first 11 characters of its id."""
    return "tap" + port_id[:11]


def is_endpoint_port(port: NeutronPort) -> bool:
    """True for VM (``compute:*``) and Kuryr container ports (§2.1)."""
    return port.device_owner.startswith(ENDPOINT_OWNER_PREFIXES)


def endpoint_hosts(port: NeutronPort) -> tuple[str, ...]:
    """The hosts at which ``port`` should have a WorkloadEndpoint (§2.1): its bound host
    (unless unbound and not migrating) and its live-migration destination."""
    if not is_endpoint_port(port):
        return ()
    hosts: list[str] = []
    if port.host_id and (port.vif_type != UNBOUND or port.migrating_to):
        hosts.append(port.host_id)
    if port.migrating_to and port.migrating_to not in hosts:
        hosts.append(port.migrating_to)
    return tuple(hosts)


def _host_net(address: str) -> str:
    """An IP as a host network; an address that already carries a prefix is kept whole."""
    if "/" in address:
        return str(ipaddress.ip_network(address, strict=False))
    return address + ("/128" if ":" in address else "/32")


# ---------------------------------------------------------------------------- ports


def endpoint_labels(port: NeutronPort, namespace: str) -> dict[str, str]:
    """The WorkloadEndpoint's labels (§2.4), in networking-calico's order."""
    labels: dict[str, str] = {}
    for sg in port.security_groups:
        sg_name = sanitize_label_value(sg.name, SG_NAME_MAX_LENGTH)
        labels[SG_LABEL_PREFIX + sg.id] = sg_name
        if sg_name:
            labels[SG_NAME_LABEL_PREFIX + sg_name] = sg.id
    labels[NAMESPACE_LABEL] = namespace
    labels[ORCHESTRATOR_LABEL] = ORCHESTRATOR
    if port.project_id is not None:
        labels[PROJECT_ID_LABEL] = port.project_id
    if port.project is not None:
        labels[PROJECT_NAME_LABEL] = sanitize_label_value(port.project.name)
        labels[PROJECT_PARENT_ID_LABEL] = port.project.parent_id or ""
    if port.network_name is not None:
        labels[NETWORK_NAME_LABEL] = sanitize_label_value(port.network_name)
    return labels


def endpoint_annotations(port: NeutronPort) -> dict[str, str]:
    """The WorkloadEndpoint's annotations (§2.5)."""
    annotations = {NETWORK_ID_ANNOTATION: port.network_id}
    if port.dns_fqdn:
        annotations[FQDN_ANNOTATION] = port.dns_fqdn
    return annotations


def endpoint_spec(port: NeutronPort, host: str) -> dict[str, Any]:
    """The WorkloadEndpoint spec for ``port`` on ``host`` (§2.3)."""
    spec: dict[str, Any] = {
        "orchestrator": ORCHESTRATOR,
        "workload": port.device_id,
        "node": host,
        "endpoint": port.id,
        "interfaceName": interface_name(port.id),
        "mac": port.mac_address,
    }
    ip_networks: list[str] = []
    for ip in port.fixed_ips:
        ip_networks.append(_host_net(ip.ip_address))
        if ip.gateway_ip is not None:
            spec["ipv6Gateway" if ":" in ip.ip_address else "ipv4Gateway"] = ip.gateway_ip
    allowed_ips = [_host_net(a) for a in port.allowed_address_pairs]
    spec["ipNetworks"] = ip_networks + allowed_ips
    spec["allowedIps"] = allowed_ips
    nats = [
        {"internalIP": f.fixed_ip_address, "externalIP": f.floating_ip_address}
        for f in port.floating_ips
    ]
    if nats:
        spec["ipNATs"] = nats
    return spec


def port_to_workload_endpoint(
    port: NeutronPort, *, region: str | None, host: str | None = None
) -> dict[str, Any]:
    """The WorkloadEndpoint document for ``port`` at ``host`` (default: its bound host)."""
    node = host if host is not None else port.host_id
    if not node:
        raise TranslationError(
            [FieldError("binding:host_id", node, "the port is not bound to a host")],
            where=f"port {port.id}",
        )
    namespace = region_namespace(region)
    return {
        "kind": "WorkloadEndpoint",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": endpoint_name(node, port),
            "namespace": namespace,
            "labels": endpoint_labels(port, namespace),
            "annotations": endpoint_annotations(port),
        },
        "spec": endpoint_spec(port, node),
    }


# ---------------------------------------------------------------------------- security groups


def policy_name(sg_id: str) -> str:
    """``ossg.default.<sg-id>``."""
    return SG_POLICY_PREFIX + sg_id


def sg_selector(sg_id: str) -> str:
    """The selector of the members of a security group."""
    return f"has({SG_LABEL_PREFIX}{sg_id})"


def _rule_error(rule: NeutronRule, fieldname: str, value: object, reason: str) -> TranslationError:
    return TranslationError(
        [FieldError(fieldname, value, reason)],
        where=f"security group {rule.security_group_id} rule {rule.id}",
    )


def _protocol_number(rule: NeutronRule) -> int | None:
    """The rule's IP protocol as a number, None for "any"; raises for what we cannot read."""
    proto = rule.protocol
    if proto is None or proto in ("any", ""):
        return None
    if isinstance(proto, bool):
        raise _rule_error(rule, "protocol", proto, "not a protocol")
    if isinstance(proto, int):
        number = proto
    elif proto.isdigit():
        number = int(proto)
    elif proto.lower() in IP_PROTOCOL_MAP:
        number = IP_PROTOCOL_MAP[proto.lower()]
    else:
        raise _rule_error(rule, "protocol", proto, "unknown IP protocol name")
    if number in (0, -1):
        return None
    if not 1 <= number <= 255:
        raise _rule_error(rule, "protocol", proto, "IP protocol number must be 0-255")
    return number


def _calico_protocol(rule: NeutronRule, number: int, ip_version: int) -> str | int:
    """Calico's spelling, as networking-calico writes it for the names it handles."""
    proto = rule.protocol
    if number == _ICMP4:
        if ip_version == 6:
            # networking-calico's legacy meaning of "icmp" with IPv6; a number 1 is refused
            if proto == "icmp":
                return "ICMPv6"
            raise _rule_error(rule, "protocol", proto, "ICMP (1) with ethertype IPv6")
        return "ICMP"
    if number == _ICMP6:
        if ip_version == 4:
            raise _rule_error(rule, "protocol", proto, "ICMPv6 (58) with ethertype IPv4")
        return "ICMPv6"
    if isinstance(proto, str) and proto.isdigit():
        # networking-calico writes Neutron's digit string as it is ("47"), never the number
        return proto
    return number


def _icmp_fields(rule: NeutronRule) -> dict[str, int] | None:
    icmp: dict[str, int] = {}
    icmp_type, icmp_code = rule.port_range_min, rule.port_range_max
    if icmp_type is not None and icmp_type != -1:
        if not 0 <= icmp_type <= 254:
            raise _rule_error(rule, "port_range_min", icmp_type, "ICMP type must be 0-254")
        icmp["type"] = icmp_type
    if icmp_code is not None and icmp_code != -1:
        if "type" not in icmp:
            raise _rule_error(rule, "port_range_max", icmp_code, "ICMP code without ICMP type")
        if not 0 <= icmp_code <= 255:
            raise _rule_error(rule, "port_range_max", icmp_code, "ICMP code must be 0-255")
        icmp["code"] = icmp_code
    return icmp or None


def _ports(rule: NeutronRule, number: int | None) -> list[int | str] | None:
    low, high = rule.port_range_min, rule.port_range_max
    if low in (None, -1) and high in (None, -1):
        return None
    if low is None or high is None or low == -1 or high == -1:
        raise _rule_error(
            rule, "port_range_min", (low, high), "a port range needs both minimum and maximum"
        )
    if not 1 <= low <= high <= 65535:
        raise _rule_error(rule, "port_range_min", (low, high), "invalid port range")
    if number not in _PORT_PROTOCOLS:
        raise _rule_error(
            rule, "protocol", rule.protocol, "ports are only supported with TCP, UDP or SCTP"
        )
    return [low] if low == high else [f"{low}:{high}"]


def _rule_nets(
    rule: NeutronRule, ip_version: int, address_groups: Mapping[str, Iterable[str]]
) -> list[str] | None:
    """``nets`` for the remote side; None = any; [] = nothing (the rule must be dropped)."""
    if rule.remote_ip_prefix is not None and rule.remote_address_group_id is not None:
        raise _rule_error(
            rule, "remote_address_group_id", rule.remote_address_group_id,
            "both remote_ip_prefix and remote_address_group_id are set",
        )  # fmt: skip
    if rule.remote_ip_prefix is not None:
        try:
            net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        except ValueError as exc:
            raise _rule_error(rule, "remote_ip_prefix", rule.remote_ip_prefix, str(exc)) from exc
        if net.version != ip_version:
            raise _rule_error(
                rule, "remote_ip_prefix", rule.remote_ip_prefix,
                f"an IPv{net.version} prefix in an IPv{ip_version} rule",
            )  # fmt: skip
        return [str(net)]
    if rule.remote_address_group_id is not None:
        if rule.remote_address_group_id not in address_groups:
            raise _rule_error(
                rule, "remote_address_group_id", rule.remote_address_group_id,
                "the address group's addresses are not known",
            )  # fmt: skip
        nets: list[str] = []
        for cidr in address_groups[rule.remote_address_group_id]:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise _rule_error(rule, "remote_address_group_id", cidr, str(exc)) from exc
            if net.version == ip_version and str(net) not in nets:
                nets.append(str(net))
        return nets
    return None


def rule_to_calico(
    rule: NeutronRule, address_groups: Mapping[str, Iterable[str]] | None = None
) -> dict[str, Any] | None:
    """One Neutron rule as a Calico Allow rule, or None when it can match nothing (an address
    group without addresses of the rule's family). Raises :class:`TranslationError` for
    anything it cannot express exactly."""
    if rule.direction not in ("ingress", "egress"):
        raise _rule_error(rule, "direction", rule.direction, "must be ingress or egress")
    if rule.ethertype not in _ETHERTYPES:
        raise _rule_error(rule, "ethertype", rule.ethertype, "must be IPv4 or IPv6")
    ip_version = _ETHERTYPES[rule.ethertype]
    out: dict[str, Any] = {"action": "Allow", "ipVersion": ip_version}
    number = _protocol_number(rule)
    ports: list[int | str] | None = None
    if number is not None:
        out["protocol"] = _calico_protocol(rule, number, ip_version)
        if number in (_ICMP4, _ICMP6):
            icmp = _icmp_fields(rule)
            if icmp is not None:
                out["icmp"] = icmp
        else:
            ports = _ports(rule, number)
    else:
        ports = _ports(rule, None)  # raises when a port range has no protocol
    entity: dict[str, Any] = {}
    if rule.remote_group_id is not None:
        entity["selector"] = sg_selector(rule.remote_group_id)
    nets = _rule_nets(rule, ip_version, address_groups or {})
    if nets is not None:
        if not nets:
            return None
        entity["nets"] = nets
    if ports is not None:
        if rule.direction == "ingress":
            out["destination"] = {"ports": ports}
        else:
            entity["ports"] = ports
    if entity:
        out["source" if rule.direction == "ingress" else "destination"] = entity
    return out


def policy_spec_partial(
    sg_id: str,
    rules: Iterable[NeutronRule],
    address_groups: Mapping[str, Iterable[str]] | None = None,
) -> tuple[dict[str, Any], list[TranslationError]]:
    """Like :func:`policy_spec`, but leaves untranslatable rules out and returns their errors.

    All Neutron rules are Allow rules, so leaving one out only ever narrows the policy: this
    is the fail-closed spec a driver may write when the faithful one cannot be built.
    """
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    errors: list[TranslationError] = []
    for rule in rules:
        if rule.security_group_id != sg_id:
            continue
        try:
            calico = rule_to_calico(rule, address_groups)
        except TranslationError as exc:
            errors.append(exc)
            continue
        if calico is not None:
            (ingress if rule.direction == "ingress" else egress).append(calico)
    return {"ingress": ingress, "egress": egress, "selector": sg_selector(sg_id)}, errors


def policy_spec(
    sg_id: str,
    rules: Iterable[NeutronRule],
    address_groups: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """``{"ingress", "egress", "selector"}`` for a security group (§3.1); no ``types``.

    Raises :class:`TranslationError` listing every rule it cannot translate.
    """
    spec, errors = policy_spec_partial(sg_id, rules, address_groups)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise TranslationError(
            [f for e in errors for f in e.fields], where=f"security group {sg_id}"
        )
    return spec


def policy_document(sg_id: str, spec: dict[str, Any], *, region: str | None) -> dict[str, Any]:
    """Wrap a policy spec into the NetworkPolicy document ``ossg.default.<sg-id>``."""
    return {
        "kind": "NetworkPolicy",
        "apiVersion": API_VERSION,
        "metadata": {"name": policy_name(sg_id), "namespace": region_namespace(region)},
        "spec": spec,
    }


def security_group_to_policy(
    sg: NeutronSecurityGroup,
    *,
    region: str | None,
    address_groups: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """The NetworkPolicy document ``ossg.default.<sg-id>`` in the region's namespace."""
    return policy_document(sg.id, policy_spec(sg.id, sg.rules, address_groups), region=region)


# ---------------------------------------------------------------------------- subnets


def subnet_to_dhcp_record(subnet: NeutronSubnet) -> dict[str, Any] | None:
    """The DHCP subnet value (§1.3), or None when DHCP is off (the record must be deleted)."""
    if not subnet.enable_dhcp:
        return None
    record: dict[str, Any] = {
        "network_id": subnet.network_id,
        "cidr": str(ipaddress.ip_network(subnet.cidr, strict=False)),
        "host_routes": [{"destination": r.destination, "nexthop": r.nexthop} for r in subnet.host_routes],
        "gateway_ip": subnet.gateway_ip,
    }  # fmt: skip
    if subnet.dns_nameservers:
        record["dns_servers"] = list(subnet.dns_nameservers)
    if subnet.ipv6_ra_mode and subnet.ipv6_address_mode:
        record["ipv6_ra_mode"] = subnet.ipv6_ra_mode
        record["ipv6_address_mode"] = subnet.ipv6_address_mode
    return record


def overlapping(cidr: str, others: Iterable[str]) -> list[str]:
    """Those of ``others`` (CIDRs) that overlap ``cidr``, in input order."""
    net = ipaddress.ip_network(cidr, strict=False)
    found: list[str] = []
    for other in others:
        o = ipaddress.ip_network(other, strict=False)
        if o.version == net.version and o.overlaps(net):
            found.append(other)
    return found


# ---------------------------------------------------------------------------- metadata


def with_server_metadata(
    doc: Mapping[str, Any],
    existing: Mapping[str, Any] | None,
    *,
    new_uid: Callable[[], str],
    now: Callable[[], str],
) -> dict[str, Any]:
    """``doc`` with ``uid``/``creationTimestamp`` kept from ``existing`` (or made new), as
    networking-calico's ``datamodel_v3.put`` does; labels/annotations replace wholesale."""
    old_meta: Mapping[str, Any] = (existing or {}).get("metadata") or {}
    meta = dict(doc["metadata"])
    meta["creationTimestamp"] = old_meta.get("creationTimestamp") or now()
    meta["uid"] = old_meta.get("uid") or new_uid()
    ordered = {k: meta[k] for k in ("name", "namespace") if k in meta}
    ordered["creationTimestamp"] = meta["creationTimestamp"]
    ordered["uid"] = meta["uid"]
    ordered.update({k: v for k, v in meta.items() if k not in ordered})
    out = dict(doc)
    out["metadata"] = ordered
    return out


def same_content(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """True when two stored documents agree on spec, labels and annotations."""
    if a is None or b is None:
        return a is b

    def part(d: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        meta = d.get("metadata") or {}
        return (d.get("spec"), meta.get("labels") or {}, meta.get("annotations") or {})

    return part(a) == part(b)
