"""Selector rewrites (policy-model.md §2.3; common mistakes §7.5–7.7)."""

import pytest
from tests.policy.builders import R1, R2, gnp, hep, np, wep

from regionmesh.model import EntityRule
from regionmesh.policy import (
    effective_labels,
    folded_selector,
    policy_selector,
    rule_entity_selectors,
)


def test_np_selector_is_anded_with_its_namespace() -> None:
    pol = np("p", "app == 'web'", ns=R1)
    sel = policy_selector(pol)
    assert str(sel) == f'(app == "web" && projectcalico.org/namespace == "{R1}")'
    assert sel.evaluate(effective_labels(wep("a", ["10.0.0.1"], {"app": "web"}, ns=R1)))
    assert not sel.evaluate(effective_labels(wep("b", ["10.0.0.2"], {"app": "web"}, ns=R2)))
    assert not sel.evaluate(effective_labels(hep("h", ["10.9.0.1"], {"app": "web"})))


def test_np_empty_selector_is_just_the_namespace_clause() -> None:
    assert str(policy_selector(np("p", ns=R2))) == f'projectcalico.org/namespace == "{R2}"'


def test_np_selector_naming_another_namespace_matches_nothing() -> None:
    sel = policy_selector(np("p", f"projectcalico.org/namespace == '{R2}'", ns=R1))
    for ns in (R1, R2):
        assert not sel.evaluate(effective_labels(wep("a", ["10.0.0.1"], ns=ns)))


def test_gnp_selector_as_written_selects_hosts_too() -> None:
    sel = policy_selector(gnp("g"))
    assert str(sel) == "all()"
    assert sel.evaluate(effective_labels(hep("h", ["10.9.0.1"])))


@pytest.mark.parametrize(
    ("ns_selector", "expected"),
    [
        ("all()", "has(projectcalico.org/namespace)"),
        ("team == 'a'", '(role == "x" && pcns.team == "a")'),
    ],
)
def test_gnp_namespace_selector(ns_selector: str, expected: str) -> None:
    selector = "role == 'x'" if "team" in ns_selector else ""
    sel = policy_selector(gnp("g", selector, namespaceSelector=ns_selector))
    assert str(sel) == expected


def test_gnp_namespace_selector_all_excludes_host_endpoints() -> None:
    sel = policy_selector(gnp("g", "all()", namespaceSelector="all()"))
    assert str(sel) == "(has(projectcalico.org/namespace) && has(projectcalico.org/namespace))"
    assert not sel.evaluate(effective_labels(hep("h", ["10.9.0.1"])))
    assert sel.evaluate(effective_labels(wep("a", ["10.0.0.1"])))


def test_service_account_selector_prefixes_and_all_rewrite() -> None:
    g = policy_selector(gnp("g", serviceAccountSelector="all()"))
    assert str(g) == "has(projectcalico.org/serviceaccount)"
    n = policy_selector(np("p", ns=R1, serviceAccountSelector="role == 'db'"))
    assert str(n) == f'(projectcalico.org/namespace == "{R1}" && pcsa.role == "db")'
    # NP does not rewrite all(): serviceAccountSelector all() adds nothing
    n2 = policy_selector(np("p", ns=R1, serviceAccountSelector="all()"))
    assert str(n2) == f'projectcalico.org/namespace == "{R1}"'


NS_CLAUSE = f'projectcalico.org/namespace == "{R1}"'


@pytest.mark.parametrize(
    ("side", "namespace", "positive", "negative"),
    [
        # NP: an empty side or only nets/ports places no selector constraint (§7.6)
        ({}, R1, None, None),
        ({"nets": ["10.0.0.0/8"], "ports": [80]}, R1, None, None),
        ({"selector": "app == 'web'"}, R1, f'({NS_CLAUSE} && app == "web")', None),
        # notSelector alone restricts the positive match to the namespace (§7.6)
        ({"notSelector": "app == 'web'"}, R1, NS_CLAUSE, 'app == "web"'),
        (
            {"namespaceSelector": "all()", "selector": "app == 'web'"},
            R1,
            '(has(projectcalico.org/namespace) && app == "web")',
            None,
        ),
        ({"namespaceSelector": "global()"}, R1, "!has(projectcalico.org/namespace)", None),
        ({"namespaceSelector": "name == 'x'"}, R1, 'pcns.name == "x"', None),
        # GNP / profile: no namespace limit
        ({"selector": "app == 'web'"}, "", 'app == "web"', None),
        ({"notSelector": "app == 'web'"}, "", None, 'app == "web"'),
        ({"namespaceSelector": "all()"}, "", "has(projectcalico.org/namespace)", None),
        (
            {"serviceAccounts": {"names": ["b", "a"], "selector": "role == 'x'"}},
            R1,
            f'({NS_CLAUSE} && pcsa.role == "x" && projectcalico.org/serviceaccount in {{"a", "b"}})',
            None,
        ),
    ],
)
def test_rule_entity_selectors(
    side: dict[str, object], namespace: str, positive: str | None, negative: str | None
) -> None:
    er = EntityRule.model_validate(side)
    pos, neg = rule_entity_selectors(er, namespace)
    assert (str(pos) if pos else None) == positive
    assert (str(neg) if neg else None) == negative


def test_folded_selector() -> None:
    er = EntityRule.model_validate({"selector": "a == 'x'", "notSelector": "b == 'y'"})
    pos, neg = rule_entity_selectors(er, "")
    folded = folded_selector(pos, neg)
    assert str(folded) == '(a == "x" && !b == "y")'
    assert folded_selector(None, neg) is None
    assert folded_selector(pos, None) is pos
