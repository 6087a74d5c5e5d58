"""regionmesh.openstack package (see docs/DESIGN.md)."""
