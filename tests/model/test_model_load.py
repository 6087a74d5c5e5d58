"""load_documents / load_path: multi-document YAML, JSON arrays, typed lists, broken documents."""

import io
import json
from pathlib import Path

import pytest
from tests.model.model_docs import SEED_YAML, doc

from regionmesh.errors import ValidationError
from regionmesh.model import GlobalNetworkPolicy, Tier, codec


def tier_yaml(name: str) -> str:
    return f"apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: {name}\nspec:\n  order: 10\n"


def test_multi_document_yaml_with_a_broken_document_in_the_middle() -> None:
    text = "\n---\n".join(
        [
            SEED_YAML,
            "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: [broken\n",
            tier_yaml("t2") + "  colour: red",
            "# only a comment",
            tier_yaml("t3"),
        ]
    )
    docs = codec.load_documents(text, source="in.yaml")
    assert [d.index for d in docs] == [0, 1, 2, 3]
    assert [d.ok for d in docs] == [True, False, False, True]
    assert isinstance(docs[0].resource, GlobalNetworkPolicy)
    assert docs[1].resource is None and docs[1].errors[0].reason.startswith("yaml: line 22:")
    assert docs[1].where == "in.yaml#1"
    assert (docs[2].kind, docs[2].name) == ("Tier", "t2")
    assert docs[2].errors[0].path == "spec.colour"
    assert docs[2].where == "in.yaml#2 Tier(t2)"
    err = docs[2].error()
    assert isinstance(err, ValidationError) and str(err).startswith(
        "in.yaml#2 Tier(t2): error with field spec.colour"
    )
    assert isinstance(docs[3].resource, Tier) and docs[3].name == "t3"


def test_json_array_and_json_document() -> None:
    array = json.dumps(
        [doc("Tier", "a"), doc("Tier", "B"), doc("GlobalNetworkSet", "s", nets=["10.0.0.0/8"])],
        indent=2,
    )
    docs = codec.load_documents(array, source="in.json")
    assert [(d.index, d.kind, d.name, d.ok) for d in docs] == [
        (0, "Tier", "a", True), (1, "Tier", "B", True), (2, "GlobalNetworkSet", "s", True)]  # fmt: skip
    single = codec.load_documents(json.dumps(doc("Tier", "a")), source="x")
    assert len(single) == 1 and single[0].ok


def test_yaml_top_level_array_and_typed_list() -> None:
    text = (
        "- " + tier_yaml("a").replace("\n", "\n  ").rstrip() + "\n"
        "---\n"
        "apiVersion: projectcalico.org/v3\nkind: TierList\nitems:\n"
        "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata: {name: b}\n"
        "- apiVersion: projectcalico.org/v3\n  kind: Tier\n  metadata: {name: c}\n  spec: {order: x}\n"
        "---\n"
        "apiVersion: v1\nkind: List\nitems: []\n"
    )
    docs = codec.load_documents(text, source="s")
    assert [(d.index, d.name, d.ok) for d in docs] == [
        (0, "a", True),
        (1, "b", True),
        (2, "c", False),
        (3, None, False),
    ]
    assert docs[2].errors[0].path == "spec.order"
    assert "unknown resource type (List)" in docs[3].errors[0].reason


def test_non_mapping_document_and_timestamps_stay_strings() -> None:
    docs = codec.load_documents("just a string\n---\n" + tier_yaml("t").replace(
        "metadata:\n", "metadata:\n  creationTimestamp: 2026-08-22T10:00:00Z\n"), source="s")  # fmt: skip
    assert not docs[0].ok and "not a resource object" in docs[0].errors[0].reason
    assert docs[1].ok and docs[1].resource is not None
    assert docs[1].resource.metadata.creation_timestamp == "2026-08-22T10:00:00Z"


def test_empty_input_has_no_documents() -> None:
    assert codec.load_documents("", source="s") == []
    assert codec.load_documents("---\n# nothing\n---\n", source="s") == []


def test_load_path_file_directory_recursive_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "b.yaml").write_text(tier_yaml("b"))
    (tmp_path / "a.json").write_text(json.dumps(doc("Tier", "a")))
    (tmp_path / "notes.txt").write_text("not a manifest")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yml").write_text(tier_yaml("c"))
    assert [d.name for d in codec.load_path(str(tmp_path))] == ["a", "b"]
    assert [d.name for d in codec.load_path(str(tmp_path), recursive=True)] == ["a", "b", "c"]
    single = codec.load_path(str(tmp_path / "b.yaml"))
    assert single[0].source == str(tmp_path / "b.yaml") and single[0].ok
    monkeypatch.setattr("sys.stdin", io.StringIO(tier_yaml("d")))
    from_stdin = codec.load_path("-")
    assert from_stdin[0].name == "d" and from_stdin[0].source == "<stdin>"
    with pytest.raises(ValidationError, match="cannot read"):
        codec.load_path(str(tmp_path / "missing.yaml"))


def test_loaded_documents_know_their_line_and_array_position() -> None:
    from regionmesh.model import codec as _codec

    text = (
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: a}\n"
        "---\n"
        "\n"
        "- apiVersion: projectcalico.org/v3\n  kind: GlobalNetworkSet\n  metadata: {name: b}\n"
        "- apiVersion: projectcalico.org/v3\n  kind: GlobalNetworkSet\n  metadata: {name: c}\n"
    )
    docs = _codec.load_documents(text, source="f.yaml")
    assert [d.position for d in docs] == ["line 1", "line 6 [0]", "line 6 [1]"]
