"""Value types of v3 rules: :class:`Port` (number, ``a:b`` range or named port) and :class:`Protocol`.

They decode exactly as Calico's ``numorstring`` package does and write back in Calico's stored
form (single ports and numeric protocols as JSON numbers, a protocol read as a digit string
such as ``"47"`` back as that string, as Calico's ``numorstring`` does; ranges as ``"a:b"``,
names as strings). Decoding refuses only what Calico's JSON decoding refuses (out-of-range numbers,
inverted ranges, port names outside ``[a-zA-Z0-9_.-]{1,128}``); whether a decoded value is
*valid* (port ≥ 1, IANA service name, known protocol name) is decided by
:mod:`regionmesh.model.validation` so that those errors carry field paths and calicoctl's wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

__all__ = ["Port", "Protocol", "PROTOCOL_NUMBERS", "PORT_PROTOCOLS"]

_PORT_RANGE_RE = re.compile(r"^(\d+):(\d+)$")
_PORT_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_DIGITS_RE = re.compile(r"^\d+$")

PROTOCOL_NUMBERS: Final[dict[str, int]] = {
    "TCP": 6,
    "UDP": 17,
    "ICMP": 1,
    "ICMPv6": 58,
    "SCTP": 132,
    "UDPLite": 136,
}
"""The protocol names Calico accepts (case-sensitive) and their IANA numbers."""

PORT_PROTOCOLS: Final[frozenset[int]] = frozenset({6, 17, 132})
"""Protocol numbers whose rules may carry ports: TCP, UDP, SCTP."""


@dataclass(frozen=True, slots=True)
class Port:
    """One entry of a rule's ``ports``/``notPorts``: a port, an inclusive range, or a name.

    For a named port ``name`` is non-empty and ``min == max == 0``.
    """

    min: int
    max: int
    name: str = ""

    @classmethod
    def single(cls, port: int) -> Port:
        """A single numeric port."""
        return cls(port, port)

    @classmethod
    def range(cls, first: int, last: int) -> Port:
        """An inclusive port range ``first:last``."""
        return cls(first, last)

    @classmethod
    def named(cls, name: str) -> Port:
        """A named port (resolved against endpoint port declarations)."""
        return cls(0, 0, name)

    @classmethod
    def parse(cls, value: object) -> Port:
        """Decode a JSON value like Calico; raise ValueError with Calico's message if invalid."""
        if isinstance(value, bool):
            raise ValueError("port must be a number or a string")
        if isinstance(value, int):
            if not 0 <= value <= 65535:
                raise ValueError(f"port number {value} out of range (0-65535)")
            return cls.single(value)
        if not isinstance(value, str):
            raise ValueError("port must be a number or a string")
        if _DIGITS_RE.match(value) and int(value) <= 65535:
            return cls.single(int(value))
        m = _PORT_RANGE_RE.match(value)
        if m:
            first, last = int(m.group(1)), int(m.group(2))
            if first > 65535 or last > 65535:
                raise ValueError(f"invalid port range ({value}): port number out of range")
            if first > last:
                raise ValueError(
                    f"minimum port number ({first}) is greater than maximum port number "
                    f"({last}) in port range"
                )
            return cls.range(first, last)
        if not _PORT_NAME_RE.match(value):
            raise ValueError(f"invalid name for named port ({value})")
        return cls.named(value)

    @property
    def is_named(self) -> bool:
        """True for a named port."""
        return bool(self.name)

    @property
    def is_range(self) -> bool:
        """True for a numeric range with more than one port."""
        return not self.name and self.min != self.max

    def to_json(self) -> int | str:
        """Calico's stored form: number, ``"a:b"`` or the name."""
        if self.name:
            return self.name
        if self.min == self.max:
            return self.min
        return f"{self.min}:{self.max}"

    def __str__(self) -> str:
        return str(self.to_json())

    def __contains__(self, port: object) -> bool:
        """``80 in Port.range(1, 100)``; never true for a named port."""
        return isinstance(port, int) and not self.name and self.min <= port <= self.max

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_port,
            serialization=core_schema.plain_serializer_function_ser_schema(Port.to_json),
        )


def _validate_port(value: object) -> Port:
    if isinstance(value, Port):
        return value
    try:
        return Port.parse(value)
    except ValueError as exc:
        raise PydanticCustomError("port", str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Protocol:
    """A rule's ``protocol``/``notProtocol``: a number (``value: int``) or a name (``value: str``).

    A string of digits decodes as a number (``"47"`` ≡ 47: ``value`` is the int, and it compares
    and hashes equal to ``Protocol(47)``) but is written back as the string it was read as
    (``spelled``), because networking-calico stores ``--protocol 47`` as ``"47"`` and a rewrite
    to ``47`` would make the two sides fight over every such policy. Names are kept verbatim
    (validation rejects unknown or wrongly-cased ones).
    """

    value: int | str
    spelled: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, value: object) -> Protocol:
        """Decode a JSON value like Calico; raise ValueError if it cannot be a protocol."""
        if isinstance(value, bool):
            raise ValueError("protocol must be a number or a string")
        if isinstance(value, int):
            if not 0 <= value <= 255:
                raise ValueError(f"protocol number {value} out of range (0-255)")
            return cls(value)
        if isinstance(value, str):
            if _DIGITS_RE.match(value) and int(value) <= 255:
                return cls(int(value), value)
            return cls(value)
        raise ValueError("protocol must be a number or a string")

    @property
    def name(self) -> str | None:
        """The protocol name as written, or None for a numeric protocol."""
        return self.value if isinstance(self.value, str) else None

    @property
    def is_known(self) -> bool:
        """True if this is a number 1–255 or one of Calico's protocol names."""
        if isinstance(self.value, int):
            return 1 <= self.value <= 255
        return self.value in PROTOCOL_NUMBERS

    @property
    def number(self) -> int:
        """The IANA protocol number (TCP → 6). ValueError for an unknown name."""
        if isinstance(self.value, int):
            return self.value
        try:
            return PROTOCOL_NUMBERS[self.value]
        except KeyError:
            raise ValueError(f"unknown protocol name {self.value!r}") from None

    @property
    def supports_ports(self) -> bool:
        """True for TCP, UDP and SCTP (by name or number)."""
        return self.is_known and self.number in PORT_PROTOCOLS

    def to_json(self) -> int | str:
        """Calico's stored form: the number, the name, or the digit string it was read as."""
        return self.spelled if self.spelled is not None else self.value

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_protocol,
            serialization=core_schema.plain_serializer_function_ser_schema(Protocol.to_json),
        )


def _validate_protocol(value: object) -> Protocol:
    if isinstance(value, Protocol):
        return value
    try:
        return Protocol.parse(value)
    except ValueError as exc:
        raise PydanticCustomError("protocol", str(exc)) from exc
