"""The agent's configuration: Felix's parameters, sources and precedence.

Sources, lowest to highest (as Felix, agent-dataplane.md §1.1): built-in defaults <
FelixConfiguration ``default`` < FelixConfiguration ``node.<hostname>`` < the config file (INI,
any section, keys case-insensitive) < environment ``FELIX_<Name>`` (case-insensitive).
Parameters marked *local* (``DatastoreType``, ``FelixHostname``, ``Etcd*``) come only from the
file or the environment. Empty values are ignored; ``none`` forces the zero value. An invalid
``OpenstackRegion`` or ``DatastoreType`` stops the agent (:class:`ConfigError` naming parameter,
value and rule); other invalid values fall back to the default with a warning, as Felix does.

This module parses and merges only; reading FelixConfiguration resources from the datastore is
the caller's job (it passes their specs in), and so is acting on the result.
"""

from __future__ import annotations

import configparser
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from regionmesh.errors import ConfigError
from regionmesh.model.regions import validate_region

LOG = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "/etc/calico/felix.cfg"


def _bool(v: str) -> bool:
    low = v.strip().lower()
    if low in ("true", "1", "yes", "y", "t", "on"):
        return True
    if low in ("false", "0", "no", "n", "f", "off"):
        return False
    raise ValueError("must be a boolean (true/false)")


def _float(v: str) -> float:
    f = float(v)
    if f < 0:
        raise ValueError("must not be negative")
    return f


def _port(v: str) -> int:
    p = int(v)
    if not 0 <= p <= 65535:
        raise ValueError("must be a port number 0-65535")
    return p


def _hostname(v: str) -> str:
    import re

    v = v.strip().lower()
    if not re.fullmatch(r"[a-zA-Z0-9_.-]+", v):
        raise ValueError("must match ^[a-zA-Z0-9_.-]+$")
    return v


def _action(v: str) -> str:
    up = v.strip().upper()
    if up not in ("DROP", "RETURN", "ACCEPT"):
        raise ValueError("must be one of DROP, RETURN, ACCEPT")
    return up


def _datastore_type(v: str) -> str:
    low = v.strip().lower()
    if low != "etcdv3":
        raise ValueError(
            "regionmesh supports 'etcdv3' (and its embedded store via REGIONMESH_DATASTORE)"
        )
    return low


def _region(v: str) -> str:
    validate_region(v, option="OpenstackRegion")
    return v


def _route_protocol(v: str) -> int:
    n = int(v)
    if not 1 <= n <= 255:
        raise ValueError("must be a route protocol number 1-255")
    return n


def _str(v: str) -> str:
    return v.strip()


def _prefixes(v: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in v.split(",") if p.strip())


@dataclass(frozen=True, slots=True)
class Param:
    """One Felix parameter: its canonical name, parser, default and flags."""

    name: str
    attr: str
    parse: Callable[[str], Any]
    default: Any
    local: bool = False
    die_on_fail: bool = False
    aliases: tuple[str, ...] = ()


PARAMS: tuple[Param, ...] = (
    Param(
        "DatastoreType", "datastore_type", _datastore_type, "etcdv3", local=True, die_on_fail=True
    ),
    Param("EtcdEndpoints", "etcd_endpoints", _str, "", local=True),
    Param("EtcdAddr", "etcd_addr", _str, "127.0.0.1:2379", local=True),
    Param("EtcdScheme", "etcd_scheme", _str, "http", local=True),
    Param("EtcdCaFile", "etcd_ca_file", _str, "", local=True),
    Param("EtcdCertFile", "etcd_cert_file", _str, "", local=True),
    Param("EtcdKeyFile", "etcd_key_file", _str, "", local=True),
    Param("FelixHostname", "hostname", _hostname, "", local=True),
    Param(
        "OpenstackRegion",
        "openstack_region",
        _region,
        "",
        die_on_fail=True,
        aliases=("OpenStackRegion",),
    ),
    Param("InterfacePrefix", "interface_prefixes", _prefixes, ("cali",)),
    Param("ReportingIntervalSecs", "reporting_interval", _float, 30.0),
    Param("ReportingTTLSecs", "reporting_ttl", _float, 90.0),
    Param("EndpointReportingEnabled", "endpoint_reporting_enabled", _bool, False),
    Param("EndpointReportingDelaySecs", "endpoint_reporting_delay", _float, 1.0),
    Param("DefaultEndpointToHostAction", "default_endpoint_to_host_action", _action, "DROP"),
    Param("MetadataAddr", "metadata_addr", _str, "127.0.0.1"),
    Param("MetadataPort", "metadata_port", _port, 8775),
    Param("Ipv6Support", "ipv6_support", _bool, True),
    Param("DeviceRouteProtocol", "device_route_protocol", _route_protocol, 3),
    Param("RouteRefreshInterval", "route_refresh_interval", _float, 90.0),
    Param(
        "NftablesRefreshInterval",
        "nft_refresh_interval",
        _float,
        180.0,
        aliases=("IptablesRefreshInterval",),
    ),
    Param("LogSeverityScreen", "log_severity", _str, "INFO"),
)
PARAMS_BY_LOWER: dict[str, Param] = {}
for _p in PARAMS:
    PARAMS_BY_LOWER[_p.name.lower()] = _p
    for _a in _p.aliases:
        PARAMS_BY_LOWER[_a.lower()] = _p


