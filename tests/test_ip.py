"""Client IP behind trusted proxies, masking, and the uvicorn access-log filter."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentmw.privacy.ip import UNKNOWN_IP, client_ip, mask_ip, parse_trusted_proxies
from consentmw.privacy.logfilter import MaskIPFilter


def scope(peer: str | None, *headers: tuple[str, str]) -> dict:
    return {
        "type": "http",
        "client": None if peer is None else (peer, 5555),
        "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers],
    }


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.0.0"),
        ("203.0.113.77:8080", "203.0.0.0"),
        (" 203.0.113.77 ", "203.0.0.0"),
        ("2001:db8:cafe:1234::17", "2001:db8:cafe::"),
        ("[2001:db8:cafe:1234::17]:4711", "2001:db8:cafe::"),
        ("[2001:db8:cafe:1234::17]", "2001:db8:cafe::"),
        ("fe80::1:2:3:4%eth0", "fe80::"),
        ("::ffff:198.51.100.23", "198.51.0.0"),
        ("[::ffff:198.51.100.23]:80", "198.51.0.0"),
        ("::1", "::"),
    ],
)
def test_mask_defaults(ip: str, expected: str) -> None:
    assert mask_ip(ip) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "",
        "unknown",
        "_hidden",
        "not-an-ip",
        "300.1.1.1",
        "1.2.3",
        "[::1",
        "a" * 10_000,
        "1.2.3.4:x:y",
        "::ffff:1.2.3.999",
        "\x00",
        "１２３.1.1.1",
    ],
)
def test_mask_garbage_is_placeholder(garbage: object) -> None:
    assert mask_ip(garbage) == UNKNOWN_IP  # type: ignore[arg-type]


def test_mask_prefix_options() -> None:
    assert mask_ip("203.0.113.77", ipv4_prefix=24) == "203.0.113.0"  # Google Analytics style
    assert mask_ip("203.0.113.77", ipv4_prefix=32) == "203.0.113.77"
    assert mask_ip("2001:db8:cafe:1234::17", ipv6_prefix=64) == "2001:db8:cafe:1234::"
    assert mask_ip("::ffff:203.0.113.77", ipv4_prefix=24) == "203.0.113.0"
    with pytest.raises(ValueError, match="ipv4_prefix"):
        mask_ip("1.2.3.4", ipv4_prefix=33)
    with pytest.raises(ValueError, match="ipv6_prefix"):
        mask_ip("::1", ipv6_prefix=-1)


@given(st.one_of(st.text(max_size=80), st.ip_addresses().map(str)))
def test_mask_never_raises_and_never_leaks_host_bits(value: str) -> None:
    masked = mask_ip(value)
    assert masked == UNKNOWN_IP or masked.endswith((".0", "::", ":0"))


@given(st.ip_addresses(v=4))
def test_mask_v4_keeps_only_first_two_octets(ip) -> None:
    a, b, _, _ = str(ip).split(".")
    assert mask_ip(str(ip)) == f"{a}.{b}.0.0"


def test_parse_trusted_proxies_validates() -> None:
    tp = parse_trusted_proxies(["10.0.0.0/8", "127.0.0.1", "::1", "192.168.1.5/24"])
    assert "10.1.2.3" in tp and "127.0.0.1" in tp and "::1" in tp and "192.168.1.77" in tp
    assert "11.0.0.1" not in tp and "garbage" not in tp and None not in tp
    assert parse_trusted_proxies("10.0.0.1, 10.0.0.2").hosts
    assert parse_trusted_proxies(["*"]).always
    assert not parse_trusted_proxies([])
    for bad in (["10.0.0.0/33"], ["localhost"], ["10.0.0.300"], [42]):
        with pytest.raises(ValueError, match="trusted_proxies"):
            parse_trusted_proxies(bad)  # type: ignore[arg-type]


TRUSTED = parse_trusted_proxies(["10.0.0.0/8", "127.0.0.1"])
TRUSTED_FWD = parse_trusted_proxies(["10.0.0.0/8", "127.0.0.1"], header="forwarded")


def test_direct_peer_without_proxy() -> None:
    assert client_ip(scope("198.51.100.9"), TRUSTED) == "198.51.100.9"
    assert client_ip(scope(None), TRUSTED) is None


def test_forged_xff_from_untrusted_peer_is_ignored() -> None:
    s = scope("198.51.100.9", ("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2"))
    assert client_ip(s, TRUSTED) == "198.51.100.9"
    assert client_ip(s, parse_trusted_proxies([])) == "198.51.100.9"


def test_walks_from_the_right_past_trusted_hops() -> None:
    s = scope("10.0.0.1", ("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.7"))
    assert client_ip(s, TRUSTED) == "203.0.113.5"  # 6.6.6.6 may be forged by the client


def test_multiple_xff_headers_are_joined() -> None:
    s = scope("10.0.0.1", ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.5"))
    assert client_ip(s, TRUSTED) == "203.0.113.5"


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("203.0.113.5:51000, 10.0.0.2", "203.0.113.5"),
        ("[2001:db8::5]:443", "2001:db8::5"),
        ("fe80::5%eth0", "fe80::5"),
        ("unknown", None),
        ("1.1.1.1, garbage, 10.0.0.2", None),  # unusable hop where the client should be
        ("  ", "10.0.0.1"),  # empty header: the peer
        ("10.0.0.9, 127.0.0.1", "10.0.0.9"),  # all trusted: the leftmost
    ],
)
def test_xff_bad_input(xff: str, expected: str | None) -> None:
    assert client_ip(scope("10.0.0.1", ("x-forwarded-for", xff)), TRUSTED) == expected


def test_rfc7239_forwarded() -> None:
    s = scope(
        "127.0.0.1",
        ("forwarded", 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.3'),
    )
    assert client_ip(s, TRUSTED_FWD) == "2001:db8:cafe::17"
    s = scope("127.0.0.1", ("forwarded", "for=_hidden;by=10.0.0.1"))
    assert client_ip(s, TRUSTED_FWD) is None
    s = scope("127.0.0.1", ("forwarded", "proto=https"))  # says nothing about the client
    assert client_ip(s, TRUSTED_FWD) == "127.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ('for="[2001:db8::1]:4711"', "2001:db8::1"),
        ('for="[2001:db8::1]"', "2001:db8::1"),
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('for="192.0.2.60:8080"', "192.0.2.60"),
        ("for=unknown", None),
        ("for=_gazonk", None),
        ('for="_hidden", for=10.0.0.3', None),  # obfuscated where the client should be
        ("for=6.6.6.6, for=unknown", None),  # never a guess further left
        ("for=192.0.2.60, for=10.0.0.3, for=127.0.0.1", "192.0.2.60"),  # past trusted
        ("proto=https;for=192.0.2.60", "192.0.2.60"),  # for= need not come first
        ("by=10.0.0.1", "127.0.0.1"),  # no for= anywhere: the peer
    ],
)
def test_forwarded_hops(forwarded: str, expected: str | None) -> None:
    assert client_ip(scope("127.0.0.1", ("forwarded", forwarded)), TRUSTED_FWD) == expected


def test_forwarded_header_option_validates() -> None:
    assert parse_trusted_proxies([], header=" Forwarded ").header == "forwarded"
    assert parse_trusted_proxies(TRUSTED, header="forwarded").header == "forwarded"
    assert parse_trusted_proxies(TRUSTED_FWD).header == "forwarded"  # kept
    assert TRUSTED.header == "x-forwarded-for"  # the default
    for bad in ("x-real-ip", "", 3):
        with pytest.raises(ValueError, match="forwarded_header"):
            parse_trusted_proxies([], header=bad)  # type: ignore[arg-type]


# Both headers in every combination. The client is 203.0.113.5; its own forgeries say
# 6.6.6.6 (X-Forwarded-For) and 7.7.7.7 (Forwarded). "set" is what the trusted proxy
# at 10.0.0.1 appends, "forged" what it passes through from the client unchanged.
XFF_SET = ("x-forwarded-for", "203.0.113.5")
XFF_FORGED_AND_SET = ("x-forwarded-for", "6.6.6.6, 203.0.113.5")
XFF_FORGED = ("x-forwarded-for", "6.6.6.6")
FWD_SET = ("forwarded", "for=203.0.113.5;proto=https")
FWD_FORGED_AND_SET = ("forwarded", "for=7.7.7.7, for=203.0.113.5;proto=https")
FWD_FORGED = ("forwarded", "for=7.7.7.7")


@pytest.mark.parametrize(
    "headers",
    [
        (XFF_SET,),
        (XFF_FORGED_AND_SET,),
        (XFF_SET, FWD_FORGED),
        (FWD_FORGED, XFF_SET),
        (XFF_FORGED_AND_SET, FWD_FORGED),
    ],
)
def test_proxy_sets_x_forwarded_for(headers: tuple[tuple[str, str], ...]) -> None:
    assert client_ip(scope("10.0.0.1", *headers), TRUSTED) == "203.0.113.5"


@pytest.mark.parametrize(
    "headers",
    [
        (FWD_SET,),
        (FWD_FORGED_AND_SET,),
        (FWD_SET, XFF_FORGED),
        (XFF_FORGED, FWD_SET),
        (FWD_FORGED_AND_SET, XFF_FORGED),
    ],
)
def test_proxy_sets_forwarded(headers: tuple[tuple[str, str], ...]) -> None:
    assert client_ip(scope("10.0.0.1", *headers), TRUSTED_FWD) == "203.0.113.5"


@pytest.mark.parametrize("trusted", [TRUSTED, TRUSTED_FWD])
@pytest.mark.parametrize(
    "headers",
    [
        (XFF_FORGED,),
        (FWD_FORGED,),
        (XFF_FORGED, FWD_FORGED),
        (FWD_FORGED, XFF_FORGED),
    ],
)
def test_untrusted_peer_is_never_believed(trusted, headers: tuple[tuple[str, str], ...]) -> None:
    # The client talks to the app directly: nothing it sends is believed, either header.
    assert client_ip(scope("203.0.113.5", *headers), trusted) == "203.0.113.5"


@pytest.mark.parametrize(
    ("trusted", "headers"),
    [
        (TRUSTED, (FWD_SET,)),  # configured for X-Forwarded-For, proxy sent Forwarded
        (TRUSTED_FWD, (XFF_SET,)),  # and the other way round
    ],
)
def test_only_the_configured_header_counts(trusted, headers) -> None:
    # The header the proxy is not configured to set may be the client's: the peer it is.
    assert client_ip(scope("10.0.0.1", *headers), trusted) == "10.0.0.1"


def test_trust_everyone_takes_leftmost() -> None:
    s = scope("203.0.113.1", ("x-forwarded-for", "198.51.100.2, 10.0.0.1"))
    assert client_ip(s, parse_trusted_proxies("*")) == "198.51.100.2"


@given(st.lists(st.text(max_size=30), max_size=5))
def test_client_ip_never_raises(hops: list[str]) -> None:
    value = ", ".join(hops)
    s = scope("10.0.0.1", ("x-forwarded-for", value.encode("utf-8").decode("latin-1")))
    result = client_ip(s, TRUSTED)
    assert result is None or mask_ip(result) != UNKNOWN_IP


def test_access_log_filter_masks_uvicorn_records() -> None:
    f = MaskIPFilter(strip_query=True)
    args = ("203.0.113.77:51234", "GET", "/p?token=secret", "1.1", 200)
    record = logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)
    assert f.filter(record)
    message = record.getMessage()
    assert message == '203.0.0.0 - "GET /p HTTP/1.1" 200'
    assert "113.77" not in message and "secret" not in message
    for client, masked in [("2001:db8:cafe:1::5:443", "2001:db8:cafe::"), ("junk", UNKNOWN_IP)]:
        record = logging.LogRecord("uvicorn.access", 20, "", 0, "%s %s", (client, "x"), None)
        f.filter(record)
        assert record.args[0] == masked  # type: ignore[index]
    plain = logging.LogRecord("other", 20, "", 0, "no args", None, None)
    assert f.filter(plain) and plain.getMessage() == "no args"
