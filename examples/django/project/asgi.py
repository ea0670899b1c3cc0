"""Django's ASGI application inside consentmw: ``uvicorn project.asgi:application``."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.asgi import get_asgi_application

from consentmw import ConsentMiddleware, CookieSpec, RequestLogMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Production sets CONSENTMW_SECRET_KEY (>= 32 random bytes). The example makes one up
# so that it runs with one command; every restart then forgets the visitors' choices.
os.environ.setdefault("CONSENTMW_SECRET_KEY", secrets.token_urlsafe(48))

django_app = get_asgi_application()

DJANGO_COOKIES = [
    CookieSpec(
        "sessionid",
        "necessary",
        provider="first party",
        purpose={"nb": "Holder på økten din på nettstedet.", "en": "Keeps your session."},
        lifetime={"nb": "2 uker", "en": "2 weeks"},
    ),
    CookieSpec(
        "csrftoken",
        "necessary",
        provider="first party",
        purpose={
            "nb": "Beskytter skjemaer mot forfalskede forespørsler (CSRF).",
            "en": "Protects forms against cross-site request forgery (CSRF).",
        },
        lifetime={"nb": "1 år", "en": "1 year"},
    ),
]


async def with_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django refuses ASGI lifespan events; answering them here lets the request log and
    the receipt store start and flush with the server."""
    if scope["type"] != "lifespan":
        return await django_app(scope, receive, send)
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = RequestLogMiddleware(  # outermost: logs the state ConsentMiddleware resolved
    ConsentMiddleware(with_lifespan, extra_cookies=DJANGO_COOKIES),
    directory=os.environ.get("CONSENTMW_LOG_DIR", "logs"),
    mask_client_in_scope=True,  # Django's REMOTE_ADDR and uvicorn's access log: 127.0.0.0
)
