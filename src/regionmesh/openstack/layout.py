"""networking-calico's stored form of the resources the Neutron side writes: its key order.

The model (:func:`regionmesh.model.codec.to_storage`) emits fields in declaration order;
networking-calico writes ``json.dumps`` of dicts it builds in its own order. Agents do not
care, but operators diff etcd values and the compatibility tests compare bytes, so
:data:`NETWORKING_CALICO_LAYOUT` (a :class:`~regionmesh.datastore.resource_client.StorageLayout`)
re-orders a typed WorkloadEndpoint or NetworkPolicy into exactly networking-calico's key
order and encodes it with ``json.dumps``' default separators. Keys it does not know keep the
model's order after the known ones. What the fields mean is the model's; writing is
:class:`~regionmesh.datastore.resource_client.ResourceClient`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from regionmesh.datastore.resource_client import StorageLayout
from regionmesh.model import Resource, codec

_TOP = ("kind", "apiVersion", "metadata", "spec")
_METADATA = ("name", "namespace", "creationTimestamp", "uid", "labels", "annotations")
_WEP_SPEC = (
    "orchestrator", "workload", "node", "endpoint", "interfaceName", "mac",
    "ipv4Gateway", "ipv6Gateway", "ipNetworks", "allowedIps", "ipNATs",
)  # fmt: skip
_POLICY_SPEC = ("ingress", "egress", "selector")
_RULE = ("action", "ipVersion", "protocol", "icmp", "destination", "source")
_ENTITY = ("selector", "nets", "ports")
_ICMP = ("type", "code")
_NAT = ("internalIP", "externalIP")


def _ordered(value: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    out = {k: value[k] for k in order if k in value}
    out.update((k, v) for k, v in value.items() if k not in out)
    return out


def _rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    out = _ordered(rule, _RULE)
    for side in ("source", "destination"):
        if isinstance(out.get(side), Mapping):
            out[side] = _ordered(out[side], _ENTITY)
    if isinstance(out.get("icmp"), Mapping):
        out["icmp"] = _ordered(out["icmp"], _ICMP)
    return out


def calico_document(resource: Resource) -> dict[str, Any]:
    """The stored document of ``resource`` in networking-calico's key order (no server
    metadata is added here)."""
    doc = _ordered(codec.to_storage(resource), _TOP)
    doc["metadata"] = _ordered(doc["metadata"], _METADATA)
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return doc
    if resource.kind == "WorkloadEndpoint":
        spec = _ordered(spec, _WEP_SPEC)
        if isinstance(spec.get("ipNATs"), list):
            spec["ipNATs"] = [_ordered(n, _NAT) for n in spec["ipNATs"]]
    elif resource.kind in ("NetworkPolicy", "GlobalNetworkPolicy"):
        spec = _ordered(spec, _POLICY_SPEC)
        for direction in ("ingress", "egress"):
            if isinstance(spec.get(direction), list):
                spec[direction] = [_rule(r) for r in spec[direction]]
    doc["spec"] = spec
    return doc


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


NETWORKING_CALICO_LAYOUT = StorageLayout(calico_document, _dumps)
"""What the Neutron side stores: networking-calico's key order, ``json.dumps`` defaults."""
