"""Typed access to v3 resources on top of a key-value :class:`~regionmesh.datastore.api.Datastore`.

:class:`ResourceClient` is the one write path for resources (CLI, Neutron side, cloud files):
it maps a resource to its Calico key, encodes it with :mod:`regionmesh.model.codec`, and turns
the backend's create-if-absent / compare-on-mod-revision primitives into calicoctl's verbs
(create, update, replace, apply, delete, get, list), with calicoctl's error messages. The
resource's ``metadata.resourceVersion`` is always the key's mod revision.

It leaves decoding/validation rules to :mod:`regionmesh.model` (it only calls them) and
transport details to the backends.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from regionmesh.datastore import keys
from regionmesh.datastore.api import Datastore, KeyValue
from regionmesh.errors import (
    AlreadyExists,
    DatastoreError,
    FieldError,
    NotFound,
    RevisionConflict,
    ValidationError,
)
from regionmesh.model import KINDS, Resource, codec
from regionmesh.model.kinds import KindInfo

MAX_REPLACE_ATTEMPTS = 5
DEFAULT_TIER = "default"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_metadata(resource: Resource, **changes: object) -> Resource:
    """A copy of a (frozen) resource with some ``metadata`` fields changed."""
    return resource.model_copy(update={"metadata": resource.metadata.model_copy(update=changes)})


def describe(kind: str, name: str, namespace: str | None) -> str:
    """calicoctl's way of naming a resource in messages: ``Kind(ns/name)`` or ``Kind(name)``."""
    return f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"


def does_not_exist(kind: str, name: str, namespace: str | None) -> NotFound:
    """The NotFound error calicoctl prints for a missing resource."""
    return NotFound(f"resource does not exist: {describe(kind, name, namespace)} with error: <nil>")


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many objects are built at once.

    Decoding 100k resources allocates millions of container objects; each allocation burst
    triggers a full-generation scan of everything already decoded, which made a 100k list four
    times slower. Nothing decoded here forms reference cycles that need collecting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class ResourceList:
    """A list result: the items and the store revision it was read at."""

    kind: str
    items: list[Resource]
    revision: int


def default_tier() -> Resource:
    """Calico's built-in ``default`` tier (order 1000000, Deny), shown when none is stored.

    Calico's client creates it at start-up; regionmesh never writes it implicitly, so reads
    synthesise it until an operator stores one (policy evaluation does the same).
    """
    return codec.decode(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "Tier",
            "metadata": {"name": DEFAULT_TIER},
            "spec": {"order": 1000000, "defaultAction": "Deny"},
        }
    )


def policy_tier_name(resource: Resource) -> str | None:
    """The tier a (Global)NetworkPolicy lives in, or None for any other kind."""
    if resource.kind not in ("GlobalNetworkPolicy", "NetworkPolicy"):
        return None
    tier = getattr(getattr(resource, "spec", None), "tier", None)
    return tier or DEFAULT_TIER


def write_order(resources: Iterable[Resource]) -> builtins.list[Resource]:
    """The order a batch is written in: its Tiers first, then everything else, each group in
    input order, so a policy never reaches the datastore before the tier it names."""
    todo = builtins.list(resources)
    return [r for r in todo if r.kind == "Tier"] + [r for r in todo if r.kind != "Tier"]


