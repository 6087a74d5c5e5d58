"""Kernel object names: nft chain and set names derived from message ids (pure, no I/O).

Names follow Felix's nftables mode (agent-dataplane.md §3.1, §3.5): chains are
``filter-cali-pi-<policy id>`` and friends, sets are ``cali40<set id>`` / ``cali60<set id>``
with ``:`` replaced by ``-``. An id that is too long, or that holds characters an unquoted nft
identifier cannot hold, is replaced by ``_`` + a stable SHA-256 digest (Felix's
``GetLengthLimitedID``), so every name is a legal nft identifier within the kernel's limit.
Deciding *which* objects exist is the renderer's job, not this module's.
"""

from __future__ import annotations

import base64
import hashlib
import re

TABLE = "calico"
NFT_NAME_MAX = 255  # NFT_CHAIN_MAXNAMELEN / NFT_SET_MAXNAMELEN (256) minus the NUL
SET_NAME_MAX = 31  # Felix keeps ipset's limit so nft and ipset names agree

_LEGAL_TAIL = re.compile(r"[A-Za-z0-9/_.\-]*")
_FELIX_UID = re.compile(r"[a-z]+:[A-Za-z0-9_\-]{20,}")

FROM_WL_DISPATCH = "filter-cali-from-wl-dispatch"
TO_WL_DISPATCH = "filter-cali-to-wl-dispatch"
WL_TO_HOST = "filter-cali-wl-to-host"
FIP_DNAT = "nat-cali-fip-dnat"  # Felix cali-fip-dnat: floating IP -> fixed IP
FIP_SNAT = "nat-cali-fip-snat"  # Felix cali-fip-snat: hairpin source -> floating IP


def _digest(text: str, length: int) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")[:length]


def length_limited(prefix: str, suffix: str, max_len: int = NFT_NAME_MAX) -> str:
    """``prefix + suffix`` if that is a legal identifier of at most ``max_len``, else hashed."""
    too_long = len(prefix) + len(suffix) > max_len
    ambiguous = len(prefix) + len(suffix) == max_len and suffix.startswith("_")
    if too_long or ambiguous or not _LEGAL_TAIL.fullmatch(suffix):
        return prefix + "_" + _digest(suffix, max_len - 1 - len(prefix))
    return prefix + suffix


def policy_chain(policy_id: str, inbound: bool) -> str:
    """``filter-cali-pi-<id>`` (inbound rules) or ``filter-cali-po-<id>`` (outbound rules)."""
    return length_limited("filter-cali-pi-" if inbound else "filter-cali-po-", policy_id)


def profile_chain(profile_id: str, inbound: bool) -> str:
    """``filter-cali-pri-<id>`` / ``filter-cali-pro-<id>``."""
    return length_limited("filter-cali-pri-" if inbound else "filter-cali-pro-", profile_id)


def endpoint_chain(iface: str, to_workload: bool) -> str:
    """``filter-cali-tw-<iface>`` (to the VM, ingress) / ``filter-cali-fw-<iface>`` (egress)."""
    return length_limited("filter-cali-tw-" if to_workload else "filter-cali-fw-", iface)


def set_name(set_id: str, family: int) -> str:
    """``cali40<id>`` (v4) / ``cali60<id>`` (v6), Felix-compatible for Felix-style ids."""
    prefix = "cali40" if family == 4 else "cali60"
    legal = set_id.replace(":", "-")
    if _LEGAL_TAIL.fullmatch(legal) and (
        len(prefix) + len(legal) <= SET_NAME_MAX or _FELIX_UID.fullmatch(set_id)
    ):
        return (prefix + legal)[:SET_NAME_MAX]
    return prefix + "_" + _digest(set_id, SET_NAME_MAX - 1 - len(prefix))
