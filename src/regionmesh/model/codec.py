"""Documents ⇄ resources: strict decoding, multi-document loading, storage and output shapes.

* :func:`decode` — one v3 document (a mapping) → resource, strictly (unknown fields, wrong
  JSON types, bad ports/protocols are :class:`~regionmesh.errors.ValidationError` with field
  paths such as ``spec.ingress[0].destination.ports[1]``).
* :func:`load_documents` / :func:`load_path` — YAML/JSON text or files → one
  :class:`LoadedDocument` per resource, in input order, each carrying its resource *or* its
  errors (a broken document never hides the others).
* :func:`to_storage` / :func:`from_storage` — the JSON value kept in etcd (policy-model.md §4.2).
* :func:`to_output` — what ``calicoctl get -o yaml|json`` shows.

What is emitted: a field appears iff it was present in the input (or set explicitly in Python)
and is not null. So data written by networking-calico (NP without ``types``, ``egress: []``,
``allowedIps: []``) round-trips unchanged, and unset fields are never invented.

Defaulting and semantic validation are :mod:`regionmesh.model.validation`'s job; keys, revisions
and etcd I/O belong to :mod:`regionmesh.datastore`; printing tables to :mod:`regionmesh.cli`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from regionmesh.errors import FieldError, ValidationError
from regionmesh.model.base import LENIENT
from regionmesh.model.kinds import API_VERSION, KINDS
from regionmesh.model.meta import Resource
from regionmesh.model.policy import GlobalNetworkPolicy, NetworkPolicy
from regionmesh.model.resources import RESOURCE_CLASSES

__all__ = [
    "LoadedDocument",
    "METADATA_ANNOTATION",
    "decode",
    "describe",
    "from_storage",
    "load_documents",
    "load_path",
    "to_output",
    "to_storage",
]

METADATA_ANNOTATION = "projectcalico.org/metadata"
"""Annotation Calico ≥ v3.30 adds to stored (G)NP values: ``{"name":"<name>"}``."""

_POLICY_KINDS = frozenset({GlobalNetworkPolicy.KIND, NetworkPolicy.KIND})
_RULE_KINDS = frozenset({GlobalNetworkPolicy.KIND, NetworkPolicy.KIND, "Profile"})


# ---------------------------------------------------------------------------------------------
# decoding one document


def describe(doc: object) -> str:
    """``Kind(namespace/name)`` for a raw document, as far as it can be read."""
    kind, name, namespace = _identity(doc)
    ident = f"{namespace}/{name}" if namespace else (name or "")
    return f"{kind or 'unknown kind'}({ident})"


def _identity(doc: object) -> tuple[str | None, str | None, str | None]:
    if not isinstance(doc, Mapping):
        return None, None, None
    kind = doc.get("kind")
    meta = doc.get("metadata")
    name = namespace = None
    if isinstance(meta, Mapping):
        name = meta.get("name") if isinstance(meta.get("name"), str) else None
        namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    return (kind if isinstance(kind, str) else None), name, (namespace or None)


def _where(where: str, doc: object) -> str:
    return f"{where} {describe(doc)}" if where else describe(doc)


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else part
    return out


def _reason(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"field in document is not recognized or is in the wrong location: {err['loc'][-1]}"
    if kind == "missing":
        return "field is required"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[:1].lower() + msg[1:]


def field_errors(exc: pydantic.ValidationError, prefix: str = "") -> list[FieldError]:
    """Translate a pydantic error into FieldErrors with Calico-style paths."""
    out = []
    for err in exc.errors(include_url=False):
        path = _path(err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        value = err.get("input")
        out.append(FieldError(path, value, _reason(err)))
    return out


def _check_type(doc: Mapping[str, Any], *, require_version: bool = True) -> type[Resource]:
    kind = doc.get("kind")
    version = doc.get("apiVersion")
    cls = RESOURCE_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None or (version != API_VERSION and (require_version or version is not None)):
        field_name = "kind" if cls is None else "apiVersion"
        raise ValidationError(
            [
                FieldError(
                    field_name,
                    kind if cls is None else version,
                    f"unknown resource type ({kind if kind is not None else ''}) and/or "
                    f"version ({version if version is not None else ''})",
                )
            ]
        )
    return cls


def decode(doc: Mapping[str, Any], *, where: str = "") -> Resource:
    """Strictly decode one v3 document; raise ValidationError naming the document and fields."""
    place = _where(where, doc)
    if not isinstance(doc, Mapping):
        raise ValidationError(
            [FieldError("", doc, "document is not a resource object (expected a mapping)")],
            where=place,
        )
    try:
        cls = _check_type(doc)
    except ValidationError as exc:
        raise ValidationError(exc.fields, where=place) from None
    try:
        return cls.model_validate(dict(doc), by_alias=True, by_name=False)
    except pydantic.ValidationError as exc:
        raise ValidationError(field_errors(exc), where=place) from None


# ---------------------------------------------------------------------------------------------
# loading text and files


@dataclass
class LoadedDocument:
    """One resource document read from an input, decoded or not.

    ``index`` counts resources in the input (items of arrays and typed lists are flattened),
    from 0. Exactly one of ``resource`` / ``errors`` is meaningful: a failed document has
    ``resource is None`` and at least one error.
    """

    index: int
    source: str
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    resource: Resource | None = None
    errors: list[FieldError] = field(default_factory=list)
    line: int | None = None
    """1-based line where the YAML/JSON document holding this resource starts."""
    item: int | None = None
    """Position inside a top-level array or typed list (None for a plain document)."""

    @property
    def position(self) -> str:
        """``line 12``, or ``line 3 [2]`` for the third element of an array or typed list:
        where a person finds the resource in the file."""
        if self.line is None:
            return ""
        return f"line {self.line}" + (f" [{self.item}]" if self.item is not None else "")

    @property
    def ok(self) -> bool:
        """True when the document decoded."""
        return self.resource is not None and not self.errors

    @property
    def where(self) -> str:
        """``<source>#<index> Kind(ns/name)``: how messages name this document."""
        head = f"{self.source}#{self.index}"
        if self.kind is None and self.name is None:
            return head
        ident = f"{self.namespace}/{self.name}" if self.namespace else (self.name or "")
        return f"{head} {self.kind or 'unknown kind'}({ident})"

    def error(self) -> ValidationError | None:
        """The document's errors as one ValidationError (None if it decoded)."""
        return ValidationError(self.errors, where=self.where) if self.errors else None


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (Go's YAML→JSON does the same)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_SEPARATOR_RE = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """Split on lines ``---``; yield (0-based line number of the chunk's first line, chunk)."""
    start = 0
    line = 0
    for m in _SEPARATOR_RE.finditer(text):
        chunk = text[start : m.start()]
        yield line, chunk
        line += chunk.count("\n") + 1
        start = m.end() + 1 if m.end() < len(text) else m.end()
    yield line, text[start:]


def _parse_chunk(chunk: str, first_line: int) -> object:
    stripped = chunk.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            pass  # let YAML have a go (it gives line numbers in its message)
    try:
        return yaml.load(chunk, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        last_line = first_line + max(1, chunk.rstrip().count("\n") + 1)
        line = min(first_line + (mark.line + 1 if mark is not None else 1), last_line)
        problem = exc.problem or exc.context or "invalid YAML"
        raise _SyntaxProblem(f"yaml: line {line}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise _SyntaxProblem(f"yaml: {exc}") from exc


class _SyntaxProblem(Exception):
    """Internal: a document that is not well-formed YAML/JSON."""


def _resource_docs(value: object) -> list[object]:
    """Flatten a parsed document into resource documents (arrays and typed lists)."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, Mapping):
        kind = value.get("kind")
        if (
            isinstance(kind, str)
            and kind.endswith("List")
            and kind[: -len("List")] in KINDS
            and "items" in value
        ):
            items = value.get("items")
            return list(items) if isinstance(items, list) else [value]
    return [value]


