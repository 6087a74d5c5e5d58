"""The registry of projectcalico.org/v3 kinds, as data.

For each kind: its name, the lower-case plural used in etcd keys and by calicoctl, whether it
is namespaced, the CLI aliases calicoctl accepts, and the columns of its default/wide tables.
This module knows nothing about resource classes (see :mod:`regionmesh.model.resources`) or
about storage (see :mod:`regionmesh.datastore.keys`).
"""

from __future__ import annotations

from dataclasses import dataclass

API_GROUP = "projectcalico.org"
API_VERSION = "projectcalico.org/v3"


@dataclass(frozen=True, slots=True)
class KindInfo:
    """Static facts about one v3 kind."""

    kind: str
    plural: str
    namespaced: bool
    aliases: tuple[str, ...]
    columns: tuple[str, ...] = ("NAME",)
    wide_columns: tuple[str, ...] = ("NAME",)


_KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        "GlobalNetworkPolicy",
        "globalnetworkpolicies",
        False,
        (
            "globalnetworkpolicy",
            "globalnetworkpolicies",
            "gnp",
            "gnps",
            "globalpolicy",
            "globalpolicies",
        ),
        ("NAME", "TIER"),
        ("NAME", "TIER", "ORDER", "SELECTOR"),
    ),
    KindInfo(
        "NetworkPolicy",
        "networkpolicies",
        True,
        ("networkpolicy", "networkpolicies", "policy", "policies", "np", "nps", "pol", "pols"),
        ("NAME", "TIER"),
        ("NAME", "TIER", "ORDER", "SELECTOR"),
    ),
    KindInfo(
        "Tier",
        "tiers",
        False,
        ("tier", "tiers"),
        ("NAME", "ORDER"),
        ("NAME", "ORDER", "DEFAULTACTION"),
    ),
    KindInfo("Profile", "profiles", False, ("profile", "profiles", "pro", "pros")),
    KindInfo(
        "WorkloadEndpoint",
        "workloadendpoints",
        True,
        ("workloadendpoint", "workloadendpoints", "wep", "weps"),
        ("WORKLOAD", "NODE", "NETWORKS", "INTERFACE"),
        ("NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"),
    ),
    KindInfo(
        "HostEndpoint",
        "hostendpoints",
        False,
        ("hostendpoint", "hostendpoints", "hep", "heps"),
        ("NAME", "NODE"),
        ("NAME", "NODE", "INTERFACE", "IPS", "PROFILES"),
    ),
    KindInfo(
        "NetworkSet",
        "networksets",
        True,
        ("networkset", "networksets", "netset", "netsets"),
        ("NAME",),
        ("NAME", "NETS"),
    ),
    KindInfo(
        "GlobalNetworkSet",
        "globalnetworksets",
        False,
        ("globalnetworkset", "globalnetworksets"),
        ("NAME",),
        ("NAME", "NETS"),
    ),
    KindInfo(
        "FelixConfiguration",
        "felixconfigurations",
        False,
        ("felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"),
    ),
    KindInfo(
        "Node",
        "nodes",
        False,
        ("node", "nodes", "no", "nos"),
        ("NAME",),
        ("NAME", "ASN", "IPV4", "IPV6"),
    ),
    KindInfo(
        "BGPConfiguration",
        "bgpconfigurations",
        False,
        ("bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"),
        ("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"),
        ("NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"),
    ),
    KindInfo(
        "BGPPeer",
        "bgppeers",
        False,
        ("bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"),
        ("NAME", "PEERIP", "NODE", "ASN"),
        ("NAME", "PEERIP", "NODE", "ASN"),
    ),
    KindInfo(
        "ClusterInformation",
        "clusterinformations",
        False,
        ("clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"),
    ),
)

KINDS: dict[str, KindInfo] = {k.kind: k for k in _KINDS}
"""Kind name (``GlobalNetworkPolicy``) → facts."""

_BY_ALIAS: dict[str, KindInfo] = {}
for _k in _KINDS:
    _BY_ALIAS[_k.kind.lower()] = _k
    for _a in _k.aliases:
        _BY_ALIAS[_a] = _k


def lookup_kind(name: str) -> KindInfo | None:
    """Return the kind for a CLI word (``gnp``, ``NetworkPolicy``, ``policies`` …), or None."""
    return _BY_ALIAS.get(name.lower())


def kind_info(kind: str) -> KindInfo:
    """Return the facts for an exact kind name; KeyError if unknown."""
    return KINDS[kind]
