"""Which datastore a regionmesh command uses, and how to reach it.

Every command (CLI, Neutron driver, agent) resolves its datastore the same way, first match
wins:

1. an explicit URL (the CLI's ``--datastore URL``);
2. the environment variable ``REGIONMESH_DATASTORE`` (a URL);
3. an explicit calicoctl config file (calicoctl's ``-c FILE``; it must exist);
4. Calico's environment: ``DATASTORE_TYPE=etcdv3``, ``ETCD_ENDPOINTS``, ``ETCD_CA_CERT_FILE``,
   ``ETCD_CERT_FILE``, ``ETCD_KEY_FILE``, ``ETCD_USERNAME``, ``ETCD_PASSWORD`` (each also with a
   ``CALICO_`` prefix, which wins, as in calicoctl);
5. ``/etc/calico/calicoctl.cfg`` if it exists (calicoctl's ``CalicoAPIConfig`` YAML);
6. the embedded SQLite store at :data:`DEFAULT_SQLITE_PATH`.

URLs: ``sqlite:///abs/path.db`` (``sqlite:///:memory:`` for a private throw-away store;
``?group=GROUP`` shares a new file with that group, see :mod:`regionmesh.datastore.sqlite`),
``etcd://host:port[,host:port…]``, ``etcds://…`` (TLS; ``?ca=…&cert=…&key=…`` or the
``ETCD_*_FILE`` variables), ``?timeout=SECONDS`` (per request and member; default 4),
``etcd://user:password@host:port``, and ``http(s)://host:port[,…]``
as in ``ETCD_ENDPOINTS``. Certificates and credentials missing from an etcd URL are taken from
the ``ETCD_*`` variables. Problems raise :class:`~regionmesh.errors.ConfigError` naming where the
value came from and the value.

This module only decides; opening the store is :func:`regionmesh.datastore.open_datastore`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

import yaml

from regionmesh.errors import ConfigError

ENV_URL = "REGIONMESH_DATASTORE"
DEFAULT_CALICOCTL_CONFIG = "/etc/calico/calicoctl.cfg"
DEFAULT_ETCD_ENDPOINT = "http://127.0.0.1:2379"
DEFAULT_ETCD_PORT = 2379
ROOT_SQLITE_PATH = "/var/lib/regionmesh/regionmesh.db"

_CALICO_ENV = (
    "DATASTORE_TYPE",
    "ETCD_ENDPOINTS",
    "ETCD_CA_CERT_FILE",
    "ETCD_CERT_FILE",
    "ETCD_KEY_FILE",
    "ETCD_USERNAME",
    "ETCD_PASSWORD",
)


def default_sqlite_path(env: Mapping[str, str] = os.environ, euid: int | None = None) -> str:
    """``/var/lib/regionmesh/regionmesh.db`` for root, else ``$XDG_DATA_HOME/regionmesh/…``.

    ``XDG_DATA_HOME`` defaults to ``~/.local/share``. Services running as different users
    (e.g. ``neutron`` and ``root``) therefore get different files: point them at one store
    with ``REGIONMESH_DATASTORE=sqlite:///path``.
    """
    if (os.geteuid() if euid is None else euid) == 0:
        return ROOT_SQLITE_PATH
    data_home = env.get("XDG_DATA_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data_home, "regionmesh", "regionmesh.db")


DEFAULT_SQLITE_PATH = default_sqlite_path()


@dataclass
class DatastoreConfig:
    """A resolved datastore choice. ``source`` says where it came from, for messages."""

    kind: Literal["sqlite", "etcd"]
    path: str | None = None
    endpoints: list[str] = field(default_factory=list)
    ca_cert_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float | None = None
    source: str = "default"
    sqlite_group: str | None = None

    def describe(self) -> str:
        """A one-line description without secrets, e.g. for ``--help`` or logs."""
        if self.kind == "sqlite":
            return f"embedded sqlite store {self.path} (from {self.source})"
        extra = []
        if self.cert_file:
            extra.append("client cert")
        if self.username:
            extra.append(f"user {self.username}")
        more = f" [{', '.join(extra)}]" if extra else ""
        return f"etcd {','.join(self.endpoints)}{more} (from {self.source})"


def _env(env: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """Calico-style lookup: ``CALICO_<NAME>`` first, then ``<NAME>``; empty means unset."""
    for key in ("CALICO_" + name, name):
        value = env.get(key)
        if value:
            return value, key
    return None, name


def _check_files(config: DatastoreConfig) -> DatastoreConfig:
    if bool(config.cert_file) != bool(config.key_file):
        raise ConfigError(
            f"{config.source}: a client certificate needs both a cert and a key file "
            f"(cert={config.cert_file!r}, key={config.key_file!r})"
        )
    for what, path in (
        ("CA certificate", config.ca_cert_file),
        ("client certificate", config.cert_file),
        ("client key", config.key_file),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{config.source}: {what} file {path!r} does not exist")
    return config


def _with_env_credentials(config: DatastoreConfig, env: Mapping[str, str]) -> DatastoreConfig:
    """Fill certificate and credential fields missing from a URL from the ETCD_* variables."""
    updates: dict[str, Any] = {}
    for attr, name in (
        ("ca_cert_file", "ETCD_CA_CERT_FILE"),
        ("cert_file", "ETCD_CERT_FILE"),
        ("key_file", "ETCD_KEY_FILE"),
        ("username", "ETCD_USERNAME"),
        ("password", "ETCD_PASSWORD"),
    ):
        if getattr(config, attr) is None:
            value, _ = _env(env, name)
            if value is not None:
                updates[attr] = value
    return replace(config, **updates) if updates else config


def _split_endpoints(text: str, source: str, value: str) -> list[str]:
    """``http(s)://h:p,…`` (ETCD_ENDPOINTS style) → normalised endpoint URLs."""
    endpoints = []
    for raw in text.split(","):
        item = raw.strip().rstrip("/")
        if not item:
            continue
        if "://" not in item:
            item = "http://" + item
        scheme, _, hostport = item.partition("://")
        if scheme not in ("http", "https") or not hostport or "/" in hostport:
            raise ConfigError(
                f"invalid etcd endpoint {raw.strip()!r} in {source} ({value!r}): "
                "expected http://host:port or https://host:port"
            )
        endpoints.append(f"{scheme}://{_host_port(hostport, source, value)}")
    if not endpoints:
        raise ConfigError(f"no etcd endpoints in {source} ({value!r})")
    return endpoints


