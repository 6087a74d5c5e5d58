"""The example files shipped with the package: the demo's two-region cloud and its policy.

``two-region-cloud.yaml`` (a ``regionmesh cloud apply`` file: regions one and two, their
networks, security groups and VMs) and ``allow-tcp-80.yaml`` (the cross-region
GlobalNetworkPolicy the README and the demo apply). They are package data, so ``regionmesh
demo`` works from an installed package in any directory; this module only finds them (through
:mod:`importlib.resources`), reading them is the caller's business.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CLOUD = "two-region-cloud.yaml"
POLICY = "allow-tcp-80.yaml"

__all__ = ["CLOUD", "POLICY", "example_path"]


def example_path(name: str) -> Path:
    """The filesystem path of the shipped example ``name`` (e.g. :data:`CLOUD`)."""
    resource = files(__name__).joinpath(name)
    # installed as plain files (wheel/editable install), so the Traversable is a real path
    return Path(str(resource))
