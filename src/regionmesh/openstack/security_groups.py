"""Neutron security group → Calico ``NetworkPolicy`` ``ossg.default.<sg-id>`` (openstack-driver.md §3).

Every Neutron rule becomes an Allow rule (:func:`rule_to_calico`); the policy is written
without ``types`` and selects the group's members by the ``sg.projectcalico.org/openstack-<id>``
label, as networking-calico does; a protocol Neutron holds as a digit string is written as
that string (``--protocol 47`` → ``"protocol": "47"``), names as numbers (``tcp`` → 6), exactly
as networking-calico does. Unlike networking-calico it fails closed: an address-group
rule becomes that group's CIDRs, legacy ``icmpv6`` and numeric ICMP protocols keep ICMP
type/code, and anything it does not understand raises :class:`TranslationError` instead of
being widened (:func:`policy_spec_partial` leaves such rules out and returns their errors).
:func:`network_policy` gives the typed, validated :class:`regionmesh.model.NetworkPolicy`.

Writing is :class:`~regionmesh.openstack.writer.RegionWriter`'s; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from regionmesh.errors import FieldError, TranslationError, ValidationError
from regionmesh.model import NetworkPolicy, codec, validation
from regionmesh.model.kinds import API_VERSION
from regionmesh.model.regions import region_namespace
from regionmesh.openstack.address_groups import MirroredGroup, mirror_rule_annotations
from regionmesh.openstack.endpoints import SG_LABEL_PREFIX
from regionmesh.openstack.records import NeutronRule, NeutronSecurityGroup

SG_POLICY_PREFIX = "ossg.default."

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


def _mirror(rule: NeutronRule, address_groups: Mapping[str, Iterable[str]]) -> MirroredGroup | None:
    """The mirror a rule's address group is (see :mod:`.address_groups`), or None."""
    if rule.remote_address_group_id is None or rule.remote_ip_prefix is not None:
        return None
    group = address_groups.get(rule.remote_address_group_id)
    return group if isinstance(group, MirroredGroup) else None


def mirror_entity(mirror: MirroredGroup) -> dict[str, str]:
    """The rule side that selects a mirrored SG's endpoints, live, in its own region.

    ``namespaceSelector: all()`` lifts the NetworkPolicy's own-namespace limit (Calico
    rewrites it to ``has(projectcalico.org/namespace)``, policy-model.md §2.3) and the
    selector names the remote region's namespace through the ``projectcalico.org/namespace``
    label every endpoint carries, so Felix and regionmesh's evaluator select exactly the
    remote SG's members in the remote region (a ``namespaceSelector`` on
    ``projectcalico.org/name`` would match nothing: OpenStack endpoints have no ``pcns.*``
    labels).
    """
    namespace = region_namespace(mirror.ref.region)
    return {
        "selector": f"{sg_selector(mirror.ref.sg_id)} && "
        f"projectcalico.org/namespace == '{namespace}'",
        "namespaceSelector": "all()",
    }


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
    mirror = _mirror(rule, address_groups or {})
    if mirror is not None:
        entity.update(mirror_entity(mirror))
        out["metadata"] = {"annotations": mirror_rule_annotations(mirror)}
        nets = None
    else:
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


def security_group_policy(
    sg: NeutronSecurityGroup,
    *,
    region: str | None,
    address_groups: Mapping[str, Iterable[str]] | None = None,
) -> NetworkPolicy:
    """The typed NetworkPolicy ``ossg.default.<sg-id>`` in the region's namespace; raises
    :class:`TranslationError` for any rule it cannot translate faithfully."""
    return network_policy(sg.id, policy_spec(sg.id, sg.rules, address_groups), region=region)


def to_network_policy(doc: dict[str, Any]) -> NetworkPolicy:
    """Decode and validate a :func:`policy_document` (TranslationError naming the policy)."""
    try:
        resource = codec.decode(doc)
        validation.check(resource)
    except ValidationError as exc:
        raise TranslationError(exc.fields, where=exc.where) from exc
    assert isinstance(resource, NetworkPolicy)
    return resource


def network_policy(sg_id: str, spec: dict[str, Any], *, region: str | None) -> NetworkPolicy:
    """The typed NetworkPolicy ``ossg.default.<sg-id>`` for a spec from :func:`policy_spec`
    or :func:`policy_spec_partial`, validated by the model."""
    return to_network_policy(policy_document(sg_id, spec, region=region))
