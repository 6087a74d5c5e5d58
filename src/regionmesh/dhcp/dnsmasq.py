"""The process boundary of the DHCP agent: dnsmasq instances and their alias interfaces.

:class:`DnsmasqSupervisor` implements :class:`regionmesh.dhcp.agent.Supervisor`. For
each network it is given it

* keeps an alias interface ``ns-<network id>`` (a ``dummy`` link, or a veth whose peer stays
  down where dummy links are unavailable) carrying the subnets' server addresses with
  ``noprefixroute`` — so the host's routing does not change — which is where dnsmasq attributes
  requests arriving on the ``tap*`` interfaces (``--bridge-interface``);
* writes the hosts and options files atomically into ``<state dir>/<network id>/``;
* runs ``/usr/sbin/dnsmasq`` in the foreground as a child process (it dies with the agent:
  ``PR_SET_PDEATHSIG``), restarting it only when its command line changes (the network's
  subnets), and sending SIGHUP when only the files changed;
* restarts a crashed dnsmasq with exponential backoff (1 s doubling to 30 s, reset after
  30 s of uptime), and on start-up stops dnsmasq processes a previous agent left behind in
  the same state directory.

Everything here acts on the network namespace the agent runs in: links and MTUs through the
dataplane's host-link boundary (:mod:`regionmesh.dataplane.links`), processes through signals.
What to serve is decided in :mod:`regionmesh.dhcp.render` and :mod:`regionmesh.dhcp.agent`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from regionmesh.dataplane.links import NetlinkAliases, interface_exists, interface_mtu
from regionmesh.dhcp.render import (
    ALIAS_PREFIX,
    DnsmasqFiles,
    NetworkDhcp,
    alias_name,
    dnsmasq_args,
    render_hosts,
    render_opts,
    server_addresses,
)
from regionmesh.errors import ConfigError, DataplaneError

LOG = logging.getLogger(__name__)

DNSMASQ = "/usr/sbin/dnsmasq"
DEFAULT_STATE_DIR = "/var/lib/regionmesh/dhcp"
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


# ---------------------------------------------------------------------------- interfaces


def tap_mtu(interface: str) -> int | None:
    """The MTU of ``interface`` in this namespace, or None when it does not exist (yet)."""
    return interface_mtu(interface)


class AliasInterfaces:
    """The ``ns-…`` alias interfaces, through the dataplane's netlink runner."""

    def __init__(self) -> None:
        self._links = NetlinkAliases()

    def exists(self, name: str) -> bool:
        """Whether the link exists."""
        return interface_exists(name)

    def ensure(self, name: str, addresses: list[str]) -> None:
        """The link exists, is up and carries exactly ``addresses`` (IPv4, noprefixroute)."""
        self._links.ensure(name, addresses, peer="nsp-" + name[len(ALIAS_PREFIX) :])

    def remove(self, name: str) -> None:
        """Delete the link (and its veth peer) if it exists."""
        if self.exists(name):
            self._links.remove(name)


