"""Shared CLI plumbing: which datastore a command talks to, and how errors end a command.

Every command that touches the datastore takes ``--datastore URL`` (regionmesh's form) and
``-c/--config FILE`` (calicoctl's), also accepted before the sub-command. Resolution itself
(env, calicoctl.cfg, embedded default) belongs to :mod:`regionmesh.datastore.config`. The
datastore package is imported only when a command opens the store, so commands that never do
(``version``, ``validate``, ``--help``) start without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from regionmesh.errors import RegionmeshError

if TYPE_CHECKING:  # imported when a command opens the datastore, not at start-up
    from regionmesh.datastore.api import Datastore
    from regionmesh.datastore.resources import ResourceClient

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with status 1 (calicoctl's convention)."""
    click.echo(message, err=True)
    raise SystemExit(1)


@dataclass
class CliContext:
    """Per-invocation state: datastore selection, opened lazily once."""

    url: str | None = None
    config_file: str | None = None
    _store: Datastore | None = field(default=None, repr=False)

    def store(self) -> Datastore:
        """Open (once) and return the selected datastore; exit 1 with the reason if it fails."""
        if self._store is None:
            from regionmesh.datastore import open_datastore, resolve_config

            try:
                self._store = open_datastore(
                    resolve_config(url=self.url, config_file=self.config_file)
                )
            except RegionmeshError as exc:
                fail(f"cannot open the datastore: {exc}")
        return self._store

    def client(self) -> ResourceClient:
        """A ResourceClient over the selected datastore."""
        from regionmesh.datastore.resources import ResourceClient

        return ResourceClient(self.store())

    def close(self) -> None:
        """Close the datastore if it was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


def _set_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.ensure_object(CliContext).url = value
    return value


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.ensure_object(CliContext).config_file = value
    return value


def datastore_options(func: F) -> F:
    """Add ``--datastore`` and ``-c/--config`` to a command (also valid on the group)."""
    func = click.option(
        "--datastore",
        "datastore_url",
        metavar="URL",
        expose_value=False,
        callback=_set_url,
        is_eager=True,
        help="sqlite:///path.db, etcd://host:port[,host:port] or etcds://… "
        "(default: $REGIONMESH_DATASTORE, Calico's DATASTORE_TYPE/ETCD_* env, "
        "/etc/calico/calicoctl.cfg, else the embedded store)",
    )(func)
    func = click.option(
        "-c",
        "--config",
        "config_file",
        metavar="FILE",
        expose_value=False,
        callback=_set_config,
        is_eager=True,
        help="calicoctl client configuration file (CalicoAPIConfig YAML)",
    )(func)
    return func
