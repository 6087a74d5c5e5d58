"""Calico's label-selector language: parse, evaluate, canonicalise and rewrite selectors.

The only names other packages use::

    parse(text) -> Selector            raises SelectorError (a ValueError) with .column/.reason/.text
    Selector.evaluate(labels) -> bool  compiled once; str(sel) is Calico's canonical form
    Selector.unique_id / label_keys()  hash of the canonical text / every key mentioned
    Selector.required_labels()         key → values every match must carry (for indexes)
    Selector.interpret(labels)         re-parse and walk the tree (the naive reference)
    ALL                                parse("all()")
    and_(*sels), prefix_keys(sel, prefix), replace_all(sel, r), replace_global(sel, r)

Grammar and semantics follow libcalico-go (policy-model.md §1). This package depends only on
:mod:`regionmesh.errors`; what selectors mean inside policies is left to ``regionmesh.policy``
and indexing endpoints by label to the agent.
"""

from regionmesh.errors import SelectorError
from regionmesh.selector.selector import (
    ALL,
    Selector,
    and_,
    parse,
    prefix_keys,
    replace_all,
    replace_global,
)

__all__ = [
    "ALL",
    "Selector",
    "SelectorError",
    "and_",
    "parse",
    "prefix_keys",
    "replace_all",
    "replace_global",
]
