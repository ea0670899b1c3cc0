"""Cookie header parsing never raises, and deletion covers host and parent domains."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentmw.setcookie import (
    MAX_COOKIE_NAME,
    MAX_REQUEST_COOKIES,
    cookie_domains,
    expire_headers,
    request_cookie,
    request_cookie_names,
    set_cookie_name,
)


@given(st.binary(max_size=2000))
def test_any_bytes_never_raise(value: bytes) -> None:
    assert isinstance(set_cookie_name(value), str)
    assert isinstance(request_cookie_names(value), tuple)
    request_cookie(value, "consentmw")


@given(st.text(max_size=300))
def test_any_host_never_raises(host: str) -> None:
    for domain in cookie_domains(host):
        assert "." in domain


def test_names() -> None:
    assert set_cookie_name(b"_ga=GA1.2; Domain=.example.no; Path=/") == "_ga"
    assert set_cookie_name(b" _gid = x") == "_gid"
    assert set_cookie_name(b"novalue") == ""
    assert set_cookie_name(b"=x") == ""
    assert request_cookie_names(b"a=1; b=2; a=3; junk; =x") == ("a", "b")
    assert request_cookie(b'x=1; consentmw="abc"', "consentmw") == "abc"


def test_domains() -> None:
    assert cookie_domains("www.example.no") == ("www.example.no", "example.no")
    assert cookie_domains("a.b.front.no:8443") == ("a.b.front.no", "b.front.no", "front.no")
    assert cookie_domains("localhost") == ()
    assert cookie_domains("127.0.0.1:8000") == ()
    assert cookie_domains("[::1]:80") == ()


def test_expire_headers() -> None:
    headers = expire_headers("_ga", "www.example.no", secure=True)
    assert headers[0].startswith(b"_ga=; Path=/; Max-Age=0")
    assert b"Domain=example.no" in headers[2] and b"Secure" in headers[2]
    assert len(headers) == 3


def test_a_megabyte_header_reads_only_the_first_cookies() -> None:
    """166k names in 1 MB: only the first 256 cookies are looked at, long names skipped."""
    header = b"; ".join(b"c%d=1" % i for i in range(166_000))
    assert len(header) > 1_000_000
    names = request_cookie_names(header)
    assert len(names) == MAX_REQUEST_COOKIES and names[-1] == "c255"
    assert request_cookie(header, "c255") == "1"
    assert request_cookie(header, "c256") is None  # beyond the bound: not read
    long = b"n" * (MAX_COOKIE_NAME + 1)
    assert request_cookie_names(long + b"=1; " + long[:-1] + b"=2") == ("n" * MAX_COOKIE_NAME,)


def test_consent_cookie_is_found_among_a_browsers_cookies() -> None:
    """Browsers keep at most 180 cookies per site: all of them are read."""
    header = b"; ".join([*(b"c%d=1" % i for i in range(179)), b"consentmw=v"])
    assert request_cookie(header, "consentmw") == "v"
    assert "consentmw" in request_cookie_names(header)


@pytest.mark.parametrize(
    "host",
    [
        "h" * 300 + ".example.no",  # too long
        "x" * 64 + ".example.no",  # a label over 63 bytes
        "a." * 20 + "example.no",  # more labels than any real site
        "evil.no; Domain=example.no",  # attribute injection
        "www.example.no,evil.no",
        "-www.example.no",
    ],
)
def test_hostile_hosts_give_no_domain_variants(host: str) -> None:
    assert cookie_domains(host) == ()
    assert len(expire_headers("_ga", host)) == 1  # host-only
