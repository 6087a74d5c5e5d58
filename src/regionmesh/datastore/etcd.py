"""The etcd v3 datastore, through etcd3gw (etcd's gRPC JSON gateway, OpenStack's own client).

This is the only module that imports etcd3gw. It maps the
:class:`~regionmesh.datastore.api.Datastore` contract onto etcd requests exactly as Calico does
(policy-model.md §4.3): create is the transaction ``version(key) == 0 → put``; CAS update and
delete compare ``mod_revision(key)``; a list is a series of range reads pinned to the revision of
the first page (``limit`` + ``range_end``, next page from the last key + ``"\\0"``); a watch is a
streaming ``POST /v3/watch`` with ``start_revision`` and ``prev_kv`` read by a background thread,
which reports compaction as :class:`~regionmesh.errors.Compacted`. :meth:`EtcdDatastore.create_many`
creates many keys in transactions of at most ``max_txn_ops`` create-only puts.

Several endpoints (cluster members) are tried in turn, starting with the last one that answered;
an endpoint that fails is passed over for the next request. Each request has its own deadline
(``timeout``, 4 s by default: shorter than etcd's own 7 s proposal timeout, so a client moves on
from a member that lost its leader before the member gives up).

Faults, as measured on a real 3-member cluster (tests/faults/):

* A request that could not be sent (connection refused, connect timeout) is retried on the next
  endpoint. A *read* that got no answer is retried on the next endpoint too.
* A *write* that was sent but got no answer (read timeout, dropped connection, HTTP 5xx such as
  ``etcdserver: request timed out``) has an unknown outcome. The write methods then re-read the
  key (on any endpoint) before doing anything else: if the re-read shows the write applied they
  return its revision, otherwise they retry the same conditional write, whose compare
  (``version == 0`` / ``mod_revision == r``) makes a double apply impossible. Only if the
  outcome cannot be settled within about three timeouts do they raise
  :class:`~regionmesh.errors.OutcomeUnknown`.
* Watch liveness: through the gateway, a watch on a frozen or partitioned member stalls silently
  with its stream open (etcd's progress notifications come every 10 minutes). A monitor thread
  per watch therefore sends a round-trip probe (a linearizable point read, which needs the member
  alive *and* in touch with a quorum) to the watch's member after ``watch_idle_timeout`` seconds
  without a message; if the probe does not answer within ``timeout`` the stream is shut down and
  the watch resumes on the next member from its last revision + 1 (nothing lost, nothing
  repeated; invisible to the consumer). The stream socket also has TCP keepalive.
* ``database space exceeded`` (the NOSPACE alarm) becomes :class:`~regionmesh.errors.QuotaExceeded`
  naming the alarm and the remedy; the refused write had no effect.

TLS uses the CA / client certificate files; with a username the client gets a token from
``/v3/auth/authenticate`` and sends it in the ``Authorization`` header (etcd3gw has no auth
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
import time
from binascii import a2b_base64
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import etcd3gw
import requests
from urllib3.exceptions import NewConnectionError

from regionmesh.datastore.api import EventType, KeyValue, ListResult, WatchEvent
from regionmesh.datastore.keys import prefix_range_end
from regionmesh.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Compacted,
    DatastoreError,
    DatastoreUnavailable,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    QuotaExceeded,
    RevisionConflict,
)

T = TypeVar("T")

DEFAULT_TIMEOUT = 4.0
"""Seconds one request may take on one endpoint before the client moves on."""
CONNECT_TIMEOUT = 2.0
WATCH_CONNECT_TIMEOUT = 5.0
WATCH_IDLE_TIMEOUT = 2.0
"""Seconds without a message on a watch stream before its member is probed."""
MAX_TXN_OPS = 128
"""etcd's default ``--max-txn-ops``: operations per transaction branch."""
MAX_TXN_BYTES = 1 << 20
"""Payload bytes per batched transaction (etcd's default ``--max-request-bytes`` is 1.5 MiB)."""
_LIST_RETRIES = 3
_RESOLVE_TIMEOUTS = 3.0
"""An unknown write outcome is settled within this many ``timeout`` periods, else raised."""

