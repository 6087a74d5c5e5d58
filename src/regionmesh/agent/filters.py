"""Filters at the graph's edges: ValidationFilter (invalid = deleted) and LocalEndpointFilter.

* :class:`ValidationFilter` (Felix's ``validation_filter.go``): a value that fails
  :func:`regionmesh.model.validation.validate`, or whose kind/name/namespace disagree with its
  key, is passed on as ``None`` — treated as deleted, so bad data can never open traffic. It
  never repairs a value.
* :class:`LocalEndpointFilter` (Felix's ``endpointHostnameFilter``): passes on only the
  WorkloadEndpoints of this host. As in Felix the test is the first dash-separated field of the
  resource name (``split_workload_endpoint_name``), which is fixed for a key, so a key is either
  always local or never.

Neither filter computes anything else; what happens to the survivors is up to their sinks.
"""

from __future__ import annotations

import logging

from regionmesh.agent.dispatcher import UpdateHandler
from regionmesh.agent.label_inheritance import EntityInfo, EntitySink
from regionmesh.agent.updates import WEP, Key, ResourceUpdate
from regionmesh.model import split_workload_endpoint_name
from regionmesh.model.validation import validate
from regionmesh.policy.labels import LabelledEntity

__all__ = ["LocalEndpointFilter", "ValidationFilter", "is_local_endpoint_name"]

LOG = logging.getLogger(__name__)


class ValidationFilter:
    """Turns invalid values into deletes before handing updates to ``sink``."""

    def __init__(self, sink: UpdateHandler) -> None:
        self._sink = sink

    def on_update(self, update: ResourceUpdate) -> None:
        """Validate ``update.value``; forward it, or a delete if it is invalid."""
        value = update.value
        if value is not None:
            problem = self._problem(update)
            if problem:
                LOG.warning(
                    "Treating invalid %s %s/%s as deleted: %s",
                    update.kind,
                    update.namespace or "",
                    update.name,
                    problem,
                )
                update = ResourceUpdate(update.kind, update.namespace, update.name, None)
        self._sink(update)

    @staticmethod
    def _problem(update: ResourceUpdate) -> str:
        value = update.value
        assert value is not None
        if value.KIND != update.kind:
            return f"value is a {value.KIND}"
        if value.metadata.name != update.name:
            return f"value is named {value.metadata.name!r}"
        if (value.metadata.namespace or None) != (update.namespace or None):
            return f"value is in namespace {value.metadata.namespace!r}"
        try:
            errors = validate(value)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not open traffic: fail closed
            return f"validation failed: {exc!r}"
        return "; ".join(str(e) for e in errors[:3])


def is_local_endpoint_name(name: str, hostname: str) -> bool:
    """True if the WorkloadEndpoint ``name`` belongs to ``hostname`` (first name field)."""
    return split_workload_endpoint_name(name)[0] == hostname


class LocalEndpointFilter:
    """An :class:`EntitySink` that forwards only this host's WorkloadEndpoints."""

    def __init__(self, hostname: str, sinks: tuple[EntitySink, ...]) -> None:
        self._hostname = hostname
        self._sinks = sinks

    def _is_local(self, key: Key) -> bool:
        return key[0] == WEP and is_local_endpoint_name(key[2], self._hostname)

    def on_entity_update(self, key: Key, entity: LabelledEntity, info: EntityInfo) -> None:
        """Forward a local endpoint."""
        if self._is_local(key):
            for sink in self._sinks:
                sink.on_entity_update(key, entity, info)

    def on_entity_remove(self, key: Key) -> None:
        """Forward the removal of a local endpoint."""
        if self._is_local(key):
            for sink in self._sinks:
                sink.on_entity_remove(key)
