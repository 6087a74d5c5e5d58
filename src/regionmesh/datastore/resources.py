"""Typed access to v3 resources on top of a key-value :class:`~regionmesh.datastore.api.Datastore`.

:class:`ResourceClient` is the one write path for resources (CLI, Neutron side, cloud files):
it maps a resource to its Calico key, encodes it with :mod:`regionmesh.model.codec`, and turns
the backend's create-if-absent / compare-on-mod-revision primitives into calicoctl's verbs
(create, update, replace, apply, delete, get, list), with calicoctl's error messages. The
resource's ``metadata.resourceVersion`` is always the key's mod revision.

:meth:`ResourceClient.sync` is the desired-state write that the Neutron side, resync and
``cloud apply`` share: make a key hold a resource (or be absent) with create-if-absent /
compare-and-swap on the mod revision and bounded retries, keeping the stored ``uid`` and
``creationTimestamp`` (networking-calico's ``datamodel_v3.put``), and writing nothing when
kind, spec, labels and annotations already match. How a resource becomes stored bytes is a
:class:`StorageLayout` (calicoctl's compact sorted JSON by default; the Neutron side passes
networking-calico's key order). :func:`sync_json` is the same loop for plain JSON records (the
DHCP subnet values), and :meth:`ResourceClient.restore_synced` the CAS-safe undo of one sync.

It leaves decoding/validation rules to :mod:`regionmesh.model` (it only calls them) and
transport details to the backends.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

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
from regionmesh.model import KINDS, Resource, codec, validation
from regionmesh.model.kinds import API_VERSION, KindInfo

MAX_REPLACE_ATTEMPTS = 5
MAX_CAS_ATTEMPTS = 5
DEFAULT_TIER = "default"

Document = dict[str, Any]


def timestamp_now(*, microseconds: bool = False) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ``: Calico's ``creationTimestamp`` (networking-calico's
    ``timestamp_now``) and Felix's heartbeat ``time``; with ``microseconds``,
    ``…:SS.ffffffZ`` (resync reports)."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if microseconds else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.now(UTC).strftime(fmt)


def new_uid() -> str:
    """A fresh ``metadata.uid``."""
    return str(uuid.uuid4())


class SyncOutcome(StrEnum):
    """What one :meth:`ResourceClient.sync` (or :func:`sync_json`) did to its key."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Synced:
    """The result of one sync: the outcome, the key, what it held before (None: absent) and
    the mod revision this sync wrote (0 when it wrote nothing or deleted)."""

    outcome: SyncOutcome
    key: str
    previous: KeyValue | None
    revision: int = 0

    @property
    def wrote(self) -> bool:
        """True when the sync changed the key."""
        return self.outcome in (SyncOutcome.CREATED, SyncOutcome.UPDATED, SyncOutcome.DELETED)


@dataclass(frozen=True, slots=True)
class StorageLayout:
    """How a resource becomes the JSON value stored at its key.

    ``document`` turns a resource into the stored document (``uid``/``creationTimestamp``
    are then added by :func:`with_server_metadata`); ``dumps`` encodes it.
    """

    document: Callable[[Resource], Document]
    dumps: Callable[[Any], bytes]


def _compact_json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


CALICOCTL_LAYOUT = StorageLayout(codec.to_storage, _compact_json)
"""calicoctl's stored form: :func:`~regionmesh.model.codec.to_storage`, compact, keys sorted."""


def load_document(kv: KeyValue | None) -> Document | None:
    """The JSON object stored in ``kv``; None when absent, corrupt or not an object."""
    if kv is None:
        return None
    try:
        doc = json.loads(kv.value)
    except ValueError:
        return None  # corrupt: a sync overwrites it under CAS
    return doc if isinstance(doc, dict) else None


def with_server_metadata(
    doc: Mapping[str, Any],
    existing: Mapping[str, Any] | None,
    *,
    new_uid: Callable[[], str] = new_uid,
    now: Callable[[], str] = timestamp_now,
) -> Document:
    """``doc`` with ``uid``/``creationTimestamp`` kept from ``existing`` (or made new), as
    networking-calico's ``datamodel_v3.put`` does; labels/annotations replace wholesale.

    Metadata keys come out as ``name, namespace, creationTimestamp, uid, <the rest>``."""
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


