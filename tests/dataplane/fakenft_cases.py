"""Script sequences with the verdict the kernel gives; FakeNft must agree (root test checks)."""

from __future__ import annotations

BASE = """add table ip t
add set ip t s { type ipv4_addr; }
add set ip t i { type ipv4_addr; flags interval; }
add set ip t n { type ipv4_addr . inet_proto . inet_service; }
add map ip t m { type ifname : verdict; }
add chain ip t c
add chain ip t d
add chain ip t d2
add chain ip t b { type filter hook forward priority filter; policy accept; }
add element ip t s { 10.0.0.1, 10.0.0.2 }
add element ip t i { 10.0.0.0/24, 10.1.0.1 }
add element ip t n { 10.0.0.1 . 6 . 80 }
add rule ip t b meta l4proto 6 th dport { 80, 1000-2000 } ip saddr @s meta mark set mark | 0x10000 return comment "cali:x; allow"
add rule ip t b ip daddr . meta l4proto . th dport @n accept
add rule ip t b meta l4proto 1 icmp type . icmp code != { 8 . 0 } accept
add rule ip t b ip saddr != { 10.0.0.0/8, 192.168.1.1 } drop
add rule ip t b iifname vmap @m
add rule ip t b ct state established,related accept
add rule ip t b log prefix "calico-packet: " level info
add rule ip t b jump c
add rule ip t c ip saddr @i goto d
add element ip t m { "tapx" : goto d }
"""

FIP_NAT = """add chain ip t pre { type nat hook prerouting priority dstnat; policy accept; }
add chain ip t out { type nat hook output priority -100; policy accept; }
add chain ip t post { type nat hook postrouting priority 110; policy accept; }
add chain ip t fipd
add chain ip t fips
add rule ip t pre jump fipd
add rule ip t out jump fipd
add rule ip t post jump fips
add rule ip t fipd ip daddr 10.9.0.1 dnat to 10.0.0.1 comment "cali:f; Floating IP"
add rule ip t fips ip saddr 10.0.0.1 ip daddr 10.0.0.1 snat to 10.9.0.1
"""

# (name, script, kernel accepts it) — each applied on top of BASE (which must succeed).
CASES: list[tuple[str, str, bool]] = [
    ("identical re-add of element", "add element ip t s { 10.0.0.1 }", True),
    ("identical re-add of chain", "add chain ip t c", True),
    ("identical set re-declaration", "add set ip t s { type ipv4_addr; }", True),
    (
        "set re-declared with other flags",
        "add set ip t s { type ipv4_addr; flags interval; }",
        False,
    ),
    ("delete missing element", "delete element ip t s { 10.9.9.9 }", False),
    ("delete chain still jumped to", "delete chain ip t c", False),
    ("delete chain still in a map", "flush chain ip t c\ndelete chain ip t d", False),
    ("flush referrer then delete", "flush chain ip t b\ndelete chain ip t c", True),
    ("delete set still used", "delete set ip t s", False),
    ("flush user then delete set", "flush chain ip t b\ndelete set ip t s", True),
    ("overlapping interval", "add element ip t i { 10.0.0.5 }", False),
    ("overlap inside one add", "add element ip t i { 10.5.0.0/24, 10.5.0.1 }", False),
    ("prefix in plain set", "add element ip t s { 10.0.0.0/24 }", False),
    ("v6 element in v4 set", "add element ip t s { 2001:db8::1 }", False),
    ("map goto unknown chain", 'add element ip t m { "tapy" : goto nochain }', False),
    ("map key rebound", 'add element ip t m { "tapx" : goto c }', False),
    ("map key re-added identically", 'add element ip t m { "tapx" : goto d }', True),
    ("delete map element", 'delete element ip t m { "tapx" }\ndelete chain ip t d', False),
    (
        "delete map element then chain",
        'delete element ip t m { "tapx" }\nflush chain ip t c\ndelete chain ip t d',
        True,
    ),
    ("rule with unknown set", "add rule ip t c ip saddr @nosuch accept", False),
    ("rule jumping to unknown chain", "add rule ip t c jump nosuch", False),
    ("rule in unknown chain", "add rule ip t nosuch accept", False),
    ("bad syntax", "add rule ip t c ip saddr frobnicate accept", False),
    ("atomic: good then bad", "add chain ip t e\nadd rule ip t e jump nosuch", False),
    (
        "delete non-empty unreferenced chain",
        "add chain ip t f\nadd rule ip t f accept\ndelete chain ip t f",
        True,
    ),
    ("delete missing table", "delete table ip nosuch", False),
    (
        "replace table wholesale",
        "add table ip t\ndelete table ip t\nadd table ip t\nadd chain ip t c",
        True,
    ),
    (
        "element delete then re-add",
        "delete element ip t s { 10.0.0.1 }\nadd element ip t s { 10.0.0.1 }",
        True,
    ),
    # ---- nat: floating IPs and metadata (the shapes render.py emits) ----
    ("floating-ip nat chains", FIP_NAT, True),
    (
        "dstnat keyword on the output hook",
        "add chain ip t o { type nat hook output priority dstnat; policy accept; }",
        False,
    ),
    (
        "srcnat keyword on the input hook",
        "add chain ip t o { type nat hook input priority srcnat; policy accept; }",
        False,
    ),
    (
        "dstnat keyword on a filter prerouting chain",
        "add chain ip t o { type filter hook prerouting priority dstnat; policy accept; }",
        True,
    ),
    (
        "nat chain on the forward hook",
        "add chain ip t o { type nat hook forward priority 0; policy accept; }",
        False,
    ),
    ("dnat in a filter base chain", "add rule ip t b ip daddr 10.9.0.1 dnat to 10.0.0.1", False),
    ("dnat in an unreferenced chain", "add rule ip t d2 ip daddr 10.9.0.1 dnat to 10.0.0.1", True),
    (
        "dnat in a chain reached from filter (goto, map)",
        "add rule ip t d ip daddr 10.9.0.1 dnat to 10.0.0.1",
        False,
    ),
    (
        "jump from filter to a chain with dnat",
        "add rule ip t d2 ip daddr 10.9.0.1 dnat to 10.0.0.1\nadd rule ip t c jump d2",
        False,
    ),
    (
        "snat reached from prerouting",
        FIP_NAT + "\nadd rule ip t fipd ip saddr 10.0.0.1 ip daddr 10.0.0.1 snat to 10.9.0.1",
        False,
    ),
    (
        "dnat reached from postrouting",
        FIP_NAT + "\nadd rule ip t fips ip daddr 10.9.0.1 dnat to 10.0.0.1",
        False,
    ),
    (
        "dnat with a port and metadata shape",
        FIP_NAT + '\nadd rule ip t pre iifname "tap*" ip daddr 169.254.169.254 tcp dport 80'
        " dnat to 127.0.0.1:8775",
        True,
    ),
    ("v6 dnat target in a v4 table", FIP_NAT + "\nadd rule ip t fipd dnat to fd00::1", False),
    (
        "flush the fip chains then refill",
        FIP_NAT + "\nflush chain ip t fipd\nflush chain ip t fips\n"
        "add rule ip t fipd ip daddr 10.9.0.2 dnat to 10.0.0.2",
        True,
    ),
]
