"""The etcd v3 datastore, through etcd3gw (etcd's gRPC JSON gateway, OpenStack's own client).

This is the only module that imports etcd3gw. It maps the
:class:`~regionmesh.datastore.api.Datastore` contract onto etcd requests exactly as Calico does
(policy-model.md §4.3): create is the transaction ``version(key) == 0 → put``; CAS update and
delete compare ``mod_revision(key)``; a list is a series of range reads pinned to the revision of
the first page (``limit`` + ``range_end``, next page from the last key + ``"\\0"``); a watch is a
streaming ``POST /v3/watch`` with ``start_revision`` and ``prev_kv`` read by a background thread,
which reports compaction as :class:`~regionmesh.errors.Compacted` and resumes on another
endpoint after a dropped connection.

Several endpoints are tried in turn (the last one that answered first). A request that failed
to connect is retried on the next endpoint; a write whose outcome is unknown (timeout) is not
retried. TLS uses the CA / client certificate files; with a username the client gets a token
from ``/v3/auth/authenticate`` and sends it in the ``Authorization`` header (etcd3gw has no auth
support of its own), re-authenticating once when etcd says the token is invalid. Every
etcd3gw/requests exception is translated into :mod:`regionmesh.errors`; connection problems
become :class:`~regionmesh.errors.DatastoreUnavailable`.

Choosing endpoints and credentials is :mod:`regionmesh.datastore.config`'s job; encoding
resources is ``resources.py``'s.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import json
import os
import queue
import socket
import threading
from binascii import a2b_base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import etcd3gw
import requests
from etcd3gw import exceptions as etcd_exc

from regionmesh.datastore.api import EventType, KeyValue, ListResult, WatchEvent
from regionmesh.datastore.keys import prefix_range_end
from regionmesh.errors import (
    AlreadyExists,
    Compacted,
    DatastoreError,
    DatastoreUnavailable,
    NotFound,
    RevisionConflict,
)

DEFAULT_TIMEOUT = 10.0
WATCH_CONNECT_TIMEOUT = 5.0
_LIST_RETRIES = 3

_COMPACTED = "required revision has been compacted"
_FUTURE_REV = "required revision is a future revision"
_LEASE_NOT_FOUND = "requested lease not found"
_BAD_TOKEN = ("invalid auth token", "user name is empty")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(data: str) -> bytes:
    return a2b_base64(data)


def _key_range(prefix: str) -> tuple[bytes, bytes]:
    lo = prefix.encode()
    hi = prefix_range_end(lo)
    # etcd: key "\0" with range_end "\0" means every key.
    return (lo or b"\0"), (hi if hi is not None else b"\0")


def _kv(item: dict[str, Any]) -> KeyValue:
    """A KeyValue from a gateway ``kvs`` item."""
    return KeyValue(
        a2b_base64(item["key"]).decode(),
        a2b_base64(item.get("value", "")),
        int(item.get("mod_revision", 0)),
        int(item.get("create_revision", 0)),
        int(item.get("lease", 0)),
    )


def _error_text(detail: str | None, fallback: str) -> str:
    """The etcd error message inside a gateway error body (JSON), else the raw text."""
    if detail:
        try:
            body = json.loads(detail)
        except ValueError:
            return detail.strip()
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                err = err.get("message")
            return str(err or body.get("message") or detail).strip()
        return detail.strip()
    return fallback


class _TokenInvalid(Exception):
    """Internal: etcd rejected our auth token; authenticate again and retry once."""


def _session(
    ca_cert_file: str | None, cert_file: str | None, key_file: str | None
) -> requests.Session:
    """A requests session for one endpoint.

    With an explicit CA the session ignores the environment (``trust_env``): requests would
    otherwise let ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override the configured CA.
    """
    session = requests.Session()
    if ca_cert_file:
        session.verify = ca_cert_file
        session.trust_env = False
    if cert_file and key_file:
        session.cert = (cert_file, key_file)
    return session


def _endpoint_parts(endpoint: str) -> tuple[str, str, int]:
    parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DatastoreError(f"invalid etcd endpoint {endpoint!r}: expected http(s)://host:port")
    try:
        port = parts.port or 2379
    except ValueError as exc:
        raise DatastoreError(f"invalid etcd endpoint {endpoint!r}: {exc}") from exc
    return parts.scheme, parts.hostname, port


class EtcdDatastore:
    """A :class:`~regionmesh.datastore.api.Datastore` on an etcd v3 cluster."""

    def __init__(
        self,
        endpoints: builtins.list[str],
        *,
        ca_cert_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoints:
            raise DatastoreError("no etcd endpoints given")
        self.endpoints = list(endpoints)
        self._username = username or None
        self._password = password or ""
        self._timeout = timeout
        self._clients: builtins.list[etcd3gw.Etcd3Client] = []
        for endpoint in self.endpoints:
            scheme, host, port = _endpoint_parts(endpoint)
            self._clients.append(
                etcd3gw.Etcd3Client(
                    host=host,
                    port=port,
                    protocol=scheme,
                    timeout=timeout,
                    session=_session(ca_cert_file, cert_file, key_file),
                )
            )
        self._active = 0
        self._authed: set[int] = set()
        self._auth_lock = threading.Lock()
        self._watches: builtins.list[EtcdWatch] = []
        self._watches_lock = threading.Lock()

    # --- transport ------------------------------------------------------------------------

    def _authenticate(self, index: int) -> None:
        client = self._clients[index]
        with self._auth_lock:
            client.session.headers.pop("Authorization", None)
            try:
                result = client.post(
                    client.get_url("/auth/authenticate"),
                    json={"name": self._username, "password": self._password},
                )
            except etcd_exc.Etcd3Exception as exc:
                if isinstance(
                    exc, etcd_exc.ConnectionFailedError | etcd_exc.ConnectionTimeoutError
                ):
                    raise
                raise DatastoreError(
                    f"etcd {self.endpoints[index]}: authentication as {self._username!r} failed: "
                    f"{_error_text(exc.detail_text, type(exc).__name__)}"
                ) from exc
            client.session.headers["Authorization"] = str(result["token"])
            self._authed.add(index)

    def _post_one(self, index: int, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        client = self._clients[index]
        for attempt in (1, 2):
            if self._username and index not in self._authed:
                self._authenticate(index)
            try:
                result: dict[str, Any] = client.post(client.get_url(path), json=payload)
                return result
            except (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError):
                raise
            except etcd_exc.Etcd3Exception as exc:
                text = _error_text(exc.detail_text, type(exc).__name__)
                if self._username and attempt == 1 and any(t in text for t in _BAD_TOKEN):
                    self._authed.discard(index)
                    continue
                raise self._translate(text, index) from exc
        raise AssertionError("unreachable")

    def _translate(self, text: str, index: int) -> DatastoreError:
        where = f"etcd {self.endpoints[index]}"
        if _COMPACTED in text:
            return Compacted(f"{where}: {text}")
        if _LEASE_NOT_FOUND in text:
            return NotFound(f"{where}: {text}")
        if (
            "permission denied" in text
            or "authentication failed" in text
            or any(t in text for t in _BAD_TOKEN)
        ):
            return DatastoreError(f"{where}: {text} (check the etcd username/password or certs)")
        return DatastoreError(f"{where}: {text}")

    def _post(
        self, path: str, payload: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """POST to the first endpoint that answers, translating every client error."""
        failures: builtins.list[str] = []
        count = len(self._clients)
        start = self._active
        for step in range(count):
            index = (start + step) % count
            try:
                result = self._post_one(index, path, payload)
            except etcd_exc.ConnectionFailedError as exc:
                failures.append(f"{self.endpoints[index]}: {exc.detail_text or exc}")
                sent = not isinstance(exc.__context__, requests.exceptions.ConnectionError)
                if sent and not idempotent:
                    raise DatastoreUnavailable(
                        f"etcd {self.endpoints[index]} unavailable: {exc.detail_text or exc}"
                    ) from exc
                continue
            except etcd_exc.ConnectionTimeoutError as exc:
                failures.append(f"{self.endpoints[index]}: timed out ({exc.detail_text or exc})")
                if not idempotent:
                    raise DatastoreUnavailable(
                        f"etcd {self.endpoints[index]} timed out; the write may or may not "
                        f"have been applied: {exc.detail_text or exc}"
                    ) from exc
                continue
            except requests.exceptions.RequestException as exc:
                failures.append(f"{self.endpoints[index]}: {exc}")
                continue
            self._active = index
            return result
        raise DatastoreUnavailable("cannot reach etcd: " + "; ".join(failures))

    def _txn(
        self,
        compare: dict[str, Any],
        success: dict[str, Any],
        failure: dict[str, Any],
    ) -> dict[str, Any]:
        return self._post(
            "/kv/txn",
            {"compare": [compare], "success": [success], "failure": [failure]},
            idempotent=False,
        )

    # --- reads ----------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        """Return the key, or None."""
        result = self._post("/kv/range", {"key": _b64(key.encode())})
        kvs = result.get("kvs")
        return _kv(kvs[0]) if kvs else None

    def list(self, prefix: str, *, page_size: int = 1000) -> ListResult:
        """Read every key under ``prefix`` in pages, all at the revision of the first page."""
        lo, hi = _key_range(prefix)
        for attempt in range(1, _LIST_RETRIES + 1):
            try:
                return self._list_once(lo, hi, max(page_size, 1))
            except Compacted:
                if attempt == _LIST_RETRIES:
                    raise
        raise AssertionError("unreachable")

    def _list_once(self, lo: bytes, hi: bytes, page_size: int) -> ListResult:
        items: builtins.list[KeyValue] = []
        revision = 0
        start = lo
        range_end = _b64(hi)
        while True:
            payload: dict[str, Any] = {
                "key": _b64(start),
                "range_end": range_end,
                "limit": page_size,
            }
            if revision:
                payload["revision"] = revision
            result = self._post("/kv/range", payload)
            if not revision:
                revision = int(result["header"]["revision"])
            kvs = result.get("kvs") or []
            items.extend(map(_kv, kvs))
            if not result.get("more") or not kvs:
                return ListResult(items, revision)
            start = _unb64(kvs[-1]["key"]) + b"\0"

    def current_revision(self) -> int:
        """The cluster's current revision (a linearizable count-only read)."""
        result = self._post("/kv/range", {"key": _b64(b"/calico/"), "count_only": True})
        return int(result["header"]["revision"])

    # --- writes ---------------------------------------------------------------------------

    def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """``If version(key) == 0 Then Put``; AlreadyExists otherwise."""
        k = _b64(key.encode())
        put: dict[str, Any] = {"key": k, "value": _b64(value)}
        if lease:
            put["lease"] = lease
        result = self._txn(
            {"key": k, "result": "EQUAL", "target": "VERSION", "version": 0},
            {"request_put": put},
            {"request_range": {"key": k, "count_only": True}},
        )
        if not result.get("succeeded"):
            raise AlreadyExists(f"key already exists: {key}")
        return int(result["header"]["revision"])

    def _cas_failure(self, key: str, result: dict[str, Any], revision: int, what: str) -> None:
        responses = result.get("responses") or [{}]
        found = (responses[0].get("response_range") or {}).get("kvs")
        if not found:
            raise NotFound(f"key does not exist: {key}")
        raise RevisionConflict(
            f"{what} conflict on {key}: expected revision {revision}, "
            f"found {found[0].get('mod_revision')}"
        )

    def update(self, key: str, value: bytes, *, revision: int, lease: int = 0) -> int:
        """``If mod_revision(key) == revision Then Put Else Get``."""
        k = _b64(key.encode())
        if revision <= 0:  # MOD == 0 would mean "absent" to etcd and turn this into a create
            self._cas_failure(
                key, {"responses": [{"response_range": self._range1(k)}]}, revision, "update"
            )
        put: dict[str, Any] = {"key": k, "value": _b64(value)}
        if lease:
            put["lease"] = lease
        result = self._txn(
            {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": revision},
            {"request_put": put},
            {"request_range": {"key": k}},
        )
        if not result.get("succeeded"):
            self._cas_failure(key, result, revision, "update")
        return int(result["header"]["revision"])

    def _range1(self, k: str) -> dict[str, Any]:
        return self._post("/kv/range", {"key": k})

    def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Unconditional put."""
        payload: dict[str, Any] = {"key": _b64(key.encode()), "value": _b64(value)}
        if lease:
            payload["lease"] = lease
        result = self._post("/kv/put", payload)
        return int(result["header"]["revision"])

    def delete(self, key: str, *, revision: int | None = None) -> int:
        """Delete one key (``If mod_revision == revision`` when given); NotFound if absent."""
        k = _b64(key.encode())
        if revision is None:
            result = self._post("/kv/deleterange", {"key": k}, idempotent=False)
            if int(result.get("deleted", 0)) == 0:
                raise NotFound(f"key does not exist: {key}")
            return int(result["header"]["revision"])
        if revision <= 0:
            self._cas_failure(
                key, {"responses": [{"response_range": self._range1(k)}]}, revision, "delete"
            )
        result = self._txn(
            {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": revision},
            {"request_delete_range": {"key": k}},
            {"request_range": {"key": k}},
        )
        if not result.get("succeeded"):
            self._cas_failure(key, result, revision, "delete")
        return int(result["header"]["revision"])

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` (one revision); return the count."""
        lo, hi = _key_range(prefix)
        result = self._post(
            "/kv/deleterange", {"key": _b64(lo), "range_end": _b64(hi)}, idempotent=False
        )
        return int(result.get("deleted", 0))

    # --- leases ---------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        """Grant a lease (etcd may raise a very small TTL to its minimum)."""
        result = self._post("/lease/grant", {"TTL": ttl, "ID": 0}, idempotent=False)
        if result.get("error"):
            raise DatastoreError(f"etcd refused a lease of {ttl}s: {result['error']}")
        return int(result["ID"])

    def refresh_lease(self, lease: int) -> None:
        """One keep-alive; NotFound when the lease has expired or was revoked."""
        result = self._post("/lease/keepalive", {"ID": lease})
        if "error" in result:
            raise self._translate(_error_text(json.dumps(result), "keepalive failed"), self._active)
        if int((result.get("result") or {}).get("TTL", 0)) <= 0:
            raise NotFound(f"lease {lease} not found (expired or revoked)")

    def revoke_lease(self, lease: int) -> None:
        """Revoke the lease; its keys are deleted."""
        self._post("/kv/lease/revoke", {"ID": lease}, idempotent=False)

    # --- history and watches --------------------------------------------------------------

    def lease_ttl(self, lease: int) -> int:
        """``LeaseTimeToLive``; NotFound when etcd no longer has the lease (TTL -1 or absent)."""
        result = self._post("/kv/lease/timetolive", {"ID": lease})
        ttl = int(result.get("TTL", -1))
        if ttl <= 0:  # etcd answers TTL -1 (or leaves TTL out) for an expired lease
            raise NotFound(f"lease {lease} not found (expired or revoked)")
        return ttl

    def compact(self, revision: int) -> bool:
        """Compact etcd's history up to ``revision``; False if already compacted that far."""
        try:
            self._post("/kv/compaction", {"revision": revision, "physical": False})
        except Compacted:
            return False
        except DatastoreError as exc:
            if _FUTURE_REV in str(exc):
                raise DatastoreError(f"cannot compact to revision {revision}: {exc}") from exc
            raise
        return True

    def watch(self, prefix: str, *, start_revision: int) -> EtcdWatch:
        """Start a watch on ``prefix`` from ``start_revision`` (0: from now)."""
        if start_revision <= 0:
            start_revision = self.current_revision() + 1
        watch = EtcdWatch(self, prefix, start_revision)
        with self._watches_lock:
            self._watches = [w for w in self._watches if not w.closed] + [watch]
        return watch

    def _watch_session(self, index: int) -> requests.Session:
        """A fresh session for one watch stream, configured like the endpoint's client."""
        if self._username and index not in self._authed:
            self._authenticate(index)
        base = self._clients[index].session
        session = requests.Session()
        session.verify = base.verify
        session.cert = base.cert
        session.trust_env = base.trust_env
        token = base.headers.get("Authorization")
        if token:
            session.headers["Authorization"] = token
        return session

    def close(self) -> None:
        """Close every watch and HTTP session."""
        with self._watches_lock:
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.close()
        for client in self._clients:
            client.session.close()

    def __enter__(self) -> EtcdDatastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdDatastore({','.join(self.endpoints)!r})"


_CLOSED = object()


class _StreamError(Exception):
    """Internal: the stream broke in a way worth retrying (possibly on another endpoint)."""


class EtcdWatch:
    """One etcd watch stream, read by a daemon thread into a queue of batches.

    The thread keeps the position (next revision wanted) and, when the connection drops,
    reconnects from there, trying each endpoint; it gives up with DatastoreUnavailable after
    ``max_failures`` consecutive failed attempts. Compaction and cancellation end the watch with
    Compacted / DatastoreError, raised from :meth:`next_batch`. :meth:`close` shuts the socket
    down so the thread wakes at once.
    """

    max_failures = 6

    def __init__(self, store: EtcdDatastore, prefix: str, start_revision: int) -> None:
        self._store = store
        self.prefix = prefix
        lo, hi = _key_range(prefix)
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
        self._thread = threading.Thread(
            target=self._run, name=f"regionmesh-etcd-watch {prefix}", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the watch ended."""
        return self._closed.is_set() or self._done

    # --- reader thread --------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        index = self._store._active
        count = len(self._store._clients)
        last_problem = ""
        while not self._closed.is_set():
            try:
                progressed = self._stream(index)
                if progressed:
                    failures = 0
                last_problem = "the stream ended"
            except (Compacted, DatastoreError) as exc:
                if not self._closed.is_set():
                    self._queue.put(exc)
                return
            except (
                _StreamError,
                requests.exceptions.RequestException,
                etcd_exc.Etcd3Exception,
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
            index = (index + 1) % count
            self._closed.wait(min(0.2 * failures, 1.0))
        self._queue.put(_CLOSED)

    def _stream(self, index: int) -> bool:
        """Run one stream until it ends; return whether any response arrived."""
        store = self._store
        client = store._clients[index]
        session = store._watch_session(index)
        body: dict[str, Any] = {
            "create_request": {**self._create, "start_revision": self._next_revision}
        }
        progressed = False
        try:
            resp = session.post(
                client.get_url("/watch"),
                json=body,
                stream=True,
                timeout=(WATCH_CONNECT_TIMEOUT, None),
            )
            with self._resp_lock:
                self._resp = resp
            if self._closed.is_set():
                return progressed
            if resp.status_code != 200:
                text = _error_text(resp.text, resp.reason)
                if any(t in text for t in _BAD_TOKEN):
                    store._authed.discard(index)
                    raise _StreamError(text)
                if resp.status_code >= 500:
                    raise _StreamError(f"HTTP {resp.status_code}: {text}")
                raise store._translate(text, index)
            buf = b""
            for chunk in resp.iter_content(chunk_size=None):
                buf += chunk
                while (nl := buf.find(b"\n")) >= 0:
                    line, buf = buf[:nl], buf[nl + 1 :]
                    if line.strip():
                        progressed = True
                        self._handle(json.loads(line), index)
            return progressed
        finally:
            with self._resp_lock:
                resp_done, self._resp = self._resp, None
            if resp_done is not None:
                resp_done.close()
            session.close()

    def _handle(self, message: dict[str, Any], index: int) -> None:
        if "error" in message:
            text = _error_text(json.dumps(message), "watch error")
            if any(t in text for t in _BAD_TOKEN):
                self._store._authed.discard(index)
                raise _StreamError(text)
            raise self._store._translate(text, index)
        result = message.get("result") or {}
        compact_revision = int(result.get("compact_revision", 0))
        if compact_revision:
            raise Compacted(
                f"etcd watch on {self.prefix!r} from revision {self._next_revision}: "
                f"compacted up to revision {compact_revision}",
                compact_revision,
            )
        if result.get("canceled"):
            raise DatastoreError(
                f"etcd cancelled the watch on {self.prefix!r}: {result.get('cancel_reason', '')}"
            )
        events = result.get("events")
        if events:
            batch = [_event(e) for e in events]
            self._next_revision = batch[-1].mod_revision + 1
            self._queue.put(batch)
        elif not result.get("created"):
            header_revision = int((result.get("header") or {}).get("revision", 0))
            self._next_revision = max(self._next_revision, header_revision + 1)

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
