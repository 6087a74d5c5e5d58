"""Cluster configuration kinds: FelixConfiguration and ClusterInformation.

``FelixConfiguration.spec`` is a *closed* set of Felix parameters, each typed (bool, int,
string or Go duration such as ``"30s"``). Unknown keys are refused by strict decoding exactly as
calicoctl refuses fields missing from ``FelixConfigurationSpec``; stored values written by a
newer Calico are still readable through the lenient decode of
:func:`regionmesh.model.codec.from_storage`. Per-parameter value checks (enumerations, ranges,
the region name) are in :mod:`regionmesh.model.validation`. How the agent layers these values
over its file/environment settings is :mod:`regionmesh.agent`'s business;
:meth:`FelixConfigurationSpec.felix_parameters` gives it the values under Felix's own names.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, Strict

from regionmesh.model.base import Model, StrictBool, StrictInt, StrictStr
from regionmesh.model.meta import Resource

__all__ = [
    "ClusterInformation",
    "ClusterInformationSpec",
    "FELIX_PARAMETER_NAMES",
    "FelixConfiguration",
    "FelixConfigurationSpec",
    "parse_go_duration",
]

_DURATION_PART = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION_RE = re.compile(rf"^[-+]?(?:0|(?:{_DURATION_PART})+)$")
_DURATION_TOKEN_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go ``time.Duration`` string (``"1m30s"`` → 90.0). ValueError if malformed."""
    if not _DURATION_RE.match(text):
        raise ValueError(f"invalid duration {text!r} (expected e.g. '30s', '1m30s', '500ms')")
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_TOKEN_RE.findall(text))
    return sign * total


def _check_duration(text: str) -> str:
    parse_go_duration(text)
    return text


Duration = Annotated[str, Strict(), AfterValidator(_check_duration)]
"""A Go duration string (``metav1.Duration`` on the wire), e.g. ``"90s"``."""


class FelixConfigurationSpec(Model):
    """The Felix parameters regionmesh knows (JSON names as in ``FelixConfigurationSpec``)."""

    # Status reporting (networking-calico relies on these).
    reporting_interval: Duration | None = None
    reporting_ttl: Duration | None = Field(default=None, alias="reportingTTL")
    endpoint_reporting_enabled: StrictBool | None = None
    endpoint_reporting_delay: Duration | None = None
    endpoint_status_path_prefix: StrictStr | None = None
    # OpenStack.
    openstack_region: StrictStr | None = None
    metadata_addr: StrictStr | None = None
    metadata_port: StrictInt | None = None
    interface_prefix: StrictStr | None = None
    interface_exclude: StrictStr | None = None
    default_endpoint_to_host_action: StrictStr | None = None
    # Dataplane.
    nftables_mode: StrictStr | None = None
    iptables_backend: StrictStr | None = None
    iptables_mark_mask: StrictInt | None = None
    chain_insert_mode: StrictStr | None = None
    iptables_filter_allow_action: StrictStr | None = None
    iptables_mangle_allow_action: StrictStr | None = None
    iptables_refresh_interval: Duration | None = None
    iptables_post_write_check_interval: Duration | None = None
    iptables_lock_timeout: Duration | None = None
    ipsets_refresh_interval: Duration | None = None
    nftables_refresh_interval: Duration | None = None
    route_refresh_interval: Duration | None = None
    interface_refresh_interval: Duration | None = None
    netlink_timeout: Duration | None = None
    max_ipset_size: StrictInt | None = None
    ipv6_support: StrictBool | None = None
    remove_external_routes: StrictBool | None = None
    device_route_source_address: StrictStr | None = None
    ip_forwarding: StrictStr | None = None
    floating_ips: StrictStr | None = Field(default=None, alias="floatingIPs")
    workload_source_spoofing: StrictStr | None = None
    use_internal_dataplane_driver: StrictBool | None = None
    dataplane_driver: StrictStr | None = None
    feature_detect_override: StrictStr | None = None
    policy_sync_path_prefix: StrictStr | None = None
    ipip_enabled: StrictBool | None = None
    vxlan_enabled: StrictBool | None = None
    wireguard_enabled: StrictBool | None = None
    bpf_enabled: StrictBool | None = None
    xdp_enabled: StrictBool | None = None
    generic_xdp_enabled: StrictBool | None = Field(default=None, alias="genericXDPEnabled")
    # Logging, health, metrics.
    log_prefix: StrictStr | None = None
    log_file_path: StrictStr | None = None
    log_severity_file: StrictStr | None = None
    log_severity_screen: StrictStr | None = None
    log_severity_sys: StrictStr | None = None
    health_enabled: StrictBool | None = None
    health_host: StrictStr | None = None
    health_port: StrictInt | None = None
    prometheus_metrics_enabled: StrictBool | None = None
    prometheus_metrics_host: StrictStr | None = None
    prometheus_metrics_port: StrictInt | None = None
    usage_reporting_enabled: StrictBool | None = None

    def felix_parameters(self) -> dict[str, str]:
        """The set parameters as Felix config-file strings under Felix's names.

        ``{"ReportingIntervalSecs": "30", "EndpointReportingEnabled": "true", ...}``;
        durations become seconds, booleans ``true``/``false``.
        """
        out: dict[str, str] = {}
        for attr, info in type(self).model_fields.items():
            value = getattr(self, attr)
            if value is None:
                continue
            wire = info.alias or attr
            felix = FELIX_PARAMETER_NAMES[wire]
            if isinstance(value, bool):
                out[felix] = "true" if value else "false"
            elif wire in DURATION_FIELDS:
                seconds = parse_go_duration(value)
                out[felix] = str(int(seconds)) if seconds.is_integer() else str(seconds)
            else:
                out[felix] = str(value)
        return out


