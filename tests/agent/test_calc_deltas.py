"""Focused delta tests: a change emits only what it affects; the label index against brute force."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.agent.states import HOST, R1, key_of, wep
from tests.agent.test_calc_states import SEL_A, openstack_full, vm1, vm2

from regionmesh.agent.graph import CalcGraph, ResourceUpdate
from regionmesh.agent.label_index import LabelIndex, restriction_of
from regionmesh.dataplane.messages import IPSetDeltaUpdate, WorkloadEndpointUpdate
from regionmesh.dataplane.recording import RecordingDataplane
from regionmesh.selector import parse


def _loaded() -> tuple[CalcGraph, RecordingDataplane]:
    graph = CalcGraph(HOST)
    dp = RecordingDataplane()
    graph.on_updates(ResourceUpdate(*key_of(r), r) for r in openstack_full.resources)
    graph.in_sync()
    for msg in graph.flush():
        dp.on_update(msg)
    return graph, dp


def test_label_change_emits_only_the_affected_ipset_delta() -> None:
    graph, dp = _loaded()
    moved = wep("cmp2", R1, "p2", ["10.1.0.2"], ["sgb"])
    graph.on_updates([ResourceUpdate(*key_of(moved), moved)])
    assert graph.flush() == [
        IPSetDeltaUpdate(parse(SEL_A).unique_id, frozenset(), frozenset({"10.1.0.2"}))
    ]


def test_irrelevant_label_change_emits_nothing() -> None:
    graph, _ = _loaded()
    relabelled = wep("cmp2", R1, "p2", ["10.1.0.2"], ["sga"], labels={"colour": "green"})
    graph.on_updates([ResourceUpdate(*key_of(relabelled), relabelled)])
    assert graph.flush() == []


def test_local_label_change_updates_only_that_endpoint() -> None:
    graph, dp = _loaded()
    lonely = wep(HOST, R1, "p1", ["10.1.0.1"], [])  # vm1 leaves sga
    graph.on_updates([ResourceUpdate(*key_of(lonely), lonely)])
    msgs = graph.flush()
    for msg in msgs:
        dp.on_update(msg)
    updated = [m.id for m in msgs if isinstance(m, WorkloadEndpointUpdate)]
    assert updated == [f"{R1}/{vm1.metadata.name}"]
    assert dp.endpoint_policy_order(updated[0]) == [("default", ["gnp/allow-tcp-80"], [])]
    assert "np/openstack-region-one/ossg.default.sga" not in dp.policies


def test_address_change_without_label_change_is_a_member_delta() -> None:
    graph, _ = _loaded()
    renumbered = wep("cmp2", R1, "p2", ["10.1.0.22"], ["sga"])
    graph.on_updates([ResourceUpdate(*key_of(renumbered), renumbered)])
    assert graph.flush() == [
        IPSetDeltaUpdate(parse(SEL_A).unique_id, frozenset({"10.1.0.22"}), frozenset({"10.1.0.2"}))
    ]


def test_delete_then_recreate_in_one_window_is_a_no_op() -> None:
    graph, _ = _loaded()
    graph.on_updates([ResourceUpdate(*key_of(vm2), None)])
    graph.on_updates([ResourceUpdate(*key_of(vm2), vm2)])
    assert graph.flush() == []


def test_restriction_prefers_a_specific_key() -> None:
    sel = parse('(projectcalico.org/namespace == "ns" && has(sg.projectcalico.org/openstack-x))')
    restriction = restriction_of(sel)
    assert restriction is not None and restriction.key == "sg.projectcalico.org/openstack-x"
    assert restriction_of(parse("all()")) is None
    assert restriction_of(parse('a != "x"')) is None
    either = restriction_of(parse('a == "1" || a in {"2", "3"}'))
    assert either is not None and either.values == frozenset({"1", "2", "3"})


# ------------------------------------------------ label index vs brute force (property) ----
KEYS = ["a", "b", "c", "projectcalico.org/namespace"]
VALUES = ["1", "2", "x"]
SELECTORS = [
    "all()",
    "has(a)",
    "!has(a)",
    'a == "1"',
    'a != "1"',
    'a in {"1", "2"}',
    'a not in {"1"}',
    'has(a) && b == "2"',
    'a == "1" || b == "2"',
    'a == "1" || has(c)',
    '!(a != "x")',
    'projectcalico.org/namespace == "x" && has(b)',
    'c starts with "x" || (a == "2" && !has(b))',
    'b contains "2" && a ends with "1"',
]

labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
op_st = st.one_of(
    st.tuples(st.just("item"), st.integers(0, 5), labels_st),
    st.tuples(st.just("del-item"), st.integers(0, 5), st.just({})),
    st.tuples(st.just("sel"), st.integers(0, 4), st.sampled_from(SELECTORS)),
    st.tuples(st.just("del-sel"), st.integers(0, 4), st.just("")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op_st, max_size=40))
def test_label_index_matches_brute_force(ops: list[tuple[str, int, object]]) -> None:
    pairs: set[tuple[int, int]] = set()

    def started(s: int, i: int) -> None:
        assert (s, i) not in pairs, "match started twice"
        pairs.add((s, i))

    def stopped(s: int, i: int) -> None:
        assert (s, i) in pairs, "match stopped without start"
        pairs.remove((s, i))

    index: LabelIndex[int, int] = LabelIndex(started, stopped)
    items: dict[int, dict[str, str]] = {}
    sels: dict[int, str] = {}
    for op, n, arg in ops:
        if op == "item":
            assert isinstance(arg, dict)
            items[n] = dict(arg)
            index.update_labels(n, arg)
        elif op == "del-item":
            items.pop(n, None)
            index.delete_labels(n)
        elif op == "sel":
            assert isinstance(arg, str)
            sels[n] = arg
            index.update_selector(n, parse(arg))
        else:
            sels.pop(n, None)
            index.delete_selector(n)
        expected = {
            (s, i)
            for s, text in sels.items()
            for i, lab in items.items()
            if parse(text).evaluate(lab)
        }
        assert pairs == expected


def test_label_index_random_churn_is_consistent() -> None:
    """Larger random churn than hypothesis explores, against brute force at the end."""
    rng = random.Random(7)
    pairs: set[tuple[int, int]] = set()
    index: LabelIndex[int, int] = LabelIndex(
        lambda s, i: pairs.add((s, i)), lambda s, i: pairs.remove((s, i))
    )
    items: dict[int, dict[str, str]] = {}
    sels: dict[int, str] = {}
    for _ in range(3000):
        r = rng.random()
        if r < 0.6:
            n = rng.randrange(60)
            lab = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randrange(len(KEYS) + 1))}
            items[n] = lab
            index.update_labels(n, lab)
        elif r < 0.7:
            n = rng.randrange(60)
            items.pop(n, None)
            index.delete_labels(n)
        else:
            n = rng.randrange(20)
            text = rng.choice(SELECTORS)
            sels[n] = text
            index.update_selector(n, parse(text))
    expected = {
        (s, i) for s, text in sels.items() for i, lab in items.items() if parse(text).evaluate(lab)
    }
    assert pairs == expected
