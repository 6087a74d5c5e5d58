"""regionmesh.cli package (see docs/DESIGN.md)."""
