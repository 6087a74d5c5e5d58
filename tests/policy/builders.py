"""Compact builders of v3 resources for the policy tests (decoded strictly, never defaulted).

Each builder writes the camelCase document Calico stores and decodes it with
``regionmesh.model.codec.decode`` — so a policy built without ``types`` is stored without types,
exactly like networking-calico's security-group policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from regionmesh.model import (
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    NetworkPolicy,
    NetworkSet,
    Profile,
    Resource,
    Tier,
    WorkloadEndpoint,
    codec,
)

API = "projectcalico.org/v3"
R1 = "openstack-region-one"
R2 = "openstack-region-two"


def _decode(kind: str, meta: dict[str, Any], spec: dict[str, Any]) -> Resource:
    return codec.decode({"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec})


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def wep(
    name: str,
    ips: Sequence[str],
    labels: Mapping[str, str] | None = None,
    ns: str = R1,
    profiles: Sequence[str] = (),
    ports: Sequence[Mapping[str, Any]] = (),
    orchestrator: str = "openstack",
    service_account: str = "",
) -> WorkloadEndpoint:
    spec = _drop_none(
        {
            "orchestrator": orchestrator or None,
            "node": "cmp1",
            "workload": name,
            "endpoint": "eth0",
            "ipNetworks": [ip if "/" in ip else f"{ip}/{128 if ':' in ip else 32}" for ip in ips],
            "profiles": list(profiles) or None,
            "ports": list(ports) or None,
            "serviceAccountName": service_account or None,
        }
    )
    res = _decode(
        "WorkloadEndpoint", {"name": name, "namespace": ns, "labels": dict(labels or {})}, spec
    )
    assert isinstance(res, WorkloadEndpoint)
    return res


def hep(
    name: str,
    ips: Sequence[str],
    labels: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
    ports: Sequence[Mapping[str, Any]] = (),
) -> HostEndpoint:
    spec = _drop_none(
        {
            "node": "cmp1",
            "interfaceName": "eth0",
            "expectedIPs": list(ips),
            "profiles": list(profiles) or None,
            "ports": list(ports) or None,
        }
    )
    res = _decode("HostEndpoint", {"name": name, "labels": dict(labels or {})}, spec)
    assert isinstance(res, HostEndpoint)
    return res


def netset(
    name: str, nets: Sequence[str], labels: Mapping[str, str] | None = None, ns: str = R1
) -> NetworkSet:
    res = _decode(
        "NetworkSet",
        {"name": name, "namespace": ns, "labels": dict(labels or {})},
        {"nets": list(nets)},
    )
    assert isinstance(res, NetworkSet)
    return res


def gnetset(
    name: str, nets: Sequence[str], labels: Mapping[str, str] | None = None
) -> GlobalNetworkSet:
    res = _decode(
        "GlobalNetworkSet", {"name": name, "labels": dict(labels or {})}, {"nets": list(nets)}
    )
    assert isinstance(res, GlobalNetworkSet)
    return res


def _policy_spec(
    selector: str | None,
    order: float | None,
    types: Sequence[str] | None,
    ingress: Iterable[Mapping[str, Any]] | None,
    egress: Iterable[Mapping[str, Any]] | None,
    tier: str | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    return _drop_none(
        {
            "tier": tier,
            "order": order,
            "selector": selector,
            "types": list(types) if types is not None else None,
            "ingress": list(ingress) if ingress is not None else None,
            "egress": list(egress) if egress is not None else None,
            **extra,
        }
    )


def gnp(
    name: str,
    selector: str | None = None,
    *,
    order: float | None = None,
    types: Sequence[str] | None = None,
    ingress: Iterable[Mapping[str, Any]] | None = None,
    egress: Iterable[Mapping[str, Any]] | None = None,
    tier: str | None = None,
    **extra: Any,
) -> GlobalNetworkPolicy:
    spec = _policy_spec(selector, order, types, ingress, egress, tier, extra)
    res = _decode("GlobalNetworkPolicy", {"name": name}, spec)
    assert isinstance(res, GlobalNetworkPolicy)
    return res


def np(
    name: str,
    selector: str | None = None,
    *,
    ns: str = R1,
    order: float | None = None,
    types: Sequence[str] | None = None,
    ingress: Iterable[Mapping[str, Any]] | None = None,
    egress: Iterable[Mapping[str, Any]] | None = None,
    tier: str | None = None,
    **extra: Any,
) -> NetworkPolicy:
    spec = _policy_spec(selector, order, types, ingress, egress, tier, extra)
    res = _decode("NetworkPolicy", {"name": name, "namespace": ns}, spec)
    assert isinstance(res, NetworkPolicy)
    return res


def tier(name: str, order: float | None = None, default_action: str | None = None) -> Tier:
    res = _decode(
        "Tier", {"name": name}, _drop_none({"order": order, "defaultAction": default_action})
    )
    assert isinstance(res, Tier)
    return res


def profile(
    name: str,
    ingress: Iterable[Mapping[str, Any]] = (),
    egress: Iterable[Mapping[str, Any]] = (),
    labels_to_apply: Mapping[str, str] | None = None,
) -> Profile:
    spec = _drop_none(
        {
            "ingress": list(ingress) or None,
            "egress": list(egress) or None,
            "labelsToApply": dict(labels_to_apply) if labels_to_apply else None,
        }
    )
    res = _decode("Profile", {"name": name}, spec)
    assert isinstance(res, Profile)
    return res


def rule(action: str = "Allow", **fields: Any) -> dict[str, Any]:
    """A rule document; keyword names are the camelCase wire names (``notProtocol`` …)."""
    return {"action": action, **fields}


ALLOW = rule("Allow")
DENY = rule("Deny")
PASS = rule("Pass")
LOG = rule("Log")
