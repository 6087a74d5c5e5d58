"""Backend quota exhausted (``--quota-backend-bytes`` 4 MiB, NOSPACE alarm) on a 3-member cluster.

Writers get :class:`~regionmesh.errors.QuotaExceeded` naming the alarm and the remedy (the
datastore API, ``ResourceClient`` and the ``calicoctl`` console script); a refused batch leaves
none of its keys behind; after delete + compaction + defragmentation + alarm disarm, writes
work again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from fault_support import use_test_helpers

from regionmesh.errors import QuotaExceeded
from regionmesh.testing.etcd_cluster import EtcdCluster

use_test_helpers()
import agent_support as s  # noqa: E402

pytestmark = pytest.mark.timeout(180)

QUOTA = 4 * 1024 * 1024
FILLER = b"x" * 8192


def test_nospace_clear_error_nothing_half_written_then_resumes(tmp_path: object) -> None:
    cluster = EtcdCluster(3, quota_backend_bytes=QUOTA).start()
    store = cluster.open()
    try:
        filled = 0
        with pytest.raises(QuotaExceeded) as err:
            for round_ in range(200):
                items = [(f"/fault/fill/{round_:03d}/{i:03d}", FILLER) for i in range(60)]
                store.create_many(items)
                filled += len(items)
        message = str(err.value)
        for needle in ("NOSPACE", "compact", "defrag", "alarm disarm", "nothing of it was written"):
            assert needle in message, message
        assert any(a.get("alarm") == "NOSPACE" for a in cluster.alarms())

        batch = [(f"/fault/after/{i:03d}", b"small") for i in range(50)]
        with pytest.raises(QuotaExceeded):
            store.create_many(batch)
        half = len(store.list("/fault/after/").items)
        wep = s.wep_doc(s.port("aaaaaaaa-0000-4000-8000-00000000000a", "h", "10.65.1.2", []), "one")
        with pytest.raises(QuotaExceeded):
            s.apply_docs(store, [wep])
        docs = os.path.join(str(tmp_path), "gns.yaml")
        with open(docs, "w") as f:
            f.write(
                "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\n"
                "metadata:\n  name: nospace\nspec:\n  nets: [10.1.0.0/16]\n"
            )
        exe = shutil.which("calicoctl") or os.path.join(
            os.path.dirname(sys.executable), "calicoctl"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "REGIONMESH_"))}
        env.update(DATASTORE_TYPE="etcdv3", ETCD_ENDPOINTS=cluster.etcd_endpoints)
        cli = subprocess.run(
            [exe, "apply", "-f", docs], env=env, capture_output=True, text=True, timeout=60
        )
        assert cli.returncode == 1 and "NOSPACE" in cli.stderr, cli.stderr

        # remedy: free space, compact, defragment, disarm
        deleted = store.delete_prefix("/fault/fill/")
        cluster.compact_all()
        cluster.defragment()
        cluster.disarm()
        assert cluster.alarms() == []
        created = store.create_many(batch)
        s.apply_docs(store, [wep])
        cli2 = subprocess.run(
            [exe, "apply", "-f", docs], env=env, capture_output=True, text=True, timeout=60
        )
        print(
            f"NOSPACE after {filled} x 8 KiB keys; refused batch left {half}/50 keys; "
            f"after deleting {deleted}, compaction, defrag and disarm: {sum(r is not None for r in created)}/50 "
            f"created, calicoctl apply exit {cli2.returncode}"
        )
        assert half == 0
        assert all(r is not None for r in created)
        assert cli2.returncode == 0, cli2.stderr
    finally:
        store.close()
        cluster.close()
