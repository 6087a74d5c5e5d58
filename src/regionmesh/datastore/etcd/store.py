"""EtcdDatastore: the Datastore contract over etcd's JSON gateway (requests, failover, auth).

One class, kept whole on purpose (over 500 lines): every contract method is one gateway
request plus the fault handling that request needs (which member to try next, whether an
unanswered write must be re-read before a retry, how a refusal is named), and those rules are
only readable next to the requests they govern. The wire format is :mod:`.wire`'s; watches
are :mod:`.watch`'s; the mapping and the measured fault behaviour are in the package docstring.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import etcd3gw
import requests

from regionmesh.datastore.api import KeyValue, ListResult
from regionmesh.datastore.etcd.watch import EtcdWatch
from regionmesh.datastore.etcd.wire import (
    _AUTH_NOT_ENABLED,
    _BAD_TOKEN,
    _COMPACTED,
    _FUTURE_REV,
    _LEASE_NOT_FOUND,
    _LIST_RETRIES,
    _NOSPACE,
    _RESOLVE_TIMEOUTS,
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    WATCH_IDLE_TIMEOUT,
    T,
    _b64,
    _describe,
    _endpoint_parts,
    _error_text,
    _Failed,
    _key_range,
    _kv,
    _refused,
    _session,
    _unb64,
)
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

    def _holding(self, key: str, value: bytes, lease: int) -> int | None:
        """The key's mod revision if it holds ``value`` on ``lease`` (a create or put whose
        outcome was unknown took effect), else None."""
        kv = self.get(key)
        if kv is not None and kv.value == value and kv.lease == lease:
            return kv.mod_revision
        return None

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

        return self._settle(f"create {key}", attempt, lambda: self._holding(key, value, lease))

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

        return self._settle(f"put {key}", attempt, lambda: self._holding(key, value, lease))

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
