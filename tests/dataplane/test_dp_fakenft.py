"""FakeNft holds state, applies atomically and rejects what the kernel rejects."""

from __future__ import annotations

import pytest
from fakenft_cases import BASE, CASES

from regionmesh.dataplane.fakenft import FakeNft
from regionmesh.dataplane.tables import fingerprint_json
from regionmesh.errors import DataplaneError


def based() -> FakeNft:
    fake = FakeNft()
    fake.apply(BASE)
    return fake


@pytest.mark.parametrize(("name", "script", "accepted"), CASES, ids=[c[0] for c in CASES])
def test_case(name: str, script: str, accepted: bool) -> None:
    fake = based()
    before = fingerprint_json(fake.list_ruleset_json("ip t"))
    if accepted:
        fake.apply(script + "\n")
    else:
        with pytest.raises(DataplaneError, match=r"line \d+"):
            fake.apply(script + "\n")
        # atomic: nothing of a refused transaction is visible
        assert fingerprint_json(fake.list_ruleset_json("ip t")) == before


def test_state_is_held() -> None:
    fake = based()
    assert fake.set_elements("ip t", "s") == {"10.0.0.1", "10.0.0.2"}
    assert fake.map_elements("ip t", "m") == {"tapx": "goto d"}
    assert len(fake.chain_rules("ip t", "b")) == 8
    listing = fake.list_ruleset_json("ip t")
    fp = fingerprint_json(listing)
    assert fp.sets["i"] == ("ipv4_addr", True, frozenset({"10.0.0.0/24", "10.1.0.1"}))
    assert fp.sets["n"][2] == frozenset({"10.0.0.1 . 6 . 80"})
    assert fp.chains["b"][0] == "filter forward 0"
    assert fake.list_ruleset_json("ip nosuch") == {"nftables": []}
