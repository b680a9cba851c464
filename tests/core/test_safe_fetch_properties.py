"""Property tests of the SSRF address rules against an independent reference (no network).

The reference is the IANA special-purpose IPv4 registry written out by hand; the fetcher's
`address_refusal` must agree with it on every address, in every spelling and IPv6 wrapping.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors_module.core.safe_fetch import FetchError, address_refusal, parse_target

# IANA IPv4 Special-Purpose Address Registry (plus multicast and class E): never fetched.
INTERNAL_V4 = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
]  # fmt: skip


def reference_internal(addr: ipaddress.IPv4Address) -> bool:
    return any(addr in net for net in INTERNAL_V4)


ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
internal_v4 = st.sampled_from(INTERNAL_V4).flatmap(
    lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net[i])
)


@settings(max_examples=3000, deadline=None)
@given(ipv4)
def test_ipv4_refusal_matches_the_iana_registry(addr):
    assert (address_refusal(addr) is not None) == reference_internal(addr), addr


@settings(max_examples=500, deadline=None)
@given(internal_v4)
def test_internal_ipv4_is_refused_inside_every_ipv6_wrapping(v4):
    n = int(v4)
    for wrapped in (
        (0xFFFF << 32) | n,  # IPv4-mapped
        n if n > 1 else None,  # IPv4-compatible
        (0x64FF9B << 96) | n,  # NAT64
        (0x2002 << 112) | (n << 80),  # 6to4
        (0x20010000 << 96) | (~n & 0xFFFFFFFF),  # Teredo (client address is inverted)
    ):
        if wrapped is None:
            continue
        addr = ipaddress.IPv6Address(wrapped)
        assert address_refusal(addr) is not None, (str(addr), str(v4))


@settings(max_examples=500, deadline=None)
@given(ipv4.filter(lambda a: not reference_internal(a)))
def test_public_ipv4_stays_reachable_when_mapped_or_nat64(v4):
    n = int(v4)
    assert address_refusal(ipaddress.IPv6Address((0xFFFF << 32) | n)) is None
    assert address_refusal(ipaddress.IPv6Address((0x64FF9B << 96) | n)) is None


def spellings(addr: ipaddress.IPv4Address) -> list[str]:
    """Spellings inet_aton and many URL parsers accept for the same address."""
    n = int(addr)
    a, b, c, d = addr.packed
    return [
        str(n),
        hex(n),
        f"0x{n:08X}",
        oct(n).replace("0o", "0"),
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",
        f"{a:03d}.{b:03d}.{c:03d}.{d:03d}" if min(a, b, c, d) < 100 else f"0{a}.{b}.{c}.{d}",
    ]


@settings(max_examples=500, deadline=None)
@given(ipv4)
def test_every_non_canonical_ipv4_spelling_is_refused(addr):
    for host in spellings(addr):
        with pytest.raises(FetchError) as exc:
            parse_target(f"http://{host}/x.png")
        assert exc.value.reason == "ssrf_blocked", host


@settings(max_examples=500, deadline=None)
@given(ipv4)
def test_canonical_dotted_quad_is_judged_by_the_address_alone(addr):
    url = f"http://{addr}/x.png"
    if reference_internal(addr):
        with pytest.raises(FetchError):
            parse_target(url)
    else:
        assert parse_target(url).literal == addr


def _boundaries():
    for net in INTERNAL_V4:
        first, last = int(net[0]), int(net[-1])
        for n in (first - 1, first, first + 1, last - 1, last, last + 1):
            if 0 <= n < 2**32:
                yield ipaddress.IPv4Address(n)


@pytest.mark.parametrize("addr", sorted(set(_boundaries())), ids=str)
def test_ipv4_range_boundaries_match_the_registry(addr):
    assert (address_refusal(addr) is not None) == reference_internal(addr)
