"""The per-host agent's start-up: local config → datastore → datastore config → dataplane.

:func:`start` merges the file and ``FELIX_*`` sources first, so an invalid ``OpenstackRegion``
(or ``DatastoreType``) stops the agent before it opens anything; then it chooses the datastore
(:func:`datastore_config`), reads FelixConfiguration ``default`` and ``node.<hostname>``
(:func:`felix_configuration_sources`), merges everything again with Felix's precedence
(:func:`~regionmesh.agent.felix_settings.full_config`) and builds the
:class:`~regionmesh.agent.loop.Agent` with the dataplane the caller's factory makes.

Running the loop is :mod:`regionmesh.agent.loop`'s job; parsing parameters is
:mod:`regionmesh.agent.felix_settings`'s; the command line is :mod:`regionmesh.cli.agent_cmd`'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from regionmesh.agent.felix_settings import AgentConfig, felix_raw, full_config, load_local, merge
from regionmesh.agent.loop import RESTART, Agent
from regionmesh.agent.syncer import decode_value
from regionmesh.dataplane.api import Dataplane
from regionmesh.dataplane.links import interface_is_up
from regionmesh.datastore import DatastoreConfig, keys, open_datastore, resolve_config
from regionmesh.datastore.api import Datastore
from regionmesh.datastore.selection import ENV_URL
from regionmesh.errors import ConfigError, RegionmeshError
from regionmesh.model import FelixConfiguration, kind_info

LOG = logging.getLogger(__name__)

__all__ = [
    "RESTART",
    "StartedAgent",
    "datastore_config",
    "felix_configuration_sources",
    "load_agent_config",
    "start",
]

FELIX_CONFIG_KIND = "FelixConfiguration"
_ETCD_PARAMS = (
    "DatastoreType",
    "EtcdEndpoints",
    "EtcdAddr",
    "EtcdScheme",
    "EtcdCaFile",
    "EtcdCertFile",
    "EtcdKeyFile",
)


def datastore_config(
    config: AgentConfig, url: str | None = None, env: Mapping[str, str] = os.environ
) -> DatastoreConfig:
    """Which store the agent uses, first match wins.

    ``url`` (``--datastore``), ``$REGIONMESH_DATASTORE``, Felix's own ``DatastoreType`` /
    ``EtcdEndpoints`` (or ``EtcdScheme`` + ``EtcdAddr``) / ``Etcd{Ca,Cert,Key}File`` from the
    config file or ``FELIX_*`` (credentials, as in Felix, only from ``ETCD_USERNAME`` /
    ``ETCD_PASSWORD``, ``CALICO_``-prefixed first), Calico's ``DATASTORE_TYPE`` / ``ETCD_*``
    environment, then
    regionmesh's usual defaults (calicoctl.cfg, else the embedded store).
    """
    if url or env.get(ENV_URL):
        return resolve_config(url=url, env=env)
    felix_set = [p for p in _ETCD_PARAMS if p in config.sources]
    if not felix_set:
        return resolve_config(env=env)
    endpoints = config.etcd_endpoints or f"{config.etcd_scheme}://{config.etcd_addr}"
    where = ", ".join(f"{p} from {config.sources[p]}" for p in felix_set)
    try:
        base = resolve_config(url=endpoints, env={})
    except ConfigError as exc:
        raise ConfigError(f"invalid etcd endpoints {endpoints!r} ({where}): {exc}") from exc
    ca, cert, key = (
        config.etcd_ca_file or None,
        config.etcd_cert_file or None,
        config.etcd_key_file or None,
    )
    for param, path in (("EtcdCaFile", ca), ("EtcdCertFile", cert), ("EtcdKeyFile", key)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"invalid value {path!r} for {param}: the file does not exist")
    if bool(cert) != bool(key):
        raise ConfigError("EtcdCertFile and EtcdKeyFile must be set together")
    # Felix takes etcd credentials only from libcalico-go's environment, never felix.cfg
    username = env.get("CALICO_ETCD_USERNAME") or env.get("ETCD_USERNAME") or None
    password = env.get("CALICO_ETCD_PASSWORD") or env.get("ETCD_PASSWORD") or None
    return replace(
        base,
        source=f"Felix configuration ({where})",
        ca_cert_file=ca,
        cert_file=cert,
        key_file=key,
        username=username,
        password=password,
    )


def felix_configuration_sources(
    store: Datastore, hostname: str
) -> list[tuple[str, dict[str, str]]]:
    """FelixConfiguration ``default`` and ``node.<hostname>`` as raw sources (lowest first)."""
    out: list[tuple[str, dict[str, str]]] = []
    for name in ("default", f"node.{hostname}"):
        kv = store.get(keys.resource_key(kind_info(FelixConfiguration.KIND).plural, name))
        if kv is None:
            continue
        resource = decode_value(FELIX_CONFIG_KIND, kv.key, kv.value, kv.mod_revision)
        if isinstance(resource, FelixConfiguration):
            out.append((f"FelixConfiguration {name}", felix_raw(resource)))
    return out


@dataclass
class StartedAgent:
    """What :func:`start` produced: the agent and the store it owns."""

    agent: Agent
    store: Datastore

    def close(self) -> None:
        """Close the datastore."""
        self.store.close()


def load_agent_config(
    config_file: str | None, env: Mapping[str, str]
) -> tuple[AgentConfig, list[tuple[str, dict[str, str]]]]:
    """Merge only the local sources (file + environment): validates them before any I/O."""
    local = load_local(config_file, env)
    return merge(list[tuple[str, Mapping[str, str]]](local)), local


def start(
    config_file: str | None,
    *,
    url: str | None = None,
    env: Mapping[str, str] = os.environ,
    dataplane_factory: Callable[[AgentConfig], Dataplane],
    store: Datastore | None = None,
    iface_up: Callable[[str], bool] = interface_is_up,
    start_time: float | None = None,
) -> StartedAgent:
    """Build an Agent: local config, datastore, datastore config, dataplane — in that order.

    Raises :class:`ConfigError` (bad parameter) or a datastore error (cannot read the
    FelixConfigurations); nothing has been programmed when it raises.
    """
    local_config, local = load_agent_config(config_file, env)
    own_store = store is None
    if store is None:
        dsconfig = datastore_config(local_config, url, env)
        LOG.info("Using %s", dsconfig.describe())
        store = open_datastore(dsconfig)
    try:
        datastore_sources = felix_configuration_sources(store, local_config.hostname)
        config = full_config(local, datastore_sources)
        agent = Agent(
            config,
            store,
            dataplane_factory(config),
            local_sources=local,
            iface_up=iface_up,
            start_time=start_time,
        )
    except (RegionmeshError, OSError):
        if own_store:
            store.close()
        raise
    return StartedAgent(agent, store)
