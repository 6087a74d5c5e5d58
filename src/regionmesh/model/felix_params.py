"""Per-parameter value checks of FelixConfiguration (enumerations, ranges, durations, region).

The types of the parameters are :mod:`regionmesh.model.cluster_config`'s; this module holds only
the table of extra value rules that calicoctl's validator applies, :data:`FELIX_CHECKS`
(parameter name → check returning a reason or None). Applying it is
:mod:`regionmesh.model.kind_checks`' job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regionmesh.model.cluster_config import DURATION_FIELDS, parse_go_duration
from regionmesh.model.names import INTERFACE_PREFIX_RE
from regionmesh.model.regions import region_problem


def _one_of(*allowed: str, ignore_case: bool = False) -> Callable[[Any], str | None]:
    folded = {a.lower() for a in allowed}

    def check(value: Any) -> str | None:
        ok = value.lower() in folded if ignore_case else value in allowed
        return None if ok else "must be one of " + ", ".join(allowed)

    return check


def _port_number(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number between 0 and 65535"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def _duration(value: Any) -> str | None:
    return None if parse_go_duration(value) >= 0 else "duration must not be negative"


def _region(value: Any) -> str | None:
    problem = region_problem(value) if value else None
    return f"must be {problem}" if problem else None


def _interface_prefix(value: Any) -> str | None:
    if INTERFACE_PREFIX_RE.match(value):
        return None
    return "must be a comma-separated list of interface name prefixes"


def _mark_mask(value: Any) -> str | None:
    return None if 0 <= value <= 0xFFFFFFFF else "must be a 32-bit mask"


_SEVERITY = _one_of("Trace", "Debug", "Info", "Warning", "Error", "Fatal", ignore_case=True)
FELIX_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "openstackRegion": _region,
    "metadataPort": _port_number,
    "healthPort": _port_number,
    "prometheusMetricsPort": _port_number,
    "maxIpsetSize": _non_negative,
    "iptablesMarkMask": _mark_mask,
    "interfacePrefix": _interface_prefix,
    "nftablesMode": _one_of("Enabled", "Disabled", "Auto"),
    "iptablesBackend": _one_of("Legacy", "NFT", "Auto", ignore_case=True),
    "defaultEndpointToHostAction": _one_of("Drop", "Accept", "Return"),
    "chainInsertMode": _one_of("Insert", "Append", ignore_case=True),
    "iptablesFilterAllowAction": _one_of("Accept", "Return"),
    "iptablesMangleAllowAction": _one_of("Accept", "Return"),
    "ipForwarding": _one_of("Enabled", "Disabled"),
    "floatingIPs": _one_of("Enabled", "Disabled"),
    "workloadSourceSpoofing": _one_of("Disabled", "Any"),
    "logSeverityFile": _SEVERITY,
    "logSeverityScreen": _SEVERITY,
    "logSeveritySys": _SEVERITY,
    **{name: _duration for name in DURATION_FIELDS},
}