@dataclass(frozen=True)
class AgentConfig:
    """The merged, typed configuration. ``sources`` says where each non-default value came from."""

    datastore_type: str = "etcdv3"
    etcd_endpoints: str = ""
    etcd_addr: str = "127.0.0.1:2379"
    etcd_scheme: str = "http"
    etcd_ca_file: str = ""
    etcd_cert_file: str = ""
    etcd_key_file: str = ""
    hostname: str = ""
    openstack_region: str = ""
    interface_prefixes: tuple[str, ...] = ("cali",)
    reporting_interval: float = 30.0
    reporting_ttl: float = 90.0
    endpoint_reporting_enabled: bool = False
    endpoint_reporting_delay: float = 1.0
    default_endpoint_to_host_action: str = "DROP"
    metadata_addr: str = "127.0.0.1"
    metadata_port: int = 8775
    ipv6_support: bool = True
    device_route_protocol: int = 3
    route_refresh_interval: float = 90.0
    nft_refresh_interval: float = 180.0
    log_severity: str = "INFO"
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def region(self) -> str | None:
        """The configured region, or None."""
        return self.openstack_region or None


def read_config_file(path: str) -> dict[str, str]:
    """Raw ``lowername → value`` from an INI file (every section merged; last wins).

    A missing file is not an error (Felix ignores it); an unreadable or malformed one is.
    """
    if not os.path.exists(path):
        LOG.info("Ignoring absent config file %s", path)
        return {}
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str.lower  # type: ignore[assignment,method-assign]
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if not text.lstrip().startswith("["):
            text = "[global]\n" + text
        parser.read_string(text, source=path)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"cannot read agent config file {path}: {exc}") from exc
    raw: dict[str, str] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            raw[key.lower()] = value
    return raw


def read_env(env: Mapping[str, str]) -> dict[str, str]:
    """Raw ``lowername → value`` from ``FELIX_*`` variables (case-insensitive)."""
    return {k[len("felix_") :].lower(): v for k, v in env.items() if k.lower().startswith("felix_")}


def from_felix_configuration(spec: Mapping[str, Any]) -> dict[str, str]:
    """Raw ``lowername → value`` from a FelixConfiguration spec (camelCase keys)."""
    raw: dict[str, str] = {}
    for key, value in spec.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list | tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        raw[key.lower()] = text
    return raw


def merge(sources: list[tuple[str, Mapping[str, str]]]) -> AgentConfig:
    """Merge raw sources, lowest precedence first, into a typed :class:`AgentConfig`."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source_name, raw in sources:
        from_datastore = source_name.startswith("FelixConfiguration")
        for key, text in raw.items():
            param = PARAMS_BY_LOWER.get(key.lower())
            if param is None or text is None or text.strip() == "":
                continue
            if param.local and from_datastore:
                LOG.warning(
                    "Ignoring %s from %s: it may only be set locally", param.name, source_name
                )
                continue
            if text.strip().lower() == "none":
                values[param.attr] = type(param.default)()
                origin[param.name] = source_name
                continue
            try:
                values[param.attr] = param.parse(text)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (from {source_name})") from exc
            except ValueError as exc:
                message = f"invalid value {text!r} for {param.name} (from {source_name}): {exc}"
                if param.die_on_fail:
                    raise ConfigError(message) from exc
                LOG.warning("%s; using the default %r", message, param.default)
                continue
            origin[param.name] = source_name
    if not values.get("hostname"):
        values["hostname"] = socket.gethostname().strip().lower()
    known = {f.name for f in fields(AgentConfig)}
    return AgentConfig(**{k: v for k, v in values.items() if k in known}, sources=origin)


def load_local(config_file: str | None, env: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
    """The file and environment sources (the ones that exist before the datastore is read)."""
    path = config_file or DEFAULT_CONFIG_FILE
    return [(f"config file {path}", read_config_file(path)), ("environment", read_env(env))]
