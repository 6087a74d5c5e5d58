"""OpenStack region names and the identifiers derived from them.

A region (``[calico] openstack_region`` in neutron.conf, ``OpenstackRegion`` for the agent) must be
a DNS-1123 label of at most 46 characters, so that ``openstack-region-<r>`` is still a valid
63-character namespace. From it come the *region string* used in private key paths
(``region-<r>`` or ``no-region``) and the *namespace* of the region's v3 resources
(``openstack-region-<r>`` or ``openstack``). This module only names and checks; where those
strings appear in keys is :mod:`regionmesh.datastore.keys`'s business.
"""

from __future__ import annotations

import re

from regionmesh.errors import ConfigError

REGION_MAX_LENGTH = 46
REGION_RULE = (
    "a DNS-1123 label of at most 46 characters: lower-case letters, digits and '-', "
    "starting and ending with a letter or digit (regex ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)"
)
_REGION_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
REGION_NAMESPACE_PREFIX = "openstack-region-"
NO_REGION_NAMESPACE = "openstack"


def region_problem(region: str) -> str | None:
    """Return why ``region`` is not a valid region name, or None when it is valid."""
    if not _REGION_RE.match(region):
        return REGION_RULE
    if len(region) > REGION_MAX_LENGTH:
        return f"{REGION_RULE} (it is {len(region)} characters long)"
    return None


def validate_region(region: str | None, *, option: str) -> str | None:
    """Check a configured region; raise ConfigError naming ``option``, the value and the rule.

    ``None`` and the empty string mean "no region" and are returned as None.
    """
    if region is None or region == "":
        return None
    problem = region_problem(region)
    if problem is not None:
        raise ConfigError(f"invalid value {region!r} for {option}: must be {problem}")
    return region


REGION_STRING_PREFIX = "region-"
NO_REGION_STRING = "no-region"


def region_string(region: str | None) -> str:
    """``region-<r>``, or ``no-region`` when no region is configured."""
    return f"{REGION_STRING_PREFIX}{region}" if region else NO_REGION_STRING


def region_of_region_string(value: str) -> str | None:
    """The inverse of :func:`region_string`: ``region-one`` → ``one``; ``no-region`` (or any
    other string) → None."""
    if value.startswith(REGION_STRING_PREFIX):
        return value[len(REGION_STRING_PREFIX) :] or None
    return None


def region_namespace(region: str | None) -> str:
    """``openstack-region-<r>``, or ``openstack`` when no region is configured."""
    return f"{REGION_NAMESPACE_PREFIX}{region}" if region else NO_REGION_NAMESPACE


def region_of_namespace(namespace: str) -> str | None:
    """The region whose namespace this is, or None for any other namespace."""
    if namespace.startswith(REGION_NAMESPACE_PREFIX):
        return namespace[len(REGION_NAMESPACE_PREFIX) :] or None
    return None
