"""Name, label, annotation and selector syntax of v3 resources (policy-model.md §3.1-3.3).

The regexes and reasons calicoctl uses for names (DNS-1123 label/subdomain, policy names,
``knp.``/``ossg.`` special names), Kubernetes qualified names for label and annotation keys,
and :class:`Problems`, the collector of :class:`~regionmesh.errors.FieldError` whose methods
are the metadata and selector checks. Rule checks extend it in
:mod:`regionmesh.model.rule_checks`, per-kind checks in :mod:`regionmesh.model.kind_checks`;
the public entry points are in :mod:`regionmesh.model.validation`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from regionmesh.errors import FieldError
from regionmesh.model.meta import Resource
from regionmesh.selector import SelectorError, parse

TIER_LABEL = "projectcalico.org/tier"

MAX_SELECTOR_LENGTH = 1024
MAX_RULES_PER_DIRECTION = 1024
MAX_ANNOTATIONS_SIZE = 256 * 1024

# --- name and label syntax -------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
DNS_LABEL_RE = re.compile(rf"^{_LABEL}$")
DNS_SUBDOMAIN_RE = re.compile(rf"^{_SUBDOMAIN}$")
POLICY_NAME_RE = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
NP_SPECIAL_NAME_RE = re.compile(rf"^(knp|ossg)\.default\.{_SUBDOMAIN}$")
QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
INTERFACE_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
INTERFACE_PREFIX_RE = re.compile(r"^[a-zA-Z0-9_-]{1,15}(,[a-zA-Z0-9_-]{1,15})*$")
MAC_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
CIDR_TEXT_RE = re.compile(r"^[0-9A-Fa-f:.]+(/\d{1,3})?$")

NAME_REASONS = {
    "label": (
        "name must consist of lower case alphanumeric characters or '-', and must start and "
        f"end with an alphanumeric character (regex: {DNS_LABEL_RE.pattern})"
    ),
    "policy": (
        "name must consist of lower case alphanumeric characters or '-' with at most one '.', "
        f"and must start and end with an alphanumeric character (regex: {POLICY_NAME_RE.pattern})"
    ),
    "subdomain": (
        "name must consist of lower case alphanumeric characters, '-' or '.', and must start "
        f"and end with an alphanumeric character (regex: {DNS_SUBDOMAIN_RE.pattern})"
    ),
}


class Problems:
    """Collects FieldErrors; the methods are the individual §3 checks (metadata and selectors here)."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, path: str, value: object, reason: str) -> None:
        self.items.append(FieldError(path, value, reason))

    # -- metadata -------------------------------------------------------------------------

    def name(self, name: str, kind: str, max_len: int = 253) -> None:
        path = "metadata.name"
        if kind == "label":
            ok = bool(DNS_LABEL_RE.match(name))
        elif kind == "policy":
            ok = bool(POLICY_NAME_RE.match(name))
        elif kind == "np":
            ok = bool(POLICY_NAME_RE.match(name) or NP_SPECIAL_NAME_RE.match(name))
            kind = "policy"
        else:
            ok = bool(DNS_SUBDOMAIN_RE.match(name))
        if not ok:
            self.add(path, name, NAME_REASONS[kind])
        size = len(name.encode())
        if size > max_len:
            self.add(path, name, f"name is too long by {size - max_len} bytes")

    def labels(self, path: str, labels: Mapping[str, str]) -> None:
        for key, value in labels.items():
            problem = qualified_name_problem(key)
            if problem:
                self.add(path, key, f"invalid label key {key!r}: {problem}")
            if len(value) > 63:
                self.add(path, value, f"label {key!r}: value must be no more than 63 characters")
            elif not LABEL_VALUE_RE.match(value):
                self.add(
                    path,
                    value,
                    f"label {key!r}: a valid label value must be empty or consist of "
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )

    def annotations(self, path: str, annotations: Mapping[str, str]) -> None:
        total = 0
        for key, value in annotations.items():
            problem = qualified_name_problem(key.lower())
            if problem:
                self.add(path, key, f"invalid annotation key {key!r}: {problem}")
            total += len(key.encode()) + len(value.encode())
        if total > MAX_ANNOTATIONS_SIZE:
            self.add(
                path,
                f"{total} bytes",
                f"annotations size must be no more than {MAX_ANNOTATIONS_SIZE} bytes",
            )

    def metadata(self, res: Resource) -> None:
        meta = res.metadata
        if res.info.namespaced:
            if not meta.namespace:
                self.add("metadata.namespace", "", f"namespace is required for {res.KIND}")
            elif not DNS_LABEL_RE.match(meta.namespace) or len(meta.namespace) > 63:
                self.add(
                    "metadata.namespace",
                    meta.namespace,
                    "namespace must be a DNS-1123 label of at most 63 characters",
                )
        elif meta.namespace:
            self.add(
                "metadata.namespace",
                meta.namespace,
                f"{res.KIND} is not namespaced; metadata.namespace must be empty",
            )
        self.labels("metadata.labels", meta.labels)
        self.annotations("metadata.annotations", meta.annotations)

    # -- selectors ------------------------------------------------------------------------

    def selector(
        self, path: str, text: str, *, allow_global_alone: bool = False, always: bool = False
    ) -> None:
        if not text and not always:
            return
        if len(text) > MAX_SELECTOR_LENGTH:
            self.add(
                path,
                text,
                f"selector is too long ({len(text)} characters, maximum {MAX_SELECTOR_LENGTH})",
            )
            return
        try:
            parsed = parse(text)
        except SelectorError as exc:
            self.add(path, text, f"invalid selector: {exc.reason} (at column {exc.column})")
            return
        if "global(" in text:
            if not allow_global_alone:
                self.add(
                    path,
                    text,
                    "global() can only be used in an EntityRule namespaceSelector",
                )
            elif str(parsed) != "global()":
                self.add(path, text, "global() cannot be combined with other selectors")


@functools.lru_cache(maxsize=4096)  # pure; label keys repeat across thousands of endpoints
def qualified_name_problem(key: str) -> str | None:
    """Kubernetes IsQualifiedName: ``[prefix/]name``; None when valid."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not DNS_SUBDOMAIN_RE.match(prefix):
            return "prefix part must be a lowercase DNS-1123 subdomain of at most 253 characters"
    else:
        return (
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an "
            "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not QUALIFIED_NAME_RE.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )
    return None


def iana_name_ok(name: str) -> bool:
    return (
        1 <= len(name) <= 15
        and bool(IANA_NAME_RE.match(name))
        and "--" not in name
        and any(c.isalpha() for c in name)
    )
