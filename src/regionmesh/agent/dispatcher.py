"""UpdateDispatcher: fans each ResourceUpdate out to the nodes that registered for its kind.

Felix's ``dispatcher.Dispatcher``: nodes call :meth:`UpdateDispatcher.register` from their own
``register_with`` method, listing the kinds they want; handlers run synchronously, in
registration order, which the graph builder chooses (and comments) in one place. The dispatcher
does not filter, validate or buffer: that is :mod:`regionmesh.agent.filters`' job and the nodes'.
"""

from __future__ import annotations

from collections.abc import Callable

from regionmesh.agent.updates import ResourceUpdate

__all__ = ["UpdateDispatcher", "UpdateHandler"]

UpdateHandler = Callable[[ResourceUpdate], None]


class UpdateDispatcher:
    """Route updates by kind to the handlers registered for that kind, in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[UpdateHandler]] = {}

    def register(self, kind: str, handler: UpdateHandler) -> None:
        """Call ``handler`` for every update of ``kind`` (after earlier registrations)."""
        self._handlers.setdefault(kind, []).append(handler)

    def kinds(self) -> frozenset[str]:
        """Every kind some node listens to."""
        return frozenset(self._handlers)

    def on_update(self, update: ResourceUpdate) -> None:
        """Deliver ``update`` to each handler of its kind; unknown kinds are dropped."""
        for handler in self._handlers.get(update.kind, ()):
            handler(update)