_COMPACTED = "required revision has been compacted"
_FUTURE_REV = "required revision is a future revision"
_LEASE_NOT_FOUND = "requested lease not found"
_NOSPACE = "database space exceeded"
_BAD_TOKEN = ("invalid auth token", "user name is empty")
_AUTH_NOT_ENABLED = "authentication is not enabled"


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


def _key_text(value: str | None) -> str:
    return "" if not value else _unb64(value).decode(errors="replace")


def _range_text(key: str | None, range_end: str | None) -> str:
    """``KEY``, ``prefix KEY`` or ``range [KEY, END)`` for a gateway key / range_end pair."""
    lo, hi = _key_text(key), _key_text(range_end)
    if not range_end:
        return lo
    if hi == "\0":
        return f"range [{lo}, end of keyspace)"
    if prefix_range_end(lo.encode()) == hi.encode():
        return f"prefix {lo}"
    return f"range [{lo}, {hi})"


def _describe(path: str, payload: dict[str, Any]) -> tuple[str, str]:
    """``(operation, key or range)`` of one gateway request, for permission messages."""
    if path == "/kv/range":
        return "read", _range_text(payload.get("key"), payload.get("range_end"))
    if path == "/kv/put":
        return "write", _range_text(payload.get("key"), None)
    if path == "/kv/deleterange":
        return "delete", _range_text(payload.get("key"), payload.get("range_end"))
    if path == "/kv/txn":
        names: builtins.list[str] = []
        ops: builtins.list[str] = []
        for cmp in payload.get("compare") or []:
            names.append(_range_text(cmp.get("key"), cmp.get("range_end")))
            ops.append("read")
        for req in [*(payload.get("success") or []), *(payload.get("failure") or [])]:
            for kind, body in req.items():
                op = {"request_put": "write", "request_delete_range": "delete"}.get(kind, "read")
                names.append(_range_text(body.get("key"), body.get("range_end")))
                ops.append(op)
        unique = list(dict.fromkeys(names))
        verb = "write" if {"write", "delete"} & set(ops) else "read"
        return verb, ", ".join(unique)
    if path == "/kv/compaction":
        return "compact", "the keyspace"
    if path.startswith(("/lease/", "/kv/lease/")):
        return "use leases", ""
    if path.startswith("/auth/"):
        return f"call {path} (needs the root role)", ""
    return f"call {path}", ""


