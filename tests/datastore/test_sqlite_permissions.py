"""The embedded store's file is private: created 0600 whatever the umask (0660 with a group),
and a user who may not read it gets a clear error naming the file, its mode and its owner."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from regionmesh.datastore import open_datastore
from regionmesh.datastore.sqlite import SqliteDatastore
from regionmesh.errors import ConfigError, PermissionDenied

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_store_is_0600_even_with_umask_0(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "rm.db"
    store = SqliteDatastore(str(path))
    try:
        store.put("/a", b"1")
        assert mode(path) == 0o600
        for extra in ("-wal", "-shm"):  # SQLite copies the main file's mode
            side = Path(str(path) + extra)
            if side.exists():
                assert mode(side) == 0o600, side
    finally:
        store.close()


def test_group_option_makes_it_0660_for_that_group(tmp_path: Path, loose_umask: None) -> None:
    group = grp.getgrgid(os.getegid()).gr_name
    path = tmp_path / "shared.db"
    store = open_datastore(f"sqlite:///{path}?group={group}")
    try:
        store.put("/a", b"1")
    finally:
        store.close()
    assert mode(path) == 0o660
    assert path.stat().st_gid == os.getegid()
    with pytest.raises(ConfigError, match="no-such-group-xyz: no such group"):
        SqliteDatastore(str(tmp_path / "x.db"), group="no-such-group-xyz")
    with pytest.raises(ConfigError, match="unknown sqlite option"):
        open_datastore(f"sqlite:///{tmp_path}/y.db?mode=0644")


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteDatastore(str(path)).close()
    path.chmod(0o640)
    SqliteDatastore(str(path)).close()
    assert mode(path) == 0o640


@pytest.mark.root
def test_user_who_cannot_read_it_gets_a_clear_error() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it runs the CLI as 'nobody' with setpriv)")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed"
    work = Path(tempfile.mkdtemp(prefix="regionmesh-perm-"))
    try:
        work.chmod(0o755)
        path = work / "rm.db"
        SqliteDatastore(str(path)).close()
        res = subprocess.run(
            [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             str(REPO / ".venv" / "bin" / "regionmesh"), "--datastore", f"sqlite:///{path}",
             "get", "globalnetworkpolicies"],
            capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert res.returncode == 1, res
        line = res.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert str(path) in line and "permission denied for user nobody" in line
        assert "mode 0600, owned by root" in line and "needs read and write" in line
        assert "Traceback" not in line
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_permission_denied_is_a_datastore_error(tmp_path: Path) -> None:
    err = PermissionDenied("x", key="/k", user="u", operation="write")
    assert (err.key, err.user, err.operation) == ("/k", "u", "write")
