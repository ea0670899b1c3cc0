"""A small demo site for a Norwegian SMS company, with consentmw in front of it.

Its pages set every kind of cookie the privacy policy declares, so the enforcement can be
watched in a browser's developer tools: the login sets ``access_token``/``refresh_token``,
a stand-in load balancer sets ``AWSALB``, the live page sets ``io``, and the statistics
page's handler tries to set Google Analytics cookies, which only pass after consent.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import consent_state
from .middleware import ConsentMiddleware

DEMO_GA_ID = "G-DEMO000000"
# The demo's analytics dashboard: a fixed password, printed when the demo starts. A demo
# on a laptop, not a secret; a real site passes its own sign-in as ``authorize``.
DASHBOARD_PATH = "/statistikk/dashboard"
DASHBOARD_USER = "admin"
DASHBOARD_PASSWORD = "pling-demo"

_NAV = {
    "nb": (
        ("/", "Forside"),
        ("/pling", "Pling"),
        ("/statistikk", "Statistikk"),
        ("/live", "Sanntid"),
        ("/en", "English"),
        ("/login", "Logg inn"),
    ),
    "en": (
        ("/", "Norsk"),
        ("/pling", "Pling"),
        ("/statistikk", "Analytics"),
        ("/live", "Live"),
        ("/en", "English"),
        ("/login", "Sign in"),
    ),
}
_STATUS = {
    "nb": ("Samtykke nå", "statistikk tillatt"),
    "en": ("Consent now", "analytics allowed"),
}
# Updates the status line when the visitor decides without a reload (consentmw's event).
_DEMO_JS = b"""document.addEventListener("consentmw:change", function (e) {
  var c = e.detail.categories, s = document.getElementById("demo-state");
  if (!s) return;
  var decided = e.detail.decided || e.detail.signal;
  s.textContent = c.analytics ? "granted" : (decided ? "denied" : "undecided");
  document.getElementById("demo-analytics").textContent = c.analytics ? "True" : "False";
});
"""

# Front Information AS's own values: they belong to this demo (and to Front's example
# configuration), never to the library's defaults.
FRONT: dict[str, Any] = {
    "controller": "Front Information AS",
    "texts": {
        "nb": {
            "storage_note": "Innstillinger i nettappen Pling lagres lokalt i nettleseren din "
            "(localStorage) og sendes aldri til oss eller til andre."
        },
        "en": {
            "storage_note": "Settings of the Pling web app are kept in your browser's local "
            "storage and are never sent to us or anyone else."
        },
    },
}

def _page(request: Request, title: str, body: str, lang: str = "nb") -> HTMLResponse:
    nav = " | ".join(f'<a href="{href}">{escape(label)}</a>' for href, label in _NAV[lang])
    now, allowed = _STATUS[lang]
    state = consent_state(request)
    user = request.cookies.get("access_token")
    who = f"<p>Innlogget som <strong>{escape(user)}</strong></p>" if user else ""
    html = f"""<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - Front demo</title>
