"""regionmesh.dhcp: the compute-host DHCP service (networking-calico's ``calico-dhcp-agent``).

A per-host process beside the agent, not part of the Neutron server: :mod:`.records` decodes
subnet records and this host's endpoints, :mod:`.render` decides what each network's dnsmasq
serves and renders its files, :mod:`.agent` mirrors the datastore and keeps a supervisor in
step, :mod:`.dnsmasq` runs the dnsmasq processes (alias links through
:mod:`regionmesh.dataplane.links`). The command is :mod:`regionmesh.cli.dhcp_cmd`; see
docs/dhcp.md.
"""