def same_resource(existing: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """True when a stored document already is ``desired``: same kind and apiVersion, and
    :func:`same_content`. Server metadata (uid, timestamps) does not count."""
    return (
        existing is not None
        and existing.get("kind") == desired.get("kind")
        and existing.get("apiVersion") == desired.get("apiVersion")
        and same_content(existing, desired)
    )


class _Unread:
    """Marker: the caller has not read the key (sync reads it, and retries on a race)."""


UNREAD = _Unread()
Current = KeyValue | None | _Unread


def _cas_sync(
    store: Datastore,
    key: str,
    want: Document | None,
    *,
    same: Callable[[Document | None, Document], bool],
    encode: Callable[[Document, Document | None], bytes],
    current: Current,
) -> Synced:
    """The one compare / create-if-absent / CAS / bounded-retry loop.

    With ``current`` given (what the caller read, e.g. in a bulk list) there is one attempt at
    that revision and AlreadyExists/RevisionConflict/NotFound reach the caller; unread, the
    key is read and a race is retried up to MAX_CAS_ATTEMPTS times.
    """
    attempts = 1 if not isinstance(current, _Unread) else MAX_CAS_ATTEMPTS
    for _ in range(attempts):
        kv = store.get(key) if isinstance(current, _Unread) else current
        try:
            if want is None:
                if kv is None:
                    return Synced(SyncOutcome.ABSENT, key, None)
                store.delete(key, revision=kv.mod_revision)
                return Synced(SyncOutcome.DELETED, key, kv)
            existing = load_document(kv)
            if kv is not None and same(existing, want):
                return Synced(SyncOutcome.UNCHANGED, key, kv)
            value = encode(want, existing)
            if kv is None:
                return Synced(SyncOutcome.CREATED, key, None, store.create(key, value))
            rev = store.update(key, value, revision=kv.mod_revision)
            return Synced(SyncOutcome.UPDATED, key, kv, rev)
        except (AlreadyExists, RevisionConflict, NotFound):
            if not isinstance(current, _Unread):
                raise
            continue  # someone else wrote in between: re-read and try again
    raise RevisionConflict(f"{key}: still changing after {MAX_CAS_ATTEMPTS} attempts")


def _plain_json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def sync_json(
    store: Datastore,
    key: str,
    record: Document | None,
    *,
    current: Current = UNREAD,
    dumps: Callable[[Any], bytes] = _plain_json,
) -> Synced:
    """Make ``key`` hold the plain JSON ``record`` (None: be absent), CAS'd as in
    :meth:`ResourceClient.sync`; unchanged when the stored JSON equals ``record``."""
    return _cas_sync(
        store, key, record,
        same=lambda existing, want: existing == want,
        encode=lambda want, _existing: dumps(want),
        current=current,
    )  # fmt: skip


def restore(store: Datastore, synced: Synced) -> None:
    """Undo one sync CAS-safely: put back what ``synced.key`` held before, at the revision the
    sync wrote, so a concurrent writer's newer value is never clobbered (RevisionConflict or
    NotFound then reach the caller). A sync that wrote nothing needs no undo."""
    if not synced.wrote:
        return
    if synced.outcome is SyncOutcome.DELETED:
        assert synced.previous is not None
        store.create(synced.key, synced.previous.value)
    elif synced.previous is None:
        store.delete(synced.key, revision=synced.revision)
    else:
        store.update(synced.key, synced.previous.value, revision=synced.revision)


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
            "apiVersion": API_VERSION,
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

    def __init__(
        self,
        store: Datastore,
        *,
        layout: StorageLayout = CALICOCTL_LAYOUT,
        now: Callable[[], str] = timestamp_now,
        new_uid: Callable[[], str] = new_uid,
    ) -> None:
        self.store = store
        self.layout = layout
        self.now = now
        self.new_uid = new_uid

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
        return _compact_json(codec.to_storage(resource))

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
            creation_timestamp=md.creation_timestamp or timestamp_now(),
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

    # -- desired state ----------------------------------------------------------------------
    def sync(self, key: str, resource: Resource | None, *, current: Current = UNREAD) -> Synced:
        """Make ``key`` hold ``resource`` (None: be absent); see the module docstring.

        The resource is checked with :func:`regionmesh.model.validation.check` before anything
        is written (ValidationError names it and every bad field). ``current``: see
        :meth:`sync_document`.
        """
        if resource is None:
            return self.sync_document(key, None, current=current)
        validation.check(resource)
        return self.sync_document(key, self.layout.document(resource), current=current)

    def sync_document(self, key: str, doc: Document | None, *, current: Current = UNREAD) -> Synced:
        """:meth:`sync` for a document already in this client's layout (a merge of a stored
        object regionmesh does not fully model, or a bulk resync that compared first).

        With ``current`` (the key as the caller read it) there is exactly one CAS attempt at
        that revision, and a race raises AlreadyExists/RevisionConflict/NotFound; without, the
        key is read here and a race is retried up to MAX_CAS_ATTEMPTS times.
        """
        return _cas_sync(
            self.store, key, doc, same=same_resource, encode=self.encode_document,
            current=current,
        )  # fmt: skip

    def encode_document(self, doc: Document, existing: Document | None) -> bytes:
        """The bytes :meth:`sync` stores for ``doc`` over ``existing`` (uid/timestamp kept)."""
        return self.layout.dumps(
            with_server_metadata(doc, existing, new_uid=self.new_uid, now=self.now)
        )

    def restore_synced(self, synced: Synced) -> None:
        """CAS-safe undo of one :meth:`sync` (see :func:`restore`)."""
        restore(self.store, synced)

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
