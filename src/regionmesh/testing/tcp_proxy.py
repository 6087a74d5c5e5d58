"""A loopback TCP relay that can black-hole its traffic (a network partition, for fault tests).

:class:`TcpProxy` listens on a free ``127.0.0.1`` port and relays every connection to one
upstream address (e.g. an etcd member). :meth:`TcpProxy.blackhole` makes it silently drop
everything in both directions, on the connections it has and on any new ones (the peer's kernel
still accepts them, as with a partition behind a stateful firewall); those connections stay
dead. :meth:`TcpProxy.restore` lets new connections through again. This is the client-side
fault etcd's functional tester injects with its ``etcd-proxy`` (``blackhole-tx``/``-rx``); it
needs no root. What the client does about it is :mod:`regionmesh.datastore.etcd`'s business.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket, poisoned: bool) -> None:
        self.client = client
        self.upstream = upstream
        self.poisoned = poisoned

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Relay ``127.0.0.1:<port>`` to ``upstream``; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._blackholed = False
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def blackhole(self) -> None:
        """Drop all traffic on every current and future connection (until :meth:`restore`)."""
        with self._lock:
            self._blackholed = True
            for conn in self._conns:
                conn.poisoned = True

    def restore(self) -> None:
        """Let new connections through again (black-holed ones stay dead)."""
        with self._lock:
            self._blackholed = False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                conn = _Conn(client, upstream, self._blackholed)
                self._conns.append(conn)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(conn, src, dst), daemon=True).start()

    def _pipe(self, conn: _Conn, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not conn.poisoned:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            conns, self._conns = list(self._conns), []
        for conn in conns:
            conn.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