class ResourceClient:
    """calicoctl-like verbs over any Datastore backend (see module docstring)."""

    def __init__(self, store: Datastore) -> None:
        self.store = store

    # -- keys -----------------------------------------------------------------------------
    @staticmethod
    def info(kind: str) -> KindInfo:
        """The kind's registry entry (KeyError for an unknown kind)."""
        return KINDS[kind]

    def key_for(self, kind: str, name: str, namespace: str | None) -> str:
        """The etcd key of a resource."""
        info = self.info(kind)
        return keys.resource_key(info.plural, name, namespace if info.namespaced else None)

    def key_of(self, resource: Resource) -> str:
        """The etcd key of a resource object."""
        md = resource.metadata
        return self.key_for(resource.kind, md.name, md.namespace)

    # -- reads ----------------------------------------------------------------------------
    def _decode(self, kv: KeyValue) -> Resource:
        try:
            data = json.loads(kv.value)
        except ValueError as exc:
            raise DatastoreError(f"corrupt JSON at {kv.key}: {exc}") from exc
        return codec.from_storage(data, resource_version=str(kv.mod_revision))

    def get(self, kind: str, name: str, namespace: str | None = None) -> Resource:
        """Read one resource; NotFound if absent."""
        kv = self.store.get(self.key_for(kind, name, namespace))
        if kv is None and kind == "Tier" and name == DEFAULT_TIER:
            return default_tier()
        if kv is None:
            raise does_not_exist(kind, name, namespace if self.info(kind).namespaced else None)
        return self._decode(kv)

    def find(self, kind: str, name: str, namespace: str | None = None) -> Resource | None:
        """Read one resource, or None if absent."""
        try:
            return self.get(kind, name, namespace)
        except NotFound:
            return None

    def list(self, kind: str, namespace: str | None = None) -> ResourceList:
        """List a kind; ``namespace=None`` lists every namespace of a namespaced kind."""
        info = self.info(kind)
        prefix = keys.resource_prefix(info.plural, namespace if info.namespaced else None)
        result = self.store.list(prefix, page_size=10_000)
        with _gc_paused():
            items = [self._decode(kv) for kv in result.items]
        if kind == "Tier" and not any(r.metadata.name == DEFAULT_TIER for r in items):
            items = sorted([*items, default_tier()], key=lambda r: r.metadata.name)
        return ResourceList(kind, items, result.revision)

    # -- writes ---------------------------------------------------------------------------
    def _encode(self, resource: Resource) -> bytes:
        return json.dumps(
            codec.to_storage(resource), separators=(",", ":"), sort_keys=True
        ).encode()

    def _check_tier(self, resource: Resource, pending: frozenset[str] = frozenset()) -> None:
        """A policy's tier must exist: in the datastore, or among ``pending`` (the Tiers of the
        same batch, written before the batch's policies)."""
        tier = policy_tier_name(resource)
        if tier and tier != DEFAULT_TIER and tier not in pending:
            if self.find("Tier", tier) is None:
                raise does_not_exist("Tier", tier, None)

    def create(self, resource: Resource) -> Resource:
        """Create only if absent; sets uid and creationTimestamp. AlreadyExists otherwise."""
        md = resource.metadata
        if md.resource_version:
            raise ValidationError(
                [
                    FieldError(
                        "metadata.resourceVersion",
                        md.resource_version,
                        "field must not be set for a Create request",
                    )
                ],
                describe(resource.kind, md.name, md.namespace),
            )
        self._check_tier(resource)
        new = with_metadata(
            resource,
            uid=md.uid or str(uuid.uuid4()),
            creation_timestamp=md.creation_timestamp or _now(),
        )
        try:
            rev = self.store.create(self.key_of(new), self._encode(new))
        except AlreadyExists as exc:
            raise AlreadyExists(
                f"resource already exists: {describe(new.kind, md.name, md.namespace)}"
                " with error: <nil>"
            ) from exc
        return with_metadata(new, resource_version=str(rev))

    def update(self, resource: Resource) -> Resource:
        """CAS update at ``metadata.resourceVersion`` (required)."""
        md = resource.metadata
        where = describe(resource.kind, md.name, md.namespace)
        if not md.resource_version:
            raise ValidationError(
                [
                    FieldError(
                        "metadata.resourceVersion", "", "field must be set for an Update request"
                    )
                ],
                where,
            )
        self._check_tier(resource)
        try:
            rev = self.store.update(
                self.key_of(resource), self._encode(resource), revision=int(md.resource_version)
            )
        except NotFound as exc:
            raise does_not_exist(resource.kind, md.name, md.namespace) from exc
        except RevisionConflict as exc:
            raise RevisionConflict(f"update conflict: {where}") from exc
        return with_metadata(resource, resource_version=str(rev))

    def replace(self, resource: Resource) -> Resource:
        """calicoctl ``replace``: update an existing resource, keeping its identity metadata.

        With a resourceVersion in the input it must equal the stored one; without, the stored
        uid/creationTimestamp/resourceVersion are copied and the CAS is retried on conflict.
        """
        md = resource.metadata
        where = describe(resource.kind, md.name, md.namespace)
        for _ in range(MAX_REPLACE_ATTEMPTS):
            current = self.get(resource.kind, md.name, md.namespace)
            if not current.metadata.resource_version:  # synthesised (default tier): store it
                return self.create(with_metadata(resource, resource_version=""))
            if md.resource_version and md.resource_version != current.metadata.resource_version:
                raise RevisionConflict(
                    f"resource version '{md.resource_version}' is out of date "
                    f"(latest: {current.metadata.resource_version}): {where}"
                )
            new = with_metadata(
                resource,
                uid=current.metadata.uid,
                creation_timestamp=current.metadata.creation_timestamp,
                resource_version=current.metadata.resource_version,
            )
            try:
                return self.update(new)
            except RevisionConflict:
                if md.resource_version:
                    raise
        raise RevisionConflict(f"update conflict: {where}")

    def apply(self, resource: Resource) -> Resource:
        """calicoctl ``apply``: create, or replace when it already exists."""
        if not resource.metadata.resource_version:
            try:
                return self.create(resource)
            except AlreadyExists:
                pass
        return self.replace(resource)

    def delete(
        self, kind: str, name: str, namespace: str | None = None, *, resource_version: str = ""
    ) -> Resource:
        """Delete (CAS when a resourceVersion is given); returns what was deleted."""
        namespace = namespace if self.info(kind).namespaced else None
        if kind == "Tier" and name == DEFAULT_TIER:
            raise ValidationError(
                [FieldError("metadata.name", name, "the default tier cannot be deleted")],
                describe(kind, name, None),
            )
        current = self.get(kind, name, namespace)
        rev = int(resource_version) if resource_version else int(current.metadata.resource_version)
        try:
            self.store.delete(self.key_for(kind, name, namespace), revision=rev)
        except NotFound as exc:
            raise does_not_exist(kind, name, namespace) from exc
        except RevisionConflict as exc:
            raise RevisionConflict(f"update conflict: {describe(kind, name, namespace)}") from exc
        return current

    def restore(self, resource: Resource, previous: Resource | None) -> None:
        """Undo one write made by this client: delete ``resource`` or put ``previous`` back.

        Used by all-or-nothing batch writes; CAS at the revision we wrote, so a concurrent
        writer's change is never clobbered (it raises RevisionConflict instead).
        """
        key = self.key_of(resource)
        rev = int(resource.metadata.resource_version)
        if previous is None:
            self.store.delete(key, revision=rev)
        else:
            self.store.update(key, self._encode(previous), revision=rev)

    def write_all(self, verb: str, resources: Iterable[Resource]) -> builtins.list[Resource]:
        """Apply one verb (create|apply|replace) to several resources, all or nothing.

        Preconditions are checked for every resource before the first write (create: none
        exists; replace: all exist; a policy's tier exists in the datastore *or is a Tier of
        the same batch*). Tiers are written first (:func:`write_order`), so a file holding a
        tier and its policies works whatever its document order. If a write still fails (a
        concurrent writer), the writes already made are undone in reverse order and the error
        is raised.
        """
        todo = write_order(resources)
        pending = frozenset(r.metadata.name for r in todo if r.kind == "Tier")
        previous: builtins.list[Resource | None] = []
        for res in todo:
            md = res.metadata
            if verb == "create" and md.resource_version:
                raise ValidationError(
                    [FieldError("metadata.resourceVersion", md.resource_version,
                                "field must not be set for a Create request")],
                    describe(res.kind, md.name, md.namespace),
                )  # fmt: skip
            prev = self.find(res.kind, md.name, md.namespace)
            if verb == "create" and prev is not None:
                raise AlreadyExists(
                    f"resource already exists: {describe(res.kind, md.name, md.namespace)}"
                    " with error: <nil>"
                )
            if verb == "replace" and prev is None:
                raise does_not_exist(res.kind, md.name, md.namespace)
            self._check_tier(res, pending)
            previous.append(prev)
        done: builtins.list[tuple[Resource, Resource | None]] = []
        try:
            for res, prev in zip(todo, previous, strict=True):
                written = getattr(self, verb)(res)
                done.append((written, prev))
        except DatastoreError:
            for written, prev in reversed(done):
                try:
                    self.restore(written, prev)
                except DatastoreError:
                    pass
            raise
        return [w for w, _ in done]
