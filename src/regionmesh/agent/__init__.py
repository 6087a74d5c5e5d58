"""regionmesh.agent package (see docs/DESIGN.md)."""
