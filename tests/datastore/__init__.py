"""Tests of regionmesh.datastore (a package so its module names do not clash with other areas)."""
