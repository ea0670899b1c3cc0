"""consentmw in a FastAPI app: run with ``uvicorn app:app`` from this folder."""

from __future__ import annotations

import os
import secrets
from html import escape
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from consentmw import ConsentMiddleware, ConsentState, RequestLogMiddleware
from consentmw.fastapi import ConsentDep, consent_dependency

# Production sets CONSENTMW_SECRET_KEY (>= 32 random bytes). The example makes one up
# so that it runs with one command; every restart then forgets the visitors' choices.
os.environ.setdefault("CONSENTMW_SECRET_KEY", secrets.token_urlsafe(48))

app = FastAPI()
# add_middleware puts each new middleware outside the ones added before it, so the
# request log (added last) wraps ConsentMiddleware and logs the state it resolved.
app.add_middleware(ConsentMiddleware)
app.add_middleware(
    RequestLogMiddleware,
    directory=os.environ.get("CONSENTMW_LOG_DIR", "logs"),
    mask_client_in_scope=True,  # the app and uvicorn's access log see 127.0.0.0
)


@app.get("/", response_class=HTMLResponse)
def home(consent: ConsentDep) -> HTMLResponse:
    response = HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>FastAPI + consentmw</title></head><body>"
        "<h1>FastAPI + consentmw</h1>"
        f"<p>Consent: <code>{escape(consent.summary)}</code>; "
        f"analytics allowed: <code>{consent.allows('analytics')}</code></p>"
        "</body></html>"
    )
    # Set regardless of consent: ConsentMiddleware drops it until analytics is granted.
    response.set_cookie("_ga", "GA1.1.123456789.1700000000", max_age=63072000)
    return response


@app.get("/state")
def state(consent: Annotated[ConsentState, Depends(consent_dependency)]) -> dict[str, object]:
    """Server-side code checks consent the way the middleware does, e.g. before it sends
    an analytics event from the server."""
    return {"decided": consent.decided, "granted": sorted(consent.granted)}
