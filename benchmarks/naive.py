"""The peer reference: the straightforward way to inject a snippet with Starlette.

A ``BaseHTTPMiddleware`` that reads the whole response body, inserts the snippet before
``</body>`` and builds a new response: the reference point for what a straightforward
injector costs.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response


def reference_snippet() -> bytes:
    """consentmw's own undecided-visitor snippet, so both inject the same bytes."""
    from apps import consent_options

    from consentmw import ConsentMiddleware
    from consentmw.consent import ConsentState

    mw = ConsentMiddleware(None, **consent_options())
    state = ConsentState(policy_version=mw.config.policy_version)
    return mw.banner.snippet_parts("en", state, "/", None).encode()


class NaiveInjectMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, snippet: bytes) -> None:
        super().__init__(app)
        self.snippet = snippet

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if not response.headers.get("content-type", "").startswith("text/html"):
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        i = body.lower().rfind(b"</body>")
        if i >= 0:
            body = body[:i] + self.snippet + body[i:]
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return Response(body, status_code=response.status_code, headers=headers)
