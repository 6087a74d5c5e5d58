"""Helpers that start real components for tests and benchmarks (never imported by services).

:mod:`regionmesh.testing.etcd_server` starts a throw-away etcd on free loopback ports. Test
fixtures (``tests/conftest.py``) and benchmarks (``bench/``) share these helpers; nothing here
fakes a component.
"""