class _Failed(Exception):
    """Internal: one endpoint did not answer. ``sent``: the request may have reached etcd."""

    def __init__(self, text: str, *, sent: bool) -> None:
        super().__init__(text)
        self.text = text
        self.sent = sent


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never established (nothing was sent)."""
    seen: set[int] = set()
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            item = reason
            continue
        args = getattr(item, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        item = nested or item.__context__
    return False


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
        watch_idle_timeout: float = WATCH_IDLE_TIMEOUT,
        max_txn_ops: int = MAX_TXN_OPS,
    ) -> None:
        if not endpoints:
            raise DatastoreError("no etcd endpoints given")
        if timeout <= 0 or watch_idle_timeout <= 0 or max_txn_ops < 1:
            raise DatastoreError(
                f"invalid etcd client settings: timeout={timeout}, "
                f"watch_idle_timeout={watch_idle_timeout}, max_txn_ops={max_txn_ops}"
            )
        self.endpoints = list(endpoints)
        self._username = username or None
        self._password = password or ""
        self.timeout = timeout
        self.watch_idle_timeout = watch_idle_timeout
        self.max_txn_ops = max_txn_ops
        self._clients: builtins.list[etcd3gw.Etcd3Client] = []
        self._urls: builtins.list[str] = []
        for endpoint in self.endpoints:
            scheme, host, port = _endpoint_parts(endpoint)
            client = etcd3gw.Etcd3Client(
                host=host,
                port=port,
                protocol=scheme,
                timeout=timeout,
                session=_session(ca_cert_file, cert_file, key_file),
            )
            self._clients.append(client)
            self._urls.append(client.base_url + "/v3")
        self._active = 0
        self._authed: set[int] = set()
        self._auth_lock = threading.Lock()
        self._watches: builtins.list[EtcdWatch] = []
        self._watches_lock = threading.Lock()
        self.unknown_outcomes = 0
        """How many writes had an unknown outcome that a re-read then settled (for tests)."""

    # --- transport ------------------------------------------------------------------------

    def _raw_post(
        self, index: int, path: str, payload: dict[str, Any], timeout: float
    ) -> requests.Response:
        session = self._clients[index].session
        try:
            return session.post(
                self._urls[index] + path,
                json=payload,
                timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise _Failed(f"connect timed out ({exc})", sent=False) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise _Failed(f"no answer within {timeout:g}s", sent=True) from exc
        except requests.exceptions.ConnectionError as exc:
            raise _Failed(str(exc), sent=not _refused(exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise _Failed(str(exc), sent=True) from exc

    def _authenticate(self, index: int) -> None:
        session = self._clients[index].session
        with self._auth_lock:
            session.headers.pop("Authorization", None)
            resp = self._raw_post(
                index,
                "/auth/authenticate",
                {"name": self._username, "password": self._password},
                self.timeout,
            )
            if resp.status_code != 200:
                text = _error_text(resp.text, resp.reason)
                if resp.status_code >= 500:
                    raise _Failed(text, sent=False)
                if _AUTH_NOT_ENABLED in text:
                    # auth is off: requests go without a token (etcd ignores none)
                    self._authed.add(index)
                    return
                raise AuthenticationFailed(
                    f"etcd {self.endpoints[index]}: authentication as user {self._username!r} "
                    f"failed: {text}"
                )
            session.headers["Authorization"] = str(resp.json()["token"])
            self._authed.add(index)

    def _post_one(
        self, index: int, path: str, payload: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        wait = self.timeout if timeout is None else timeout
        for attempt in (1, 2):
            if self._username and index not in self._authed:
                self._authenticate(index)
            resp = self._raw_post(index, path, payload, wait)
            if resp.status_code == 200:
                result: dict[str, Any] = resp.json()
                return result
            text = _error_text(resp.text, resp.reason)
            if self._username and attempt == 1 and any(t in text for t in _BAD_TOKEN):
                self._authed.discard(index)
                continue
            if resp.status_code >= 500 and _NOSPACE not in text:
                # e.g. 503 "etcdserver: request timed out" / "leader changed": the proposal
                # may still commit, so for a write this is an unknown outcome.
                raise _Failed(f"HTTP {resp.status_code}: {text}", sent=True)
            raise self._translate(text, index, _describe(path, payload))
        raise AssertionError("unreachable")

    @property
    def username(self) -> str | None:
        """The etcd user this client authenticates as (None: no authentication)."""
        return self._username

    @property
    def password(self) -> str:
        """The password it authenticates with (for ``etcd-auth apply`` creating root)."""
        return self._password

    def _translate(self, text: str, index: int, what: tuple[str, str] = ("", "")) -> DatastoreError:
        where = f"etcd {self.endpoints[index]}"
        operation, key = what
        if _COMPACTED in text:
            return Compacted(f"{where}: {text}")
        if _LEASE_NOT_FOUND in text:
            return NotFound(f"{where}: {text}")
        if _NOSPACE in text:
            return QuotaExceeded(
                f"{where}: {text}: etcd raised its NOSPACE alarm and accepts only reads and "
                "deletes; this request was refused (nothing of it was written). Remedy: compact the history "
                "(etcdctl compact <revision>), defragment every member (etcdctl defrag "
                "--cluster), then disarm the alarm (etcdctl alarm disarm); or raise "
                "--quota-backend-bytes"
            )
        if "permission denied" in text:
            who = f"user {self._username!r}" if self._username else "an unauthenticated client"
            target = f"{operation} {key}" if key else (operation or "do this")
            return PermissionDenied(
                f"{where}: permission denied: {who} may not {target} (its etcd roles do not "
                "grant it; see 'regionmesh etcd-auth plan')",
                key=key,
                user=self._username,
                operation=operation,
            )
        if any(t in text for t in _BAD_TOKEN) or "authentication failed" in text:
            if not self._username:
                return AuthenticationFailed(
                    f"{where}: etcd authentication is enabled but no etcd username is configured "
                    f"({text}); set the user and password (datastore URL, ETCD_USERNAME/"
                    "ETCD_PASSWORD, [calico] etcd_username/etcd_password)"
                )
            if "CommonName" in text:
                return AuthenticationFailed(
                    f"{where}: {text} (use a client certificate without CN)"
                )
            return AuthenticationFailed(
                f"{where}: authentication as user {self._username!r} failed: {text}"
            )
        if "CommonName" in text:
            return AuthenticationFailed(
                f"{where}: {text} (etcd's JSON gateway refuses client certificates with a CN "
                "when auth is on; use a certificate without CN and a username/password)"
            )
        return DatastoreError(f"{where}: {text}")

    def request(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One raw gateway call (``/auth/...``, ``/maintenance/...``), with failover and the
        same error translation as every other request; for :mod:`etcd_roles` and doctor."""
        return self._post(path, payload, idempotent=not path.startswith("/auth/"))

    def _post(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """POST to the first endpoint that answers, translating every client error.

        A request that may have reached etcd is retried elsewhere only when ``idempotent``;
        otherwise :class:`OutcomeUnknown` is raised at once (the write methods settle it).
        """
        failures: builtins.list[str] = []
        count = len(self._clients)
        start = self._active
        for step in range(count):
            index = (start + step) % count
            try:
                result = self._post_one(index, path, payload, timeout)
            except _Failed as exc:
                failures.append(f"{self.endpoints[index]}: {exc.text}")
                if self._active == index:
                    self._active = (index + 1) % count  # pass over it next time
                if exc.sent and not idempotent:
                    raise OutcomeUnknown(
                        f"etcd {self.endpoints[index]}: {exc.text}; the write may or may not "
                        "have been applied"
                    ) from exc
                continue
            self._active = index
            return result
        raise DatastoreUnavailable(
            f"cannot reach etcd at any of {', '.join(self.endpoints)}: " + "; ".join(failures)
        )

    def _settle(
        self,
        what: str,
        attempt: Callable[[], T],
        applied: Callable[[], T | None],
    ) -> T:
        """Run a write; on an unknown outcome re-read (``applied``) before retrying.

        ``applied`` re-reads and returns the write's result if it took effect, else None. The
        retry repeats the same conditional write, so it cannot apply twice.
        """
        deadline = time.monotonic() + _RESOLVE_TIMEOUTS * self.timeout
        while True:
            try:
                return attempt()
            except OutcomeUnknown as exc:
                first: OutcomeUnknown = exc
            while True:
                try:
                    done = applied()
                    break
                except DatastoreUnavailable as exc:
                    if time.monotonic() >= deadline:
                        raise OutcomeUnknown(
                            f"{what}: {first}; re-reading to settle the outcome failed: {exc}"
                        ) from exc
                    time.sleep(0.1)
            if done is not None:
                self.unknown_outcomes += 1
                return done
            self.unknown_outcomes += 1
            if time.monotonic() >= deadline:
                raise OutcomeUnknown(f"{what}: {first}; not applied, and the retries timed out")

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
        try:
            result = self._post("/kv/range", {"key": _b64(b"/calico/"), "count_only": True})
        except PermissionDenied:
            # a restricted user may not read /calico/; any user may ask for the status, whose
            # header carries the member's revision (not linearizable, but a watch from there
            # still sees every later change)
            result = self._post("/maintenance/status", {})
        return int(result["header"]["revision"])

    # --- writes ---------------------------------------------------------------------------

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

    def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """``If version(key) == 0 Then Put``; AlreadyExists otherwise."""
        k = _b64(key.encode())
        put: dict[str, Any] = {"key": k, "value": _b64(value)}
        if lease:
            put["lease"] = lease

        def attempt() -> int:
            result = self._txn(
                {"key": k, "result": "EQUAL", "target": "VERSION", "version": 0},
                {"request_put": put},
                {"request_range": {"key": k, "count_only": True}},
            )
            if not result.get("succeeded"):
                raise AlreadyExists(f"key already exists: {key}")
            return int(result["header"]["revision"])

        def applied() -> int | None:
            kv = self.get(key)
            if kv is not None and kv.value == value and kv.lease == lease:
                return kv.mod_revision
            return None

        return self._settle(f"create {key}", attempt, applied)

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> builtins.list[int | None]:
        """Create many keys, each only if absent; per item its revision, or None if it existed.

        Items go in transactions of at most ``max_txn_ops`` puts (and ~1 MiB), each guarded by
        ``version(key) == 0`` for every key in it: etcd applies a batch whole or not at all. A
        batch whose compare fails is narrowed to the absent keys (the failure branch reads
        which exist) and tried once more; if that fails too, its keys are created one by one.
        Not atomic across batches. A key given twice is created once (the second is None).
        """
        results: builtins.list[int | None] = [None] * len(items)
        seen: set[str] = set()
        batch: builtins.list[int] = []
        size = 0
        for i, (key, value) in enumerate(items):
            if key in seen:
                continue
            seen.add(key)
            cost = len(key) + len(value) * 4 // 3 + 64
            if batch and (len(batch) >= self.max_txn_ops or size + cost > MAX_TXN_BYTES):
                self._create_batch(items, batch, results)
                batch, size = [], 0
            batch.append(i)
            size += cost
        if batch:
            self._create_batch(items, batch, results)
        return results

    def _create_batch(
        self,
        items: Sequence[tuple[str, bytes]],
        batch: builtins.list[int],
        results: builtins.list[int | None],
    ) -> None:
        for _round in (1, 2, 3):
            if not batch:
                return
            enc = [(_b64(items[i][0].encode()), _b64(items[i][1])) for i in batch]
            payload = {
                "compare": [
                    {"key": k, "result": "EQUAL", "target": "VERSION", "version": 0} for k, _ in enc
                ],
                "success": [{"request_put": {"key": k, "value": v}} for k, v in enc],
                "failure": [{"request_range": {"key": k, "keys_only": True}} for k, _ in enc],
            }
            try:
                result = self._post("/kv/txn", payload, idempotent=False)
            except OutcomeUnknown as exc:
                # re-read before retrying: keep what the lost transaction did write
                self.unknown_outcomes += 1
                found = self._read_many([k for k, _ in enc], exc)
                batch_next = []
                for i, kv in zip(batch, found, strict=True):
                    if kv is None:
                        batch_next.append(i)
                    elif kv.value == items[i][1]:
                        results[i] = kv.mod_revision
                batch = batch_next
                continue
            if result.get("succeeded"):
                revision = int(result["header"]["revision"])
                for i in batch:
                    results[i] = revision
                return
            responses = result.get("responses") or []
            absent = [
                i
                for i, resp in zip(batch, responses, strict=False)
                if not (resp.get("response_range") or {}).get("kvs")
            ]
            batch = absent
        for i in batch:
            key, value = items[i]
            try:
                results[i] = self.create(key, value)
            except AlreadyExists:
                results[i] = None

    def _read_many(
        self, encoded_keys: builtins.list[str], cause: OutcomeUnknown
    ) -> builtins.list[KeyValue | None]:
        """Read several keys at one revision (a read-only transaction), retrying for a while."""
        payload = {"success": [{"request_range": {"key": k}} for k in encoded_keys]}
        deadline = time.monotonic() + _RESOLVE_TIMEOUTS * self.timeout
        while True:
            try:
                result = self._post("/kv/txn", payload)
                break
            except DatastoreUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise OutcomeUnknown(
                        f"{cause}; re-reading the batch to settle the outcome failed: {exc}"
                    ) from exc
                time.sleep(0.1)
        out: builtins.list[KeyValue | None] = []
        for resp in result.get("responses") or []:
            kvs = (resp.get("response_range") or {}).get("kvs")
            out.append(_kv(kvs[0]) if kvs else None)
        return out

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

        def attempt() -> int:
            result = self._txn(
                {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": revision},
                {"request_put": put},
                {"request_range": {"key": k}},
            )
            if not result.get("succeeded"):
                self._cas_failure(key, result, revision, "update")
            return int(result["header"]["revision"])

        def applied() -> int | None:
            kv = self.get(key)
            if kv is not None and kv.mod_revision > revision and kv.value == value:
                return kv.mod_revision
            return None

        return self._settle(f"update {key}", attempt, applied)

    def _range1(self, k: str) -> dict[str, Any]:
        return self._post("/kv/range", {"key": k})

    def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Unconditional put (after an unknown outcome: re-read, put again only if not there)."""
        payload: dict[str, Any] = {"key": _b64(key.encode()), "value": _b64(value)}
        if lease:
            payload["lease"] = lease

        def attempt() -> int:
            result = self._post("/kv/put", payload, idempotent=False)
            return int(result["header"]["revision"])

        def applied() -> int | None:
            kv = self.get(key)
            if kv is not None and kv.value == value and kv.lease == lease:
                return kv.mod_revision
            return None

        return self._settle(f"put {key}", attempt, applied)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        """Delete one key (``If mod_revision == revision`` when given); NotFound if absent."""
        k = _b64(key.encode())
        if revision is not None and revision <= 0:
            self._cas_failure(
                key, {"responses": [{"response_range": self._range1(k)}]}, revision, "delete"
            )

        def attempt() -> int:
            if revision is None:
                result = self._post("/kv/deleterange", {"key": k}, idempotent=False)
                if int(result.get("deleted", 0)) == 0:
                    raise NotFound(f"key does not exist: {key}")
                return int(result["header"]["revision"])
            result = self._txn(
                {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": revision},
                {"request_delete_range": {"key": k}},
                {"request_range": {"key": k}},
            )
            if not result.get("succeeded"):
                self._cas_failure(key, result, revision, "delete")
            return int(result["header"]["revision"])

        def applied() -> int | None:
            result = self._post("/kv/range", {"key": k})
            if result.get("kvs"):
                return None
            return int(result["header"]["revision"])

        return self._settle(f"delete {key}", attempt, applied)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` (one revision); return the count.

        After an unknown outcome the delete is repeated (harmless); the count is then only
        what the repeat deleted.
        """
        lo, hi = _key_range(prefix)
        payload = {"key": _b64(lo), "range_end": _b64(hi)}

        def attempt() -> int:
            return int(self._post("/kv/deleterange", payload, idempotent=False).get("deleted", 0))

        return self._settle(f"delete prefix {prefix}", attempt, lambda: None)

    # --- leases ---------------------------------------------------------------------------

    def grant_lease(self, ttl: int) -> int:
        """Grant a lease (etcd may raise a very small TTL to its minimum).

        A grant with an unknown outcome is simply repeated: an orphan lease holds no keys and
        expires after ``ttl``.
        """

        def attempt() -> int:
            result = self._post("/lease/grant", {"TTL": ttl, "ID": 0}, idempotent=False)
            if result.get("error"):
                raise DatastoreError(f"etcd refused a lease of {ttl}s: {result['error']}")
            return int(result["ID"])

        return self._settle(f"grant a {ttl}s lease", attempt, lambda: None)

    def refresh_lease(self, lease: int) -> None:
        """One keep-alive; NotFound when the lease has expired or was revoked."""
        result = self._post("/lease/keepalive", {"ID": lease})
        if "error" in result:
            raise self._translate(_error_text(json.dumps(result), "keepalive failed"), self._active)
        if int((result.get("result") or {}).get("TTL", 0)) <= 0:
            raise NotFound(f"lease {lease} not found (expired or revoked)")

    def revoke_lease(self, lease: int) -> None:
        """Revoke the lease; its keys are deleted (NotFound after an unknown outcome: done)."""
        retried = False

        def attempt() -> None:
            try:
                self._post("/kv/lease/revoke", {"ID": lease}, idempotent=False)
            except NotFound:
                if not retried:
                    raise

        def applied() -> None:
            nonlocal retried
            retried = True

        self._settle(f"revoke lease {lease}", attempt, applied)

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

    def _probe(self, index: int, key: bytes) -> str | None:
        """A linearizable point read on one member; None if it answered, else the problem."""
        try:
            self._post_one(index, "/kv/range", {"key": _b64(key), "keys_only": True})
        except _Failed as exc:
            return exc.text
        except DatastoreError as exc:
            return str(exc)
        return None

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
