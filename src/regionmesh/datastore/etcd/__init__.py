"""The etcd v3 datastore, through etcd3gw (etcd's gRPC JSON gateway, OpenStack's own client).

This is the only package that imports etcd3gw (in :mod:`.store`); :mod:`.wire` holds the
gateway's wire format, :mod:`.store` the requests, :mod:`.watch` the streams. It maps the
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

Choosing endpoints and credentials is :mod:`regionmesh.datastore.selection`'s job; encoding
resources is ``resources.py``'s.
"""

from regionmesh.datastore.etcd.store import EtcdDatastore
from regionmesh.datastore.etcd.watch import EtcdWatch
from regionmesh.datastore.etcd.wire import DEFAULT_TIMEOUT, MAX_TXN_OPS

__all__ = ["DEFAULT_TIMEOUT", "MAX_TXN_OPS", "EtcdDatastore", "EtcdWatch"]
