"""The only place regionmesh runs BIRD 2 or talks to its control socket.

* :class:`BirdControl` speaks BIRD's control protocol on a unix socket (what ``birdc`` does):
  one command, a reply of ``(code, text)`` lines; codes ≥ 8000 become
  :class:`~regionmesh.errors.RoutingError` with BIRD's message. ``configure`` is a reload
  without restart (sessions whose configuration did not change stay up).
* :func:`check_config` runs ``bird -p -c FILE`` (parse only); :func:`write_atomically` replaces a
  file through a temporary file + rename, so BIRD never reads half a configuration.
* :class:`BirdProcess` starts ``bird -f`` with its own control socket and pid file in a run
  directory — so several instances coexist on one machine, one per network namespace — stops it
  with SIGTERM (BIRD then sends every peer a Cease and withdraws the routes it installed), and
  adopts a BIRD already answering on that socket (left by a killed ``regionmesh bgp``).

Run-directory layout: ``bird.conf``, ``bird.ctl`` (socket), ``bird.pid``. What to configure is
:mod:`.render`'s business, when to reconfigure or restart is :mod:`.daemon`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from regionmesh.errors import RoutingError

LOG = logging.getLogger(__name__)

DEFAULT_RUN_DIR = "/var/run/calico"
"""Where calico-node keeps ``bird.ctl``; ``--run-dir`` of ``regionmesh bgp`` and ``node status``."""
CONFIG_NAME = "bird.conf"
SOCKET_NAME = "bird.ctl"
PID_NAME = "bird.pid"

Reply = list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class RunDir:
    """The files of one BIRD instance."""

    path: str

    @property
    def config(self) -> str:
        """The configuration file BIRD reads."""
        return os.path.join(self.path, CONFIG_NAME)

    @property
    def socket(self) -> str:
        """The control socket."""
        return os.path.join(self.path, SOCKET_NAME)

    @property
    def pidfile(self) -> str:
        """BIRD's pid file."""
        return os.path.join(self.path, PID_NAME)


class BirdControl:
    """One connection per command to BIRD's control socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, text: str) -> Reply:
        """Send one command; the reply lines. RoutingError when BIRD is unreachable or refuses."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                with sock.makefile("rwb") as stream:
                    self._read(stream)  # greeting: "0001 BIRD x.y ready."
                    stream.write(text.encode() + b"\n")
                    stream.flush()
                    reply = self._read(stream)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise RoutingError(
                f"no BGP daemon is running here: cannot connect to BIRD's control socket "
                f"{self.path} ({exc.strerror})"
            ) from exc
        except OSError as exc:
            raise RoutingError(f"BIRD control socket {self.path}: {exc}") from exc
        errors = [t for c, t in reply if c >= 8000]
        if errors:
            raise RoutingError(f"BIRD refused {text!r}: {'; '.join(errors)}")
        return reply

    @staticmethod
    def _read(stream: object) -> Reply:
        lines: Reply = []
        code = 0
        while True:
            raw = stream.readline()  # type: ignore[attr-defined]
            if not raw:
                raise OSError("BIRD closed the control connection")
            line = raw.decode(errors="replace").rstrip("\n")
            if len(line) >= 5 and line[:4].isdigit() and line[4] in " -":
                code = int(line[:4])
                lines.append((code, line[5:]))
                if line[4] == " ":
                    return lines
            else:
                lines.append((code, line[1:] if line.startswith(" ") else line))

    def alive(self) -> bool:
        """Whether a BIRD answers on the socket."""
        try:
            self.command("show status")
        except RoutingError:
            return False
        return True

    def configure(self) -> str:
        """Reload the configuration file (``birdc configure``); BIRD's answer."""
        reply = self.command("configure")
        return "; ".join(t for _c, t in reply if t)


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (temporary file in the same directory, fsync, rename)."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".bird.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise RoutingError(f"cannot write {path}: {exc}") from exc


def check_config(path: str, bird: str = "bird") -> None:
    """``bird -p -c path``: RoutingError with BIRD's message when it does not parse."""
    try:
        proc = subprocess.run(
            [bird, "-p", "-c", path], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RoutingError(f"cannot run {bird!r} (is bird2 installed?): {exc}") from exc
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
        raise RoutingError(f"BIRD rejects {path}: {message}")


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BirdProcess:
    """One supervised ``bird`` in one run directory (see the module docstring)."""

    def __init__(self, run_dir: RunDir, bird: str = "bird") -> None:
        self.run_dir = run_dir
        self.bird = bird
        self.control = BirdControl(run_dir.socket)
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted: int | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running BIRD's pid, if any."""
        if self._proc is not None:
            return self._proc.pid
        return self._adopted

    def running(self) -> bool:
        """Whether our BIRD process is alive."""
        if self._proc is not None:
            return self._proc.poll() is None
        if self._adopted is not None:
            return _pid_alive(self._adopted)
        return False

    def exit_status(self) -> int | None:
        """The exit status of a BIRD we started that has exited."""
        return self._proc.poll() if self._proc is not None else None

    def start(self, *, recovery: bool = False, timeout: float = 10.0) -> None:
        """Start BIRD (or adopt the one answering on the socket) and wait until it answers.

        ``recovery`` passes ``-R`` (graceful-restart recovery: keep the kernel routes until the
        peers have re-sent theirs), for restarts after a crash.
        """
        if self.control.alive():
            pid = _read_pid(self.run_dir.pidfile)
            LOG.warning("A BIRD (pid %s) already answers on %s: using it", pid, self.run_dir.socket)
            self._proc, self._adopted = None, pid
            return
        cmd = [self.bird, "-f", "-c", self.run_dir.config, "-s", self.run_dir.socket]
        cmd += ["-P", self.run_dir.pidfile]
        if recovery:
            cmd.append("-R")
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise RoutingError(f"cannot start {self.bird!r} (is bird2 installed?): {exc}") from exc
        self._adopted = None
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RoutingError(
                    f"bird exited with status {self._proc.returncode} at start "
                    f"(its messages are above; command: {' '.join(cmd)})"
                )
            if self.control.alive():
                LOG.info("BIRD started (pid %d, socket %s)", self._proc.pid, self.run_dir.socket)
                return
            time.sleep(0.05)
        self.stop()
        raise RoutingError(f"bird did not open its control socket {self.run_dir.socket}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (peers get a Cease, installed routes are removed), then SIGKILL if stuck."""
        pid = self.pid
        if pid is None or not self.running():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            time.sleep(0.05)
        if self.running():
            LOG.warning("BIRD (pid %d) ignored SIGTERM for %.0f s: killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._proc = None
        self._adopted = None