_FELIX_NAME_EXCEPTIONS = {
    "reportingInterval": "ReportingIntervalSecs",
    "reportingTTL": "ReportingTTLSecs",
    "endpointReportingDelay": "EndpointReportingDelaySecs",
    "iptablesPostWriteCheckInterval": "IptablesPostWriteCheckIntervalSecs",
    "iptablesLockTimeout": "IptablesLockTimeoutSecs",
    "nftablesMode": "NFTablesMode",
    "nftablesRefreshInterval": "NftablesRefreshInterval",
    "ipipEnabled": "IpInIpEnabled",
    "vxlanEnabled": "VXLANEnabled",
    "bpfEnabled": "BPFEnabled",
    "xdpEnabled": "XDPEnabled",
    "genericXDPEnabled": "GenericXDPEnabled",
    "floatingIPs": "FloatingIPs",
}

FELIX_PARAMETER_NAMES: dict[str, str] = {
    (info.alias or attr): _FELIX_NAME_EXCEPTIONS.get(
        info.alias or attr, (info.alias or attr)[:1].upper() + (info.alias or attr)[1:]
    )
    for attr, info in FelixConfigurationSpec.model_fields.items()
}
"""JSON name in ``FelixConfiguration.spec`` → Felix parameter name (``reportingTTL`` →
``ReportingTTLSecs``)."""

DURATION_FIELDS: frozenset[str] = frozenset(
    {
        "reportingInterval",
        "reportingTTL",
        "endpointReportingDelay",
        "iptablesRefreshInterval",
        "iptablesPostWriteCheckInterval",
        "iptablesLockTimeout",
        "ipsetsRefreshInterval",
        "nftablesRefreshInterval",
        "routeRefreshInterval",
        "interfaceRefreshInterval",
        "netlinkTimeout",
    }
)


class FelixConfiguration(Resource):
    """``FelixConfiguration``: ``default`` (global) or ``node.<hostname>`` (per host)."""

    KIND: ClassVar[str] = "FelixConfiguration"
    kind: Literal["FelixConfiguration"] = "FelixConfiguration"
    spec: FelixConfigurationSpec = Field(default_factory=FelixConfigurationSpec)


class ClusterInformationSpec(Model):
    """Spec of ClusterInformation ``default``."""

    cluster_guid: StrictStr = Field(default="", alias="clusterGUID")
    cluster_type: StrictStr = ""
    calico_version: StrictStr = ""
    datastore_ready: StrictBool | None = None
    variant: StrictStr = ""


class ClusterInformation(Resource):
    """``ClusterInformation``: cluster GUID/type, written (merged) by every region's server."""

    KIND: ClassVar[str] = "ClusterInformation"
    kind: Literal["ClusterInformation"] = "ClusterInformation"
    spec: ClusterInformationSpec = Field(default_factory=ClusterInformationSpec)
