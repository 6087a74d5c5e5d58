"""The dataplane's host-link boundary: reads of ``/sys/class/net`` and the DHCP alias links.

Everything that looks at (or adds) host interfaces outside nft and the per-tap routes lives
here, so kernel access has one named home besides :mod:`.nft_runner` and :mod:`.routes`:

* :func:`interface_is_up`: oper-up as Felix's interface monitor sees it (the agent's endpoint
  status);
* :func:`interface_mtu`: a tap's MTU (the DHCP agent's option 26);
* :func:`interface_exists`: whether a link exists in this namespace;
* :class:`NetlinkAliases`: ``dummy`` (or veth) alias interfaces that carry addresses with
  ``noprefixroute``, for the DHCP agent's ``ns-<network>`` devices (pyroute2).

What the readings mean (endpoint up/down, what dnsmasq serves) is the callers' business.
"""

from __future__ import annotations

import logging
import os
import socket

from pyroute2 import IPRoute, NetlinkError

from regionmesh.errors import DataplaneError

LOG = logging.getLogger(__name__)

__all__ = ["NetlinkAliases", "interface_exists", "interface_is_up", "interface_mtu"]

IFF_UP = 0x1
IFF_RUNNING = 0x40
SYS_CLASS_NET = "/sys/class/net"


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and not name.startswith(".")


def interface_is_up(name: str) -> bool:
    """Oper-up as Felix's interface monitor sees it (``up``, or ``unknown`` with UP|RUNNING)."""
    base = f"{SYS_CLASS_NET}/{name}"
    try:
        with open(f"{base}/operstate", encoding="ascii") as f:
            state = f.read().strip()
        if state == "up":
            return True
        if state == "unknown":
            with open(f"{base}/flags", encoding="ascii") as f:
                flags = int(f.read().strip(), 16)
            return flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING
    except (OSError, ValueError):
        return False
    return False


def interface_mtu(name: str) -> int | None:
    """The MTU of ``name`` in this namespace, or None when it does not exist (yet)."""
    if not _valid_name(name):
        return None
    try:
        with open(f"{SYS_CLASS_NET}/{name}/mtu", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def interface_exists(name: str) -> bool:
    """Whether the link ``name`` exists in this namespace."""
    return _valid_name(name) and os.path.exists(f"{SYS_CLASS_NET}/{name}")


IFA_F_NOPREFIXROUTE = 0x200


class NetlinkAliases:
    """Alias interfaces that carry addresses without changing routing (for the DHCP agent).

    ``ensure(name, addresses)`` makes a ``dummy`` link (or, where this kernel has no dummy
    links, a veth whose peer ``nsp-…`` stays down), sets it up and gives it exactly
    ``addresses`` (IPv4 ``a.b.c.d/len``) with ``noprefixroute``, so no connected route
    appears. Acts on the current network namespace, or ``netns`` when given.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _ipr(self) -> IPRoute:
        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    def exists(self, name: str) -> bool:
        """Whether the link exists."""
        try:
            with self._ipr() as ipr:
                return bool(ipr.link_lookup(ifname=name))
        except (NetlinkError, OSError) as exc:
            raise DataplaneError(f"alias interface {name}: {exc}") from exc

    def ensure(self, name: str, addresses: list[str], *, peer: str) -> None:
        """The link exists, is up and carries exactly ``addresses``."""
        try:
            with self._ipr() as ipr:
                found = ipr.link_lookup(ifname=name)
                if not found:
                    try:
                        ipr.link("add", ifname=name, kind="dummy")
                    except NetlinkError as exc:
                        LOG.debug("dummy links unavailable (%s): a veth for %s", exc, name)
                        ipr.link("add", ifname=name, kind="veth", peer=peer)
                    found = ipr.link_lookup(ifname=name)
                index = found[0]
                ipr.link("set", index=index, state="up")
                have = {
                    f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                    for a in ipr.get_addr(index=index, family=socket.AF_INET)
                }
                for address in sorted(set(addresses) - have):
                    ip, _, plen = address.partition("/")
                    ipr.addr(
                        "add", index=index, address=ip, prefixlen=int(plen),
                        IFA_FLAGS=IFA_F_NOPREFIXROUTE,
                    )  # fmt: skip
                for address in sorted(have - set(addresses)):
                    ip, _, plen = address.partition("/")
                    ipr.addr("del", index=index, address=ip, prefixlen=int(plen))
        except (NetlinkError, OSError) as exc:
            raise DataplaneError(f"alias interface {name}: {exc}") from exc

    def remove(self, name: str) -> None:
        """Delete the link (and its veth peer) if it exists."""
        try:
            with self._ipr() as ipr:
                found = ipr.link_lookup(ifname=name)
                if found:
                    ipr.link("del", index=found[0])
        except (NetlinkError, OSError) as exc:
            raise DataplaneError(f"alias interface {name}: {exc}") from exc