<link rel="icon" href="data:,"><script src="/demo.js" defer></script>
<style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:0 auto;padding:1rem 1rem 12rem;
line-height:1.5}}nav a{{color:#1f3a93}}code{{background:#eef;padding:0 .2rem}}</style></head>
<body>
<header><p><strong>Front Information AS</strong> (demo)</p><nav>{nav}</nav></header>
<main>
<h1>{escape(title)}</h1>
{who}
{body}
<p role="status">{now}: <code id="demo-state">{escape(state.summary)}</code>, {allowed}:
<code id="demo-analytics">{state.allows("analytics")}</code></p>
</main>
</body>
</html>"""
    return HTMLResponse(html)


async def home(request: Request) -> Response:
    return _page(
        request,
        "SMS og nummeropplysning",
        "<p>Dette er en demo av consentmw. Åpne utviklerverktøyene og se hvilke "
        "informasjonskapsler som settes før og etter at du har valgt.</p>"
        '<script type="text/plain" data-consent-category="analytics">'
        "window.demoAnalyticsRan = true;</script>",
    )


async def english(request: Request) -> Response:
    return _page(
        request,
        "SMS and directory services",
        "<p>The same demo in English: the banner follows the page's language.</p>",
        lang="en",
    )


async def pling(request: Request) -> Response:
    return _page(
        request,
        "Pling",
        "<p>Pling er SMS-appen vår. Innstillingene dine lagres bare i nettleseren "
        "(localStorage).</p>",
    )


async def statistics(request: Request) -> Response:
    """Tries to set Google Analytics cookies from the server: consentmw decides."""
    response = _page(
        request,
        "Statistikk",
        "<p>Denne siden prøver å sette <code>_ga</code>, <code>_gid</code> og "
        "<code>_ga_DEMO000000</code>. Uten samtykke fjerner consentmw dem.</p>",
    )
    domain = _parent_domain(request.url.hostname or "")
    for name, value in (
        ("_ga", "GA1.1.123456789.1700000000"),
        ("_gid", "GA1.1.987654321.1700000000"),
        ("_ga_DEMO000000", "GS1.1.1700000000.1.0.1700000000.0.0.0"),
    ):
        response.set_cookie(name, value, max_age=63072000, domain=domain)
    return response


def _parent_domain(host: str) -> str | None:
    """``.example.no`` for ``www.example.no`` (as Google's script does); None for an IP
    address or a single-label host such as ``localhost``, where a Domain attribute would
    make the browser reject the cookie (``Domain=.0.0.1`` for 127.0.0.1)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    return "." + host.split(".", 1)[1] if host.count(".") >= 2 else None


async def demo_js(request: Request) -> Response:
    return Response(_DEMO_JS, media_type="text/javascript")


async def live(request: Request) -> Response:
    response = _page(request, "Sanntid", "<p>Her ville push-oppdateringer kommet.</p>")
    response.set_cookie("io", secrets.token_urlsafe(12), httponly=True)
    return response


async def login(request: Request) -> Response:
    if request.method == "POST":
        form = (await request.body()).decode("utf-8", "replace")
        user = "kunde"
        for part in form.split("&"):
            key, _, value = part.partition("=")
            if key == "user" and value:
                user = value[:32]
        response = RedirectResponse("/", status_code=303)
        response.set_cookie("access_token", user, httponly=True, samesite="lax")
        response.set_cookie("refresh_token", secrets.token_urlsafe(16), httponly=True)
        return response
    return _page(
        request,
        "Logg inn",
        '<form method="post" action="/login"><label>Brukernavn '
        '<input name="user" value="kunde" autocomplete="username"></label> '
        '<button type="submit">Logg inn</button></form>',
    )


async def privacy(request: Request) -> Response:
    return _page(
        request,
        "Personvern",
        "<p>Her står personvernerklæringen til nettstedet. Du kan når som helst endre "
        'valgene dine under <a href="/_consent/preferences">innstillinger for '
        "informasjonskapsler</a>.</p>",
    )


async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie("access_token")
    response.delete_cookie("refresh_token")
    return response


def basic_auth(user: str, password: str) -> Callable[[Request], bool | None]:
    """A Dashboard ``authorize``: HTTP Basic with one user; ``None`` (401) asks again."""
    expected = f"{user}:{password}".encode()

    def authorize(request: Request) -> bool | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        return True if secrets.compare_digest(given, expected) else None

    return authorize


def _with_dashboard(app: ASGIApp, log_directory: str | Path, records_url: str | None) -> ASGIApp:
    """Mount the analytics dashboard beside the site, outside the consent and request-log
    middleware: an administrator's page gets no banner and is not a page view."""
    try:
        from .analytics import Dashboard
        from .analytics.consentcounts import ReceiptConsentCounts
    except ImportError:  # the analytics extra is not installed
        return app
    consent = None
    if records_url:
        from .records import open_store

        consent = ReceiptConsentCounts(open_store(records_url))
    dashboard = Dashboard(
        str(log_directory),
        authorize=basic_auth(DASHBOARD_USER, DASHBOARD_PASSWORD),
        consent=consent,
        title="Front demo: analytics",
        challenge='Basic realm="consentmw demo analytics"',
    )
    return Router(routes=[Mount(DASHBOARD_PATH, app=dashboard), Mount("", app=app)])


class FakeLoadBalancer:
    """Sets an AWSALB routing cookie the way AWS's load balancer does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"AWSALB={secrets.token_hex(16)}; Path=/; Max-Age=604800"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, wrapped)


def create_app(
    *,
    secret_key: str | None = None,
    google_analytics_id: str | None = DEMO_GA_ID,
    log_directory: str | Path | None = None,
    records_url: str | None = None,
    dashboard: bool = False,
) -> ASGIApp:
    """The demo site wrapped in ConsentMiddleware (and the request log when asked); with
    ``dashboard`` and a log directory, the analytics dashboard at :data:`DASHBOARD_PATH`
    (user :data:`DASHBOARD_USER`, password :data:`DASHBOARD_PASSWORD`)."""
    site = Starlette(
        routes=[
            Route("/", home),
            Route("/en", english),
            Route("/pling", pling),
            Route("/statistikk", statistics),
            Route("/live", live),
            Route("/personvern", privacy),
            Route("/demo.js", demo_js),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["GET", "POST"]),
        ]
    )
    key = secret_key or os.environ.get("CONSENTMW_SECRET_KEY") or secrets.token_urlsafe(48)
    app: ASGIApp = ConsentMiddleware(
        site,
        secret_key=key,
        google_analytics_id=google_analytics_id,
        privacy_policy_url="/personvern",
        records_url=records_url,
        **FRONT,
    )
    if log_directory is not None:
        from .requestlog import RequestLogMiddleware

        app = RequestLogMiddleware(app, directory=log_directory)
        if dashboard:
            app = _with_dashboard(app, log_directory, records_url)
    return FakeLoadBalancer(app)
