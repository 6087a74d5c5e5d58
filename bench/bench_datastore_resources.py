"""Benchmark the resource layer (ResourceClient: encode, CAS create, list + decode) vs raw etcd.

Run: ``python bench/bench_datastore_resources.py [--creates N] [--list-keys N]``

What "through regionmesh" costs for a user: ``ResourceClient.create`` of a validated
NetworkPolicy (JSON encoding + uid/timestamp + a ``version == 0`` txn) vs ``etcd3gw.create`` of
the same pre-encoded bytes; ``ResourceClient.list`` of N NetworkPolicies (paged range reads +
JSON + model decoding into typed objects) vs one raw ``etcd3gw.get_prefix`` of the same keys.
Both sides run against one real etcd started here, interleaved so machine noise hits both.
Prints a markdown table with ops/s and the ratio regionmesh/raw (target ≥ 0.7).
"""

from __future__ import annotations

import argparse
import json
import time

import etcd3gw

from regionmesh.datastore import keys
from regionmesh.datastore.resource_client import ResourceClient
from regionmesh.model import codec, validation
from regionmesh.testing.etcd_server import running_etcd


def policy(i: int, ns: str) -> dict[str, object]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"ossg.default.sg-{i:07d}", "namespace": ns},
        "spec": {
            "selector": f"has(sg.projectcalico.org/openstack-sg-{i:07d})",
            "ingress": [
                {
                    "action": "Allow",
                    "ipVersion": 4,
                    "protocol": "TCP",
                    "source": {"selector": f"has(sg.projectcalico.org/openstack-sg-{i:07d})"},
                    "destination": {"ports": [80, "8000:8080"]},
                }
            ],
            "egress": [{"action": "Allow", "ipVersion": 4}],
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--creates", type=int, default=10_000)
    ap.add_argument("--list-keys", type=int, default=100_000)
    args = ap.parse_args()
    rows = []
    with running_etcd() as server:
        store = server.open()
        client = ResourceClient(store)
        raw = etcd3gw.Etcd3Client(host="127.0.0.1", port=server.client_port)
        raw.put("/warm", b"x")
        store.put("/warm", b"x")
        resources = [
            validation.apply_defaults(codec.decode(policy(i, "ours"))) for i in range(args.creates)
        ]
        raw_values = [
            json.dumps(codec.to_storage(r), separators=(",", ":")).encode() for r in resources
        ]
        ours_s = raw_s = 0.0
        for start in range(0, args.creates, 500):
            t0 = time.perf_counter()
            for r in resources[start : start + 500]:
                client.create(r)
            t1 = time.perf_counter()
            for i in range(start, min(start + 500, args.creates)):
                raw.create(keys.resource_key("networkpolicies", f"p{i}", "raw"), raw_values[i])
            t2 = time.perf_counter()
            ours_s += t1 - t0
            raw_s += t2 - t1
        rows.append(
            (f"ResourceClient.create ×{args.creates}", args.creates / ours_s, args.creates / raw_s)
        )
        # fill the list namespace quickly through raw multi-put txns
        import base64

        value = base64.b64encode(raw_values[0]).decode()
        prefix = keys.resource_prefix("networkpolicies", "big")
        for start in range(0, args.list_keys, 128):
            ops = [
                {
                    "request_put": {
                        "key": base64.b64encode(
                            f"{prefix}ossg.default.sg-{i:07d}".encode()
                        ).decode(),
                        "value": value,
                    }
                }
                for i in range(start, min(start + 128, args.list_keys))
            ]
            raw.transaction({"compare": [], "success": ops, "failure": []})
        best = [float("inf"), float("inf"), float("inf")]
        for _ in range(3):
            t0 = time.perf_counter()
            n1 = len(client.list("NetworkPolicy", "big").items)
            t1 = time.perf_counter()
            n2 = len(store.list(prefix, page_size=10_000).items)
            t2 = time.perf_counter()
            n3 = len(raw.get_prefix(prefix))
            t3 = time.perf_counter()
            assert n1 == n2 == n3 == args.list_keys, (n1, n2, n3)
            best = [min(best[0], t1 - t0), min(best[1], t2 - t1), min(best[2], t3 - t2)]
        rows.append(
            (
                f"ResourceClient.list {args.list_keys} (decoded to typed objects)",
                args.list_keys / best[0],
                args.list_keys / best[2],
            )
        )
        rows.append(
            (
                f"Datastore.list {args.list_keys} (raw bytes, page 10000)",
                args.list_keys / best[1],
                args.list_keys / best[2],
            )
        )
        store.close()
    print("\n| operation (real etcd) | regionmesh ops/s | raw etcd3gw ops/s | ratio |")
    print("|---|---:|---:|---:|")
    for op, ours, rawv in rows:
        print(f"| {op} | {ours:,.0f} | {rawv:,.0f} | {ours / rawv:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
