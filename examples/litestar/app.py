"""consentmw around a Litestar app: run with ``uvicorn app:app`` from this folder.

Both middlewares are plain ASGI callables, so they wrap the Litestar application from
the outside; nothing in consentmw depends on Starlette being the framework.
"""

from __future__ import annotations

import os
import secrets
from html import escape

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import Cookie

from consentmw import ConsentMiddleware, RequestLogMiddleware, consent_state

# Production sets CONSENTMW_SECRET_KEY (>= 32 random bytes). The example makes one up
# so that it runs with one command; every restart then forgets the visitors' choices.
os.environ.setdefault("CONSENTMW_SECRET_KEY", secrets.token_urlsafe(48))


@get("/", media_type=MediaType.HTML)
async def home(request: Request) -> Response[str]:
    consent = consent_state(request.scope)  # the scope dict ConsentMiddleware filled in
    return Response(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Litestar + consentmw</title></head><body>"
        "<h1>Litestar + consentmw</h1>"
        f"<p>Consent: <code>{escape(consent.summary)}</code>; "
        f"analytics allowed: <code>{consent.allows('analytics')}</code></p>"
        "</body></html>",
        media_type=MediaType.HTML,
        # Set regardless of consent: ConsentMiddleware drops it until analytics is granted.
        cookies=[Cookie(key="_ga", value="GA1.1.123456789.1700000000", max_age=63072000)],
    )


@get("/state")
async def state(request: Request) -> dict[str, object]:
    consent = consent_state(request.scope)
    return {"decided": consent.decided, "granted": sorted(consent.granted)}


app = RequestLogMiddleware(  # outermost: it logs the consent state the inner one resolved
    ConsentMiddleware(Litestar(route_handlers=[home, state])),
    directory=os.environ.get("CONSENTMW_LOG_DIR", "logs"),
    mask_client_in_scope=True,  # the app and uvicorn's access log see 127.0.0.0
)
