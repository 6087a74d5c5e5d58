"""RecordingDataplane enforces the message ordering contract."""

from __future__ import annotations

import pytest
from dp_scenario import IP, POL_WEB, SET_CLIENT, endpoint, snapshot, web_policy

from regionmesh.dataplane import (
    ActivePolicyRemove,
    IPSetDeltaUpdate,
    IPSetRemove,
    IPSetUpdate,
    RecordingDataplane,
    WorkloadEndpointRemove,
)
from regionmesh.errors import DataplaneContractError


def loaded() -> RecordingDataplane:
    dp = RecordingDataplane()
    for msg in snapshot():
        dp.on_update(msg)
    return dp


def test_snapshot_is_accepted_and_recorded() -> None:
    dp = loaded()
    assert dp.in_sync and dp.ipsets[SET_CLIENT] == {IP["b"], IP["c"]}
    assert dp.endpoint_policy_order("host1/openstack/a") == [("default", [POL_WEB], [POL_WEB])]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (IPSetDeltaUpdate("s:nope", added=frozenset({"10.0.0.1"})), "unknown set"),
        (IPSetRemove(SET_CLIENT), "removed while used"),
        (ActivePolicyRemove(POL_WEB), "removed while used by endpoints"),
        (ActivePolicyRemove("np/x/y"), "unknown policy"),
        (WorkloadEndpointRemove("nope"), "unknown endpoint"),
        (endpoint("a", policy="np/x/missing"), "unknown policies"),
    ],
)
def test_violations(message: object, reason: str) -> None:
    dp = loaded()
    with pytest.raises(DataplaneContractError, match=reason):
        dp.on_update(message)  # type: ignore[arg-type]


def test_policy_before_its_set_is_a_violation() -> None:
    dp = RecordingDataplane()
    with pytest.raises(DataplaneContractError, match="unknown IP sets"):
        dp.on_update(web_policy())
    dp.on_update(IPSetUpdate(SET_CLIENT, frozenset()))
    dp.on_update(web_policy())


def test_reverse_order_removal_is_fine() -> None:
    dp = loaded()
    dp.on_update(endpoint("a", policy=""))
    dp.on_update(ActivePolicyRemove(POL_WEB))
    dp.on_update(IPSetRemove(SET_CLIENT))
    assert SET_CLIENT not in dp.ipsets