# ---------------------------------------------------------------------------- one dnsmasq


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _pid_from_file(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class DnsmasqInstance:
    """One network's dnsmasq child process and its restart bookkeeping."""

    network_id: str
    files: DnsmasqFiles
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    hup_pending: bool = False
    restarts: int = 0

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, args: list[str]) -> None:
        """Spawn dnsmasq with ``args`` (stopping a previous child first)."""
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.files.pid)
        LOG.info("starting dnsmasq for network %s", self.network_id)
        LOG.debug("dnsmasq command: %s", " ".join(args))
        try:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
                close_fds=True,
            )
        except OSError as exc:
            raise DataplaneError(f"cannot start {args[0]}: {exc}") from exc
        self.args = list(args)
        self.started_at = time.monotonic()
        self.hup_pending = False

    def ready(self) -> bool:
        """Running, with its signal handlers installed (it wrote its pid file)."""
        pid = self.pid
        return pid is not None and (
            _pid_from_file(self.files.pid) == pid or time.monotonic() - self.started_at > 2.0
        )

    def reload(self) -> None:
        """SIGHUP: re-read the hosts and options files (deferred until :meth:`ready`)."""
        pid = self.pid
        if pid is not None and self.ready():
            os.kill(pid, signal.SIGHUP)
            self.hup_pending = False
            LOG.debug("SIGHUP to dnsmasq %d (network %s)", pid, self.network_id)
        else:
            self.hup_pending = True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`; reap the child."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)


# ---------------------------------------------------------------------------- supervisor


def check_state_dir(path: str) -> str:
    """Create ``path`` (0755) and check that dnsmasq's unprivileged user can read it.

    dnsmasq drops root after start-up and re-reads its files as that user on SIGHUP, so every
    directory above the files must be searchable by others; ConfigError otherwise.
    """
    path = os.path.abspath(path)
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"invalid value {path!r} for --state-dir: {exc}") from exc
    current = path
    while True:
        mode = os.stat(current).st_mode
        if not mode & stat.S_IXOTH:
            raise ConfigError(
                f"invalid value {path!r} for --state-dir: {current} is not searchable by "
                "others (dnsmasq re-reads its files as an unprivileged user); chmod o+x it "
                "or choose another directory"
            )
        parent = os.path.dirname(current)
        if parent == current:
            return path
        current = parent


def _write_if_changed(path: str, content: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


class DnsmasqSupervisor:
    """One supervised dnsmasq per network, under ``state_dir`` (see module docstring)."""

    def __init__(
        self,
        state_dir: str = DEFAULT_STATE_DIR,
        *,
        binary: str = DNSMASQ,
        links: AliasInterfaces | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not os.access(binary, os.X_OK):
            raise ConfigError(f"dnsmasq not found at {binary} (install Debian's dnsmasq-base)")
        self.state_dir = check_state_dir(state_dir)
        self.binary = binary
        self.links = links or AliasInterfaces()
        self.clock = clock
        self.instances: dict[str, DnsmasqInstance] = {}
        self._addresses: dict[str, list[str]] = {}
        self.desired: dict[str, NetworkDhcp] = {}
        self._retry_at: dict[str, float] = {}
        self._stale = self._stop_leftovers()

    def _stop_leftovers(self) -> set[str]:
        """Stop dnsmasq processes a previous agent left in this state dir; return their nets."""
        stale: set[str] = set()
        for entry in sorted(os.listdir(self.state_dir)):
            files = DnsmasqFiles(os.path.join(self.state_dir, entry))
            if not os.path.isdir(files.directory):
                continue
            stale.add(entry)
            pid = _pid_from_file(files.pid)
            if pid is not None and f"--pid-file={files.pid}" in _cmdline(pid):
                LOG.info("stopping dnsmasq %d left over for network %s", pid, entry)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_TIMEOUT
                while _cmdline(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        return stale

    def _files(self, network_id: str) -> DnsmasqFiles:
        if not network_id or "/" in network_id or network_id in (".", ".."):
            raise DataplaneError(f"unusable network id {network_id!r}")
        return DnsmasqFiles(os.path.join(self.state_dir, network_id))

    # -- Supervisor protocol ----------------------------------------------------------------
    def apply(self, networks: Mapping[str, NetworkDhcp]) -> None:
        """Start, reload, restart or stop instances so they serve exactly ``networks``."""
        for network_id in sorted((set(self.instances) | self._stale) - set(networks)):
            self._remove(network_id)
        self._stale.clear()
        self.desired = dict(networks)
        self._retry_at.clear()
        for net in networks.values():
            self._try_apply(net)

    def _try_apply(self, net: NetworkDhcp) -> None:
        try:
            self._apply_one(net)
        except (DataplaneError, OSError) as exc:
            LOG.error(
                "cannot serve network %s: %s (retry in %.0fs)", net.network_id, exc, BACKOFF_MAX
            )
            self._retry_at[net.network_id] = self.clock() + BACKOFF_MAX

    def _apply_one(self, net: NetworkDhcp) -> None:
        files = self._files(net.network_id)
        os.makedirs(files.directory, mode=0o755, exist_ok=True)
        addresses = server_addresses(net)
        if self._addresses.get(net.network_id) != addresses or not self.links.exists(net.alias):
            self.links.ensure(net.alias, addresses)
            self._addresses[net.network_id] = addresses
        changed = _write_if_changed(files.hosts, render_hosts(net))
        changed = _write_if_changed(files.opts, render_opts(net)) or changed
        args = dnsmasq_args(net, files, self.binary)
        inst = self.instances.setdefault(net.network_id, DnsmasqInstance(net.network_id, files))
        if inst.args != args or (inst.pid is None and self.clock() >= inst.next_start):
            inst.start(args)
        elif changed:
            inst.reload()

    def tick(self) -> None:
        """Restart crashed instances (with backoff) and deliver deferred SIGHUPs."""
        now = self.clock()
        for network_id, when in list(self._retry_at.items()):
            if now >= when and network_id in self.desired:
                del self._retry_at[network_id]
                self._addresses.pop(network_id, None)
                self._try_apply(self.desired[network_id])
        for inst in self.instances.values():
            if inst.proc is not None and inst.proc.poll() is not None:
                code = inst.proc.returncode
                uptime = now - inst.started_at
                inst.proc = None
                inst.failures = 1 if uptime >= STABLE_AFTER else inst.failures + 1
                delay = min(BACKOFF_INITIAL * 2 ** (inst.failures - 1), BACKOFF_MAX)
                inst.next_start = now + delay
                LOG.warning(
                    "dnsmasq for network %s exited (status %s after %.1fs); restart in %.1fs",
                    inst.network_id,
                    code,
                    uptime,
                    delay,
                )
                tail = _tail(inst.files.log)
                if tail:
                    LOG.warning("dnsmasq log for network %s ends with:\n%s", inst.network_id, tail)
            if inst.proc is None and inst.args and now >= inst.next_start:
                try:
                    inst.start(inst.args)
                    inst.restarts += 1
                except DataplaneError as exc:
                    LOG.error("%s", exc)
                    inst.next_start = now + BACKOFF_MAX
            elif inst.hup_pending:
                inst.reload()

    def close(self) -> None:
        """Stop every instance and remove the alias interfaces (state files are kept)."""
        for network_id in sorted(self.instances):
            self._remove(network_id, keep_files=True)

    def _remove(self, network_id: str, *, keep_files: bool = False) -> None:
        inst = self.instances.pop(network_id, None)
        if inst is not None:
            LOG.info("stopping dnsmasq for network %s", network_id)
            inst.stop()
        self._addresses.pop(network_id, None)
        try:
            self.links.remove(alias_name(network_id))
        except DataplaneError as exc:
            LOG.warning("%s", exc)
        if not keep_files:
            shutil.rmtree(self._files(network_id).directory, ignore_errors=True)


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""
