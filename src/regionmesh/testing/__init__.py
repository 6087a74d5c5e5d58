"""Helpers that start real components for tests and benchmarks (never imported by services).

:mod:`regionmesh.testing.etcd_server` starts a throw-away etcd on free loopback ports;
:mod:`regionmesh.testing.etcd_cluster` a multi-member cluster whose members can be killed,
frozen and restarted; :mod:`regionmesh.testing.tcp_proxy` a relay that can black-hole. Test
fixtures (``tests/conftest.py``) and benchmarks (``bench/``) share these helpers; nothing here
fakes a component.
"""
