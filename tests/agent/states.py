"""State-sequence machinery for the calc graph (Felix's ``states_for_test.go`` + expanders).

A :class:`State` says "these resources are in the datastore, so the dataplane holds exactly
these IP sets (with members), active policies/profiles and endpoint tier lists". A test is a
sequence of states; :data:`EXPANDERS` turn it into variants that must all reach the same
dataplane state at every state boundary (output must depend only on the current state), and
:data:`FLUSH_STRATEGIES` vary how often the graph is flushed. Every run goes through
:class:`~regionmesh.dataplane.recording.RecordingDataplane`, which fails on contract violations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.agent.ipset_index import named_port_set_id
from regionmesh.dataplane.messages import Member, NamedPortMember
from regionmesh.dataplane.recording import RecordingDataplane
from regionmesh.model import (
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    NetworkPolicy,
    NetworkSet,
    Profile,
    Resource,
    Tier,
    WorkloadEndpoint,
)
from regionmesh.selector import parse

HOST = "cmp1"
R1 = "openstack-region-one"
R2 = "openstack-region-two"

Key = tuple[str, str | None, str]
TierList = tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...]
NatList = tuple[tuple[str, str], ...]  # (internal, external), v4 mappings before v6


# ------------------------------------------------------------------- resource builders ----
def sg_label(sg: str) -> str:
    return f"sg.projectcalico.org/openstack-{sg}"


def wep(
    host: str,
    ns: str,
    port: str,
    ips: Iterable[str],
    sgs: Iterable[str] = (),
    *,
    labels: Mapping[str, str] | None = None,
    profiles: Iterable[str] = (),
    ports: Iterable[dict[str, Any]] = (),
    nats: Iterable[tuple[str, str]] = (),
) -> WorkloadEndpoint:
    """An OpenStack-style WorkloadEndpoint as networking-calico writes it.

    ``nats`` are ``(internalIP, externalIP)`` floating IPs (``spec.ipNATs``).
    """
    name = f"{host}-openstack-vm{port}-{port}"
    all_labels = {sg_label(s): s for s in sgs}
    all_labels |= {"projectcalico.org/namespace": ns, "projectcalico.org/orchestrator": "openstack"}
    all_labels |= dict(labels or {})
    return WorkloadEndpoint.model_validate(
        {
            "metadata": {"name": name, "namespace": ns, "labels": all_labels},
            "spec": {
                "orchestrator": "openstack",
                "workload": f"vm{port}",
                "node": host,
                "endpoint": port,
                "interfaceName": f"tap{port}"[:15],
                "mac": "02:00:00:00:00:01",
                "ipNetworks": [
                    ip if "/" in ip else (ip + ("/128" if ":" in ip else "/32")) for ip in ips
                ],
                "profiles": list(profiles),
                "ports": list(ports),
                **(
                    {"ipNATs": [{"internalIP": i, "externalIP": e} for i, e in nats]}
                    if nats
                    else {}
                ),
            },
        }
    )


def ossg_policy(
    ns: str, sg: str, ingress: list[dict[str, Any]], egress: list[dict[str, Any]]
) -> NetworkPolicy:
    """A security group as networking-calico writes it: an NP *without* ``types``."""
    return NetworkPolicy.model_validate(
        {
            "metadata": {"name": f"ossg.default.{sg}", "namespace": ns},
            "spec": {"selector": f"has({sg_label(sg)})", "ingress": ingress, "egress": egress},
        }
    )


def gnp(name: str, **spec: Any) -> GlobalNetworkPolicy:
    return GlobalNetworkPolicy.model_validate({"metadata": {"name": name}, "spec": spec})


def np(ns: str, name: str, **spec: Any) -> NetworkPolicy:
    return NetworkPolicy.model_validate({"metadata": {"name": name, "namespace": ns}, "spec": spec})


def tier(name: str, order: float | None, default_action: str | None = None) -> Tier:
    spec: dict[str, Any] = {}
    if order is not None:
        spec["order"] = order
    if default_action is not None:
        spec["defaultAction"] = default_action
    return Tier.model_validate({"metadata": {"name": name}, "spec": spec})


def profile(name: str, labels: Mapping[str, str] | None = None, **spec: Any) -> Profile:
    return Profile.model_validate(
        {"metadata": {"name": name}, "spec": {"labelsToApply": dict(labels or {}), **spec}}
    )


def gns(name: str, nets: list[str], labels: Mapping[str, str]) -> GlobalNetworkSet:
    return GlobalNetworkSet.model_validate(
        {"metadata": {"name": name, "labels": dict(labels)}, "spec": {"nets": nets}}
    )


def netset(ns: str, name: str, nets: list[str], labels: Mapping[str, str]) -> NetworkSet:
    return NetworkSet.model_validate(
        {
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
            "spec": {"nets": nets},
        }
    )


def hep(name: str, node: str, ips: list[str], labels: Mapping[str, str]) -> HostEndpoint:
    return HostEndpoint.model_validate(
        {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"node": node, "expectedIPs": ips},
        }
    )


def key_of(res: Resource) -> Key:
    return (res.KIND, res.metadata.namespace or None, res.metadata.name)


def eid(res: WorkloadEndpoint) -> str:
    return f"{res.metadata.namespace}/{res.metadata.name}"


def pid(res: NetworkPolicy | GlobalNetworkPolicy) -> str:
    if isinstance(res, NetworkPolicy):
        return f"np/{res.metadata.namespace}/{res.metadata.name}"
    return f"gnp/{res.metadata.name}"


# ------------------------------------------------------------------------------ State ----
@dataclass(frozen=True)
class State:
    """Datastore contents and the dataplane state they must produce."""

    name: str = "empty"
    resources: tuple[Resource, ...] = ()
    ipsets: Mapping[str, frozenset[Member]] = field(default_factory=dict)
    policies: frozenset[str] = frozenset()
    profiles: frozenset[str] = frozenset()
    endpoints: Mapping[str, TierList] = field(default_factory=dict)
    endpoint_profiles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    endpoint_nats: Mapping[str, NatList] = field(default_factory=dict)

    def named(self, name: str) -> State:
        return replace(self, name=name)

    def with_resources(self, *res: Resource) -> State:
        keys = {key_of(r) for r in res}
        kept = tuple(r for r in self.resources if key_of(r) not in keys)
        return replace(self, resources=kept + res)

    def without(self, *res: Resource) -> State:
        keys = {key_of(r) for r in res}
        return replace(self, resources=tuple(r for r in self.resources if key_of(r) not in keys))

    def with_ipset(self, selector: str, members: Iterable[str]) -> State:
        return replace(self, ipsets={**self.ipsets, parse(selector).unique_id: frozenset(members)})

    def with_named_port_set(
        self, selector: str, protocol: int, port: str, members: Iterable[tuple[str, int]]
    ) -> State:
        set_id = named_port_set_id(parse(selector), protocol, port)
        mems = frozenset(NamedPortMember(a, protocol, p) for a, p in members)
        return replace(self, ipsets={**self.ipsets, set_id: mems})

    def without_ipset(self, selector: str) -> State:
        sid = parse(selector).unique_id
        return replace(self, ipsets={k: v for k, v in self.ipsets.items() if k != sid})

    def with_policies(self, *ids: str) -> State:
        return replace(self, policies=frozenset(ids))

    def with_profiles(self, *ids: str) -> State:
        return replace(self, profiles=frozenset(ids))

    def with_endpoint(
        self,
        endpoint_id: str,
        tiers: TierList = (),
        profiles: tuple[str, ...] = (),
        nats: NatList = (),
    ) -> State:
        return replace(
            self,
            endpoints={**self.endpoints, endpoint_id: tiers},
            endpoint_profiles={**self.endpoint_profiles, endpoint_id: profiles},
            endpoint_nats={**self.endpoint_nats, endpoint_id: nats},
        )

    def without_endpoint(self, endpoint_id: str) -> State:
        return replace(
            self,
            endpoints={k: v for k, v in self.endpoints.items() if k != endpoint_id},
            endpoint_profiles={k: v for k, v in self.endpoint_profiles.items() if k != endpoint_id},
            endpoint_nats={k: v for k, v in self.endpoint_nats.items() if k != endpoint_id},
        )


EMPTY = State()


# -------------------------------------------------------------------------- expanders ----
# A "step" is (updates to apply, state expected afterwards). A sequence of states becomes a
# list of steps; expanders vary the sequence or the order of the updates inside a step.

Step = tuple[list[ResourceUpdate], State]


def transition(before: State, after: State) -> list[ResourceUpdate]:
    """Deletes for keys that vanish, then every resource of ``after`` (as a syncer resends)."""
    after_keys = {key_of(r) for r in after.resources}
    ups = [
        ResourceUpdate(*key_of(r), None) for r in before.resources if key_of(r) not in after_keys
    ]
    before_by_key = {key_of(r): r for r in before.resources}
    ups += [
        ResourceUpdate(*key_of(r), r) for r in after.resources if before_by_key.get(key_of(r)) != r
    ]
    return ups


def steps_for(states: list[State], reverse_kvs: bool = False) -> list[Step]:
    out: list[Step] = []
    prev = EMPTY
    for st in states:
        ups = transition(prev, st)
        out.append((ups[::-1] if reverse_kvs else ups, st))
        prev = st
    return out


Expander = Callable[[list[State]], list[Step]]


def _identity(states: list[State]) -> list[Step]:
    return steps_for(states)


def _reverse_kvs(states: list[State]) -> list[Step]:
    return steps_for(states, reverse_kvs=True)


def _reverse_states(states: list[State]) -> list[Step]:
    return steps_for(states[::-1])


def _insert_empties(states: list[State]) -> list[Step]:
    seq: list[State] = []
    for st in states:
        seq += [st, EMPTY]
    return steps_for(seq)


def _each_alone(states: list[State]) -> list[Step]:
    seq: list[State] = []
    for st in states:
        seq += [EMPTY, st]
    return steps_for(seq + [EMPTY])


def _squashed(states: list[State]) -> list[Step]:
    return steps_for(states[-1:])


EXPANDERS: dict[str, Expander] = {
    "as-is": _identity,
    "reverse-kvs": _reverse_kvs,
    "reverse-states": _reverse_states,
    "empties-between": _insert_empties,
    "each-alone": _each_alone,
    "squashed": _squashed,
}


# --------------------------------------------------------------------------------- run ----
FLUSH_STRATEGIES = ("per-state", "per-update")


def assert_dataplane(dp: RecordingDataplane, st: State, where: str) -> None:
    got_sets = {k: frozenset(v) for k, v in dp.ipsets.items()}
    assert got_sets == dict(st.ipsets), f"{where}: IP sets"
    assert set(dp.policies) == set(st.policies), f"{where}: active policies"
    assert set(dp.profiles) == set(st.profiles), f"{where}: active profiles"
    got_eps = {
        e: tuple(
            (t.name, t.ingress_policies, t.egress_policies, str(t.default_action)) for t in m.tiers
        )
        for e, m in dp.endpoints.items()
    }
    assert got_eps == dict(st.endpoints), f"{where}: endpoint tiers"
    got_profiles = {e: m.profile_ids for e, m in dp.endpoints.items()}
    assert got_profiles == dict(st.endpoint_profiles), f"{where}: endpoint profiles"
    got_nats = {
        e: tuple((n.internal, n.external) for n in m.ipv4_nats + m.ipv6_nats)
        for e, m in dp.endpoints.items()
    }
    want_nats = {e: st.endpoint_nats.get(e, ()) for e in st.endpoints}
    assert got_nats == want_nats, f"{where}: endpoint floating IPs"


def run_steps(steps: list[Step], flush: str, hostname: str = HOST) -> RecordingDataplane:
    """Drive a fresh graph through ``steps``; check the dataplane after each step."""
    graph = CalcGraph(hostname)
    dp = RecordingDataplane()
    graph.in_sync()
    for msg in graph.flush():
        dp.on_update(msg)
    for i, (ups, expected) in enumerate(steps):
        if flush == "per-update":
            for up in ups:
                graph.on_updates([up])
                for msg in graph.flush():
                    dp.on_update(msg)
        else:
            graph.on_updates(ups)
            for msg in graph.flush():
                dp.on_update(msg)
        assert_dataplane(dp, expected, f"step {i} ({expected.name})")
        assert graph.flush() == [], f"step {i}: a second flush must be empty"
    return dp
