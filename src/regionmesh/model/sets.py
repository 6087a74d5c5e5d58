"""Network-set kinds: NetworkSet (namespaced) and GlobalNetworkSet (cluster-scoped).

They are IP-set-only members of rule selectors: labels plus ``nets``. Their ``nets`` need not be
strictly masked (unlike rule CIDRs); checks live in :mod:`regionmesh.model.validation`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from regionmesh.model.base import Model, StrictStr
from regionmesh.model.meta import Resource

__all__ = ["GlobalNetworkSet", "NetworkSet", "NetworkSetSpec"]


class NetworkSetSpec(Model):
    """Spec of a (Global)NetworkSet: a list of CIDRs or bare IPs."""

    nets: list[StrictStr] = Field(default_factory=list)


class NetworkSet(Resource):
    """``NetworkSet``: namespaced set of networks matched by rule selectors."""

    KIND: ClassVar[str] = "NetworkSet"
    kind: Literal["NetworkSet"] = "NetworkSet"
    spec: NetworkSetSpec = Field(default_factory=NetworkSetSpec)


class GlobalNetworkSet(Resource):
    """``GlobalNetworkSet``: cluster-scoped set of networks matched by rule selectors."""

    KIND: ClassVar[str] = "GlobalNetworkSet"
    kind: Literal["GlobalNetworkSet"] = "GlobalNetworkSet"
    spec: NetworkSetSpec = Field(default_factory=NetworkSetSpec)
