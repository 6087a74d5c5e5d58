"""Port and Protocol: Calico's numorstring decoding and stored form."""

import pytest

from regionmesh.model import Port, Protocol


@pytest.mark.parametrize(
    ("raw", "lo", "hi", "name", "stored"),
    [
        (80, 80, 80, "", 80),
        ("80", 80, 80, "", 80),  # a digit string reads as a number and is written as one
        ("80:90", 80, 90, "", "80:90"),
        ("90:90", 90, 90, "", 90),
        ("http", 0, 0, "http", "http"),
        ("80-90", 0, 0, "80-90", "80-90"),  # decodes as a name; validation refuses it
        (0, 0, 0, "", 0),  # decodes; validation refuses it
        (65535, 65535, 65535, "", 65535),
    ],
)
def test_port_decodes_and_writes_back(
    raw: object, lo: int, hi: int, name: str, stored: object
) -> None:
    port = Port.parse(raw)
    assert (port.min, port.max, port.name) == (lo, hi, name)
    assert port.to_json() == stored
    assert Port.parse(port.to_json()) == port


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (65536, "out of range"),
        (-1, "out of range"),
        ("90:80", "minimum port number (90) is greater than maximum port number (80)"),
        ("a b", "invalid name for named port"),
        ("x" * 129, "invalid name for named port"),
        (True, "number or a string"),
        (1.5, "number or a string"),
        ("1:70000", "out of range"),
    ],
)
def test_port_decoding_errors(raw: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        Port.parse(raw)
    assert fragment in str(info.value)


def test_port_helpers() -> None:
    assert 85 in Port.range(80, 90)
    assert 91 not in Port.range(80, 90)
    assert 80 not in Port.named("http")
    assert Port.range(80, 90).is_range and not Port.single(80).is_range
    assert Port.named("http").is_named


@pytest.mark.parametrize(
    ("raw", "value", "number", "stored"),
    [
        ("TCP", "TCP", 6, "TCP"),
        ("UDP", "UDP", 17, "UDP"),
        ("ICMPv6", "ICMPv6", 58, "ICMPv6"),
        ("SCTP", "SCTP", 132, "SCTP"),
        ("UDPLite", "UDPLite", 136, "UDPLite"),
        (6, 6, 6, 6),
        ("47", 47, 47, "47"),  # networking-calico writes numeric protocols as strings
        (255, 255, 255, 255),
    ],
)
def test_protocol(raw: object, value: object, number: int, stored: object) -> None:
    proto = Protocol.parse(raw)
    assert proto.value == value
    assert proto.number == number
    assert proto.to_json() == stored


def test_protocol_unknown_names_decode_but_have_no_number() -> None:
    assert Protocol.parse("tcp").value == "tcp"  # validation says "protocol name invalid"
    assert Protocol.parse("256").value == "256"  # a digit string out of range is a name
    assert not Protocol.parse("tcp").is_known
    with pytest.raises(ValueError, match="unknown protocol"):
        _ = Protocol.parse("tcp").number


@pytest.mark.parametrize("raw", [256, -1, True, 1.0, None])
def test_protocol_decoding_errors(raw: object) -> None:
    with pytest.raises(ValueError):
        Protocol.parse(raw)


def test_protocol_supports_ports() -> None:
    assert Protocol.parse("TCP").supports_ports and Protocol.parse(17).supports_ports
    assert not Protocol.parse("UDPLite").supports_ports
    assert not Protocol.parse("ICMP").supports_ports
