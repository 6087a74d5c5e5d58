"""What etcd authentication costs per request: the same operations with and without auth.

Run: ``python bench/bench_etcd_auth.py [--creates N] [--list-keys N] [--repeats R]``

Two etcd servers are started side by side in the same run (data on /dev/shm, plain HTTP, so
only the auth work differs): one without authentication, one set up by
``etcd_roles.apply_plan`` for regions one and two with auth on. The client of the second is
region one's Neutron user (``neutron-region-one``: a token from ``/v3/auth/authenticate``
in every request, and etcd's permission check of each key or range against its role). Then:

* N creates (``EtcdDatastore.create``, a ``version == 0`` txn) of WorkloadEndpoint-sized
  values into ``…/workloadendpoints/openstack-region-one/``, interleaved in chunks of 500 so
  machine noise hits both sides alike;
* a list of M keys of that prefix (``EtcdDatastore.list``, 10 000-key pages at one revision),
  best of R alternating runs (the keys are bulk-written by root / the anonymous client).

With ``--tls`` a third server adds TLS with client certificates on top of auth, for reference.
Prints a markdown table with ops/s and the ratio auth / no auth.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable

from regionmesh.datastore import keys
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.datastore.etcd_roles import apply_plan, build_plan
from regionmesh.testing.etcd_server import EtcdServer, running_etcd

PREFIX = keys.resource_prefix("workloadendpoints", "openstack-region-one")
VALUE = (
    b'{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","spec":' + b"x" * 600 + b"}"
)
CHUNK = 500
ROOT_PW = "bench-root"
USER_PW = "bench-neutron"
ROWS: list[tuple[str, float, float, str]] = []


def setup_auth(server: EtcdServer) -> EtcdDatastore:
    """Apply the plan (root created, auth enabled); return region one's Neutron client."""
    with EtcdDatastore([server.endpoint], ca_cert_file=server.ca_cert_file,
                       cert_file=server.cert_file, key_file=server.key_file,
                       username="root", password=ROOT_PW) as root:  # fmt: skip
        apply_plan(
            root,
            build_plan(["one", "two"]),
            passwords={"neutron-region-one": USER_PW},
            root_password=ROOT_PW,
        )
    return server.open_as("neutron-region-one", USER_PW)


def bulk_fill(store: EtcdDatastore, count: int) -> None:
    """Write ``count`` keys with 128-put txns."""
    value = base64.b64encode(VALUE).decode()
    for start in range(0, count, 128):
        ops = [
            {"request_put": {"key": base64.b64encode(f"{PREFIX}l{i:07d}".encode()).decode(),
                             "value": value}}
            for i in range(start, min(start + 128, count))
        ]  # fmt: skip
        store.request("/kv/txn", {"compare": [], "success": ops, "failure": []})


def interleaved_creates(
    count: int, base: Callable[[int], object], other: Callable[[int], object]
) -> tuple[float, float]:
    base_s = other_s = 0.0
    for start in range(0, count, CHUNK):
        stop = min(start + CHUNK, count)
        t0 = time.perf_counter()
        for i in range(start, stop):
            base(i)
        t1 = time.perf_counter()
        for i in range(start, stop):
            other(i)
        t2 = time.perf_counter()
        base_s += t1 - t0
        other_s += t2 - t1
    return base_s, other_s


def best_of(
    repeats: int, expected: int, base: Callable[[], int], other: Callable[[], int]
) -> tuple[float, float]:
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for side, fn in enumerate((base, other)):
            t0 = time.perf_counter()
            got = fn()
            best[side] = min(best[side], time.perf_counter() - t0)
            assert got == expected, (got, expected)
    return best[0], best[1]


def record(op: str, count: int, seconds: tuple[float, float], what: str) -> None:
    base, other = count / seconds[0], count / seconds[1]
    ROWS.append((op, base, other, what))
    print(f"  {op}: no auth {base:,.0f}/s, {what} {other:,.0f}/s", flush=True)


def run(creates: int, list_keys: int, repeats: int, tls: bool) -> None:
    with running_etcd() as plain, running_etcd() as authed:
        base = plain.open()
        user = setup_auth(authed)
        with authed.open_as("root", ROOT_PW) as root:
            for store in (base, user):  # warm up: connections, first token
                store.put(PREFIX + "warm", b"x")
            record(
                f"create ×{creates}",
                creates,
                interleaved_creates(
                    creates,
                    lambda i: base.create(f"{PREFIX}c{i:07d}", VALUE),
                    lambda i: user.create(f"{PREFIX}c{i:07d}", VALUE),
                ),
                "auth (neutron-region-one)",
            )
            bulk_fill(base, list_keys)
            bulk_fill(root, list_keys)
            expected = list_keys + creates + 1
            record(
                f"list {list_keys} keys (+{creates + 1})",
                expected,
                best_of(
                    repeats,
                    expected,
                    lambda: len(base.list(PREFIX, page_size=10_000).items),
                    lambda: len(user.list(PREFIX, page_size=10_000).items),
                ),
                "auth (neutron-region-one)",
            )
        user.close()
        if tls:
            with running_etcd(tls=True) as secure:
                tuser = setup_auth(secure)
                tuser.put(PREFIX + "warm", b"x")
                record(
                    f"create ×{creates}",
                    creates,
                    interleaved_creates(
                        creates,
                        lambda i: base.create(f"{PREFIX}t{i:07d}", VALUE),
                        lambda i: tuser.create(f"{PREFIX}t{i:07d}", VALUE),
                    ),
                    "TLS + auth",
                )
                tuser.close()
        base.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--list-keys", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="also measure TLS + auth creates")
    args = parser.parse_args(argv)
    run(args.creates, args.list_keys, args.repeats, args.tls)
    print()
    print("| operation | no auth (ops/s) | with auth (ops/s) | ratio auth / no auth |")
    print("|---|---:|---:|---:|")
    for op, base, other, what in ROWS:
        print(f"| {op} ({what}) | {base:,.0f} | {other:,.0f} | {other / base:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
