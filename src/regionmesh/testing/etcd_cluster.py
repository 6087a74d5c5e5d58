"""A real multi-member etcd cluster on loopback, with fault injection (for tests and benchmarks).

:class:`EtcdCluster` starts ``size`` members of ``/usr/bin/etcd`` (or
``$REGIONMESH_ETCD_BINARY``) on free loopback ports, each with its own data directory (on
``/dev/shm`` when available), as in the reference proof ``etcd-3node-leader-kill.sh``: one
``--initial-cluster`` naming every peer, ``--heartbeat-interval 100 --election-timeout 1000``.
It can then

* :meth:`~EtcdCluster.kill` a member (SIGKILL), :meth:`~EtcdCluster.freeze` /
  :meth:`~EtcdCluster.thaw` it (SIGSTOP / SIGCONT: a stalled, not dead, peer) and
  :meth:`~EtcdCluster.restart` it on its data directory (``--initial-cluster-state existing``);
* find the :meth:`~EtcdCluster.leader` (``/v3/maintenance/status``: the member whose
  ``leader`` equals its own ``member_id``) and wait for one;
* list and disarm alarms (NOSPACE) and defragment members, for quota tests
  (``quota_backend_bytes``).

``url`` is the regionmesh datastore URL of every member (``etcd://127.0.0.1:P1,…``) and
``etcd_endpoints`` the ``ETCD_ENDPOINTS`` / felix.cfg ``EtcdEndpoints`` value. A missing etcd
binary raises :class:`~regionmesh.testing.etcd_server.EtcdNotAvailable`: tests needing a
cluster fail, never skip. Talking to the cluster as a client is
:mod:`regionmesh.datastore.etcd`'s job; this module only runs and breaks processes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.testing.etcd_server import (
    DEFAULT_ETCD_BINARY,
    STARTUP_TIMEOUT,
    EtcdNotAvailable,
    free_port,
)

RUNNING, FROZEN, DEAD = "running", "frozen", "dead"


@dataclass
class EtcdMember:
    """One member: ports, data directory, process and state (running / frozen / dead)."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str
    log_path: str
    process: subprocess.Popen[bytes] | None = None
    state: str = DEAD
    member_id: int = 0

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<client port>``."""
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """``http://127.0.0.1:<peer port>``."""
        return f"http://127.0.0.1:{self.peer_port}"

    def log(self) -> str:
        """The member's output so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class EtcdCluster:
    """A running ``size``-member cluster (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        size: int = 3,
        *,
        quota_backend_bytes: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        self.binary = binary or os.environ.get("REGIONMESH_ETCD_BINARY") or DEFAULT_ETCD_BINARY
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise EtcdNotAvailable(
                f"etcd binary {self.binary} not found: install Debian's etcd-server package "
                "(or set REGIONMESH_ETCD_BINARY); the cluster tests need a real etcd"
            )
        root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.workdir = tempfile.mkdtemp(prefix="regionmesh-etcd-cluster-", dir=root)
        self.token = f"regionmesh-{secrets.token_hex(4)}"
        self.quota_backend_bytes = quota_backend_bytes
        self.extra_args = list(extra_args)
        ports: set[int] = set()
        self.members: list[EtcdMember] = []
        for i in range(1, size + 1):
            client, peer = self._port(ports), self._port(ports)
            self.members.append(
                EtcdMember(
                    name=f"m{i}",
                    client_port=client,
                    peer_port=peer,
                    data_dir=os.path.join(self.workdir, f"m{i}"),
                    log_path=os.path.join(self.workdir, f"m{i}.log"),
                )
            )

    @staticmethod
    def _port(taken: set[int]) -> int:
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    # ------------------------------------------------------------------ addresses ----
    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL, in member order."""
        return [m.endpoint for m in self.members]

    @property
    def etcd_endpoints(self) -> str:
        """``http://127.0.0.1:P1,http://…`` (``ETCD_ENDPOINTS`` / ``EtcdEndpoints``)."""
        return ",".join(self.endpoints)

    @property
    def url(self) -> str:
        """The regionmesh datastore URL naming every member."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def member(self, name: str) -> EtcdMember:
        """The member called ``name`` (``m1``, ``m2``…)."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def open(self, endpoints: Sequence[str] | None = None, **kwargs: Any) -> EtcdDatastore:
        """A regionmesh client on ``endpoints`` (default: every member); the caller closes it."""
        return EtcdDatastore(list(endpoints or self.endpoints), **kwargs)

    # ------------------------------------------------------------------ lifecycle ----
    def _spawn(self, m: EtcdMember, state: str) -> None:
        cluster = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        args = [
            self.binary,
            "--name", m.name,
            "--data-dir", m.data_dir,
            "--listen-client-urls", m.endpoint,
            "--advertise-client-urls", m.endpoint,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", cluster,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        if self.quota_backend_bytes:
            args += ["--quota-backend-bytes", str(self.quota_backend_bytes)]
        args += self.extra_args
        log = open(m.log_path, "ab")  # noqa: SIM115
        try:
            m.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        m.state = RUNNING

    def start(self) -> EtcdCluster:
        """Start every member and wait until each is healthy (a leader exists)."""
        try:
            for m in self.members:
                self._spawn(m, "new")
            deadline = time.monotonic() + STARTUP_TIMEOUT
            for m in self.members:
                self.wait_healthy(m.name, deadline - time.monotonic())
            for m in self.members:
                m.member_id = int(self.status(m.name)["header"]["member_id"])
        except BaseException:
            self.close()
            raise
        return self

    def wait_healthy(self, name: str, timeout: float = 20.0) -> None:
        """Wait until ``/health`` of ``name`` says true (it has a leader and answers)."""
        m = self.member(name)
        deadline = time.monotonic() + max(timeout, 0.1)
        last = ""
        while time.monotonic() < deadline:
            if m.process is not None and m.process.poll() is not None:
                raise EtcdNotAvailable(
                    f"etcd member {name} exited with status {m.process.returncode}:\n"
                    f"{m.log()[-3000:]}"
                )
            try:
                resp = requests.get(m.endpoint + "/health", timeout=1)
                if resp.status_code == 200 and resp.json().get("health") in ("true", True):
                    return
                last = resp.text
            except (requests.RequestException, ValueError) as exc:
                last = str(exc)
            time.sleep(0.05)
        raise EtcdNotAvailable(f"etcd member {name} not healthy in time ({last})")

    def kill(self, name: str) -> None:
        """SIGKILL the member (its data directory stays, for :meth:`restart`)."""
        m = self.member(name)
        if m.process is not None and m.process.poll() is None:
            if m.state == FROZEN:
                m.process.send_signal(signal.SIGCONT)
            m.process.kill()
            m.process.wait(timeout=10)
        m.process = None
        m.state = DEAD

    def freeze(self, name: str) -> None:
        """SIGSTOP the member: it keeps its sockets but answers nothing."""
        m = self.member(name)
        assert m.process is not None and m.state == RUNNING, f"{name} is {m.state}"
        m.process.send_signal(signal.SIGSTOP)
        m.state = FROZEN

    def thaw(self, name: str) -> None:
        """SIGCONT a frozen member."""
        m = self.member(name)
        assert m.process is not None and m.state == FROZEN, f"{name} is {m.state}"
        m.process.send_signal(signal.SIGCONT)
        m.state = RUNNING

    def restart(self, name: str, *, wait: bool = True) -> None:
        """Start a killed member again on its data directory (it rejoins and catches up)."""
        m = self.member(name)
        if m.state != DEAD:
            self.kill(name)
        self._spawn(m, "existing")
        if wait:
            self.wait_healthy(name)

    def running(self) -> list[str]:
        """Names of the members that are running (not frozen, not dead)."""
        return [m.name for m in self.members if m.state == RUNNING]

    # ------------------------------------------------------------------ inspection ----
    def _post(self, name: str, path: str, body: dict[str, Any], timeout: float = 2.0) -> Any:
        resp = requests.post(self.member(name).endpoint + path, json=body, timeout=timeout)
        resp.raise_for_status()
        return resp.json()

    def status(self, name: str, timeout: float = 2.0) -> dict[str, Any]:
        """``/v3/maintenance/status`` of one member."""
        result: dict[str, Any] = self._post(name, "/v3/maintenance/status", {}, timeout)
        return result

    def leader(self) -> str | None:
        """The current leader's name as the running members see it, or None."""
        for name in self.running():
            try:
                st = self.status(name, timeout=1.0)
            except (requests.RequestException, ValueError):
                continue
            leader = int(st.get("leader", 0))
            for m in self.members:
                if leader and m.member_id == leader:
                    return m.name
        return None

    def wait_leader(self, timeout: float = 15.0, *, not_: str | None = None) -> str:
        """Wait for a leader (other than ``not_``) that the running members agree on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != not_ and self.member(leader).state == RUNNING:
                return leader
            time.sleep(0.1)
        raise AssertionError(f"no etcd leader (other than {not_}) within {timeout}s")

    def followers(self) -> list[str]:
        """Running members that are not the leader."""
        leader = self.wait_leader()
        return [n for n in self.running() if n != leader]

    def alarms(self) -> list[dict[str, Any]]:
        """Active alarms (``[{"memberID": …, "alarm": "NOSPACE"}]``) from a running member."""
        for name in self.running():
            with contextlib.suppress(requests.RequestException, ValueError):
                result = self._post(name, "/v3/maintenance/alarm", {"action": "GET"})
                return list(result.get("alarms") or [])
        raise AssertionError("no running member answered the alarm list")

    def disarm(self) -> None:
        """Deactivate every active alarm (``etcdctl alarm disarm``)."""
        name = self.running()[0]
        for alarm in self.alarms():
            self._post(
                name,
                "/v3/maintenance/alarm",
                {"action": "DEACTIVATE", "memberID": alarm["memberID"], "alarm": alarm["alarm"]},
            )

    def defragment(self) -> None:
        """Defragment every running member (``etcdctl defrag``)."""
        for name in self.running():
            self._post(name, "/v3/maintenance/defragment", {}, timeout=30)

    def compact_all(self) -> int:
        """Compact history up to the current revision; return that revision."""
        name = self.running()[0]
        rev = int(
            self._post(name, "/v3/kv/range", {"key": _b64("/"), "count_only": True})["header"][
                "revision"
            ]
        )
        self._post(name, "/v3/kv/compaction", {"revision": rev, "physical": True}, timeout=30)
        return rev

    def logs(self) -> str:
        """Every member's recent output (for failure messages)."""
        return "\n".join(f"----- {m.name} -----\n{m.log()[-2000:]}" for m in self.members)

    def close(self) -> None:
        """Kill every member and remove the data directories."""
        for m in self.members:
            with contextlib.suppress(Exception):
                self.kill(m.name)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def running_cluster(size: int = 3, **kwargs: Any) -> Iterator[EtcdCluster]:
    """``with running_cluster() as cluster:`` — start, and clean up on exit."""
    cluster = EtcdCluster(size, **kwargs).start()
    try:
        yield cluster
    finally:
        cluster.close()
