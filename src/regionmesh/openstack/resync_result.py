"""What a resync is asked to do and what it did: :class:`Scope`, :class:`ResyncResult`.

Plain data for :mod:`regionmesh.openstack.resync` and its callers (the worker's startup
resync, ``regionmesh resync``): the scope of one run, and per-phase counts, timings and the
list of changes, JSON-able in networking-calico's ResyncResult shape plus regionmesh fields.
Nothing here reads or writes anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scope:
    """What to resync: everything (no field set) or one network/subnet/port/security group."""

    network: str | None = None
    subnet: str | None = None
    port: str | None = None
    security_group: str | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in asdict(self).values()) > 1:
            raise ValueError("a resync scope names at most one network, subnet, port or SG")

    @property
    def everything(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def describe(self) -> str:
        for name, value in asdict(self).items():
            if value is not None:
                return f"{name.replace('_', '-')} {value}"
        return "all"


@dataclass
class Change:
    """One repair: ``create``, ``update`` or ``delete`` of ``name`` (and whether it happened)."""

    action: str
    name: str
    done: bool = False
    conflict: bool = False


@dataclass
class PhaseResult:
    """Counts and timings (ms) of one phase."""

    kind: str
    etcd_items: int = 0
    neutron_items: int = 0
    correct: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: int = 0
    errors: int = 0
    etcd_read_ms: float = 0.0
    neutron_read_ms: float = 0.0
    compare_ms: float = 0.0
    write_ms: float = 0.0
    total_ms: float = 0.0
    changes: list[Change] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int:
        """How many items were (or, in a dry run, would be) created, updated or deleted."""
        return sum(1 for c in self.changes if not c.conflict)


@dataclass
class ResyncResult:
    """What one resync did."""

    region: str | None
    scope: str
    dry_run: bool
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    total_ms: float = 0.0
    ok: bool = True
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (networking-calico's ResyncResult shape plus regionmesh fields)."""
        out = asdict(self)
        for name, phase in self.phases.items():
            out["phases"][name]["drift"] = phase.drift
        return out

    @property
    def in_sync(self) -> bool:
        """True when nothing needed repairing."""
        return all(p.drift == 0 and p.errors == 0 for p in self.phases.values())
