"""EtcdWatch: one streaming ``/v3/watch`` with a reader thread, a liveness monitor and resume.

It uses its :class:`~regionmesh.datastore.etcd.store.EtcdDatastore` for sessions, endpoints
and error translation; what a consumer does with the events is not its business.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import requests

from regionmesh.datastore.api import EventType, WatchEvent
from regionmesh.datastore.etcd.wire import (
    _BAD_TOKEN,
    WATCH_CONNECT_TIMEOUT,
    _b64,
    _error_text,
    _Failed,
    _key_range,
    _range_text,
    _unb64,
)
from regionmesh.errors import (
    Compacted,
    DatastoreError,
    DatastoreUnavailable,
)

if TYPE_CHECKING:
    from regionmesh.datastore.etcd.store import EtcdDatastore

_CLOSED = object()


class _StreamError(Exception):
    """Internal: the stream broke in a way worth retrying (possibly on another endpoint)."""


def _keepalive(resp: requests.Response) -> None:
    """Blocking reads (the monitor decides about silence) and TCP keepalive on the stream."""
    with contextlib.suppress(AttributeError, OSError):
        conn = resp.raw.connection
        sock = getattr(conn, "sock", None)
        if sock is None:
            return
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


class EtcdWatch:
    """One etcd watch stream, read by a daemon thread into a queue of batches.

    The reader thread keeps the position (next revision wanted) and, when the stream breaks,
    reconnects from there on the next endpoint; it gives up with DatastoreUnavailable after
    ``max_failures`` consecutive failed attempts. A monitor thread probes the stream's member
    after ``watch_idle_timeout`` seconds of silence and shuts a stalled stream down (see the
    module docstring). Compaction and cancellation end the watch with Compacted /
    DatastoreError, raised from :meth:`next_batch`. :meth:`close` shuts the socket down so the
    thread wakes at once.
    """

    max_failures = 6

    def __init__(self, store: EtcdDatastore, prefix: str, start_revision: int) -> None:
        self._store = store
        self.prefix = prefix
        lo, hi = _key_range(prefix)
        self._probe_key = lo
        self._create = {
            "key": _b64(lo),
            "range_end": _b64(hi),
            "prev_kv": True,
            "progress_notify": True,
        }
        self._next_revision = start_revision
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self._done = False
        self._error: BaseException | None = None
        self._resp_lock = threading.Lock()
        self._resp: requests.Response | None = None
        self._index = store._active
        self._last_message = time.monotonic()
        self.stalls = 0
        """Streams this watch abandoned because their member failed the probe (for tests)."""
        self.reconnects = 0
        self._thread = threading.Thread(
            target=self._run, name=f"regionmesh-etcd-watch {prefix}", daemon=True
        )
        self._monitor_thread = threading.Thread(
            target=self._monitor, name=f"regionmesh-etcd-watch-probe {prefix}", daemon=True
        )
        self._thread.start()
        self._monitor_thread.start()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the watch ended."""
        return self._closed.is_set() or self._done

    def _what(self) -> str:
        lo, hi = _key_range(self.prefix)
        return _range_text(_b64(lo), _b64(hi))

    @property
    def endpoint(self) -> str:
        """The endpoint the stream is (or was last) connected to."""
        return self._store.endpoints[self._index]

    # --- reader thread --------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        count = len(self._store._clients)
        last_problem = ""
        while not self._closed.is_set():
            try:
                progressed = self._stream(self._index)
                if progressed:
                    failures = 0
                last_problem = "the stream ended"
            except (Compacted, DatastoreError) as exc:
                if not self._closed.is_set():
                    self._queue.put(exc)
                return
            except (
                _StreamError,
                _Failed,
                requests.exceptions.RequestException,
                OSError,
                ValueError,
            ) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            if self._closed.is_set():
                break
            failures += 1
            if failures >= self.max_failures:
                self._queue.put(
                    DatastoreUnavailable(
                        f"etcd watch on {self.prefix!r} lost and could not be re-established "
                        f"({', '.join(self._store.endpoints)}): {last_problem}"
                    )
                )
                return
            self._index = (self._index + 1) % count
            self.reconnects += 1
            self._closed.wait(min(0.1 * failures, 1.0))
        self._queue.put(_CLOSED)

    def _stream(self, index: int) -> bool:
        """Run one stream until it ends; return whether any event or progress arrived."""
        store = self._store
        session = store._watch_session(index)
        body: dict[str, Any] = {
            "create_request": {**self._create, "start_revision": self._next_revision}
        }
        progressed = False
        self._last_message = time.monotonic()
        try:
            # The read timeout bounds the wait for the response headers (a frozen member
            # accepts the connection and then says nothing); _keepalive lifts it afterwards.
            resp = session.post(
                store._urls[index] + "/watch",
                json=body,
                stream=True,
                timeout=(WATCH_CONNECT_TIMEOUT, store.watch_idle_timeout + store.timeout),
            )
            _keepalive(resp)
            with self._resp_lock:
                self._resp = resp
            self._last_message = time.monotonic()
            if self._closed.is_set():
                return progressed
            if resp.status_code != 200:
                text = _error_text(resp.text, resp.reason)
                if any(t in text for t in _BAD_TOKEN):
                    store._authed.discard(index)
                    raise _StreamError(text)
                if resp.status_code >= 500:
                    raise _StreamError(f"HTTP {resp.status_code}: {text}")
                raise store._translate(text, index, ("watch", self._what()))
            buf = b""
            for chunk in resp.iter_content(chunk_size=None):
                self._last_message = time.monotonic()
                buf += chunk
                while (nl := buf.find(b"\n")) >= 0:
                    line, buf = buf[:nl], buf[nl + 1 :]
                    if line.strip() and self._handle(json.loads(line), index):
                        progressed = True
            return progressed
        finally:
            with self._resp_lock:
                resp_done, self._resp = self._resp, None
            if resp_done is not None:
                resp_done.close()
            session.close()

    def _handle(self, message: dict[str, Any], index: int) -> bool:
        """Process one stream message; True if it carried events or progress."""
        if "error" in message:
            text = _error_text(json.dumps(message), "watch error")
            if any(t in text for t in _BAD_TOKEN):
                self._store._authed.discard(index)
                raise _StreamError(text)
            raise self._store._translate(text, index, ("watch", self._what()))
        result = message.get("result") or {}
        compact_revision = int(result.get("compact_revision", 0))
        if compact_revision:
            raise Compacted(
                f"etcd watch on {self.prefix!r} from revision {self._next_revision}: "
                f"compacted up to revision {compact_revision}",
                compact_revision,
            )
        if result.get("canceled"):
            reason = str(result.get("cancel_reason", ""))
            if any(t in reason for t in _BAD_TOKEN):
                self._store._authed.discard(index)
                raise _StreamError(reason)
            if "permission denied" in reason:
                raise self._store._translate(reason, index, ("watch", self._what()))
            raise DatastoreError(
                f"etcd cancelled the watch on {self.prefix!r}: {result.get('cancel_reason', '')}"
            )
        events = result.get("events")
        if events:
            batch = [_event(e) for e in events]
            self._next_revision = batch[-1].mod_revision + 1
            self._queue.put(batch)
            return True
        if not result.get("created"):
            header_revision = int((result.get("header") or {}).get("revision", 0))
            self._next_revision = max(self._next_revision, header_revision + 1)
            return True
        return False

    # --- liveness monitor -----------------------------------------------------------------

    def _monitor(self) -> None:
        store = self._store
        idle = store.watch_idle_timeout
        while not self._closed.wait(min(0.25, idle / 4)):
            with self._resp_lock:
                resp = self._resp
            if resp is None or time.monotonic() - self._last_message < idle:
                continue
            index = self._index
            problem = store._probe(index, self._probe_key)
            if self._closed.is_set():
                return
            if problem is None:
                self._last_message = time.monotonic()
                continue
            with self._resp_lock:
                still = self._resp is resp
            if still:
                self.stalls += 1
                _shutdown(resp)

    # --- consumer side --------------------------------------------------------------------

    def next_batch(self, timeout: float | None) -> builtins.list[WatchEvent]:
        """Return the next batch, ``[]`` on timeout or once closed; raise what ended the watch."""
        if self._error is not None:
            raise self._error
        if self._closed.is_set() or self._done:
            return []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        if item is _CLOSED:
            self._done = True
            return []
        if isinstance(item, BaseException):
            self._done = True
            self._error = item
            raise item
        assert isinstance(item, list)
        return item

    def __iter__(self) -> Iterator[builtins.list[WatchEvent]]:
        while True:
            batch = self.next_batch(None)
            if not batch:
                return
            yield batch

    def close(self) -> None:
        """Stop the stream; safe from any thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(_CLOSED)
        with self._resp_lock:
            resp = self._resp
        if resp is not None:
            _shutdown(resp)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


def _shutdown(resp: requests.Response) -> None:
    """Shut the response's socket down so a thread blocked reading it wakes up.

    Best effort: the socket may be gone already (``OSError``), or urllib3 may no longer hold
    a file object for it (``AttributeError``/``ValueError`` from ``fileno``)."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fd = resp.raw.fileno()
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def _event(item: dict[str, Any]) -> WatchEvent:
    kv = item["kv"]
    prev = item.get("prev_kv")
    deleted = item.get("type") == "DELETE"
    return WatchEvent(
        type=EventType.DELETE if deleted else EventType.PUT,
        key=_unb64(kv["key"]).decode(),
        value=None if deleted else _unb64(kv.get("value", "")),
        mod_revision=int(kv["mod_revision"]),
        prev_value=None if prev is None else _unb64(prev.get("value", "")),
    )
