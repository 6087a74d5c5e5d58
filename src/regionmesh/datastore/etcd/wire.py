"""The etcd v3 JSON gateway's wire format: base64 keys, key ranges, error texts, timeouts.

Shared by :mod:`.store` (requests) and :mod:`.watch` (streams); sends nothing itself except
:func:`_session`, which builds the ``requests`` session a member is reached with.
"""

from __future__ import annotations

import base64
import builtins
import json
from binascii import a2b_base64
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from regionmesh.datastore.api import KeyValue
from regionmesh.datastore.keys import prefix_range_end
from regionmesh.errors import (
    DatastoreError,
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
