"""Start a real, throw-away etcd server on free loopback ports (for tests and benchmarks).

:func:`start_etcd` runs ``/usr/bin/etcd`` (or ``$REGIONMESH_ETCD_BINARY``) with a temporary
data directory (on ``/dev/shm`` when available, so fsync is cheap), waits until ``/health``
answers and returns an :class:`EtcdServer`; :meth:`EtcdServer.stop` kills it and removes
everything. Variants: ``tls=True`` makes a self-signed CA, a server certificate for 127.0.0.1 and
a client certificate with the ``openssl`` CLI and requires client certificates (the client
certificate has no Common Name: with auth on, etcd's JSON gateway answers HTTP 400 to a
certificate with a CN, so identity comes from user + password);
``auth=True`` creates a ``root`` user with a password and enables etcd authentication;
``token_ttl`` sets ``--auth-token-ttl`` and ``extra_args`` adds any other etcd flag.

A missing etcd or openssl binary raises :class:`EtcdNotAvailable` with a clear message: tests
that need etcd must fail, not skip. This module does not decide which tests need etcd (that is
``tests/conftest.py``) and does not wrap etcd's API (that is
:mod:`regionmesh.datastore.etcd`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from regionmesh.datastore.config import DatastoreConfig
from regionmesh.datastore.etcd import EtcdDatastore

DEFAULT_ETCD_BINARY = "/usr/bin/etcd"
STARTUP_TIMEOUT = 30.0
ROOT_USER = "root"


class EtcdNotAvailable(RuntimeError):
    """etcd (or openssl, for TLS) is not installed or did not start."""


@dataclass
class EtcdServer:
    """A running test etcd.

    ``endpoint`` is ``http(s)://127.0.0.1:PORT``; ``url`` is the regionmesh datastore URL
    (``etcd://127.0.0.1:PORT``, or ``etcds://…?ca=…&cert=…&key=…`` for TLS; credentials are not
    in the URL: use :meth:`config` / :meth:`open`, or ``ETCD_USERNAME``/``ETCD_PASSWORD``).
    """

    endpoint: str
    url: str
    client_port: int
    peer_port: int
    workdir: str
    process: subprocess.Popen[bytes]
    ca_cert_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def config(self) -> DatastoreConfig:
        """A DatastoreConfig reaching this server with its certificates and credentials."""
        return DatastoreConfig(
            kind="etcd",
            endpoints=[self.endpoint],
            ca_cert_file=self.ca_cert_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            username=self.username,
            password=self.password,
            source="test etcd server",
        )

    def open(self) -> EtcdDatastore:
        """A regionmesh EtcdDatastore on this server (the caller closes it)."""
        return EtcdDatastore(
            [self.endpoint],
            ca_cert_file=self.ca_cert_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            username=self.username,
            password=self.password,
        )

    def open_as(self, username: str | None, password: str | None) -> EtcdDatastore:
        """An EtcdDatastore on this server (same certificates) as another etcd user."""
        return EtcdDatastore(
            [self.endpoint],
            ca_cert_file=self.ca_cert_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            username=username,
            password=password,
        )

    def url_as(self, username: str, password: str) -> str:
        """The datastore URL of this server with ``username:password@`` in it."""
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{rest}"

    def requests_kwargs(self) -> dict[str, Any]:
        """``verify``/``cert`` for talking to this server with plain ``requests``."""
        kwargs: dict[str, Any] = {"timeout": 5}
        if self.ca_cert_file:
            kwargs["verify"] = self.ca_cert_file
        if self.cert_file and self.key_file:
            kwargs["cert"] = (self.cert_file, self.key_file)
        return kwargs

    def wipe(self) -> int:
        """Delete every key; return how many were deleted."""
        with contextlib.closing(self.open()) as store:
            return store.delete_prefix("")

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        try:
            with open(
                os.path.join(self.workdir, "etcd.log"), encoding="utf-8", errors="replace"
            ) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the server and remove its data directory and certificates."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tmp_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _openssl(*args: str, cwd: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise EtcdNotAvailable("the TLS etcd fixture needs the openssl CLI, which is not installed")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EtcdNotAvailable(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_test_certificates(directory: str) -> dict[str, str]:
    """A self-signed CA plus server (127.0.0.1/localhost) and client certificates (EC P-256).

    Returns paths under keys ``ca``, ``server_cert``, ``server_key``, ``client_cert``,
    ``client_key``.
    """
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=regionmesh-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    for name, cn, ext in (
        (
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n",
        ),
        (
            "client",
            "/O=regionmesh-test",
            "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "basicConstraints=CA:FALSE\n",
        ),
    ):
        with open(os.path.join(directory, f"{name}.ext"), "w", encoding="ascii") as f:
            f.write(ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", cn,
                 cwd=directory)  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=directory,
        )  # fmt: skip
    return {
        "ca": os.path.join(directory, "ca.crt"),
        "server_cert": os.path.join(directory, "server.crt"),
        "server_key": os.path.join(directory, "server.key"),
        "client_cert": os.path.join(directory, "client.crt"),
        "client_key": os.path.join(directory, "client.key"),
    }


def _wait_healthy(server: EtcdServer, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EtcdNotAvailable(
                f"etcd exited with status {server.process.returncode}:\n{server.log()[-3000:]}"
            )
        try:
            resp = requests.get(server.endpoint + "/health", **server.requests_kwargs())
            if resp.status_code == 200 and resp.json().get("health") in ("true", True):
                return
            last = resp.text
        except (requests.RequestException, ValueError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise EtcdNotAvailable(
        f"etcd at {server.endpoint} not healthy in time ({last}):\n{server.log()[-3000:]}"
    )


def _enable_auth(server: EtcdServer, password: str) -> None:
    kwargs = server.requests_kwargs()
    for path, body in (
        ("/v3/auth/role/add", {"name": "root"}),
        ("/v3/auth/user/add", {"name": ROOT_USER, "password": password}),
        ("/v3/auth/user/grant", {"user": ROOT_USER, "role": "root"}),
        ("/v3/auth/enable", {}),
    ):
        resp = requests.post(server.endpoint + path, json=body, **kwargs)
        if resp.status_code != 200:
            raise EtcdNotAvailable(
                f"enabling etcd auth: POST {path} -> {resp.status_code} {resp.text}"
            )
    server.username, server.password = ROOT_USER, password


def _start_once(
    binary: str, tls: bool, auth: bool, token_ttl: int | None, extra_args: tuple[str, ...]
) -> EtcdServer:
    workdir = tempfile.mkdtemp(prefix="regionmesh-etcd-", dir=_tmp_root())
    try:
        client_port, peer_port = free_port(), free_port()
        while peer_port == client_port:
            peer_port = free_port()
        scheme = "https" if tls else "http"
        endpoint = f"{scheme}://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        args = [
            binary,
            "--name", "regionmesh-test",
            "--data-dir", os.path.join(workdir, "data"),
            "--listen-client-urls", endpoint,
            "--advertise-client-urls", endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"regionmesh-test={peer}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"regionmesh-{secrets.token_hex(4)}",
            "--logger", "zap",
            "--log-level", "error",
        ]  # fmt: skip
        if token_ttl is not None:
            args += ["--auth-token", "simple", "--auth-token-ttl", str(token_ttl)]
        args += list(extra_args)
        certs: dict[str, str] = {}
        if tls:
            certs = make_test_certificates(workdir)
            args += [
                "--cert-file", certs["server_cert"],
                "--key-file", certs["server_key"],
                "--trusted-ca-file", certs["ca"],
                "--client-cert-auth",
            ]  # fmt: skip
        log = open(os.path.join(workdir, "etcd.log"), "wb")  # noqa: SIM115
        try:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
        finally:
            log.close()
        url = f"etcd://127.0.0.1:{client_port}"
        if tls:
            url = (
                f"etcds://127.0.0.1:{client_port}?ca={quote(certs['ca'])}"
                f"&cert={quote(certs['client_cert'])}&key={quote(certs['client_key'])}"
            )
        server = EtcdServer(
            endpoint=endpoint,
            url=url,
            client_port=client_port,
            peer_port=peer_port,
            workdir=workdir,
            process=process,
            ca_cert_file=certs.get("ca"),
            cert_file=certs.get("client_cert"),
            key_file=certs.get("client_key"),
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        _wait_healthy(server, time.monotonic() + STARTUP_TIMEOUT)
        if auth:
            _enable_auth(server, secrets.token_urlsafe(12))
    except BaseException:
        server.stop()
        raise
    return server


def start_etcd(
    *,
    tls: bool = False,
    auth: bool = False,
    binary: str | None = None,
    token_ttl: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> EtcdServer:
    """Start etcd and return it once healthy (retrying if a chosen port was taken meanwhile)."""
    binary = binary or os.environ.get("REGIONMESH_ETCD_BINARY") or DEFAULT_ETCD_BINARY
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise EtcdNotAvailable(
            f"etcd binary {binary} not found: install Debian's etcd-server package "
            "(or set REGIONMESH_ETCD_BINARY); tests marked 'etcd' need a real etcd"
        )
    error: EtcdNotAvailable | None = None
    for _ in range(3):
        try:
            return _start_once(binary, tls, auth, token_ttl, extra_args)
        except EtcdNotAvailable as exc:
            if "address already in use" not in str(exc):
                raise
            error = exc
    assert error is not None
    raise error


@contextlib.contextmanager
def running_etcd(
    *,
    tls: bool = False,
    auth: bool = False,
    token_ttl: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[EtcdServer]:
    """``with running_etcd() as server:`` — start etcd, stop and clean up on exit."""
    server = start_etcd(tls=tls, auth=auth, token_ttl=token_ttl, extra_args=extra_args)
    try:
        yield server
    finally:
        server.stop()
