"""Calico's etcd v3 key layout, exactly, as pure functions.

Resource keys: ``/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>``
(policy-model.md §4.1). Non-resource keys written by networking-calico and Felix
(openstack-driver.md §1.2): Felix status and per-endpoint status under
``/calico/felix/v2/<region_string>/host/<hostname>/…``, DHCP subnets under
``/calico/dhcp/v2/<region_string>/subnet/<id>`` (and the legacy ``/calico/dhcp/v1/subnet/<id>``),
the Neutron leader-election keys and the compaction bookkeeping keys.

This module only builds and parses strings. Region names and the region string / namespace
derived from them come from :mod:`regionmesh.model.regions`; which plural and namespacing a kind
has comes from :mod:`regionmesh.model.kinds`; nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from regionmesh.model.regions import region_string

CALICO_ROOT = "/calico/"
RESOURCES_PREFIX = "/calico/resources/v3/projectcalico.org/"
FELIX_V2_PREFIX = "/calico/felix/v2/"
DHCP_V2_PREFIX = "/calico/dhcp/v2/"
LEGACY_SUBNET_DIR = "/calico/dhcp/v1/subnet"
OPENSTACK_V2_PREFIX = "/calico/openstack/v2/"
LEGACY_NEUTRON_ELECTION_KEY = "/calico/openstack/v1/neutron_election"
COMPACTION_PREFIX = "/calico/compaction/v1/"
COMPACTION_TRIGGER_KEY = COMPACTION_PREFIX + "trigger"
COMPACTION_LAST_KEY = COMPACTION_PREFIX + "last"
ROUND_TRIP_CHECK = "round-trip-check"
REGIONMESH_PREFIX = "/calico/regionmesh/v1/"
SUBNET_REGISTRY_PREFIX = REGIONMESH_PREFIX + "subnets/"
FINDINGS_PREFIX = REGIONMESH_PREFIX + "findings/"
REGION_MISMATCH_FINDING = "region-mismatch"
"""Finding kind: a host's agent heartbeats under another region than the server's."""
UNTRANSLATABLE_SG_FINDING = "untranslatable-security-group"
"""Finding kind: a security group had rules left out (fail closed)."""
UNTRANSLATABLE_PORT_FINDING = "untranslatable-port"
"""Finding kind: a port's WorkloadEndpoint was refused by the model and not written."""
DEFAULT_ORCHESTRATOR = "openstack"


def _segment(value: str, what: str) -> str:
    if not value or "/" in value:
        raise ValueError(f"invalid {what} {value!r} for a datastore key: empty or contains '/'")
    return value


# --- resources -----------------------------------------------------------------------------


def resource_prefix(plural: str, namespace: str | None = None) -> str:
    """``…/<plural>/`` or ``…/<plural>/<namespace>/``, always with the trailing slash."""
    prefix = RESOURCES_PREFIX + _segment(plural, "plural") + "/"
    if namespace:
        prefix += _segment(namespace, "namespace") + "/"
    return prefix


def resource_key(plural: str, name: str, namespace: str | None = None) -> str:
    """The key of one resource; ``namespace`` only for namespaced kinds."""
    return resource_prefix(plural, namespace) + _segment(name, "name")


def parse_resource_key(key: str) -> tuple[str, str | None, str] | None:
    """``(plural, namespace, name)`` for a resource key, or None for any other key.

    Three segments after the API group mean a namespaced resource, two a cluster-scoped one.
    """
    if not key.startswith(RESOURCES_PREFIX):
        return None
    parts = key[len(RESOURCES_PREFIX) :].split("/")
    if any(not p for p in parts):
        return None
    if len(parts) == 2:
        return parts[0], None, parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None


# --- Felix status (libcalico-go model/statusreports.go, workloadendpointstatus.go) ------------


def escape_name(name: str) -> str:
    """Calico's ``escapeName``: ``%`` → ``%25`` then ``/`` → ``%2f``."""
    return name.replace("%", "%25").replace("/", "%2f")


def unescape_name(name: str) -> str:
    """Inverse of :func:`escape_name`."""
    return name.replace("%2f", "/").replace("%25", "%")


