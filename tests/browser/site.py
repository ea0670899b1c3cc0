"""A small test site behind ConsentMiddleware, served by uvicorn for the browser tests.

Run as ``python tests/browser/site.py PORT``. The Host header picks the configuration:
``advanced.*`` runs Google Analytics in advanced mode, ``marketing.*`` adds a marketing
category, anything else is the default (basic) setup.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
from html import escape
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from consentmw import ConsentMiddleware
from consentmw.registry import DEFAULT_CATEGORIES, Category

GA_ID = "G-TEST000000"
NAV = {
    "nb": [("/", "Forside"), ("/en", "English"), ("/news", "Nyheter"), ("/login", "Logg inn")],
    "en": [("/en", "Home"), ("/", "Norsk"), ("/news", "News"), ("/login", "Sign in")],
}


def document(title: str, body: str, lang: str = "nb", nonce: str | None = None) -> str:
    links = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in NAV[lang])
    nonce_attr = f' nonce="{nonce}"' if nonce else ""
    head_script = f"<style{nonce_attr}>nav a {{ display: inline-block; padding: 6px 0; }}</style>"
    if nonce:
        head_script += (
            f'<script nonce="{nonce}">window.__csp = []; document.addEventListener('
            '"securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective '
            '+ " " + e.blockedURI); });</script>'
        )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{head_script}</head><body>"
        f'<header><nav aria-label="{"Hovedmeny" if lang == "nb" else "Main"}"><ul>{links}</ul>'
        f"</nav></header><main><h1>{escape(title)}</h1>{body}</main>"
        "<footer><p>Testside for consentmw.</p></footer></body></html>"
    )


def html(content: str, **kwargs: str) -> HTMLResponse:
    response = HTMLResponse(content, **kwargs)  # type: ignore[arg-type]
    response.set_cookie("AWSALB", "server-1", max_age=7 * 86400)  # necessary: always allowed
    return response


FILLER = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8 + "</p>"


async def home(request: Request) -> Response:
    return html(document("Velkommen", "<p>Dette er en norsk testside.</p>" + FILLER * 4))


async def home_en(request: Request) -> Response:
    return html(document("Welcome", "<p>This is an English test page.</p>" + FILLER * 4, "en"))


async def news(request: Request) -> Response:
    return html(document("Nyheter", "<p>Ingen nyheter i dag.</p>"))


async def quiet(request: Request) -> Response:
    """A page that sends no Referer: its form posts carry ``Origin: null``."""
    response = html(document("Stille", "<p>Ingen Referer herfra.</p>"))
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def track(request: Request) -> Response:
    """The app tries to set Google Analytics cookies itself: consentmw must stop it."""
    response = html(document("Sporing", "<p>Denne siden prøver å sette _ga.</p>"))
    response.set_cookie("_ga", "GA1.1.42.42", max_age=63072000)
    response.set_cookie("_gid", "GA1.1.43.43", max_age=86400, httponly=True)
    return response


async def login(request: Request) -> Response:
    if request.method == "POST":
        form = parse_qs((await request.body()).decode())  # no python-multipart needed
        response = RedirectResponse("/account", status_code=303)
        user = form.get("user", ["anna"])[0]
        response.set_cookie("access_token", "at-" + user, httponly=True)
        response.set_cookie("refresh_token", "rt-" + user, httponly=True)
        return response
    body = (
        '<form method="post" action="/login"><label for="user">Brukernavn</label> '
        '<input id="user" name="user" autocomplete="username"> '
        '<label for="pw">Passord</label> <input id="pw" name="pw" type="password" '
        'autocomplete="current-password"> <button type="submit">Logg inn</button></form>'
    )
    return html(document("Logg inn", body))


async def account(request: Request) -> Response:
    token = request.cookies.get("access_token", "")
    text = f"Innlogget som {escape(token[3:])}" if token else "Ikke innlogget"
    return html(document("Konto", f"<p id='who'>{text}</p>"))


async def privacy(request: Request) -> Response:
    return html(document("Personvern", "<p>Personvernerklæringen til testsiden.</p>"))


async def scripts(request: Request) -> Response:
    """Scripts blocked by markup, under a strict nonce CSP without 'self' or 'strict-dynamic'."""
    nonce = secrets.token_urlsafe(16)
    body = (
        f'<script nonce="{nonce}">window.__ran = [];</script>'
        f'<script type="text/plain" data-consent-category="analytics" nonce="{nonce}">'
        'window.__ran.push("inline-1");</script>'
        f'<script type="text/plain" data-consent-category="analytics" nonce="{nonce}" '
        'src="/slow.js" data-x="kept"></script>'
        f'<script type="text/plain" data-consent-category="analytics" nonce="{nonce}">'
        'window.__ran.push("inline-2");</script>'
        "<p>Skript som venter på samtykke.</p>"
    )
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}' https://www.googletagmanager.com; "
        f"style-src 'nonce-{nonce}'; img-src 'self' https://*.google-analytics.com "
        "https://*.googletagmanager.com; connect-src 'self' https://*.google-analytics.com "
        "https://*.analytics.google.com https://*.googletagmanager.com; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    return html(document("Skript", body, nonce=nonce), headers={"Content-Security-Policy": csp})


# User content that imitates the snippet's root, as an HTML sanitiser lets it through (id and
# data-* kept): it stands earlier in the page than the real snippet.
FORGED = {
    "steer": (
        '<div id="consentmw-root" class="cmw" data-ga-src="https://evil.test/x.js" '
        'data-ga="G-EVIL" data-categories="analytics" data-granted="analytics"></div>'
    ),
    "loader": (
        '<div class="cmw" data-consentmw-snippet data-ga-src="https://evil.test/x.js" '
        'data-ga="G-EVIL" data-categories="analytics"></div>'
    ),
    "gpc": '<div class="cmw" data-consentmw-snippet data-categories="analytics"></div>',
    "clobber": '<a id="consentmwGa" href="https://evil.test/"></a><div id="dataLayer"></div>',
    "form": (
        '<form data-cmw-banner method="get" action="/news"><button name="action" '
        'value="accept_all">Les mer</button></form>'
    ),
}


async def comment(request: Request) -> Response:
    """A page with a user comment holding forged consentmw markup, under a nonce-only CSP."""
    nonce = secrets.token_urlsafe(16)
    forged = FORGED[request.path_params["kind"]]
    body = f'<article><p>Kommentar:</p><div class="comment">{forged}</div></article>' + FILLER
    csp = (
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "object-src 'none'; base-uri 'none'"
    )
    page = document("Kommentarer", body, nonce=nonce)
    return html(page, headers={"Content-Security-Policy": csp})


async def slow_js(request: Request) -> Response:
    await asyncio.sleep(0.3)  # loads after the next inline script would have run
    js = 'window.__ran.push("external:" + document.currentScript.getAttribute("data-x"));'
    return Response(js, media_type="text/javascript")


routes = [
    Route("/", home),
    Route("/en", home_en),
    Route("/news", news),
    Route("/quiet", quiet),
    Route("/track", track),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/account", account),
    Route("/privacy", privacy),
    Route("/scripts", scripts),
    Route("/slow.js", slow_js),
    Route("/comment/{kind}", comment),
]

MARKETING = Category(
    "marketing",
    {"nb": "Markedsføring", "en": "Marketing"},
    {"nb": "Annonser tilpasset deg.", "en": "Advertising tailored to you."},
)


def build(**options: object) -> ConsentMiddleware:
    options = {
        "secret_key": "browser-test-secret-" + "x" * 32,
        "records_url": None,
        "google_analytics_id": GA_ID,
        "privacy_policy_url": "/privacy",
        # http on a *.consentmw.test name: Chromium refuses Secure cookies from http.
        "secure_cookie": False,
        "controller": "Example AS",
        **options,
    }
    return ConsentMiddleware(Starlette(routes=routes), **options)  # type: ignore[arg-type]


SITES = {
    "basic": build(),
    # Receipts in a throwaway SQLite file: what a decision in the browser leaves as proof.
    "receipts": build(records_url=f"sqlite:///{tempfile.mkdtemp()}/receipts.db"),
    "advanced": build(analytics_mode="advanced"),
    "marketing": build(categories=(*DEFAULT_CATEGORIES, MARKETING)),
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Picks the configuration by the first label of the Host header."""
    host = b""
    for key, value in scope.get("headers", []):
        if key == b"host":
            host = value
    label = host.decode("latin-1").split(".")[0]
    await SITES.get(label, SITES["basic"])(scope, receive, send)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
