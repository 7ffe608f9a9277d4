"""Addresses a source must never be fetched from (SSRF): every spelling of loopback, and the
private, link-local and special ranges. Shared by the fetcher's tests and the service's."""

from __future__ import annotations

# Every spelling of the origin's own loopback address (PORT: the origin's port).
LOOPBACK = [
    "http://127.0.0.1:PORT",
    "https://127.0.0.1:PORT",
    "http://localhost:PORT",
    "http://LocalHost:PORT",
    "http://[::1]:PORT",
    "http://[0:0:0:0:0:0:0:1]:PORT",
    "http://0x7f000001:PORT",  # hex
    "http://0X7F000001:PORT",
    "http://2130706433:PORT",  # decimal
    "http://0177.0.0.1:PORT",  # octal
    "http://017700000001:PORT",
    "http://127.1:PORT",  # short forms
    "http://0x7f.1:PORT",
    "http://127.0.1:PORT",
    "http://127.0.0.1.:PORT",  # trailing dot
    "http://[::ffff:127.0.0.1]:PORT",  # IPv4-mapped
    "http://[::ffff:7f00:1]:PORT",
    "http://[::127.0.0.1]:PORT",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]:PORT",  # NAT64
    "http://[2002:7f00:1::1]:PORT",  # 6to4
    "http://0.0.0.0:PORT",  # "this host": connects to loopback on Linux
    "http://0:PORT",
]
# Not the origin: refused before any connection is tried (a try would hang on a connect timeout).
ELSEWHERE = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # its IPv6 twin
    "http://0xa9fea9fe/latest/meta-data/",  # 169.254.169.254 in hex
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
]
