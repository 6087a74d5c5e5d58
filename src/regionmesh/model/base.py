"""The pydantic base class and strict scalar types shared by every v3 model class.

Decoding is *strict* like calicoctl's (Go ``json`` with unknown fields disallowed): unknown keys
are errors, and scalars are not coerced (``"order": "10"`` is not a number, ``1`` is not a
string). JSON names are camelCase aliases of snake_case attributes; both spellings are accepted
from Python (``populate_by_name``). Models are frozen: derive changed copies with
``model_copy(update=...)``.

One escape hatch exists for *reading stored data*: when validated with the context
``{"lenient": True}`` (see :func:`regionmesh.model.codec.from_storage`), unknown keys are dropped
instead of refused, so an agent can read values written by a newer Calico. This module does no
semantic validation (see :mod:`regionmesh.model.validation`) and no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    Strict,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = ["Model", "StrictStr", "StrictInt", "StrictBool", "Float", "LENIENT"]

LENIENT = "lenient"
"""Key of the validation-context flag that makes decoding drop unknown keys."""


def _float_out(value: float) -> float | int:
    """Write integral floats as integers, like Go's encoding/json does (``100`` not ``100.0``)."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


StrictStr = Annotated[str, Strict()]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
Float = Annotated[float, Strict(), PlainSerializer(_float_out)]
"""A JSON number (integers accepted, strings refused), written back without a spurious ``.0``."""


_WIRE_NAMES: dict[type[BaseModel], frozenset[str]] = {}
_KNOWN_NAMES: dict[type[BaseModel], frozenset[str]] = {}


class Model(BaseModel):
    """Base of every v3 model class: strict, frozen, camelCase on the wire."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        revalidate_instances="never",
        defer_build=True,  # validators built on first use: `get gnp` builds a few, not 35
    )

    @classmethod
    def wire_names(cls) -> frozenset[str]:
        """The JSON names (aliases) of this class's fields."""
        names = _WIRE_NAMES.get(cls)
        if names is None:
            names = frozenset((info.alias or name) for name, info in cls.model_fields.items())
            _WIRE_NAMES[cls] = names
        return names

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_when_lenient(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get(LENIENT):
            known = _KNOWN_NAMES.get(cls)
            if known is None:
                known = _KNOWN_NAMES[cls] = cls.wire_names() | frozenset(cls.model_fields)
            if not known.issuperset(data):
                return {k: v for k, v in data.items() if k in known}
        return data
