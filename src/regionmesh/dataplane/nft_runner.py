"""The dataplane's nft boundary: ``nft`` subprocesses, and nothing else.

:class:`SubprocessNft` implements :class:`~regionmesh.dataplane.api.NftRunner` with
``nft -f -`` (optionally inside a named network namespace via ``ip netns exec``): ``apply``
runs one atomic transaction, ``check`` lets the kernel validate one, ``list_ruleset_json``
reads a table back. Failures become :class:`~regionmesh.errors.DataplaneError` carrying nft's
message and the offending script line (:func:`explain_nft_error`). The in-memory kernel for unit
tests is :class:`~regionmesh.dataplane.fakenft.FakeNft`.

Deciding what to program is the driver's and the renderer's job; this module only executes.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from regionmesh.dataplane.api import NftRunner
from regionmesh.errors import DataplaneError

__all__ = ["NftRunner", "SubprocessNft", "explain_nft_error"]

_LOCATION = re.compile(r"^(?:/dev/stdin|-|<cmdline>):(\d+):\d+(?:-\d+)?: (Error: .*)$")


def explain_nft_error(stderr: str, script: str) -> str:
    """nft's first error message plus the script line it points at."""
    lines = script.splitlines()
    for raw in stderr.splitlines():
        m = _LOCATION.match(raw.strip())
        if m:
            number = int(m.group(1))
            offending = lines[number - 1] if 0 < number <= len(lines) else "?"
            return f"{m.group(2)} (line {number}: {offending[:300]})"
    first = next((s for s in stderr.splitlines() if s.strip()), "nft failed")
    context = [s for s in stderr.splitlines()[1:2] if s.strip()]
    return first + (f" ({context[0][:300]})" if context else "")


class SubprocessNft:
    """:class:`NftRunner` over the ``nft`` binary, optionally inside network namespace ``netns``."""

    def __init__(self, netns: str | None = None, nft: str = "nft", timeout: float = 120.0):
        self.netns = netns
        self.timeout = timeout
        self._prefix = ["ip", "netns", "exec", netns, nft] if netns else [nft]

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                self._prefix + args,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataplaneError(f"cannot run nft: {exc}") from exc

    def apply(self, script: str) -> None:
        """``nft -f -`` with ``script`` on stdin (one transaction)."""
        proc = self._run(["-f", "-"], script)
        if proc.returncode != 0:
            raise DataplaneError(explain_nft_error(proc.stderr, script))

    def check(self, script: str) -> None:
        """``nft --check -f -``: the kernel validates the transaction, then aborts it."""
        proc = self._run(["--check", "-f", "-"], script)
        if proc.returncode != 0:
            raise DataplaneError(explain_nft_error(proc.stderr, script))

    def list_ruleset_json(self, table: str) -> dict[str, Any]:
        """``nft -j list table <table>``; a missing table reads as ``{"nftables": []}``."""
        proc = self._run(["-j", "list", "table", *table.split()])
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr:
                return {"nftables": []}
            raise DataplaneError(explain_nft_error(proc.stderr, f"list table {table}"))
        try:
            data: dict[str, Any] = json.loads(proc.stdout)
        except ValueError as exc:
            raise DataplaneError(f"nft printed invalid JSON: {exc}") from exc
        return data
