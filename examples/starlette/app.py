"""consentmw in a Starlette app: run with ``uvicorn app:app`` from this folder."""

from __future__ import annotations

import os
import secrets
from html import escape

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from consentmw import ConsentMiddleware, RequestLogMiddleware, consent_state

# Production sets CONSENTMW_SECRET_KEY (>= 32 random bytes). The example makes one up
# so that it runs with one command; every restart then forgets the visitors' choices.
os.environ.setdefault("CONSENTMW_SECRET_KEY", secrets.token_urlsafe(48))


async def home(request: Request) -> HTMLResponse:
    consent = consent_state(request)
    response = HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Starlette + consentmw</title></head><body>"
        "<h1>Starlette + consentmw</h1>"
        f"<p>Consent: <code>{escape(consent.summary)}</code>; "
        f"analytics allowed: <code>{consent.allows('analytics')}</code></p>"
        "</body></html>"
    )
    # Set regardless of consent: ConsentMiddleware drops it until analytics is granted.
    response.set_cookie("_ga", "GA1.1.123456789.1700000000", max_age=63072000)
    return response


async def state(request: Request) -> JSONResponse:
    consent = consent_state(request)
    return JSONResponse({"decided": consent.decided, "granted": sorted(consent.granted)})


app = Starlette(
    routes=[Route("/", home), Route("/state", state)],
    middleware=[
        # The first is outermost: the log sees the consent state the inner one resolved.
        Middleware(
            RequestLogMiddleware,
            directory=os.environ.get("CONSENTMW_LOG_DIR", "logs"),
            mask_client_in_scope=True,  # the app and uvicorn's access log see 127.0.0.0
        ),
        Middleware(ConsentMiddleware),
    ],
)