def load_documents(text: str, *, source: str) -> list[LoadedDocument]:
    """Decode every resource in multi-document YAML/JSON text, in order, errors included."""
    out: list[LoadedDocument] = []
    for first_line, chunk in _chunks(text):
        # the document's first non-blank line, 1-based (after the ``---`` separator)
        lead = len(chunk) - len(chunk.lstrip("\n"))
        line = first_line + chunk[:lead].count("\n") + 1
        try:
            value = _parse_chunk(chunk, first_line)
        except _SyntaxProblem as exc:
            out.append(
                LoadedDocument(
                    index=len(out),
                    source=source,
                    errors=[FieldError("", None, str(exc))],
                    line=line,
                )
            )
            continue
        if value is None:
            continue  # an empty document (only comments/whitespace)
        docs = _resource_docs(value)
        several = isinstance(value, list) or docs != [value]
        for item, doc in enumerate(docs):
            loaded = _load_one(doc, len(out), source)
            loaded.line = line
            loaded.item = item if several else None
            out.append(loaded)
    return out


def _load_one(doc: object, index: int, source: str) -> LoadedDocument:
    kind, name, namespace = _identity(doc)
    loaded = LoadedDocument(index=index, source=source, kind=kind, name=name, namespace=namespace)
    if not isinstance(doc, Mapping):
        loaded.errors = [
            FieldError("", doc, "document is not a resource object (expected a mapping)")
        ]
        return loaded
    try:
        loaded.resource = decode(doc)
    except ValidationError as exc:
        loaded.errors = exc.fields
    return loaded


_EXTENSIONS = (".yaml", ".yml", ".json")