def felix_hosts_prefix(region: str | None) -> str:
    """``/calico/felix/v2/<region_string>/host/`` — everything Felix reports for a region."""
    return f"{FELIX_V2_PREFIX}{region_string(region)}/host/"


def felix_host_dir(region: str | None, hostname: str) -> str:
    """``/calico/felix/v2/<region_string>/host/<hostname>`` (no trailing slash)."""
    return felix_hosts_prefix(region) + _segment(hostname, "hostname")


def felix_status_key(region: str | None, hostname: str) -> str:
    """The agent heartbeat key, written with a lease (TTL = ReportingTTLSecs)."""
    return felix_host_dir(region, hostname) + "/status"


def felix_last_reported_status_key(region: str | None, hostname: str) -> str:
    """The agent's last heartbeat, written without a lease."""
    return felix_host_dir(region, hostname) + "/last_reported_status"


def workload_id(namespace: str, device_id: str) -> str:
    """The v1 workload id of an OpenStack endpoint: ``<namespace>/<device_id>``."""
    return f"{namespace}/{device_id}"


def endpoint_status_key(
    region: str | None,
    hostname: str,
    workload: str,
    endpoint_id: str,
    orchestrator: str = DEFAULT_ORCHESTRATOR,
) -> str:
    """Per-port status key; ``workload`` is the unescaped workload id (see :func:`workload_id`)."""
    return (
        f"{felix_host_dir(region, hostname)}/workload/{_segment(orchestrator, 'orchestrator')}/"
        f"{escape_name(workload)}/endpoint/{_segment(endpoint_id, 'endpoint id')}"
    )


def round_trip_key(region: str | None) -> str:
    """``/calico/felix/v2/<region_string>/host/round-trip-check`` (watch liveness probe)."""
    return felix_hosts_prefix(region) + ROUND_TRIP_CHECK


_STATUS_RE = re.compile(r"^/?calico/felix/v2/([^/]+)/host/([^/]+)/status$")
_LAST_STATUS_RE = re.compile(r"^/?calico/felix/v2/([^/]+)/host/([^/]+)/last_reported_status$")
_ENDPOINT_STATUS_RE = re.compile(
    r"^/?calico/felix/v2/([^/]+)/host/([^/]+)/workload/([^/]+)/([^/]+)/endpoint/([^/]+)$"
)


@dataclass(frozen=True, slots=True)
class FelixStatusKey:
    """A parsed heartbeat key (``last`` tells ``last_reported_status`` from ``status``)."""

    region_string: str
    hostname: str
    last: bool = False


@dataclass(frozen=True, slots=True)
class EndpointStatusKey:
    """A parsed per-endpoint status key; ``workload`` is unescaped."""

    region_string: str
    hostname: str
    orchestrator: str
    workload: str
    endpoint_id: str


def parse_felix_status_key(key: str) -> FelixStatusKey | None:
    """Parse a ``…/status`` or ``…/last_reported_status`` key, or None."""
    if m := _STATUS_RE.match(key):
        return FelixStatusKey(m.group(1), m.group(2), last=False)
    if m := _LAST_STATUS_RE.match(key):
        return FelixStatusKey(m.group(1), m.group(2), last=True)
    return None


def parse_endpoint_status_key(key: str) -> EndpointStatusKey | None:
    """Parse a per-endpoint status key, or None."""
    m = _ENDPOINT_STATUS_RE.match(key)
    if m is None:
        return None
    return EndpointStatusKey(
        m.group(1), m.group(2), m.group(3), unescape_name(m.group(4)), m.group(5)
    )


# --- DHCP subnets (networking-calico datamodel_v2 / v1) ------------------------------------


def subnet_dir(region: str | None) -> str:
    """``/calico/dhcp/v2/<region_string>/subnet`` (no trailing slash, as networking-calico)."""
    return f"{DHCP_V2_PREFIX}{region_string(region)}/subnet"


def subnet_key(region: str | None, subnet_id: str) -> str:
    """``/calico/dhcp/v2/<region_string>/subnet/<subnet_id>``."""
    return f"{subnet_dir(region)}/{_segment(subnet_id, 'subnet id')}"


