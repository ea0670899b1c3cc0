"""Drive an ASGI app by hand: full control over client, raw_path and headers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

UA_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
UA_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


class State:
    def __init__(self, summary: str) -> None:
        self.summary = summary
        self.consent_id = "c0ffee-consent-id-123"


async def call(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    client: tuple[str, int] | None = ("198.51.100.23", 40000),
    headers: list[tuple[bytes, bytes]] | None = None,
    raw_path: bytes | None = None,
    query: bytes = b"",
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "headers": headers or [],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return {"scope": scope, "sent": sent}


def run(app: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(call(app, *args, **kwargs))


class Lifespan:
    """Runs an app's lifespan in the background of the current event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str] = []

    async def _receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message["type"])

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.create_task(self.app(scope, self._receive, self._send))
        await self.inbox.put({"type": "lifespan.startup"})
        while not self.sent:
            await asyncio.sleep(0.005)

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.task


def read_records(directory: Path) -> list[dict[str, Any]]:
    out = []
    for file in sorted(directory.glob("requests-*.jsonl")):
        out += [json.loads(line) for line in file.read_text().splitlines()]
    return out


async def text_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes what the app sees of the client; answers lifespan like Starlette does."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps({"client": scope.get("client"), "headers": len(scope["headers"])}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body[:5], "more_body": True})
    await send({"type": "http.response.body", "body": body[5:]})


def country_database(path: Path, networks: dict[str, str]) -> Path:
    """A tiny MaxMind-format country database at ``path``: network -> ISO country code."""
    pytest.importorskip("maxminddb")
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet

    writer = mmdb_writer.MMDBWriter(6, "GeoLite2-Country", ipv4_compatible=True)
    for network, code in networks.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path
