"""IPv6 addresses that carry an IPv4 address (6to4, Teredo, NAT64, IPv4-compatible and
-mapped) are masked as that IPv4 address, whatever IPv6 prefix is configured."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentmw.privacy.ip import embedded_ipv4, mask_ip
from consentmw.requestlog import RequestLogMiddleware
from tests.requestlog_helpers import read_records, run, text_app

from .conftest import make_app

CLIENT_V4 = "198.51.100.125"
SIX_TO_FOUR = "2002:c633:647d::1"  # 6to4 for 198.51.100.125
# RFC 4380's example: Teredo server 65.54.227.120, client 192.0.2.45 behind its NAT.
TEREDO = "2001:0:4136:e378:8000:63bf:3fff:fdd2"


@pytest.mark.parametrize(
    ("ip", "carried"),
    [
        (SIX_TO_FOUR, CLIENT_V4),
        ("[2002:c633:647d:1:2:3:4:5]:443", CLIENT_V4),
        (TEREDO, "192.0.2.45"),
        ("64:ff9b::198.51.100.125", CLIENT_V4),
        ("::198.51.100.125", CLIENT_V4),
        ("::ffff:198.51.100.125", CLIENT_V4),
    ],
)
@pytest.mark.parametrize("ipv6_prefix", [32, 48, 56, 64, 96, 128])
def test_embedded_ipv4_is_masked_as_ipv4(ip: str, carried: str, ipv6_prefix: int) -> None:
    expected = str(ipaddress.ip_network(f"{carried}/16", strict=False).network_address)
    assert mask_ip(ip, 16, ipv6_prefix) == expected
    assert mask_ip(ip, 24, ipv6_prefix) == carried.rsplit(".", 1)[0] + ".0"


def test_teredo_keeps_neither_server_nor_client_beyond_the_prefix() -> None:
    masked = mask_ip(TEREDO, 16, 64)
    assert masked == "192.0.0.0"
    assert "4136" not in masked and "65.54" not in masked  # the Teredo server


@pytest.mark.parametrize("ipv6_prefix", [48, 64, 96, 128])
def test_local_use_nat64_keeps_nothing_after_its_48(ipv6_prefix: int) -> None:
    # RFC 6052 lets the IPv4 address sit at bits 48, 56, 64 or 96 here: keep none of them.
    assert mask_ip("64:ff9b:1:c633:647d::1", 16, ipv6_prefix) == "64:ff9b:1::"
    assert mask_ip("64:ff9b:1::198.51.100.125", 16, ipv6_prefix) == "64:ff9b:1::"


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("::1", "::"), ("::", "::"), ("2001:db8:cafe:1234::17", "2001:db8:cafe::")],
)
def test_other_ipv6_is_masked_by_the_ipv6_prefix(ip: str, expected: str) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(ip.split("%")[0])) is None
    assert mask_ip(ip) == expected


# -- property: nothing of the carried IPv4 beyond the IPv4 prefix ------------------------

ALL = (1 << 128) - 1


def _six_to_four(v4: int, rest: int, _server: int) -> int:
    return (0x2002 << 112) | (v4 << 80) | (rest & ((1 << 80) - 1))


def _teredo(v4: int, rest: int, server: int) -> int:
    flags_port = rest & 0xFFFFFFFF
    return (0x20010000 << 96) | (server << 64) | (flags_port << 32) | (v4 ^ 0xFFFFFFFF)


def _nat64(v4: int, _rest: int, _server: int) -> int:
    return (0x64FF9B << 96) | v4


def _compatible(v4: int, _rest: int, _server: int) -> int:
    return v4


def _mapped(v4: int, _rest: int, _server: int) -> int:
    return (0xFFFF << 32) | v4


EMBEDDINGS = [_six_to_four, _teredo, _nat64, _compatible, _mapped]
u32 = st.integers(0, 0xFFFFFFFF)
u128 = st.integers(0, ALL)


@given(
    embed=st.sampled_from(EMBEDDINGS),
    v4=u32.filter(lambda v: v > 1),  # ::, ::1 are not IPv4-compatible addresses
    noise=u32,
    rest=st.tuples(u128, u128),
    servers=st.tuples(u32, u32),
    ipv4_prefix=st.integers(0, 32),
    ipv6_prefix=st.integers(32, 128),
)
def test_masked_output_keeps_no_ipv4_bits_beyond_the_ipv4_prefix(
    embed, v4, noise, rest, servers, ipv4_prefix, ipv6_prefix
) -> None:
    """Two addresses whose client IPv4 agree on the first ``ipv4_prefix`` bits (and
    differ anywhere else, Teredo server included) mask to the same output, which is that
    common prefix: nothing else of either address survives."""
    keep = (0xFFFFFFFF << (32 - ipv4_prefix)) & 0xFFFFFFFF
    other_v4 = (v4 & keep) | (noise & ~keep & 0xFFFFFFFF)
    if other_v4 <= 1:
        other_v4 = v4
    a = ipaddress.IPv6Address(embed(v4, rest[0], servers[0]))
    b = ipaddress.IPv6Address(embed(other_v4, rest[1], servers[1]))
    assert embedded_ipv4(a) == ipaddress.IPv4Address(v4)
    expected = str(ipaddress.IPv4Address(v4 & keep))
    assert mask_ip(str(a), ipv4_prefix, ipv6_prefix) == expected
    assert mask_ip(str(b), ipv4_prefix, ipv6_prefix) == expected


@given(low=st.integers(0, (1 << 80) - 1), ipv6_prefix=st.integers(32, 128))
def test_local_use_nat64_output_has_nothing_after_bit_48(low: int, ipv6_prefix: int) -> None:
    addr = ipaddress.IPv6Address((0x64FF9B0001 << 80) | low)
    masked = ipaddress.IPv6Address(mask_ip(str(addr), 16, ipv6_prefix))
    assert int(masked) & ((1 << 80) - 1) == 0


# -- end to end: the request log and the receipts ----------------------------------------


@pytest.mark.parametrize("ipv6_prefix", [48, 64])
def test_request_log_record_of_a_6to4_client(tmp_path: Path, ipv6_prefix: int) -> None:
    mw = RequestLogMiddleware(
        text_app, directory=str(tmp_path), flush_interval=60, ipv6_prefix=ipv6_prefix
    )
    run(mw, client=(SIX_TO_FOUR, 40000))
    mw.close()
    [record] = read_records(tmp_path)
    assert record["ip"] == "198.51.0.0"
    assert "c633" not in "".join(p.read_text() for p in tmp_path.glob("*.jsonl"))


async def test_receipt_of_a_6to4_client(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/receipts.db")
    transport = httpx.ASGITransport(app=app, client=(SIX_TO_FOUR, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://www.example.no") as c:
        await c.post("/_consent", data={"action": "accept_all", "lang": "en"})
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
    [receipt] = me["receipts"]
    assert receipt["masked_ip"] == "198.51.0.0"
