"""Choosing the datastore: precedence, URL forms, calicoctl.cfg parsing and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from regionmesh.datastore import DatastoreConfig, open_datastore
from regionmesh.datastore.selection import (
    ROOT_SQLITE_PATH,
    default_sqlite_path,
    load_calicoctl_config,
    parse_url,
    resolve_config,
)
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.errors import ConfigError


def write_cfg(path: Path, spec: str, head: str | None = None) -> str:
    head = head or "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
    path.write_text(head + "spec:\n" + "".join(f"  {line}\n" for line in spec.splitlines()))
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Existing (dummy) certificate files and two calicoctl config files."""
    out = {}
    for name in ("ca", "cert", "key"):
        p = tmp_path / f"{name}.pem"
        p.write_text(f"-----BEGIN {name}-----\n")
        out[name] = str(p)
    out["cfg"] = write_cfg(
        tmp_path / "explicit.cfg",
        'datastoreType: "etcdv3"\netcdEndpoints: "http://cfg-host:2379"',
    )
    out["default_cfg"] = write_cfg(
        tmp_path / "calicoctl.cfg",
        'datastoreType: "etcdv3"\netcdEndpoints: "http://default-cfg:2379"',
    )
    return out


# --- precedence ------------------------------------------------------------------------------


def test_precedence_table(files: dict[str, str], tmp_path: Path) -> None:
    calico_env = {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": "http://env-host:2379"}
    everything = {**calico_env, "REGIONMESH_DATASTORE": "etcd://rm-env:1"}

    def resolve(env: dict[str, str], **kwargs: str) -> DatastoreConfig:
        kwargs.setdefault("default_config_file", files["default_cfg"])
        return resolve_config(env=env, **kwargs)  # type: ignore[arg-type]

    # 1. an explicit URL beats everything
    got = resolve(everything, url="etcd://cli:9", config_file=files["cfg"])
    assert (got.endpoints, got.source) == (["http://cli:9"], "--datastore")
    # 2. REGIONMESH_DATASTORE beats -c and Calico's environment
    got = resolve(everything, config_file=files["cfg"])
    assert got.endpoints == ["http://rm-env:1"]
    assert got.source == "environment variable REGIONMESH_DATASTORE"
    # 3. -c beats Calico's environment and the default file
    got = resolve(calico_env, config_file=files["cfg"])
    assert got.endpoints == ["http://cfg-host:2379"] and files["cfg"] in got.source
    # 4. Calico's environment beats /etc/calico/calicoctl.cfg
    got = resolve(calico_env)
    assert got.endpoints == ["http://env-host:2379"] and "ETCD_ENDPOINTS" in got.source
    # 5. the default calicoctl.cfg when it exists
    got = resolve({})
    assert got.endpoints == ["http://default-cfg:2379"]
    # 6. otherwise the embedded store at the default path
    got = resolve(
        {"XDG_DATA_HOME": str(tmp_path / "xdg")}, default_config_file=str(tmp_path / "no")
    )
    assert got.kind == "sqlite"
    assert got.path == default_sqlite_path({"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert got.source.startswith("default")


def test_an_explicit_config_file_must_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.cfg")
    with pytest.raises(ConfigError, match="nope.cfg.*does not exist"):
        resolve_config(config_file=missing, env={}, default_config_file="")


def test_calico_prefixed_variables_win(files: dict[str, str]) -> None:
    env = {
        "ETCD_ENDPOINTS": "http://plain:1",
        "CALICO_ETCD_ENDPOINTS": "http://prefixed:2",
        "CALICO_DATASTORE_TYPE": "etcdv3",
        "ETCD_USERNAME": "alice",
        "ETCD_PASSWORD": "secret",
        "CALICO_ETCD_CA_CERT_FILE": files["ca"],
        "ETCD_CERT_FILE": files["cert"],
        "ETCD_KEY_FILE": files["key"],
    }
    got = resolve_config(env=env, default_config_file="")
    assert got.endpoints == ["http://prefixed:2"]
    assert (got.username, got.password) == ("alice", "secret")
    assert (got.ca_cert_file, got.cert_file, got.key_file) == (
        files["ca"],
        files["cert"],
        files["key"],
    )
    assert "secret" not in repr(got) and "secret" not in got.describe()


def test_datastore_type_etcdv3_alone_means_the_local_etcd() -> None:
    got = resolve_config(env={"DATASTORE_TYPE": "etcdv3"}, default_config_file="")
    assert got.endpoints == ["http://127.0.0.1:2379"]


@pytest.mark.parametrize("var", ["DATASTORE_TYPE", "CALICO_DATASTORE_TYPE"])
def test_kubernetes_datastore_is_refused(var: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(env={var: "kubernetes"}, default_config_file="")
    message = str(info.value)
    assert var in message and "'kubernetes'" in message
    assert "etcdv3" in message and "embedded" in message


def test_default_sqlite_path() -> None:
    assert (
        default_sqlite_path({}, euid=0) == ROOT_SQLITE_PATH == "/var/lib/regionmesh/regionmesh.db"
    )
    assert default_sqlite_path({"XDG_DATA_HOME": "/x"}, euid=1000) == "/x/regionmesh/regionmesh.db"
    assert (
        default_sqlite_path({"HOME": "/home/u"}, euid=1000)
        == "/home/u/.local/share/regionmesh/regionmesh.db"
    )


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "path", "endpoints"),
    [
        ("sqlite:///var/lib/x.db", "sqlite", "/var/lib/x.db", []),
        ("sqlite:///:memory:", "sqlite", ":memory:", []),
        ("etcd://10.0.0.1:2379", "etcd", None, ["http://10.0.0.1:2379"]),
        ("etcd://h1:1,h2:2", "etcd", None, ["http://h1:1", "http://h2:2"]),
        ("etcd://h1", "etcd", None, ["http://h1:2379"]),
        ("etcd://[::1]:2379", "etcd", None, ["http://[::1]:2379"]),
        ("etcds://h1:1,h2:2", "etcd", None, ["https://h1:1", "https://h2:2"]),
        ("http://a:1,https://b:2", "etcd", None, ["http://a:1", "https://b:2"]),
        ("https://a:1/", "etcd", None, ["https://a:1"]),
    ],
)
def test_url_forms(url: str, kind: str, path: str | None, endpoints: list[str]) -> None:
    got = parse_url(url, source="test", env={})
    assert (got.kind, got.path, got.endpoints) == (kind, path, endpoints)


def test_etcds_certificates_from_query_or_environment(files: dict[str, str]) -> None:
    url = f"etcds://h:1?ca={files['ca']}&cert={files['cert']}&key={files['key']}"
    got = parse_url(url, source="test", env={})
    assert (got.ca_cert_file, got.cert_file, got.key_file) == (
        files["ca"],
        files["cert"],
        files["key"],
    )
    env = {"ETCD_CA_CERT_FILE": files["ca"], "ETCD_CERT_FILE": files["cert"]}
    env["ETCD_KEY_FILE"] = files["key"]
    got = parse_url("etcds://h:1", source="test", env=env)
    assert (got.ca_cert_file, got.cert_file, got.key_file) == (
        files["ca"],
        files["cert"],
        files["key"],
    )
    got = parse_url(f"etcds://h:1?ca={files['ca']}", source="test", env={})
    assert got.cert_file is None


def test_credentials_in_the_url_are_percent_decoded() -> None:
    got = parse_url("etcd://root:p%40ss%3Aw%2Frd@127.0.0.1:2379", source="test", env={})
    assert (got.username, got.password, got.endpoints) == (
        "root",
        "p@ss:w/rd",
        ["http://127.0.0.1:2379"],
    )


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://x", "unsupported datastore URL scheme 'mysql'"),
        ("just-a-path.db", "invalid datastore URL 'just-a-path.db'"),
        ("sqlite://relative.db", "absolute path"),
        ("etcd://h:port", "invalid etcd address 'h:port'"),
        ("etcd://h:99999", "invalid etcd address"),
        ("etcd://h:1/path", "unexpected path"),
        ("etcds://h:1?bogus=1", "unknown parameter"),
        ("etcds://h:1?ca=/no/such/ca.pem", "CA certificate file '/no/such/ca.pem' does not exist"),
        ("http://a:1,ftp://b:2", "invalid etcd endpoint 'ftp://b:2'"),
    ],
)
def test_bad_urls_name_the_source_and_value(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        resolve_config(env={"REGIONMESH_DATASTORE": url}, default_config_file="")
    assert "REGIONMESH_DATASTORE" in str(info.value)


def test_a_client_cert_needs_its_key(files: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="both a cert and a key"):
        parse_url(f"etcds://h:1?cert={files['cert']}", source="test", env={})


# --- calicoctl.cfg ---------------------------------------------------------------------------


def test_calicoctl_cfg_with_every_field(files: dict[str, str], tmp_path: Path) -> None:
    path = write_cfg(
        tmp_path / "full.cfg",
        "\n".join(
            [
                'datastoreType: "etcdv3"',
                'etcdEndpoints: "https://e1:2379,https://e2:2379"',
                f'etcdCACertFile: "{files["ca"]}"',
                f'etcdCertFile: "{files["cert"]}"',
                f'etcdKeyFile: "{files["key"]}"',
                'etcdUsername: "calico"',
                'etcdPassword: "pw"',
            ]
        ),
    )
    got = load_calicoctl_config(path)
    assert got.endpoints == ["https://e1:2379", "https://e2:2379"]
    assert (got.ca_cert_file, got.cert_file, got.key_file) == (
        files["ca"],
        files["cert"],
        files["key"],
    )
    assert (got.username, got.password) == ("calico", "pw")


def test_calicoctl_cfg_inline_certificates(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    indented = pem.replace("\n", "\n    ")
    path = write_cfg(
        tmp_path / "inline.cfg",
        f'datastoreType: etcdv3\netcdEndpoints: "https://e1:2379"\netcdCACert: |\n    {indented}',
    )
    got = load_calicoctl_config(path)
    assert got.ca_cert_file is not None
    assert Path(got.ca_cert_file).read_text() == pem + "\n"
    assert Path(got.ca_cert_file).stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("spec", "head", "match"),
    [
        ('datastoreType: "kubernetes"', None, "'kubernetes' is not supported"),
        ("etcdUsername: x", None, "datastoreType is not set"),
        ('datastoreType: etcdv3\netcdDiscoverySrv: "example.com"', None, "etcdDiscoverySrv"),
        (
            "datastoreType: etcdv3",
            "apiVersion: v1\nkind: calicoApiConfig\n",
            "kind is 'calicoApiConfig'",
        ),
        (
            "datastoreType: etcdv3",
            "apiVersion: projectcalico.org/v2\nkind: CalicoAPIConfig\n",
            "apiVersion is 'projectcalico.org/v2'",
        ),
        ("etcdEndpoints: [1, 2]", None, "spec.etcdEndpoints must be a string"),
    ],
)
def test_bad_calicoctl_cfg(tmp_path: Path, spec: str, head: str | None, match: str) -> None:
    path = write_cfg(tmp_path / "bad.cfg", spec, head)
    with pytest.raises(ConfigError, match=match) as info:
        resolve_config(config_file=path, env={}, default_config_file="")
    assert "bad.cfg" in str(info.value)


def test_calicoctl_cfg_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.cfg"
    path.write_text("spec: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.cfg is not valid YAML"):
        load_calicoctl_config(str(path))


# --- opening ---------------------------------------------------------------------------------


def test_open_datastore_from_a_url_and_a_config(tmp_path: Path) -> None:
    store = open_datastore(f"sqlite://{tmp_path}/a.db")
    assert isinstance(store, SqliteDatastore) and store.path == f"{tmp_path}/a.db"
    store.close()
    store = open_datastore(DatastoreConfig(kind="sqlite", path=str(tmp_path / "b.db")))
    assert isinstance(store, SqliteDatastore)
    store.close()


def test_open_datastore_resolves_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGIONMESH_DATASTORE", f"sqlite://{tmp_path}/env.db")
    store = open_datastore()
    assert isinstance(store, SqliteDatastore) and store.path == f"{tmp_path}/env.db"
    store.close()
