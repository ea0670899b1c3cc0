"""A tiny app for the multi-process test, configured from the environment (uvicorn --factory)."""

from __future__ import annotations

import os
from typing import Any

from consentmw.requestlog import RequestLogMiddleware


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def create_app() -> RequestLogMiddleware:
    return RequestLogMiddleware(
        ok_app,
        directory=os.environ["REQUESTLOG_DIR"],
        trusted_proxies=["127.0.0.1"],
        rotation_seconds=int(os.environ.get("REQUESTLOG_SECONDS", "1")),
        compress_after=0.5,
        maintenance_interval=0.3,
        flush_interval=0.05,
    )
