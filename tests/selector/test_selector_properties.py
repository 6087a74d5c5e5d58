"""Property tests: random selectors × random label maps.

Selectors are generated as *text* with random legal spellings (quotes, spaces/tabs, ``notin``,
``startswith``, redundant parentheses and bangs) together with an independent oracle written
straight from the semantics table of policy-model.md §1.3. Then: compiled evaluator == naive
evaluator == oracle, and the canonical text re-parses to an equal selector with the same text.
A second property feeds near-grammatical garbage: parse either succeeds (and round-trips) or
raises SelectorError with a column inside the text, never anything else.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from regionmesh.selector import SelectorError, and_, parse, prefix_keys, replace_all

Labels = dict[str, str]
Oracle = Callable[[Labels], bool]
Gen = tuple[str, Oracle]

KEYS = ["a", "b", "has", "in", "not", "contains", "sg.projectcalico.org/openstack-1", "x-y_z/1.2"]
VALUES = ["", "x", "xy", "yx", "X", "'", '"', "a b", "&&", "\u00e9", "\\", "\n", "()", "all()"]

ws = st.sampled_from(["", " ", "\t", "  ", " \t "])
ws1 = st.sampled_from([" ", "\t", "  ", " \t "])
labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=5)


@st.composite
def literal(draw: st.DrawFn, value: str) -> str:
    if '"' in value:
        return f"'{value}'"
    if "'" in value:
        return f'"{value}"'
    q = draw(st.sampled_from(["'", '"']))
    return f"{q}{value}{q}"


@st.composite
def leaf(draw: st.DrawFn) -> Gen:
    key = draw(st.sampled_from(KEYS))
    kind = draw(
        st.sampled_from(
            ["has", "all", "global", "eq", "ne", "contains", "starts", "ends", "in", "notin"]
        )
    )
    if kind == "has":
        return f"has({draw(ws)}{key}{draw(ws)})", lambda lb: key in lb
    if kind == "all":
        return f"all({draw(ws)})", lambda lb: True
    if kind == "global":
        return f"global({draw(ws)})", lambda lb: True
    if kind in ("in", "notin"):
        values = draw(st.lists(st.sampled_from(VALUES), max_size=4))
        items = [draw(literal(v)) for v in values]
        body = "".join(f"{draw(ws)}{it}{draw(ws)}," for it in items)
        if items and not draw(st.booleans()):
            body = body[:-1]  # the trailing comma is optional
        if kind == "in":
            op = "in"
            oracle: Oracle = lambda lb: key in lb and lb[key] in values  # noqa: E731
        else:
            op = f"not{draw(ws)}in"
            oracle = lambda lb: key not in lb or lb[key] not in values  # noqa: E731
        return f"{key}{draw(ws1)}{op}{draw(ws)}{{{body}{draw(ws)}}}", oracle
    value = draw(st.sampled_from(VALUES))
    lit = draw(literal(value))
    if kind == "eq":
        return f"{key}{draw(ws)}=={draw(ws)}{lit}", lambda lb: lb.get(key) == value
    if kind == "ne":
        return f"{key}{draw(ws)}!={draw(ws)}{lit}", lambda lb: key not in lb or lb[key] != value
    word = {
        "contains": "contains",
        "starts": f"starts{draw(ws)}with",
        "ends": f"ends{draw(ws)}with",
    }[kind]
    test: Callable[[str, str], bool] = {
        "contains": lambda v, x: x in v,
        "starts": lambda v, x: v.startswith(x),
        "ends": lambda v, x: v.endswith(x),
    }[kind]
    return f"{key}{draw(ws1)}{word}{draw(ws)}{lit}", lambda lb: key in lb and test(lb[key], value)


@st.composite
def banged_leaf(draw: st.DrawFn) -> Gen:
    """A leaf with 0–3 bangs written directly in front (``!`` binds to that one primary)."""
    text, oracle = draw(leaf())
    bangs = draw(st.integers(0, 3))
    prefix = "".join("!" + draw(ws) for _ in range(bangs))
    return prefix + text, (lambda lb: oracle(lb) != (bangs % 2 == 1))


@st.composite
def precedence(draw: st.DrawFn) -> Gen:
    """Three leaves joined by && and || without parentheses: && binds tighter."""
    (ta, a), (tb, b), (tc, c) = (draw(banged_leaf()) for _ in range(3))
    if draw(st.booleans()):
        return f"{ta} || {tb}{draw(ws)}&&{draw(ws)}{tc}", lambda lb: a(lb) or (b(lb) and c(lb))
    return f"{ta}{draw(ws)}&&{draw(ws)}{tb} || {tc}", lambda lb: (a(lb) and b(lb)) or c(lb)


def combine(children: st.SearchStrategy[Gen]) -> st.SearchStrategy[Gen]:
    @st.composite
    def build(draw: st.DrawFn) -> Gen:
        shape = draw(st.sampled_from(["and", "or", "not", "paren"]))
        if shape == "not":
            text, oracle = draw(children)
            bangs = draw(st.integers(1, 3))
            prefix = "".join("!" + draw(ws) for _ in range(bangs))
            # ``!`` binds to one primary, so a compound operand needs parentheses.
            body = f"({text})"
            return prefix + body, (lambda lb: oracle(lb) != (bangs % 2 == 1))
        if shape == "paren":
            text, oracle = draw(children)
            return f"({draw(ws)}{text}{draw(ws)})", oracle
        parts = draw(st.lists(children, min_size=2, max_size=4))
        # Parenthesise each part so the oracle's grouping is the text's grouping.
        sep = "&&" if shape == "and" else "||"
        text = f"{draw(ws)}{sep}{draw(ws)}".join(f"({t})" for t, _ in parts)
        oracles = [o for _, o in parts]
        if shape == "and":
            return text, lambda lb: all(o(lb) for o in oracles)
        return text, lambda lb: any(o(lb) for o in oracles)

    return build()


selectors = st.recursive(banged_leaf() | precedence(), combine, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(selectors, st.lists(labels_st, min_size=1, max_size=8), ws, ws)
def test_evaluators_agree_with_oracle(
    gen: Gen, label_maps: list[Labels], lead: str, tail: str
) -> None:
    text, oracle = gen
    sel = parse(lead + text + tail)
    again = parse(str(sel))
    assert again == sel and str(again) == str(sel) and again.root == sel.root
    assert again.unique_id == sel.unique_id
    for labels in label_maps:
        expected = oracle(labels)
        assert sel.evaluate(labels) is expected
        assert sel._evaluate_naive(labels) is expected
        assert again.evaluate(labels) is expected


@settings(max_examples=200, deadline=None)
@given(st.lists(selectors, min_size=0, max_size=3), st.lists(labels_st, min_size=1, max_size=5))
def test_rewrites_keep_semantics(gens: list[Gen], label_maps: list[Labels]) -> None:
    sels = [parse(t) for t, _ in gens]
    both = and_(*sels)
    assert parse(str(both)) == both
    prefixed = prefix_keys(both, "pcns.")
    assert parse(str(prefixed)) == prefixed
    flipped = replace_all(both, parse("!has(zz)"))
    assert parse(str(flipped)) == flipped
    for labels in label_maps:
        expected = all(o(labels) for _, o in gens)
        assert both.evaluate(labels) is expected is both._evaluate_naive(labels)
        moved = {"pcns." + k: v for k, v in labels.items()}
        assert prefixed.evaluate(moved) is expected
        assert flipped.evaluate(labels) is flipped._evaluate_naive(labels)


FRAGMENTS = [
    "a",
    "b",
    "has(",
    "all(",
    "global(",
    ")",
    "(",
    "{",
    "}",
    ",",
    "==",
    "!=",
    "!",
    "=",
    "&&",
    "||",
    "&",
    "|",
    "in",
    "not",
    "contains",
    "starts",
    "with",
    "ends",
    "'x'",
    '"y"',
    "'",
    '"',
    " ",
    "\t",
    "\n",
    "%",
    "\u00e9",
    "-",
    ".",
    "/",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), labels_st)
def test_garbage_never_crashes(pieces: list[str], labels: Labels) -> None:
    text = "".join(pieces)
    try:
        sel = parse(text)
    except SelectorError as err:
        assert err.text == text
        assert 0 <= err.column <= len(text)
        return
    assert parse(str(sel)) == sel
    assert sel.evaluate(labels) is sel._evaluate_naive(labels)
