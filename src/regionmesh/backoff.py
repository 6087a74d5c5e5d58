"""Exponential backoff with a ceiling: the one retry-delay helper of every loop.

``Backoff(low, high)``: :meth:`Backoff.next` returns ``low`` after a reset and doubles up to
``high`` on every further call; :meth:`Backoff.reset` starts over after a success. It only
computes delays; sleeping, and deciding what counts as a failure, are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays ``low``, ``2·low``, … capped at ``high``; ``current`` is the last one (0 = reset)."""

    low: float = 0.5
    high: float = 10.0
    current: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ValueError(f"backoff needs 0 < low <= high, got {self.low}, {self.high}")

    def next(self) -> float:
        """The next delay (and remember it as ``current``)."""
        self.current = self.low if self.current == 0 else min(self.high, self.current * 2)
        return self.current

    def reset(self) -> None:
        """After a success: the next failure waits ``low`` again."""
        self.current = 0.0
