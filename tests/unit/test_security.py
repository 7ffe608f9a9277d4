"""Source address checks: only public unicast addresses (and the IPv4 they hide) are fetched."""

from __future__ import annotations

import ipaddress

import pytest

from imgserver.security import embedded_ipv4, is_public


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001:0::/32) for ``server`` and the obfuscated ``client``."""
    s = int(ipaddress.IPv4Address(server))
    c = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    port = 0x63BF  # obfuscated UDP port: any value
    value = (0x20010000 << 96) | (s << 64) | (0x8000 << 48) | (port << 32) | c
    return str(ipaddress.IPv6Address(value))


PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",  # just outside 172.16/12
    "100.128.0.1",  # just outside 100.64/10
    "11.0.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:8.8.8.8",  # mapped public
    "2002:0808:0808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    teredo("65.54.227.120", "8.8.8.8"),
]

NOT_PUBLIC = [
    # IPv4
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",  # documentation
    "198.51.100.1",
    "203.0.113.1",
    "198.18.0.1",  # benchmarking
    "192.0.0.8",
    # IPv6
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456:789a::1",
    "ff02::1",
    "ff0e::1",
    "fec0::1",  # deprecated site-local
    "2001:db8::1",  # documentation
    "100::1",  # discard-only
    "2001:10::1",  # ORCHID
    # IPv4 hidden in IPv6
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "0:0:0:0:0:ffff:7f00:1",
    "::127.0.0.1",  # deprecated IPv4-compatible
    "::10.0.0.1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:0101::1",  # 6to4 of 192.168.1.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
    "64:ff9b::",
    teredo("65.54.227.120", "10.0.0.1"),  # Teredo, private client
    teredo("65.54.227.120", "127.0.0.1"),
    teredo("10.0.0.1", "8.8.8.8"),  # Teredo, private server
    # not addresses
    "",
    "localhost",
    "example.com",
    "127.1",
    "2130706433",
    "0x7f000001",
    "1.1.1.1 ",
    " 1.1.1.1",
    "8.8.8.8/32",
    "[::1]",
    "::1::1",
    "1.2.3.4.5",
    "256.1.1.1",
    "gggg::1",
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str) -> None:
    assert is_public(address) is True
    assert is_public(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert is_public(address) is False


@pytest.mark.parametrize(
    ("address", "hidden"),
    [
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("2002:7f00:1::1", ["127.0.0.1"]),
        ("2002:0808:0808::1", ["8.8.8.8"]),
        ("64:ff9b::7f00:1", ["127.0.0.1"]),
        ("64:ff9b:1::a00:1", ["10.0.0.1"]),
        ("::10.0.0.1", ["10.0.0.1"]),
        (teredo("65.54.227.120", "10.0.0.1"), ["65.54.227.120", "10.0.0.1"]),
        ("2606:4700:4700::1111", []),
        ("::1", []),
        ("::", []),
    ],
)
def test_embedded_ipv4(address: str, hidden: list[str]) -> None:
    found = embedded_ipv4(ipaddress.IPv6Address(address))
    assert [str(a) for a in found] == hidden


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:10.0.0.1", "8.8.8.8"])
def test_address_objects_and_strings_agree(address: str) -> None:
    assert is_public(ipaddress.ip_address(address)) == is_public(address)
