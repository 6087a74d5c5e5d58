"""regionmesh.selector exports exactly its documented API."""

from __future__ import annotations

import regionmesh.selector
from regionmesh import errors


def test_public_names() -> None:
    assert sorted(regionmesh.selector.__all__) == sorted(
        [
            "parse",
            "Selector",
            "SelectorError",
            "ALL",
            "and_",
            "prefix_keys",
            "replace_all",
            "replace_global",
        ]
    )
    for name in regionmesh.selector.__all__:
        assert hasattr(regionmesh.selector, name), name
    assert regionmesh.selector.SelectorError is errors.SelectorError
    assert issubclass(regionmesh.selector.SelectorError, ValueError)
