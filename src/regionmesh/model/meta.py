"""ObjectMeta and the Resource base class shared by every projectcalico.org/v3 kind.

``ObjectMeta`` accepts the Kubernetes metadata fields calicoctl's strict decoder accepts.
``Resource`` carries ``apiVersion``/``kind``/``metadata``; each kind subclass adds its ``spec``.
Naming rules, label syntax and defaulting live in :mod:`regionmesh.model.validation`; turning
documents into resources lives in :mod:`regionmesh.model.codec`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from regionmesh.model.base import Model, StrictInt, StrictStr
from regionmesh.model.kinds import API_VERSION, KindInfo, kind_info

__all__ = ["NAMESPACE_LABEL", "ORCHESTRATOR_LABEL", "ObjectMeta", "Resource"]

NAMESPACE_LABEL = "projectcalico.org/namespace"
"""The label Calico gives every namespaced endpoint: its namespace."""
ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator"
"""The label Calico gives every WorkloadEndpoint: its orchestrator."""


class ObjectMeta(Model):
    """Kubernetes-style object metadata (``metadata`` of every v3 resource)."""

    name: StrictStr = ""
    generate_name: StrictStr = ""
    namespace: StrictStr = ""
    uid: StrictStr = ""
    resource_version: StrictStr = ""
    generation: StrictInt | None = None
    creation_timestamp: StrictStr | None = None
    deletion_timestamp: StrictStr | None = None
    deletion_grace_period_seconds: StrictInt | None = None
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)
    finalizers: list[StrictStr] = Field(default_factory=list)
    managed_fields: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("creation_timestamp", "deletion_timestamp")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an RFC 3339 timestamp") from None
        return value


class Resource(Model):
    """A projectcalico.org/v3 resource. Subclasses fix ``kind`` (a Literal) and add ``spec``."""

    KIND: ClassVar[str] = ""

    api_version: StrictStr = Field(default=API_VERSION, alias="apiVersion")
    kind: StrictStr = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def info(self) -> KindInfo:
        """Static facts about this kind (plural, namespaced, aliases…)."""
        return kind_info(self.KIND)

    @property
    def name(self) -> str:
        """``metadata.name``."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` (empty for cluster-scoped kinds)."""
        return self.metadata.namespace

    @property
    def display_name(self) -> str:
        """Calico's ``Kind(namespace/name)`` / ``Kind(name)`` form used in messages."""
        ident = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.KIND or self.kind}({ident})"
