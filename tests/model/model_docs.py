"""Helpers for the model tests: build v3 documents with little boilerplate (not a test file)."""

from __future__ import annotations

import copy
from typing import Any

API = "projectcalico.org/v3"

SEED_YAML = """\
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-tcp-80
spec:
  selector: "has(sg.projectcalico.org/openstack-a7734e61-b545-452d-a3cd-0189cbd9747a)"
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: "has(sg.projectcalico.org/openstack-85cc3048-abc3-43cc-89b3-377341426ac5)"
    destination:
      ports:
      - 80
"""


def doc(kind: str, name: str = "x", namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """A v3 document of ``kind`` with the given spec fields (camelCase keys)."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": copy.deepcopy(spec)}


def gnp_rule(direction: str = "ingress", **rule: Any) -> dict[str, Any]:
    """A GlobalNetworkPolicy with one rule (action Allow unless given)."""
    rule.setdefault("action", "Allow")
    return doc("GlobalNetworkPolicy", "p", **{direction: [rule]})


def np_rule(direction: str = "ingress", **rule: Any) -> dict[str, Any]:
    """A NetworkPolicy in namespace ``ns`` with one rule."""
    rule.setdefault("action", "Allow")
    return doc("NetworkPolicy", "p", "ns", **{direction: [rule]})


def wep(name: str | None = None, **spec: Any) -> dict[str, Any]:
    """A networking-calico style WorkloadEndpoint."""
    base: dict[str, Any] = {
        "orchestrator": "openstack",
        "workload": "instance-1",
        "node": "felix-host-1",
        "endpoint": "DEADBEEF-1234-5678",
        "interfaceName": "tapDEADBEEF-12",
        "mac": "fa:16:3e:00:00:01",
        "ipNetworks": ["10.65.0.2/32"],
        "allowedIps": [],
    }
    base.update(spec)
    return doc(
        "WorkloadEndpoint",
        name or "felix--host--1-openstack-instance--1-DEADBEEF--1234--5678",
        "openstack-region-r1",
        **base,
    )