def _host_port(hostport: str, source: str, value: str) -> str:
    host, port = hostport, str(DEFAULT_ETCD_PORT)
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ConfigError(f"invalid etcd address {hostport!r} in {source} ({value!r})")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"invalid etcd address {hostport!r} in {source} ({value!r})")
            port = rest[1:]
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"invalid etcd address {hostport!r} in {source} ({value!r}): expected host:port"
        )
    return f"{host}:{port}"


def parse_url(url: str, *, source: str, env: Mapping[str, str] = os.environ) -> DatastoreConfig:
    """Parse a datastore URL (see the module docstring); ``source`` names it in errors."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError(
            f"invalid datastore URL {url!r} from {source}: expected sqlite:///path, "
            "etcd://host:port[,host:port], etcds://… or http(s)://host:port"
        )
    if scheme == "sqlite":
        path = unquote(rest.split("?", 1)[0])
        if path == "/:memory:" or path == ":memory:":
            return DatastoreConfig(kind="sqlite", path=":memory:", source=source)
        if not path.startswith("/") or path == "/":
            raise ConfigError(
                f"invalid datastore URL {url!r} from {source}: a sqlite URL needs an absolute "
                "path, e.g. sqlite:///var/lib/regionmesh/regionmesh.db"
            )
        options = parse_qs(rest.split("?", 1)[1]) if "?" in rest else {}
        unknown = sorted(set(options) - {"group"})
        if unknown:
            raise ConfigError(
                f"invalid datastore URL {url!r} from {source}: unknown sqlite option(s) "
                f"{', '.join(unknown)} (only ?group=GROUP)"
            )
        groups = options.get("group") or [""]
        group = groups[-1] or None
        # sqlite:///abs/path and SQLAlchemy's sqlite:////abs/path both mean /abs/path
        return DatastoreConfig(
            kind="sqlite", path="/" + path.lstrip("/"), source=source, sqlite_group=group
        )
    if scheme in ("http", "https"):
        config = DatastoreConfig(
            kind="etcd", endpoints=_split_endpoints(url, source, url), source=source
        )
        return _check_files(_with_env_credentials(config, env))
    if scheme in ("etcd", "etcds", "etcdv3"):
        netloc, _, query = rest.partition("?")
        netloc = netloc.rstrip("/")
        if "/" in netloc:
            raise ConfigError(f"invalid datastore URL {url!r} from {source}: unexpected path")
        username = password = None
        if "@" in netloc:
            userinfo, _, netloc = netloc.rpartition("@")
            user, _, pw = userinfo.partition(":")
            username, password = unquote(user) or None, unquote(pw) if pw else None
        http = "https" if scheme == "etcds" else "http"
        if not netloc:
            raise ConfigError(f"invalid datastore URL {url!r} from {source}: no host:port")
        endpoints = [
            f"{http}://{_host_port(part.strip(), source, url)}"
            for part in netloc.split(",")
            if part.strip()
        ]
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = sorted(set(params) - {"ca", "cert", "key", "timeout"})
        if unknown:
            raise ConfigError(
                f"invalid datastore URL {url!r} from {source}: unknown parameter(s) "
                f"{', '.join(unknown)} (known: ca, cert, key, timeout)"
            )
        timeout = None
        if params.get("timeout"):
            try:
                timeout = float(params["timeout"])
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 600:
                raise ConfigError(
                    f"invalid datastore URL {url!r} from {source}: timeout="
                    f"{params['timeout']!r} must be seconds between 0 and 600"
                )
        config = DatastoreConfig(
            kind="etcd",
            endpoints=endpoints,
            ca_cert_file=params.get("ca") or None,
            cert_file=params.get("cert") or None,
            key_file=params.get("key") or None,
            username=username,
            password=password,
            timeout=timeout,
            source=source,
        )
        return _check_files(_with_env_credentials(config, env))
    raise ConfigError(
        f"unsupported datastore URL scheme {scheme!r} in {url!r} from {source}: use sqlite, "
        "etcd, etcds, http or https"
    )


def _not_etcd(datastore_type: str, source: str) -> ConfigError:
    return ConfigError(
        f"{source}: datastore type {datastore_type!r} is not supported; regionmesh supports "
        "'etcdv3' and its embedded store (kubernetes is not supported)"
    )


def _from_calico_env(env: Mapping[str, str]) -> DatastoreConfig | None:
    datastore_type, type_var = _env(env, "DATASTORE_TYPE")
    endpoints, endpoints_var = _env(env, "ETCD_ENDPOINTS")
    if datastore_type is None and endpoints is None:
        return None
    if datastore_type is not None and datastore_type != "etcdv3":
        raise _not_etcd(datastore_type, f"environment variable {type_var}")
    source = (
        "environment ("
        + ", ".join(
            v
            for v in (type_var if datastore_type else None, endpoints_var if endpoints else None)
            if v
        )
        + ")"
    )
    config = DatastoreConfig(
        kind="etcd",
        endpoints=_split_endpoints(
            endpoints or DEFAULT_ETCD_ENDPOINT, endpoints_var, endpoints or ""
        ),
        source=source,
    )
    return _check_files(_with_env_credentials(config, env))


_inline_dir: str | None = None


def _inline_pem(content: str, name: str) -> str:
    """Write an inline PEM (``etcdCACert`` etc.) to a private temporary file; return its path."""
    global _inline_dir
    if _inline_dir is None:
        _inline_dir = tempfile.mkdtemp(prefix="regionmesh-etcd-tls-")
        atexit.register(shutil.rmtree, _inline_dir, True)
    fd, path = tempfile.mkstemp(dir=_inline_dir, prefix=name, suffix=".pem")
    with os.fdopen(fd, "w") as handle:
        handle.write(content if content.endswith("\n") else content + "\n")
    return path


def load_calicoctl_config(path: str) -> DatastoreConfig:
    """Parse calicoctl's ``CalicoAPIConfig`` YAML into an etcd configuration."""
    source = f"config file {path}"
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a CalicoAPIConfig mapping, got {document!r}")
    kind = document.get("kind")
    if kind != "CalicoAPIConfig":
        raise ConfigError(f"{source}: kind is {kind!r}, expected 'CalicoAPIConfig'")
    api_version = document.get("apiVersion")
    if api_version != "projectcalico.org/v3":
        raise ConfigError(
            f"{source}: apiVersion is {api_version!r}, expected 'projectcalico.org/v3'"
        )
    spec = document.get("spec") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: spec must be a mapping, got {spec!r}")

    def text(name: str) -> str | None:
        value = spec.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{source}: spec.{name} must be a string, got {value!r}")
        return value

    datastore_type = text("datastoreType")
    endpoints = text("etcdEndpoints")
    if datastore_type is None and endpoints is None:
        raise ConfigError(
            f"{source}: spec.datastoreType is not set (Calico's default is kubernetes, which "
            "regionmesh does not support); set datastoreType: etcdv3 and etcdEndpoints"
        )
    if datastore_type is not None and datastore_type != "etcdv3":
        raise _not_etcd(datastore_type, f"{source} (spec.datastoreType)")
    if text("etcdDiscoverySrv") is not None:
        raise ConfigError(f"{source}: spec.etcdDiscoverySrv is not supported; list etcdEndpoints")

    def pem(file_field: str, inline_field: str) -> str | None:
        path_value, inline = text(file_field), text(inline_field)
        if path_value and inline:
            raise ConfigError(f"{source}: set spec.{file_field} or spec.{inline_field}, not both")
        return path_value or (_inline_pem(inline, inline_field) if inline else None)

    config = DatastoreConfig(
        kind="etcd",
        endpoints=_split_endpoints(
            endpoints or DEFAULT_ETCD_ENDPOINT, f"{source} (spec.etcdEndpoints)", endpoints or ""
        ),
        ca_cert_file=pem("etcdCACertFile", "etcdCACert"),
        cert_file=pem("etcdCertFile", "etcdCert"),
        key_file=pem("etcdKeyFile", "etcdKey"),
        username=text("etcdUsername"),
        password=text("etcdPassword"),
        source=source,
    )
    return _check_files(config)


def resolve_config(
    *,
    url: str | None = None,
    config_file: str | None = None,
    env: Mapping[str, str] = os.environ,
    default_config_file: str = DEFAULT_CALICOCTL_CONFIG,
) -> DatastoreConfig:
    """Apply the precedence in the module docstring and return the chosen configuration."""
    if url:
        return parse_url(url, source="--datastore", env=env)
    env_url = env.get(ENV_URL)
    if env_url:
        return parse_url(env_url, source=f"environment variable {ENV_URL}", env=env)
    if config_file:
        if not os.path.exists(config_file):
            raise ConfigError(f"config file {config_file} (given with -c/--config) does not exist")
        return load_calicoctl_config(config_file)
    from_env = _from_calico_env(env)
    if from_env is not None:
        return from_env
    if default_config_file and os.path.exists(default_config_file):
        return load_calicoctl_config(default_config_file)
    return DatastoreConfig(
        kind="sqlite",
        path=default_sqlite_path(env),
        source="default (embedded store)",
    )
