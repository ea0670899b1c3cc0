"""Front's setting: one app, several gunicorn/uvicorn workers, nginx (or an AWS ALB) in
front. Started by ``run.sh``; every instance is configured from the environment:

- ``CONSENTMW_SECRET_KEY``: the same secret in every worker and on every host, so a
  consent cookie signed by one is valid on all (the cookie keeps instances stateless);
- ``CONSENTMW_RECORDS_URL``: one receipt store (an SQLite file on one host,
  ``postgresql://...`` for a fleet);
- ``CONSENTMW_LOG_DIR``: one request-log directory; each worker appends whole lines to
  the current period's file;
- ``CONSENTMW_TRUSTED_PROXIES``: the proxy addresses whose X-Forwarded-For is believed.
"""

from __future__ import annotations

import os
from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from consentmw import ConsentMiddleware, RequestLogMiddleware, consent_state

TRUSTED_PROXIES = [
    p.strip() for p in os.environ.get("CONSENTMW_TRUSTED_PROXIES", "127.0.0.1").split(",")
]
PID = os.getpid()  # which worker answered, so the test can see the requests spread out


async def home(request: Request) -> HTMLResponse:
    consent = consent_state(request)
    response = HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Several workers + consentmw</title></head><body>"
        f"<h1>Worker {PID}</h1><p>Consent: <code>{escape(consent.summary)}</code></p>"
        "</body></html>",
        headers={"X-Worker": str(PID)},
    )
    # Set regardless of consent: ConsentMiddleware drops it until analytics is granted.
    response.set_cookie("_ga", "GA1.1.123456789.1700000000", max_age=63072000)
    return response


async def state(request: Request) -> JSONResponse:
    consent = consent_state(request)
    return JSONResponse(
        {"worker": PID, "decided": consent.decided, "granted": sorted(consent.granted)}
    )


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")  # the load balancer's health check


app = RequestLogMiddleware(
    # secret_key and records_url come from CONSENTMW_SECRET_KEY / CONSENTMW_RECORDS_URL.
    ConsentMiddleware(
        Starlette(routes=[Route("/", home), Route("/state", state), Route("/healthz", healthz)]),
        trusted_proxies=TRUSTED_PROXIES,  # for the masked address in consent receipts
    ),
    directory=os.environ.get("CONSENTMW_LOG_DIR", "logs"),
    trusted_proxies=TRUSTED_PROXIES,
    mask_client_in_scope=True,  # nothing behind this line sees the raw address
)