def load_path(path: str, *, recursive: bool = False) -> list[LoadedDocument]:
    """Load a file, every ``*.yaml|*.yml|*.json`` of a directory (sorted), or ``-`` (stdin).

    Raises ValidationError if the path cannot be read at all.
    """
    if path == "-":
        return load_documents(sys.stdin.read(), source="<stdin>")
    p = Path(path)
    try:
        if p.is_dir():
            pattern = p.rglob("*") if recursive else p.glob("*")
            files = sorted(f for f in pattern if f.is_file() and f.suffix in _EXTENSIONS)
            out: list[LoadedDocument] = []
            for f in files:
                out.extend(load_documents(f.read_text(encoding="utf-8"), source=str(f)))
            return out
        return load_documents(p.read_text(encoding="utf-8"), source=path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError(
            [FieldError("", path, f"cannot read {path}: {reason}")], where=path
        ) from exc


# ---------------------------------------------------------------------------------------------
# storage and output shapes


def _dump(resource: Resource) -> dict[str, Any]:
    body = resource.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
    out: dict[str, Any] = {
        "kind": resource.KIND or resource.kind,
        "apiVersion": API_VERSION,
        "metadata": body.get("metadata", {}),
        "spec": body.get("spec", {}),
    }
    if "status" in body:  # Node.status
        out["status"] = body["status"]
    return out


def to_storage(resource: Resource) -> dict[str, Any]:
    """The JSON value stored in etcd: no ``resourceVersion``, unset fields omitted.

    A GlobalNetworkPolicy/NetworkPolicy with ``spec.tier`` set (as every policy written through
    calicoctl's defaulting has) also gets Calico's ``projectcalico.org/metadata`` annotation;
    one without a tier (networking-calico's security-group policies) is written as it is.
    """
    out = _dump(resource)
    meta = out["metadata"]
    meta.pop("resourceVersion", None)
    if isinstance(resource, GlobalNetworkPolicy | NetworkPolicy) and resource.spec.tier:
        annotations = dict(meta.get("annotations", {}))
        annotations[METADATA_ANNOTATION] = json.dumps(
            {"name": resource.metadata.name}, separators=(",", ":")
        )
        meta["annotations"] = annotations
    return out


def from_storage(data: Mapping[str, Any], *, resource_version: str) -> Resource:
    """Decode a stored value (leniently: unknown fields are dropped), set ``resourceVersion``.

    Undoes Calico's storage conventions: the ``projectcalico.org/metadata`` annotation is
    removed (its name wins), and a default-tier policy stored as ``default.<name>`` without it
    (Calico ≤ v3.29) is returned as ``<name>``.
    """
    doc = dict(data)
    try:
        cls = _check_type(doc, require_version=False)
    except ValidationError as exc:
        raise ValidationError(exc.fields, where=f"stored {describe(doc)}") from None
    meta = dict(doc.get("metadata") or {})
    if cls.KIND in _POLICY_KINDS:
        _undo_policy_name_storage(doc, meta)
    meta["resourceVersion"] = resource_version
    doc["metadata"] = meta
    doc["apiVersion"] = API_VERSION
    try:
        return cls.model_validate(doc, by_alias=True, by_name=False, context={LENIENT: True})
    except pydantic.ValidationError as exc:
        raise ValidationError(field_errors(exc), where=f"stored {describe(data)}") from None


def _undo_policy_name_storage(doc: Mapping[str, Any], meta: dict[str, Any]) -> None:
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping) and METADATA_ANNOTATION in annotations:
        rest = {k: v for k, v in annotations.items() if k != METADATA_ANNOTATION}
        try:
            stored = json.loads(annotations[METADATA_ANNOTATION])
        except (TypeError, ValueError):
            stored = None
        if isinstance(stored, Mapping) and isinstance(stored.get("name"), str):
            meta["name"] = stored["name"]
        if rest:
            meta["annotations"] = rest
        else:
            del meta["annotations"]
        return
    spec = doc.get("spec")
    tier = spec.get("tier") if isinstance(spec, Mapping) else None
    name = meta.get("name")
    if tier in (None, "", "default") and isinstance(name, str) and name.startswith("default."):
        meta["name"] = name[len("default.") :]


def to_output(resource: Resource) -> dict[str, Any]:
    """What ``calicoctl get -o yaml/json`` prints for one resource (with ``resourceVersion``).

    Like calicoctl, every rule shows its ``source`` and ``destination`` (``{}`` when empty).
    Key order is the model's; calicoctl's YAML printer sorts keys, which is the CLI's choice.
    """
    out = _dump(resource)
    if resource.KIND in _RULE_KINDS:
        for direction in ("ingress", "egress"):
            for rule in out["spec"].get(direction, []):
                rule.setdefault("source", {})
                rule.setdefault("destination", {})
    return out
