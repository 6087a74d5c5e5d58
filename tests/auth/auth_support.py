"""A real etcd with TLS (CN-less client certificates made with openssl) and the per-region users
of ``regionmesh etcd-auth apply --regions one,two``, set up through the CLI itself."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from click.testing import CliRunner

from regionmesh.cli.main import regionmesh_cli
from regionmesh.datastore.etcd import EtcdDatastore
from regionmesh.testing.etcd_server import EtcdServer, running_etcd

REPO = Path(__file__).resolve().parents[2]
ROOT_PW = "root-secret-pw"


@dataclass
class Cloud:
    """The etcd, every plan user's password, and a work directory."""

    server: EtcdServer
    passwords: dict[str, str]
    workdir: Path

    def password(self, user: str) -> str:
        return ROOT_PW if user == "root" else self.passwords[user]

    def url(self, user: str) -> str:
        return self.server.url_as(user, self.password(user))

    def open(self, user: str) -> EtcdDatastore:
        return self.server.open_as(user, self.password(user))

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The real ``regionmesh`` entry point (exit codes and one-line errors as shipped)."""
        return subprocess.run(
            [str(REPO / ".venv" / "bin" / "regionmesh"), "--datastore", self.url(user), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@contextlib.contextmanager
def auth_cloud(work: Path, *, token_ttl: int) -> Iterator[Cloud]:
    """Start the etcd, run ``etcd-auth apply`` as root (creating root first), yield."""
    with running_etcd(tls=True, token_ttl=token_ttl) as server:
        pwfile = work / "passwords.yaml"
        res = CliRunner().invoke(
            regionmesh_cli,
            ["--datastore", server.url_as("root", ROOT_PW), "etcd-auth", "apply",
             "--regions", "one,two", "--write-passwords", str(pwfile)],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "authentication enabled" in res.output
        assert oct(pwfile.stat().st_mode & 0o777) == "0o600"
        passwords = yaml.safe_load(pwfile.read_text())
        assert ROOT_PW not in passwords.values()
        yield Cloud(server, passwords, work)
