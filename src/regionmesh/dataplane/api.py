"""The dataplane's seams: Protocols and one value type, nothing concrete.

* :class:`Dataplane` is what the agent programs against: the calc graph hands :mod:`.messages`
  to ``on_update`` and the agent calls ``apply`` after each batch and ``resync`` on a timer.
  Implementations: :class:`.driver.NftDataplane` (the kernel) and
  :class:`.recording.RecordingDataplane` (tests; checks the message contract).
* :class:`NftRunner` and :class:`RouteRunner` (with :class:`EndpointRoute`) are what the driver
  programs the kernel through. Implementations: :class:`.nft_runner.SubprocessNft` and
  :class:`.fakenft.FakeNft`; :class:`.routes.NetlinkRoutes`.

Keeping the seams here keeps the driver free of subprocess and pyroute2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from regionmesh.dataplane.messages import Message


class Dataplane(Protocol):
    """Two-method manager (Felix style) plus a periodic resync."""

    def on_update(self, msg: Message) -> None:
        """Record one message; cheap, never touches the kernel."""

    def apply(self) -> None:
        """Make the kernel match everything recorded so far (one transaction)."""

    def resync(self) -> bool:
        """Compare the kernel with what was programmed; repair drift; True if it repaired."""


class NftRunner(Protocol):
    """Runs nft transactions against one kernel (or a fake of one)."""

    def apply(self, script: str) -> None:
        """Run ``script`` as ONE transaction; raise DataplaneError (nothing applied) on failure."""

    def list_ruleset_json(self, table: str) -> dict[str, Any]:
        """``nft -j list table <table>`` (e.g. ``"ip calico"``); an absent table lists as empty."""


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """What one tap needs: its addresses (routed to it) and the VM's MAC (permanent neighbour)."""

    iface: str
    nets: tuple[str, ...]  # v4 and v6 CIDRs, normally /32 and /128
    mac: str | None = None


class RouteRunner(Protocol):
    """Programs routes, neighbours and per-tap sysctls for local endpoints."""

    def sync(self, desired: Mapping[str, EndpointRoute], prefixes: tuple[str, ...]) -> set[str]:
        """Make ``proto boot`` routes on prefix interfaces equal ``desired`` (keyed by iface).

        Returns the interfaces that do not exist yet (the caller retries later).
        """
