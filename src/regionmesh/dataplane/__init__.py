"""regionmesh.dataplane: turns dataplane messages into nftables, routes and sysctls.

The package knows only its own messages (:mod:`.messages`); it imports nothing else from the
project except :mod:`regionmesh.errors`. Public names:

* messages: :class:`HostConfig`, :class:`IPSetUpdate`, :class:`IPSetDeltaUpdate`,
  :class:`IPSetRemove`, :class:`ActivePolicyUpdate`, :class:`ActivePolicyRemove`,
  :class:`ActiveProfileUpdate`, :class:`ActiveProfileRemove`, :class:`WorkloadEndpointUpdate`,
  :class:`WorkloadEndpointRemove`, :class:`InSync` and their parts (:class:`Rule`,
  :class:`NatMapping`, ...);
* :class:`Dataplane` (the Protocol) and :class:`RecordingDataplane` (contract-checking test
  double).

The package face is pure (messages, the Protocol, the recorder): importing it loads neither
pyroute2 nor the driver. Import the kernel side from its modules:
:class:`~regionmesh.dataplane.driver.NftDataplane` (the driver),
:mod:`regionmesh.dataplane.runner` (:class:`SubprocessNft`, :class:`NetlinkRoutes`,
:class:`EndpointRoute`, the runner Protocols) and :class:`~regionmesh.dataplane.fakenft.FakeNft`.

See docs/design/dataplane.md for the table layout and the message contract.
"""

from regionmesh.dataplane.api import Dataplane
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

__all__ = [
    "Action",
    "ActivePolicyRemove",
    "ActivePolicyUpdate",
    "ActiveProfileRemove",
    "ActiveProfileUpdate",
    "Dataplane",
    "EndpointToHostAction",
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
    "PortRange",
    "RecordingDataplane",
    "Rule",
    "TierDefaultAction",
    "TierInfo",
    "WorkloadEndpointRemove",
    "WorkloadEndpointUpdate",
]
