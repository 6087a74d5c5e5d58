"""Start real MariaDB + neutron-server 29 processes for regionmesh's integration tests.

Follows /work/shared/reference/neutron-server-recipe.md: a private MariaDB (own datadir, free
loopback port, unix socket in the tmp dir; never the system service), one database per region
(the first migrated with ``neutron-db-manage upgrade head``, the others cloned from it with
mysqldump), and per region the REST API under wsgiref plus ``neutron-periodic-workers``, all
from the venv that ``scripts/neutron-venv.sh`` builds, with ``mechanism_drivers = regionmesh``
loaded through the ``neutron.ml2.mechanism_drivers`` entry point. Every process is started in
its own session (setsid) and stopped by process group. Anything missing raises
:class:`HarnessError`, so tests fail rather than skip. Talking to the API is plain HTTP
(urllib) and the ``openstack`` client from the venv; what the driver writes is checked by the
tests themselves through :mod:`regionmesh.datastore`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("REGIONMESH_NEUTRON_VENV", "/var/tmp/regionmesh-neutron-venv"))
AGENT_DOWN_TIME = 10


class HarnessError(RuntimeError):
    """A component of the Neutron test harness is missing or did not start."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} missing)"


def _stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    # children of the group (periodic-worker forks) may outlive the leader briefly
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def ensure_venv() -> Path:
    """Build or verify the neutron venv (idempotent, ~1 s when it is ready)."""
    script = REPO / "scripts" / "neutron-venv.sh"
    res = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=900, check=False
    )
    if res.returncode != 0:
        raise HarnessError(f"{script} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return VENV


# ------------------------------------------------------------------------------ MariaDB


@dataclass
class MariaDB:
    """A private mariadbd on 127.0.0.1:<port> with its own datadir under ``base``."""

    base: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.base / "mysqld.sock"

    def start(self, timeout: float = 60.0) -> None:
        for binary in ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump"):
            if shutil.which(binary) is None and not Path("/usr/sbin", binary).exists():
                raise HarnessError(f"{binary} not found: install mariadb-server (apt)")
        datadir = self.base / "data"
        datadir.mkdir(parents=True)
        res = subprocess.run(
            [
                "mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                "--auth-root-authentication-method=socket", "--skip-test-db",
            ],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if res.returncode != 0:
            raise HarnessError(f"mariadb-install-db failed:\n{res.stdout}\n{res.stderr}")
        self.port = free_port()
        log = open(self.base / "mariadb.log", "wb")  # noqa: SIM115 - closed by the child exit
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc = subprocess.Popen(
            [
                mariadbd, "--no-defaults", f"--datadir={datadir}", "--user=root",
                "--bind-address=127.0.0.1", f"--port={self.port}",
                f"--socket={self.socket_path}", f"--pid-file={self.base / 'mysqld.pid'}",
                "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
                "--innodb-doublewrite=0", "--max-connections=500", "--character-set-server=utf8mb4",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"mariadbd exited:\n{_tail(self.base / 'mariadb.log')}")
            if self.socket_path.exists() and self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise HarnessError(f"mariadbd not ready in {timeout}s:\n{_tail(self.base / 'mariadb.log')}")

    def sql(self, statements: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket_path}", "-uroot", "-e", statements],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise HarnessError(f"SQL failed: {statements}\n{res.stderr}")
        return res

    def create_database(self, name: str, password: str) -> str:
        """Create database+user ``name``; returns the SQLAlchemy URL."""
        self.sql(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4;"
            f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}';"
            f"GRANT ALL ON `{name}`.* TO '{name}'@'127.0.0.1';"
        )
        return f"mysql+pymysql://{name}:{password}@127.0.0.1:{self.port}/{name}"

    def clone_database(self, source: str, target: str) -> None:
        """Copy ``source`` into the (existing, empty) ``target``: faster than migrating."""
        dump = subprocess.Popen(
            ["mariadb-dump", "--no-defaults", f"--socket={self.socket_path}", "-uroot", source],
            stdout=subprocess.PIPE,
        )
        load = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket_path}", "-uroot", target],
            stdin=dump.stdout, capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        assert dump.stdout is not None
        dump.stdout.close()
        if dump.wait(60) != 0 or load.returncode != 0:
            raise HarnessError(f"cloning {source} into {target} failed: {load.stderr!r}")

    def stop(self) -> None:
        _stop_group(self.proc, timeout=30)


# ------------------------------------------------------------------------------ Neutron

SERVE_PY = '''"""python serve.py HOST PORT --config-file A [--config-file B]: neutron API under wsgiref."""
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

host, port = sys.argv[1], int(sys.argv[2])
sys.argv = ["neutron-api"] + sys.argv[3:]


class Handler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s\\n" % (fmt % args))


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


from neutron.wsgi import api  # noqa: E402  builds ML2, the drivers and the extensions

make_server(host, port, api.application, server_class=Server, handler_class=Handler).serve_forever()
'''


@dataclass
class NeutronRegion:
    """One region's neutron-server: config files, the API process and the periodic workers."""

    name: str
    base: Path
    db_url: str
    datastore_url: str
    extra_calico: dict[str, str] = field(default_factory=dict)
    api_port: int = 0
    api: subprocess.Popen[bytes] | None = None
    periodic: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def config_args(self) -> list[str]:
        return [
            "--config-file", str(self.base / "neutron.conf"),
            "--config-file", str(self.base / "ml2_conf.ini"),
        ]  # fmt: skip

    def write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "lock").mkdir(exist_ok=True)
        shutil.copy(VENV / "etc" / "neutron" / "api-paste.ini", self.base / "api-paste.ini")
        (self.base / "serve.py").write_text(SERVE_PY)
        (self.base / "neutron.conf").write_text(
            "[DEFAULT]\n"
            "core_plugin = ml2\n"
            "service_plugins =\n"
            "auth_strategy = noauth\n"
            "transport_url = fake:/\n"
            "rpc_workers = 0\n"
            "rpc_state_report_workers = 0\n"
            f"agent_down_time = {AGENT_DOWN_TIME}\n"
            f"log_file = {self.base / 'api.log'}\n"
            "debug = false\n"
            "[database]\n"
            f"connection = {self.db_url}\n"
            "[oslo_concurrency]\n"
            f"lock_path = {self.base / 'lock'}\n"
        )
        calico = {
            "openstack_region": self.name,
            "datastore": self.datastore_url,
            "felix_status_interval": "1",
        }
        calico.update(self.extra_calico)
        (self.base / "ml2_conf.ini").write_text(
            "[ml2]\n"
            "type_drivers = flat,local\n"
            "project_network_types = local\n"
            "mechanism_drivers = regionmesh\n"
            "extension_drivers = port_security\n"
            "[ml2_type_flat]\n"
            "flat_networks = *\n"
            "[calico]\n" + "".join(f"{k} = {v}\n" for k, v in calico.items())
        )

    def migrate(self) -> None:
        res = subprocess.run(
            [str(VENV / "bin" / "neutron-db-manage"), *self.config_args, "upgrade", "head"],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if res.returncode != 0:
            raise HarnessError(
                f"neutron-db-manage failed for {self.name}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
            )

    def start(self) -> None:
        self.api_port = free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        with open(self.base / "api.out", "wb") as out:
            self.api = subprocess.Popen(
                [str(VENV / "bin" / "python"), str(self.base / "serve.py"), "127.0.0.1",
                 str(self.api_port), *self.config_args],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                cwd=self.base,
            )  # fmt: skip
        with open(self.base / "periodic.out", "wb") as out:
            self.periodic = subprocess.Popen(
                [str(VENV / "bin" / "neutron-periodic-workers"), *self.config_args,
                 "--log-file", str(self.base / "periodic.log")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                cwd=self.base,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until GET /v2.0/networks answers 200 and the driver's worker has started."""
        deadline = time.monotonic() + timeout
        api_up = False
        while time.monotonic() < deadline:
            for proc, what in ((self.api, "api"), (self.periodic, "periodic")):
                if proc is not None and proc.poll() is not None:
                    raise HarnessError(
                        f"{self.name}: {what} exited {proc.returncode}:\n{self.logs()}"
                    )
            if not api_up:
                with contextlib.suppress(OSError, HarnessError):
                    api_up = self.request("GET", "/v2.0/networks")[0] == 200
            if api_up and "regionmesh worker started" in self.read_log("periodic.log"):
                return
            time.sleep(0.25)
        raise HarnessError(f"{self.name}: not ready after {timeout}s:\n{self.logs()}")

    def read_log(self, name: str) -> str:
        try:
            return (self.base / name).read_text(errors="replace")
        except OSError:
            return ""

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n{_tail(self.base / n)}"
            for n in ("api.out", "api.log", "periodic.out", "periodic.log")
        )

    def stop(self) -> None:
        _stop_group(self.periodic)
        _stop_group(self.api)

    # -------------------------------------------------------------- REST helpers

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.endpoint + path, data=data, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, answer = self.request(method, path, body)
        if status >= 300:
            raise AssertionError(f"{self.name}: {method} {path} -> {status}: {answer}")
        return answer

    def openstack(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the ``openstack`` client from the venv against this region (noauth)."""
        env = dict(os.environ, OS_AUTH_TYPE="none", OS_ENDPOINT=self.endpoint)
        for k in [
            k for k in env if k.startswith("OS_") and k not in ("OS_AUTH_TYPE", "OS_ENDPOINT")
        ]:
            env.pop(k)
        res = subprocess.run(
            [str(VENV / "bin" / "openstack"), *args], capture_output=True, text=True,
            env=env, check=False, timeout=120,
        )  # fmt: skip
        if check and res.returncode != 0:
            raise AssertionError(
                f"openstack {' '.join(args)} -> {res.returncode}:\n{res.stdout}\n{res.stderr}"
            )
        return res


@dataclass
class NeutronCloud:
    """MariaDB plus one neutron-server per region, and how long each step took."""

    mariadb: MariaDB
    regions: dict[str, NeutronRegion]
    timings: dict[str, float]


@contextlib.contextmanager
def neutron_cloud(
    base: Path,
    region_names: list[str],
    datastore_url: str,
    extra_calico: dict[str, dict[str, str]] | None = None,
) -> Iterator[NeutronCloud]:
    """Start everything (venv check, MariaDB, migrations, processes); tear it all down.

    ``extra_calico[name]`` adds or overrides ``[calico]`` options of one region's server."""
    timings: dict[str, float] = {}
    t_all = t0 = time.monotonic()
    ensure_venv()
    timings["venv check"] = time.monotonic() - t0
    mariadb = MariaDB(base / "mariadb")
    regions: dict[str, NeutronRegion] = {}
    try:
        t0 = time.monotonic()
        mariadb.start()
        timings["mariadb start"] = time.monotonic() - t0
        for i, name in enumerate(region_names):
            db = f"neutron_{name.replace('-', '_')}"
            url = mariadb.create_database(db, f"pw{i}{os.getpid()}")
            regions[name] = NeutronRegion(
                name, base / f"region-{name}", url, datastore_url,
                extra_calico=dict((extra_calico or {}).get(name, {})),
            )  # fmt: skip
            regions[name].write_config()
        first, *rest = region_names
        t0 = time.monotonic()
        regions[first].migrate()
        timings["migrate first db"] = time.monotonic() - t0
        t0 = time.monotonic()
        for name in rest:
            mariadb.clone_database(
                f"neutron_{first.replace('-', '_')}", f"neutron_{name.replace('-', '_')}"
            )
        timings["clone other dbs"] = time.monotonic() - t0
        t0 = time.monotonic()
        for region in regions.values():
            region.start()
        for region in regions.values():
            region.wait_ready()
        timings["servers ready"] = time.monotonic() - t0
        timings["total start"] = time.monotonic() - t_all
        yield NeutronCloud(mariadb, regions, timings)
    finally:
        t0 = time.monotonic()
        for region in regions.values():
            region.stop()
        mariadb.stop()
        timings["teardown"] = time.monotonic() - t0
