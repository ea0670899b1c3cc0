"""Which proxy header counts, end to end: the request log and the receipts read only the
header the trusted proxy is configured to set (``forwarded_header``), never the other."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from consentmw import ConfigError
from consentmw.requestlog import RequestLogMiddleware
from tests.requestlog_helpers import read_records, run, text_app

from .conftest import make_app

PROXY = "10.0.0.1"
# The client is 203.0.113.5; 6.6.6.6 and 7.7.7.7 are what it forged itself.
BOTH = {
    "forwarded": [
        (b"x-forwarded-for", b"6.6.6.6"),  # passed through from the client
        (b"forwarded", b"for=7.7.7.7, for=203.0.113.5;proto=https"),  # the proxy appended
    ],
    "x-forwarded-for": [
        (b"forwarded", b'for="[2001:db8::66]"'),  # passed through from the client
        (b"x-forwarded-for", b"6.6.6.6, 203.0.113.5"),  # the proxy appended
    ],
}


def log_ip(tmp_path: Path, peer: str, headers: list[tuple[bytes, bytes]], **options) -> str:
    mw = RequestLogMiddleware(
        text_app, directory=str(tmp_path), flush_interval=60, ipv4_prefix=32, **options
    )
    run(mw, client=(peer, 40000), headers=headers)
    mw.close()
    [record] = read_records(tmp_path)
    return record["ip"]


@pytest.mark.parametrize("header", ["forwarded", "x-forwarded-for"])
def test_request_log_reads_the_configured_header(tmp_path: Path, header: str) -> None:
    ip = log_ip(tmp_path, PROXY, BOTH[header], trusted_proxies=[PROXY], forwarded_header=header)
    assert ip == "203.0.113.5"


def test_request_log_default_ignores_forwarded(tmp_path: Path) -> None:
    # Not configured for Forwarded: a proxy that sets only Forwarded is not believed,
    # and the peer (the proxy) is logged rather than anything the client may have sent.
    headers = BOTH["forwarded"][1:]
    assert log_ip(tmp_path, PROXY, headers, trusted_proxies=[PROXY]) == PROXY


@pytest.mark.parametrize("header", ["forwarded", "x-forwarded-for"])
def test_request_log_untrusted_peer_is_never_believed(tmp_path: Path, header: str) -> None:
    ip = log_ip(
        tmp_path, "203.0.113.5", BOTH[header], trusted_proxies=[PROXY], forwarded_header=header
    )
    assert ip == "203.0.113.5"


def test_request_log_option_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSENTMW_TRUSTED_PROXIES", PROXY)
    monkeypatch.setenv("CONSENTMW_FORWARDED_HEADER", "Forwarded")
    assert log_ip(tmp_path, PROXY, BOTH["forwarded"]) == "203.0.113.5"


def test_request_log_rejects_an_unknown_header(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="forwarded_header"):
        RequestLogMiddleware(text_app, directory=str(tmp_path), forwarded_header="x-real-ip")


@pytest.mark.parametrize("header", ["forwarded", "x-forwarded-for"])
async def test_receipt_reads_the_configured_header(tmp_path: Path, header: str) -> None:
    app = make_app(
        records_url=f"sqlite:///{tmp_path}/receipts.db",
        trusted_proxies=[PROXY],
        forwarded_header=header,
        ipv4_prefix=24,
    )
    transport = httpx.ASGITransport(app=app, client=(PROXY, 50000))
    headers = [(k.decode(), v.decode()) for k, v in BOTH[header]]
    async with httpx.AsyncClient(transport=transport, base_url="http://www.example.no") as c:
        await c.post("/_consent", data={"action": "accept_all"}, headers=headers)
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
    [receipt] = me["receipts"]
    assert receipt["masked_ip"] == "203.0.113.0"


def test_config_rejects_an_unknown_header() -> None:
    with pytest.raises(ConfigError, match="forwarded_header"):
        make_app(forwarded_header="x-real-ip")
