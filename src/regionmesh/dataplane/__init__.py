"""regionmesh.dataplane: turns dataplane messages into nftables, routes and sysctls.

The package knows only its own messages (:mod:`.messages`); it imports nothing else from the
project except :mod:`regionmesh.errors`. Public names:

* messages: :class:`HostConfig`, :class:`IPSetUpdate`, :class:`IPSetDeltaUpdate`,
  :class:`IPSetRemove`, :class:`ActivePolicyUpdate`, :class:`ActivePolicyRemove`,
  :class:`ActiveProfileUpdate`, :class:`ActiveProfileRemove`, :class:`WorkloadEndpointUpdate`,
  :class:`WorkloadEndpointRemove`, :class:`InSync` and their parts (:class:`Rule`,
  :class:`NatMapping`, ...);
* :class:`Dataplane` (the Protocol), :class:`NftDataplane` (the kernel driver),
  :class:`RecordingDataplane` (contract-checking test double);
* runners: :class:`SubprocessNft`, :class:`FakeNft`, :class:`NetlinkRoutes`.

See docs/design/dataplane.md for the table layout and the message contract.
"""

from regionmesh.dataplane.api import Dataplane
from regionmesh.dataplane.driver import NftDataplane
from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.dataplane.messages import (
    Action,
    ActivePolicyRemove,
    ActivePolicyUpdate,
    ActiveProfileRemove,
    ActiveProfileUpdate,
    EndpointToHostAction,
    HostConfig,
    ICMPMatch,
    InSync,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetType,
    IPSetUpdate,
    Message,
    NamedPortMember,
    NatMapping,
    PortRange,
    Rule,
    TierDefaultAction,
    TierInfo,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)
from regionmesh.dataplane.recording import RecordingDataplane
from regionmesh.dataplane.runner import (
    EndpointRoute,
    NetlinkRoutes,
    NftRunner,
    RouteRunner,
    SubprocessNft,
)

__all__ = [
    "Action",
    "ActivePolicyRemove",
    "ActivePolicyUpdate",
    "ActiveProfileRemove",
    "ActiveProfileUpdate",
    "Dataplane",
    "EndpointRoute",
    "EndpointToHostAction",
    "FakeNft",
    "HostConfig",
    "ICMPMatch",
    "IPSetDeltaUpdate",
    "IPSetRemove",
    "IPSetType",
    "IPSetUpdate",
    "InSync",
    "Message",
    "NamedPortMember",
    "NatMapping",
    "NetlinkRoutes",
    "NftDataplane",
    "NftRunner",
    "PortRange",
    "RecordingDataplane",
    "RouteRunner",
    "Rule",
    "SubprocessNft",
    "TierDefaultAction",
    "TierInfo",
    "WorkloadEndpointRemove",
    "WorkloadEndpointUpdate",
]
