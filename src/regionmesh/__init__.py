"""regionmesh: Calico-compatible network security for multi-region OpenStack.

The package is layered (see ``docs/DESIGN.md`` and ``.importlinter``): ``selector`` →
``model`` → ``datastore`` | ``policy`` | ``dataplane`` → ``openstack`` | ``agent`` | ``cli``.
This module only carries the version.
"""

__version__ = "0.1.0"
