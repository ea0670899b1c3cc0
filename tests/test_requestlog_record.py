"""Record helpers, User-Agent parsing backends and the optional ASN lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentmw.requestlog import RequestLogMiddleware
from consentmw.requestlog.record import decode_path, primary_language, referrer_host
from consentmw.requestlog.useragent import UAParser, fast_backend_available
from tests.requestlog_helpers import country_database, read_records, run, text_app

REAL_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/119.0.6045.169 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 OPR/105.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/441.0.0.23.105;FBBV/537315385]",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "curl/8.4.0",
    "python-httpx/0.27.0",
    "Mozilla/5.0 (Mobile; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5",
    "",
    "garbage \x00\xff",
]


def test_user_agents_classification() -> None:
    parse = UAParser()
    assert parse(REAL_UAS[0]) == ("Chrome", "120", "Windows", "10", "desktop")
    assert parse(REAL_UAS[5]).device == "tablet"
    assert parse(REAL_UAS[6]).device == "mobile"
    assert parse(REAL_UAS[12]).device == "bot"
    assert parse(None) == parse("") == ("Other", None, "Other", None, "other")
    assert parse("x" * 10_000).browser == "Other"
    parse(REAL_UAS[0])
    assert parse.cache_info().hits >= 1


@pytest.mark.skipif(not fast_backend_available(), reason="ua-parser 1.x not installed")
def test_fast_backend_gives_identical_results() -> None:
    slow, fast = UAParser("user-agents"), UAParser("ua-parser")
    assert fast.backend == "ua-parser"
    for ua in REAL_UAS:
        assert slow(ua) == fast(ua), ua
    assert UAParser("auto").backend == "ua-parser"


def test_helpers() -> None:
    assert decode_path(b"/a%20b?x=1") == "/a b"
    assert decode_path("/plain") == "/plain"
    assert decode_path(b"") == "/"
    assert referrer_host(b"https://user:pw@Example.NO:8443/p?q=1") == "example.no"
    assert referrer_host(b"not a url") is None and referrer_host(None) is None
    assert primary_language(b"en-GB,en;q=0.9") == "en"
    assert primary_language(b"nb-NO,nb;q=0.9,en;q=0.5") == "nb"
    assert primary_language(b"*") is None and primary_language(None) is None


def test_asn_not_configured_and_missing_file(tmp_path: Path) -> None:
    mw = RequestLogMiddleware(text_app, directory=str(tmp_path), flush_interval=60)
    assert mw.log.asn is None
    with pytest.raises(ValueError, match=r"asn_database.*no such file"):
        RequestLogMiddleware(text_app, directory=str(tmp_path), asn_database=tmp_path / "x")
    (tmp_path / "bad.mmdb").write_bytes(b"not a database")
    with pytest.raises(ValueError, match="asn_database"):
        RequestLogMiddleware(text_app, directory=str(tmp_path), asn_database=tmp_path / "bad.mmdb")
    mw.close()


def test_asn_lookup_from_tiny_database(tmp_path: Path) -> None:
    pytest.importorskip("maxminddb")
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet

    writer = mmdb_writer.MMDBWriter(6, "GeoLite2-ASN", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["198.51.100.0/24"]),
        {"autonomous_system_number": 2119, "autonomous_system_organization": "Telenor Norge AS"},
    )
    writer.insert_network(
        IPSet(["2001:db8::/32"]),
        {"autonomous_system_number": 64500, "autonomous_system_organization": "Test Net"},
    )
    db = tmp_path / "asn.mmdb"
    writer.to_db_file(str(db))
    logs = tmp_path / "logs"
    mw = RequestLogMiddleware(text_app, directory=str(logs), asn_database=db, flush_interval=60)
    run(mw, client=("198.51.100.23", 1))
    run(mw, client=("2001:db8::77", 1))
    run(mw, client=("203.0.113.9", 1))
    run(mw, client=None)
    mw.close()
    rows = [(r["ip"], r["asn"], r["isp"]) for r in read_records(logs)]
    assert rows == [
        ("198.51.0.0", 2119, "Telenor Norge AS"),
        ("2001:db8::", 64500, "Test Net"),
        ("203.0.0.0", None, None),
        ("0.0.0.0", None, None),
    ]


def test_country_from_tiny_database_reaches_the_log_and_the_report(tmp_path: Path) -> None:
    networks = {"198.51.100.0/24": "NO", "2001:db8::/32": "SE"}
    db = country_database(tmp_path / "country.mmdb", networks)
    logs = tmp_path / "logs"
    mw = RequestLogMiddleware(text_app, directory=str(logs), country_database=db, flush_interval=60)
    for client in (("198.51.100.23", 1), ("198.51.100.24", 1), ("2001:db8::77", 1)):
        run(mw, client=client)
    run(mw, client=("203.0.113.9", 1))
    mw.close()
    rows = [(r["ip"], r["country"]) for r in read_records(logs)]
    assert rows == [
        ("198.51.0.0", "NO"),
        ("198.51.0.0", "NO"),
        ("2001:db8::", "SE"),
        ("203.0.0.0", None),
    ]
    with pytest.raises(ValueError, match="country_database"):
        RequestLogMiddleware(text_app, directory=str(logs), country_database=tmp_path / "x.mmdb")
