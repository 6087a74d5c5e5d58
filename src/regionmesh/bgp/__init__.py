"""``regionmesh bgp``: distribute VM routes between compute hosts with BIRD 2 (calico-node's
confd + BIRD).

Pure parts: :mod:`.peers` (who peers with whom, from Node / BGPConfiguration / BGPPeer),
:mod:`.render` (the BIRD 2 configuration text) and :mod:`.status` (parsing ``birdc`` output).
The only module that runs ``bird``/``birdc`` or opens the control socket is :mod:`.bird`;
:mod:`.daemon` is the process loop (register the Node, list+watch the BGP resources, render,
reconfigure, supervise). Programming the VM routes themselves is the agent's job; this package
only announces the routes the agent made and installs the peers' routes.
"""
