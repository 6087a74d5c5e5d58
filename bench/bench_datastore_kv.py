"""Benchmark regionmesh's datastore backends against the raw clients underneath them.

Run: ``python bench/bench_datastore_kv.py [--creates N] [--list-keys N]``

* etcd (a real etcd started here, data on /dev/shm): N creates through
  ``EtcdDatastore.create`` (a ``version == 0`` txn) vs ``etcd3gw``'s own ``create`` (the same
  kind of txn); a list of M keys through ``EtcdDatastore.list`` (paged at one revision) vs one
  raw ``etcd3gw`` ``get_prefix`` (also with 10 000-key pages: etcd 3.4 scans the rest of the
  range's index for every page, so small pages cost more on the server).
* sqlite: N creates through ``SqliteDatastore.create`` vs raw ``sqlite3`` INSERTs, one
  transaction each, same file settings (WAL, synchronous=NORMAL); a list of M keys vs one raw
  ``SELECT … ORDER BY key``.

Prints a markdown table with ops/s and the ratio regionmesh/raw (target ≥ 0.7).
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable

import etcd3gw

from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.testing.etcd_server import running_etcd

VALUE = b'{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","spec":' + b"x" * 330 + b"}"
ROWS: list[tuple[str, str, float, float]] = []


CHUNK = 500


def interleaved_creates(
    count: int, ours: Callable[[int], object], raw: Callable[[int], object]
) -> tuple[float, float]:
    """Run ``count`` creates on each side in alternating chunks (so machine noise hits both
    sides alike); return the total seconds of each side."""
    ours_s = raw_s = 0.0
    for start in range(0, count, CHUNK):
        stop = min(start + CHUNK, count)
        t0 = time.perf_counter()
        for i in range(start, stop):
            ours(i)
        t1 = time.perf_counter()
        for i in range(start, stop):
            raw(i)
        t2 = time.perf_counter()
        ours_s += t1 - t0
        raw_s += t2 - t1
    return ours_s, raw_s


def interleaved_best(
    repeats: int, expected: int, ours: Callable[[], int], raw: Callable[[], int]
) -> tuple[float, float]:
    """Best wall time of each side over ``repeats`` alternating runs; both must return
    ``expected`` (the number of keys listed)."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for side, fn in enumerate((ours, raw)):
            started = time.perf_counter()
            got = fn()
            best[side] = min(best[side], time.perf_counter() - started)
            assert got == expected, (got, expected)
    return best[0], best[1]


def record(backend: str, op: str, count: int, seconds: tuple[float, float]) -> None:
    ours, raw = count / seconds[0], count / seconds[1]
    ROWS.append((backend, op, ours, raw))
    print(f"  {backend} {op}: regionmesh {ours:,.0f}/s, raw {raw:,.0f}/s", flush=True)


def bulk_fill_etcd(client: etcd3gw.Etcd3Client, prefix: str, count: int) -> None:
    """Write ``count`` keys with multi-put txns (128 ops each, etcd's default limit)."""
    value = base64.b64encode(VALUE).decode()
    for start in range(0, count, 128):
        ops = [
            {
                "request_put": {
                    "key": base64.b64encode(f"{prefix}{i:07d}".encode()).decode(),
                    "value": value,
                }
            }
            for i in range(start, min(start + 128, count))
        ]
        client.transaction({"compare": [], "success": ops, "failure": []})


def bench_etcd(creates: int, list_keys: int, repeats: int) -> None:
    print("etcd:", flush=True)
    with running_etcd() as server:
        ours = server.open()
        raw = etcd3gw.Etcd3Client(host="127.0.0.1", port=server.client_port)
        # warm up both (API discovery, connection pools)
        ours.put("/bench/warm", b"x")
        raw.put("/bench/warm", b"x")

        def raw_create(i: int) -> None:
            assert raw.create(f"/bench/raw/{i:07d}", VALUE)

        record(
            "etcd",
            f"create ×{creates}",
            creates,
            interleaved_creates(
                creates, lambda i: ours.create(f"/bench/ours/{i:07d}", VALUE), raw_create
            ),
        )
        bulk_fill_etcd(raw, "/bench/list/", list_keys)
        for page_size in (1000, 10_000):
            record(
                "etcd",
                f"list {list_keys} keys (page_size={page_size})",
                list_keys,
                interleaved_best(
                    repeats,
                    list_keys,
                    lambda ps=page_size: len(ours.list("/bench/list/", page_size=ps).items),
                    lambda: len(raw.get_prefix("/bench/list/")),
                ),
            )
        ours.close()


def bench_sqlite(creates: int, list_keys: int, repeats: int) -> None:
    print("sqlite:", flush=True)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="regionmesh-bench-", dir=shm) as tmp:
        ours = SqliteDatastore(os.path.join(tmp, "ours.db"))
        raw = sqlite3.connect(os.path.join(tmp, "raw.db"), isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")

        def raw_create(i: int) -> None:
            raw.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?)", (f"/bench/raw/{i:07d}".encode(), VALUE)
            )

        record(
            "sqlite",
            f"create ×{creates}",
            creates,
            interleaved_creates(
                creates, lambda i: ours.create(f"/bench/ours/{i:07d}", VALUE), raw_create
            ),
        )
        for i in range(list_keys):
            ours.put(f"/bench/list/{i:07d}", VALUE)
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO kv(key, value) VALUES (?, ?)",
            ((f"/bench/list/{i:07d}".encode(), VALUE) for i in range(list_keys)),
        )
        raw.execute("COMMIT")

        def raw_list() -> int:
            rows = raw.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                (b"/bench/list/", b"/bench/list0"),
            ).fetchall()
            return len([(bytes(k).decode(), bytes(v)) for k, v in rows])

        record(
            "sqlite",
            f"list {list_keys} keys",
            list_keys,
            interleaved_best(
                repeats, list_keys, lambda: len(ours.list("/bench/list/").items), raw_list
            ),
        )
        ours.close()
        raw.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=10_000)
    parser.add_argument("--list-keys", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["etcd", "sqlite"])
    args = parser.parse_args()
    if args.only != "sqlite":
        bench_etcd(args.creates, args.list_keys, args.repeats)
    if args.only != "etcd":
        bench_sqlite(args.creates, args.list_keys, args.repeats)
    print()
    print("| backend | operation | regionmesh ops/s | raw client ops/s | ratio (target ≥ 0.7) |")
    print("| --- | --- | ---: | ---: | ---: |")
    worst = float("inf")
    for backend, op, ours, raw in ROWS:
        ratio = ours / raw
        worst = min(worst, ratio)
        print(f"| {backend} | {op} | {ours:,.0f} | {raw:,.0f} | {ratio:.2f} |")
    print(f"\nworst ratio: {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
