"""Diagnosis: turn what the datastore holds across regions into findings with fixes.

:mod:`regionmesh.diagnosis.findings` collects the facts (endpoints, heartbeats, DHCP subnets,
findings the Neutron side recorded, store size) and checks them. It sits beside ``agent`` and
``openstack`` (it reads what both write, through :mod:`regionmesh.datastore` and
:mod:`regionmesh.model`) and below ``cli``, which prints the findings.
"""
