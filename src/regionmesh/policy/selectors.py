"""The selector rewrites applied to v3 policy before enforcement (policy-model.md §2.3).

* :func:`policy_selector` — which endpoints a (Global)NetworkPolicy applies to: an NP's selector
  is ANDed with its namespace; a GNP's ``namespaceSelector``/``serviceAccountSelector`` are
  prefixed with ``pcns.``/``pcsa.`` and ANDed on, with ``all()`` rewritten as libcalico-go does.
* :func:`rule_entity_selectors` — one rule side (``source``/``destination``) as a positive and
  a negative selector, exactly per §2.3 steps 1–4 (the namespace clause is only added when the
  side uses ``selector``/``notSelector``/``serviceAccounts``/``namespaceSelector``).
* :func:`folded_selector` — Felix's ``(pos) && !(neg)`` folding.

The rewrites work on selector trees (via :mod:`regionmesh.selector`), never on text, so the
results are canonical. Matching addresses against them is left to the snapshot and flows.
"""

from __future__ import annotations

from regionmesh.model import EntityRule, GlobalNetworkPolicy, NetworkPolicy
from regionmesh.policy.labels import (
    NAMESPACE_LABEL,
    NAMESPACE_LABEL_PREFIX,
    SERVICE_ACCOUNT_LABEL,
    SERVICE_ACCOUNT_LABEL_PREFIX,
)
from regionmesh.selector import (
    Selector,
    and_,
    parse,
    prefix_keys,
    replace_all,
    replace_global,
)

__all__ = [
    "HAS_NAMESPACE",
    "HAS_SERVICE_ACCOUNT",
    "NOT_HAS_NAMESPACE",
    "folded_selector",
    "label_equals",
    "namespace_clause",
    "negated",
    "policy_selector",
    "rule_entity_selectors",
]

HAS_NAMESPACE = parse(f"has({NAMESPACE_LABEL})")
NOT_HAS_NAMESPACE = parse(f"!has({NAMESPACE_LABEL})")
HAS_SERVICE_ACCOUNT = parse(f"has({SERVICE_ACCOUNT_LABEL})")


def _quote(value: str) -> str:
    return f"'{value}'" if '"' in value else f'"{value}"'


def label_equals(key: str, value: str) -> Selector:
    """``key == "value"`` as a Selector."""
    return parse(f"{key} == {_quote(value)}")


def namespace_clause(namespace: str) -> Selector:
    """``projectcalico.org/namespace == '<namespace>'``."""
    return label_equals(NAMESPACE_LABEL, namespace)


def negated(sel: Selector) -> Selector:
    """``!(sel)`` (a double negation collapses)."""
    return parse(f"!({sel})")


def folded_selector(positive: Selector | None, negative: Selector | None) -> Selector | None:
    """Felix's single selector for a side: ``(pos) && !(neg)``; None when there is no positive.

    Without a positive selector Felix cannot fold: the negative test is then "the address is
    not in the negative selector's set", which callers must do separately.
    """
    if positive is None:
        return None
    if negative is None:
        return positive
    return and_(positive, negated(negative))


def _service_account_names(names: list[str]) -> Selector:
    values = ", ".join(_quote(n) for n in names)
    return parse(f"{SERVICE_ACCOUNT_LABEL} in {{{values}}}")


def policy_selector(policy: NetworkPolicy | GlobalNetworkPolicy) -> Selector:
    """The selector of the endpoints ``policy`` applies to, after Calico's rewrites."""
    spec = policy.spec
    own = parse(spec.selector)
    if isinstance(policy, NetworkPolicy):
        parts = [own, namespace_clause(policy.metadata.namespace)]
        if spec.service_account_selector:
            parts.append(
                prefix_keys(parse(spec.service_account_selector), SERVICE_ACCOUNT_LABEL_PREFIX)
            )
        return and_(*parts)
    # an empty selector is left out (not all()) so that the all() rewrites below only touch
    # what the user wrote, as libcalico-go's text concatenation does
    parts = [own] if spec.selector.strip(" \t") else []
    if policy.spec.namespace_selector:
        parts.append(prefix_keys(parse(policy.spec.namespace_selector), NAMESPACE_LABEL_PREFIX))
        # libcalico-go rewrites every all() of the *combined* text, the user's selector too.
        parts = [replace_all(p, HAS_NAMESPACE) for p in parts]
    if spec.service_account_selector:
        parts.append(
            prefix_keys(parse(spec.service_account_selector), SERVICE_ACCOUNT_LABEL_PREFIX)
        )
        parts = [replace_all(p, HAS_SERVICE_ACCOUNT) for p in parts]
    return and_(*parts)


def rule_entity_selectors(
    entity_rule: EntityRule, policy_namespace: str
) -> tuple[Selector | None, Selector | None]:
    """``(positive, negative)`` selectors of one rule side, per policy-model.md §2.3.

    ``policy_namespace`` is the NP's namespace, or ``""`` for GNPs and profiles. ``positive``
    is None when the side places no selector constraint on addresses; ``negative`` is the
    ``notSelector`` as written (never namespace-limited), or None.
    """
    er = entity_rule
    ns_clause: Selector | None = None
    if er.namespace_selector:
        ns_sel = prefix_keys(parse(er.namespace_selector), NAMESPACE_LABEL_PREFIX)
        ns_sel = replace_all(ns_sel, HAS_NAMESPACE)
        ns_clause = replace_global(ns_sel, NOT_HAS_NAMESPACE)
    elif policy_namespace:
        ns_clause = namespace_clause(policy_namespace)

    endpoint_parts: list[Selector] = []
    sa = er.service_accounts
    if sa is not None and (sa.selector or sa.names):
        if sa.selector:
            endpoint_parts.append(prefix_keys(parse(sa.selector), SERVICE_ACCOUNT_LABEL_PREFIX))
        if sa.names:
            endpoint_parts.append(_service_account_names(sa.names))
    if er.selector:
        endpoint_parts.append(parse(er.selector))

    uses_selectors = bool(er.selector or er.not_selector or er.namespace_selector) or (
        sa is not None
    )
    positive: Selector | None = None
    if ns_clause is not None and uses_selectors:
        positive = and_(ns_clause, *endpoint_parts) if endpoint_parts else ns_clause
    elif endpoint_parts:
        positive = and_(*endpoint_parts)
    negative = parse(er.not_selector) if er.not_selector else None
    return positive, negative
