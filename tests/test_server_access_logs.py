"""The servers' own access logs (uvicorn, gunicorn) hold no full address, no query
string, no path token: the real demo and a bare uvicorn app as processes, and the
filter on gunicorn's records; and the client masking in the scope, in either order
of the two middlewares, still gives receipts the right masked address."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from consentmw import ConsentMiddleware, RequestLogMiddleware
from consentmw.privacy import MaskIPFilter, gunicorn_logconfig_dict, logging_config

from .conftest import SECRET, free_port, site

FORGED = "198.51.100.77"
SECRET_QUERY = "/pling?token=SECRET&phone=4791234567"
RESET = "/reset/8f14e45fceea167a5a36dedd4bea2543"
ROOT = Path(__file__).resolve().parents[1]


def _serve(cmd: list[str], tmp: Path, probe: str) -> tuple[subprocess.Popen[bytes], Path, str]:
    port = free_port()
    out = tmp / "server.out"
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], cwd=tmp, stdout=out.open("wb"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(base + probe, timeout=2)
            return proc, out, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(out.read_text(errors="replace"))


def _requests_then_log(base: str, proc: subprocess.Popen[bytes], out: Path) -> str:
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: the client it logs is
    # then the forged-looking 198.51.100.77, port 0.
    with httpx.Client(base_url=base, headers={"X-Forwarded-For": FORGED}) as client:
        client.get(SECRET_QUERY)
        client.get("/x%3Fphone=4791234567;jsessionid=SESSION1")
        client.get(RESET)
    proc.terminate()
    proc.wait(timeout=15)
    return out.read_text(errors="replace")


def _check(log: str) -> None:
    access = [line for line in log.splitlines() if '"GET ' in line]
    assert len(access) >= 3, log
    assert FORGED not in log and not any("127.0.0.1" in line for line in access)
    for secret in ("SECRET", "4791234567", "token=", "?", "jsessionid", "8f14e45fceea167a"):
        assert not any(secret in line for line in access), (secret, access)
    assert any('198.51.0.0 - "GET /pling HTTP/1.1" 200' in line for line in access), access
    assert any("GET /reset/:token HTTP/1.1" in line for line in access), access


@pytest.mark.slow
def test_demo_access_log_is_masked(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "consentmw.cli", "demo", "--log-dir", str(tmp_path / "logs"),
           "--records-url", f"sqlite:///{tmp_path}/receipts.db"]  # fmt: skip
    proc, out, base = _serve(cmd, tmp_path, "/_consent")
    _check(_requests_then_log(base, proc, out))


@pytest.mark.slow
def test_uvicorn_with_logging_config_alone(tmp_path: Path) -> None:
    """No consentmw middleware at all: the log configuration does the masking."""
    config = tmp_path / "log.json"
    config.write_text(json.dumps(logging_config()))
    cmd = [sys.executable, "-m", "uvicorn", "tests.log_privacy_app:app", "--log-config",
           str(config), "--app-dir", str(ROOT)]  # fmt: skip
    proc, out, base = _serve(cmd, tmp_path, "/")
    _check(_requests_then_log(base, proc, out))


def test_gunicorn_access_records_are_masked() -> None:
    atoms = {
        "h": "198.51.100.77", "r": "GET /pling?token=SECRET HTTP/1.1", "U": "/pling",
        "q": "token=SECRET", "f": "https://other.example/p?x=1", "s": "200",
        "{x-forwarded-for}i": "203.0.113.9",
    }  # fmt: skip
    record = logging.LogRecord("gunicorn.access", 20, "", 0, '%(h)s "%(r)s"', (), None)
    record.args = atoms  # as gunicorn's Logger.access builds it
    assert MaskIPFilter().filter(record)
    assert record.args["h"] == "198.51.0.0" and record.args["r"] == "GET /pling HTTP/1.1"
    assert record.args["q"] == "" and record.args["f"] == "https://other.example"
    assert record.args["{x-forwarded-for}i"] == "-"
    assert record.getMessage() == '198.51.0.0 "GET /pling HTTP/1.1"'
    config = gunicorn_logconfig_dict()
    assert config["handlers"]["access_console"]["filters"] == ["consentmw_mask"]


def test_websocket_lines_and_other_error_records() -> None:
    f = MaskIPFilter()
    ws = logging.LogRecord(
        "uvicorn.error", 20, "", 0, '%s - "WebSocket %s" [accepted]',
        ("198.51.100.77:5000", "/live?token=SECRET"), None,
    )  # fmt: skip
    f.filter(ws)
    assert ws.getMessage() == '198.51.0.0 - "WebSocket /live" [accepted]'
    banner = logging.LogRecord(
        "uvicorn.error", 20, "", 0, "Uvicorn running on %s://%s:%d", ("http", "0.0.0.0", 80), None
    )
    f.filter(banner)
    assert banner.getMessage() == "Uvicorn running on http://0.0.0.0:80"


# -- masking in the scope, and the receipts behind it --------------------------------------


async def _receipt_ip(app: object, consent: ConsentMiddleware) -> str:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 50000))  # the proxy
    async with httpx.AsyncClient(transport=transport, base_url="https://www.example.no") as c:
        r = await c.post(
            "/_consent",
            data={"action": "accept_all"},
            headers={"X-Forwarded-For": "203.0.113.77"},  # the visitor, as the proxy saw it
        )
        assert r.status_code in (200, 303)
        me = await c.get(
            "/_consent/me",
            headers={"Accept": "application/json", "X-Forwarded-For": "203.0.113.77"},
        )
    assert consent.receipts.store is not None
    await consent.receipts.store.close()
    return str(me.json()["receipts"][0]["masked_ip"])


def test_masking_in_scope_is_on_by_default(tmp_path: Path) -> None:
    assert RequestLogMiddleware(site(), directory=str(tmp_path)).mask_client_in_scope is True
    off = RequestLogMiddleware(site(), directory=str(tmp_path), mask_client_in_scope=False)
    assert off.mask_client_in_scope is False


@pytest.mark.parametrize("outer", ["requestlog", "consent"])
async def test_receipts_get_the_visitor_masked_in_either_order(tmp_path: Path, outer: str) -> None:
    trusted = ["10.0.0.0/8"]
    consent = ConsentMiddleware(
        site(), secret_key=SECRET, records_url=f"sqlite:///{tmp_path}/r.db",
        trusted_proxies=trusted, ipv4_prefix=24,
    )  # fmt: skip
    logs = str(tmp_path / "logs")
    if outer == "requestlog":  # masks the scope before ConsentMiddleware reads it
        app = RequestLogMiddleware(consent, directory=logs, trusted_proxies=trusted)
    else:
        consent.app = RequestLogMiddleware(consent.app, directory=logs, trusted_proxies=trusted)
        app = consent
    # The outer mask is /16 (203.0.0.0); the receipt's own /24 of it stays 203.0.0.0,
    # never the full address and never the proxy's.
    expected = "203.0.0.0" if outer == "requestlog" else "203.0.113.0"
    assert await _receipt_ip(app, consent) == expected