def legacy_subnet_key(subnet_id: str) -> str:
    """``/calico/dhcp/v1/subnet/<subnet_id>`` (read as a fallback, deleted by resync)."""
    return f"{LEGACY_SUBNET_DIR}/{_segment(subnet_id, 'subnet id')}"


def parse_subnet_key(key: str) -> tuple[str | None, str] | None:
    """``(region_string, subnet_id)`` for a v2 subnet key, ``(None, id)`` for a v1 one, or None."""
    if key.startswith(LEGACY_SUBNET_DIR + "/"):
        rest = key[len(LEGACY_SUBNET_DIR) + 1 :]
        return (None, rest) if rest and "/" not in rest else None
    if key.startswith(DHCP_V2_PREFIX):
        parts = key[len(DHCP_V2_PREFIX) :].split("/")
        if len(parts) == 3 and parts[1] == "subnet" and parts[0] and parts[2]:
            return parts[0], parts[2]
    return None


# --- Neutron election ----------------------------------------------------------------------


def subnet_registry_key(region: str | None, subnet_id: str) -> str:
    """regionmesh's cross-region subnet claim:
    ``/calico/regionmesh/v1/subnets/<region_string>/<subnet_id>``."""
    return f"{SUBNET_REGISTRY_PREFIX}{region_string(region)}/{_segment(subnet_id, 'subnet id')}"


def findings_prefix(region: str | None, kind: str | None = None) -> str:
    """``/calico/regionmesh/v1/findings/<region_string>/[<kind>/]``."""
    prefix = f"{FINDINGS_PREFIX}{region_string(region)}/"
    return prefix + (f"{_segment(kind, 'finding kind')}/" if kind else "")


MIRROR_STATUS_PREFIX = REGIONMESH_PREFIX + "mirrors/"


def mirror_status_key(region: str | None) -> str:
    """``/calico/regionmesh/v1/mirrors/<region_string>``: the status of the region's
    address-group mirrors (written by its master, read by doctor)."""
    return MIRROR_STATUS_PREFIX + region_string(region)


def finding_key(region: str | None, kind: str, subject: str) -> str:
    """``/calico/regionmesh/v1/findings/<region_string>/<kind>/<subject>``."""
    return findings_prefix(region, kind) + subject


def neutron_election_key(region: str | None) -> str:
    """``/calico/openstack/v2/<region_string>/neutron_election`` (one master per region)."""
    return f"{OPENSTACK_V2_PREFIX}{region_string(region)}/neutron_election"


def openstack_region_prefix(region: str | None) -> str:
    """``/calico/openstack/v2/<region_string>/`` — the region's election (and lease) keys."""
    return f"{OPENSTACK_V2_PREFIX}{region_string(region)}/"


# --- compaction bookkeeping (networking-calico's compaction.py) ----------------------------


def compaction_last_key() -> str:
    """``/calico/compaction/v1/last`` — the revision the last compaction was done at."""
    return COMPACTION_LAST_KEY


def compaction_trigger_key() -> str:
    """``/calico/compaction/v1/trigger`` — the leased key that schedules the next compaction."""
    return COMPACTION_TRIGGER_KEY


# --- regionmesh's own records ---------------------------------------------------------------


def region_subnet_registry_prefix(region: str | None) -> str:
    """``/calico/regionmesh/v1/subnets/<region_string>/`` — one region's subnet claims."""
    return f"{SUBNET_REGISTRY_PREFIX}{region_string(region)}/"


def dhcp_region_prefix(region: str | None) -> str:
    """``/calico/dhcp/v2/<region_string>/`` — everything DHCP of one region."""
    return f"{DHCP_V2_PREFIX}{region_string(region)}/"


def felix_region_prefix(region: str | None) -> str:
    """``/calico/felix/v2/<region_string>/`` — everything Felix of one region."""
    return f"{FELIX_V2_PREFIX}{region_string(region)}/"


# --- byte ranges ---------------------------------------------------------------------------


def prefix_range_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    None means "no upper bound" (empty prefix, or a prefix of only ``0xff`` bytes), which is
    what etcd's ``range_end = "\\0"`` expresses.
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return None
