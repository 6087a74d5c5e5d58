"""The one exception tree of regionmesh.

Every error the project raises on purpose is a :class:`RegionmeshError`. Foreign exceptions
(etcd client, sqlite, nft, Neutron/oslo) are translated at the boundary module that meets them,
with ``raise ... from exc``. The tree::

    RegionmeshError
    ├── ConfigError                  bad configuration (option, value and rule are named)
    ├── ValidationError              a resource failed decoding/validation (field errors inside)
    │   └── TranslationError         a Neutron object cannot be translated faithfully
    ├── SelectorError                (also a ValueError) an invalid selector, with its column
    ├── NeutronUnavailable           Neutron's plugin or database failed a read
    ├── DatastoreError               anything the datastore refuses or cannot do
    │   ├── NotFound                 key/resource does not exist
    │   ├── AlreadyExists            create-only-if-absent found a key
    │   ├── RevisionConflict         CAS failed: the key's mod revision moved
    │   ├── Compacted                a watch asked for a revision that is compacted away
    │   ├── PermissionDenied         the store's access control refused this user this key/range
    │   ├── AuthenticationFailed     the store refused the credentials (wrong user or password)
    │   ├── QuotaExceeded            the store's space quota is exhausted (etcd NOSPACE alarm)
    │   └── DatastoreUnavailable     cannot reach / open the store (retryable)
    │       └── OutcomeUnknown       a write got no answer and re-reading could not settle it
    ├── DataplaneError               the kernel refused a transaction (nft/netlink)
    └── DataplaneContractError       dataplane messages arrived out of the documented order

What each error means to a caller is in its docstring; this module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


class RegionmeshError(Exception):
    """Base of every error regionmesh raises on purpose."""


class ConfigError(RegionmeshError):
    """A configuration value is invalid; the message names the option, the value and the rule."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: ``path`` is a dotted/indexed path such as ``spec.ingress[0].protocol``."""

    path: str
    value: object
    reason: str

    def __str__(self) -> str:
        if not self.path:
            return self.reason
        if self.value is None or self.value == "":
            return f"{self.path} ({self.reason})"
        if isinstance(self.value, dict | list | tuple):
            import json

            shown = json.dumps(self.value, separators=(",", ":"), default=str)
        else:
            shown = str(self.value)
        return f"{self.path} = '{shown}' ({self.reason})"


class ValidationError(RegionmeshError):
    """A resource is invalid. ``fields`` lists each bad field; ``where`` names the resource."""

    def __init__(self, fields: list[FieldError], where: str = "") -> None:
        self.fields = list(fields)
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.where}: " if self.where else ""
        if len(self.fields) == 1:
            return f"{head}error with field {self.fields[0]}"
        lines = [f"{head}error with the following fields:"]
        lines += [f"-  {f}" for f in self.fields]
        return "\n".join(lines)


class SelectorError(RegionmeshError, ValueError):
    """A selector does not parse. ``column`` is the 0-based offset of the problem."""

    def __init__(self, message: str, text: str, column: int) -> None:
        self.reason = message
        self.text = text
        self.column = column
        super().__init__(f"invalid selector {text!r} at column {column}: {message}")


class NeutronUnavailable(RegionmeshError):
    """Neutron (its ML2 plugin or its database) failed a read regionmesh made; the message
    names what was read and the original error is chained. Resync reports it and stops."""


class DatastoreError(RegionmeshError):
    """The datastore refused an operation or could not do it."""


class NotFound(DatastoreError):
    """The key or resource does not exist."""


class AlreadyExists(DatastoreError):
    """Create-only-if-absent found the key already present."""


class RevisionConflict(DatastoreError):
    """A compare-and-swap failed: the key is not at the expected mod revision."""


class Compacted(DatastoreError):
    """A watch started at a revision that has been compacted; the caller must re-list."""

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class PermissionDenied(DatastoreError):
    """etcd's RBAC refused the request: ``user`` may not ``operation`` ``key`` (a key, or a
    range written ``[start, end)``). Retrying will not help; the role must be changed."""

    def __init__(self, message: str, *, key: str = "", user: str | None = None,
                 operation: str = "") -> None:  # fmt: skip
        super().__init__(message)
        self.key = key
        self.user = user
        self.operation = operation


class AuthenticationFailed(DatastoreError):
    """The store refused the configured credentials (unknown user or wrong password), or
    requires credentials that were not given; the message names the user and the endpoint."""


class DatastoreUnavailable(DatastoreError):
    """The store cannot be reached or opened; callers may retry with backoff."""


class OutcomeUnknown(DatastoreUnavailable):
    """A write was sent but no answer came (timeout, dropped connection): it may have applied.

    Raised only after the backend re-read the key and could not settle the outcome; callers
    must re-read before writing again (a compare-and-swap retry is always safe).
    """


class QuotaExceeded(DatastoreError):
    """The store refused a write because its space quota is exhausted (etcd's NOSPACE alarm)."""


class DataplaneError(RegionmeshError):
    """The kernel (nft, netlink) refused or failed a dataplane transaction."""


class TranslationError(ValidationError):
    """A Neutron object cannot be translated faithfully (e.g. an SG rule regionmesh does not
    understand). Raised instead of writing anything wider; ``fields`` name the Neutron field."""


class DataplaneContractError(RegionmeshError):
    """Dataplane messages broke the ordering contract (e.g. a policy removed while in use).

    Raised by the dataplane's RecordingDataplane in tests; the real driver fails closed instead.
    """


class RoutingError(RegionmeshError):
    """The BGP daemon (BIRD) cannot be started, configured or queried (``regionmesh bgp``,
    ``calicoctl node status``); the message says which socket, file or command."""
