"""The dataplane seam the agent programs against: a Protocol, nothing concrete.

The agent's calc graph hands :mod:`.messages` to ``on_update`` and calls ``apply`` after each
batch and ``resync`` on a timer. Implementations: :class:`.driver.NftDataplane` (the kernel)
and :class:`.recording.RecordingDataplane` (tests; checks the message contract).
"""

from __future__ import annotations

from typing import Protocol

from regionmesh.dataplane.messages import Message


class Dataplane(Protocol):
    """Two-method manager (Felix style) plus a periodic resync."""

    def on_update(self, msg: Message) -> None:
        """Record one message; cheap, never touches the kernel."""

    def apply(self) -> None:
        """Make the kernel match everything recorded so far (one transaction)."""

    def resync(self) -> bool:
        """Compare the kernel with what was programmed; repair drift; True if it repaired."""
