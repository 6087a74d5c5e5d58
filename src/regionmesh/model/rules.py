"""Policy rules: :class:`Rule`, :class:`EntityRule` and their parts, as decoded from v3 JSON.

Field names and nesting follow ``api/pkg/apis/projectcalico/v3/policy_common.go``. Enumerated
strings (``action``, HTTP methods) are kept as plain strings here and checked by
:mod:`regionmesh.model.validation`, which is also where cross-field rules live (ports need a
protocol, CIDR families, …). Evaluation of rules belongs to :mod:`regionmesh.policy`.
"""

from __future__ import annotations

from pydantic import Field

from regionmesh.model.base import Model, StrictInt, StrictStr
from regionmesh.model.values import Port, Protocol

__all__ = [
    "ACTIONS",
    "EntityRule",
    "HTTPMatch",
    "HTTPPath",
    "ICMPFields",
    "Rule",
    "RuleMetadata",
    "ServiceAccountMatch",
    "ServiceMatch",
]

ACTIONS = ("Allow", "Deny", "Log", "Pass")
"""Valid rule actions (case-sensitive)."""


class ICMPFields(Model):
    """``icmp``/``notICMP``: ICMP type (0–254) and optional code (0–255)."""

    type: StrictInt | None = None
    code: StrictInt | None = None


class ServiceAccountMatch(Model):
    """``serviceAccounts``: names and/or a selector over service-account labels."""

    names: list[StrictStr] = Field(default_factory=list)
    selector: StrictStr = ""


class ServiceMatch(Model):
    """``services``: a Kubernetes Service by name and namespace."""

    name: StrictStr = ""
    namespace: StrictStr = ""


class EntityRule(Model):
    """One side (``source``/``destination``) of a rule; every present field is ANDed."""

    nets: list[StrictStr] = Field(default_factory=list)
    not_nets: list[StrictStr] = Field(default_factory=list)
    selector: StrictStr = ""
    not_selector: StrictStr = ""
    namespace_selector: StrictStr = ""
    ports: list[Port] = Field(default_factory=list)
    not_ports: list[Port] = Field(default_factory=list)
    service_accounts: ServiceAccountMatch | None = None
    services: ServiceMatch | None = None

    @property
    def is_empty(self) -> bool:
        """True when the side matches everything (no field set)."""
        return not (
            self.nets
            or self.not_nets
            or self.selector
            or self.not_selector
            or self.namespace_selector
            or self.ports
            or self.not_ports
            or self.service_accounts
            or self.services
        )

    @property
    def all_ports(self) -> list[Port]:
        """``ports`` followed by ``notPorts``."""
        return [*self.ports, *self.not_ports]


class HTTPPath(Model):
    """One HTTP path match: exactly one of ``exact``/``prefix``."""

    exact: StrictStr = ""
    prefix: StrictStr = ""


class HTTPMatch(Model):
    """``http``: application-layer match (ignored by the L3/L4 dataplane)."""

    methods: list[StrictStr] = Field(default_factory=list)
    paths: list[HTTPPath] = Field(default_factory=list)


class RuleMetadata(Model):
    """``metadata`` of a rule: free-form annotations."""

    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class Rule(Model):
    """A policy/profile rule; ``action`` is Allow, Deny, Log or Pass."""

    action: StrictStr = ""
    ip_version: StrictInt | None = None
    protocol: Protocol | None = None
    not_protocol: Protocol | None = None
    icmp: ICMPFields | None = None
    not_icmp: ICMPFields | None = Field(default=None, alias="notICMP")
    source: EntityRule = Field(default_factory=EntityRule)
    destination: EntityRule = Field(default_factory=EntityRule)
    http: HTTPMatch | None = None
    metadata: RuleMetadata | None = None
