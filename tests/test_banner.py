"""The banner, the consent pages and the static files, through real ASGI calls.

Everything a visitor without JavaScript gets is decided here, in the server-rendered HTML:
equal buttons, nothing pre-ticked, the language, the texts, and whether Google's loader
is on the page at all.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consentmw import ConsentMiddleware
from consentmw.banner import choose_language
from consentmw.resources import static_dir, static_files

GA = "G-TEST000000"


def page_html(lang: str | None) -> str:
    attr = f' lang="{lang}"' if lang else ""
    return f"<!doctype html><html{attr}><head><title>t</title></head><body><p>x</p></body></html>"


async def nb_page(request: Request) -> Response:
    return HTMLResponse(page_html("nb"))


async def en_page(request: Request) -> Response:
    return HTMLResponse(page_html("en-GB"))


async def bare_page(request: Request) -> Response:
    return HTMLResponse(page_html(None))


async def csp_page(request: Request) -> Response:
    return HTMLResponse(
        page_html("en"), headers={"Content-Security-Policy": "script-src 'nonce-abc123'"}
    )


def make(**options: Any) -> ConsentMiddleware:
    app = Starlette(
        routes=[
            Route("/", nb_page),
            Route("/en", en_page),
            Route("/bare", bare_page),
            Route("/csp", csp_page),
        ]
    )
    options = {
        "secret_key": "x" * 32,
        "records_url": None,
        "controller": "Example AS",
        "secure_cookie": False,  # plain http in these tests
        **options,
    }
    return ConsentMiddleware(app, **options)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with _client(make(google_analytics_id=GA, privacy_policy_url="/privacy")) as c:
        yield c


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://www.example.no")


def snippet(html: str) -> str:
    start = html.index('<div class="cmw" data-consentmw-snippet')
    return html[start : html.rindex("</div>") + 6]


async def decide(c: httpx.AsyncClient, action: str, categories: list[str] | None = None) -> None:
    r = await c.post(
        "/_consent", json={"action": action, "categories": categories or [], "source": "api"}
    )
    assert r.status_code == 200


# -- the first layer -----------------------------------------------------------------------------


async def test_banner_is_a_real_form_that_returns_to_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/?q=1&x=<b>")
    html = snippet(response.text)
    assert "data-consentmw-snippet" in html
    assert re.search(r'<form class="cmw-banner-inner" method="post" action="/_consent">', html)
    assert 'name="next"' not in html and "q=1" not in html  # the page names no address
    assert 'role="region" aria-labelledby="cmw-title"' in html
    # The browser's Referer names the page; the answer goes back there.
    decided = await client.post(
        "/_consent",
        data={"action": "reject_all", "source": "banner", "lang": "nb"},
        headers={"Referer": str(response.url)},
    )
    assert decided.status_code == 303
    assert decided.headers["location"] == "/?q=1&x=%3Cb%3E"


async def test_accept_reject_and_settings_are_the_same_element_and_class(
    client: httpx.AsyncClient,
) -> None:
    banner = snippet((await client.get("/")).text).split("</section>", 1)[0]
    buttons = re.findall(r"<(\w+)[^>]*class=\"(cmw-btn)\"[^>]*>([^<]*)<", banner)
    assert [(tag, cls) for tag, cls, _ in buttons] == [("button", "cmw-btn")] * 3
    assert [label for _, _, label in buttons] == ["Godta alle", "Avvis alle", "Innstillinger"]
    assert '<a class="cmw-btn"' not in banner
    # Settings works without JavaScript: a GET to the preferences page, same form fields.
    assert 'formmethod="get" formaction="/_consent/preferences"' in banner


async def test_nothing_is_pre_ticked_until_granted(client: httpx.AsyncClient) -> None:
    html = (await client.get("/_consent/dialog?lang=nb")).text
    assert 'value="analytics"' in html and " checked" not in html
    await decide(client, "accept_all")
    html = (await client.get("/_consent/dialog?lang=nb")).text
    assert re.search(r'value="analytics"[^>]* checked', html)
    await decide(client, "reject_all")
    assert " checked" not in (await client.get("/_consent/dialog?lang=nb")).text


async def test_after_deciding_the_banner_goes_and_the_settings_button_stays(
    client: httpx.AsyncClient,
) -> None:
    await decide(client, "reject_all")
    html = snippet((await client.get("/")).text)
    assert "data-cmw-banner" not in html
    assert 'id="cmw-reopen"' in html and "data-undecided" not in html
    assert "<dialog" not in html  # fetched from /_consent/dialog when opened


async def test_links_controller_and_cookie_facts_in_the_panel(client: httpx.AsyncClient) -> None:
    for html in (
        snippet((await client.get("/")).text),  # the banner
        (await client.get("/_consent/dialog?lang=nb")).text,
    ):
        assert 'href="/_consent/cookies?lang=nb"' in html
        assert 'href="/privacy"' in html
        assert "Behandlingsansvarlig: Example AS" in html
    assert "<code>_ga</code>" in html and "Opplysninger sendes til Google." in html
    assert "<code>__utma</code>, <code>_utma</code>" in html  # one row per cookie fact


async def test_no_privacy_link_unless_configured() -> None:
    async with _client(make()) as c:
        html = snippet((await c.get("/")).text)
    assert "Personvernerklæring" not in html


# -- languages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "accept", "default", "expected"),
    [
        ("/", "en", "en", "nb"),  # <html lang> beats Accept-Language and the default
        ("/en", "nb", "nb", "en"),
        ("/bare", "en-US,en;q=0.9", "nb", "en"),  # then Accept-Language
        ("/bare", "nn-NO", "en", "nb"),  # nynorsk readers get bokmål, not English
        ("/bare", "", "nb", "nb"),  # then the default
        ("/bare", "", "en", "en"),
        ("/bare", "de, fr;q=0.8", "en", "en"),
    ],
)
async def test_language_choice(path: str, accept: str, default: str, expected: str) -> None:
    async with _client(make(default_language=default)) as c:
        html = snippet((await c.get(path, headers={"Accept-Language": accept})).text)
    assert f'data-consentmw-snippet lang="{expected}"' in html
    title = {"nb": "Vi bruker informasjonskapsler", "en": "We use cookies"}[expected]
    assert title in html


def test_choose_language_weights() -> None:
    assert choose_language(None, "en;q=0.5, nb;q=0.9", "en") == "nb"
    assert choose_language("NO", "en", "en") == "nb"
    assert choose_language("sv", "en", "nb") == "en"


@pytest.mark.parametrize(("lang", "word"), [("nb", "Leverandør"), ("en", "Provider")])
async def test_pages_in_both_languages(client: httpx.AsyncClient, lang: str, word: str) -> None:
    for sub in ("cookies", "preferences"):
        r = await client.get(f"/_consent/{sub}?lang={lang}")
        assert r.status_code == 200
        assert f'<html lang="{lang}">' in r.text and word in r.text
        assert "Example AS" in r.text


# -- the declaration and the preferences page ----------------------------------------------------


async def test_declaration_names_provider_purpose_lifetime_and_third_party(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/_consent/cookies?lang=en")).text
    row = re.search(r"<tr><th scope=\"row\"><code>_ga</code></th>(.*?)</tr>", html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    assert cells == [
        "Google",
        "Tells visitors apart so the number of users can be counted.",
        "2 years",
        "Yes (Google)",
    ]
    access = re.search(r"<code>access_token</code></th>(.*?)</tr>", html, re.S)
    assert access is not None and "This site (first party)" in access.group(1)
    assert access.group(1).endswith(">No</td>")
    assert "Data controller: <strong>Example AS</strong>" in html


async def test_preferences_page_shows_state_and_necessary_always_on(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/_consent/preferences?lang=en&next=/en")).text
    assert "You have not chosen yet." in html and "Always on" in html
    assert '<input type="hidden" name="next" value="/en">' in html
    assert " checked" not in html
    await decide(client, "accept_all")
    html = (await client.get("/_consent/preferences?lang=en")).text
    assert "Analytics: <strong>On</strong>" in html and " checked" in html


# -- site owners' texts and templates ------------------------------------------------------------


async def test_texts_override_and_script_in_a_text_is_shown_as_text() -> None:
    texts = {"en": {"title": "<script>alert(1)</script> Cookies!", "accept_all": "Yes"}}
    async with _client(make(texts=texts)) as c:
        html = snippet((await c.get("/en")).text)
        page = (await c.get("/_consent/preferences?lang=en")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Cookies!" in html
    assert "<script>alert" not in html
    assert ">Yes</button>" in html and "Avvis alle" not in html
    assert "Yes</button>" in page


async def test_templates_override_searched_first_and_can_extend_the_shipped_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "consentmw"
    folder.mkdir()
    (folder / "_banner.html").write_text(
        '<section data-cmw-banner class="mine">{{ t.title }} {{ owner }}</section>'
    )
    (folder / "cookies.html").write_text(
        '{% extends "consentmw-default/cookies.html" %}'
        "{% block title %}Custom: {{ super() }}{% endblock %}"
    )
    async with _client(make(templates_dir=str(tmp_path))) as c:
        html = snippet((await c.get("/")).text)
        page = (await c.get("/_consent/cookies?lang=en")).text
    assert '<section data-cmw-banner class="mine">Vi bruker informasjonskapsler </section>' in html
    assert "data-consentmw-snippet" in html  # the rest of the shipped snippet is kept
    assert "<title>Custom: Cookies on this site</title>" in page
    assert "<code>_ga</code>" in page


# -- scripts: same-origin files, nonce, Google's loader only when allowed ------------------------


def scripts(html: str) -> list[str]:
    return re.findall(r"<script[^>]*>", html)


async def test_basic_mode_has_no_google_loader_before_consent(client: httpx.AsyncClient) -> None:
    html = snippet((await client.get("/")).text)
    assert [s for s in scripts(html) if "consent-ga.js" in s] == []
    assert "googletagmanager" not in html
    await decide(client, "reject_all")
    assert 'consent-ga.js" defer' not in snippet((await client.get("/")).text)


async def test_basic_mode_leaves_the_loader_to_consent_js(client: httpx.AsyncClient) -> None:
    """Basic mode: no page carries the Google loader; consent.js loads it from beside its own
    URL once analytics is granted (the browser tests watch it happen), so the loader must be
    served there, immutable, under the one digest."""
    await decide(client, "save", ["analytics"])
    html = snippet((await client.get("/")).text)
    tags = scripts(html)
    assert len(tags) == 1 and "/consent.js" in tags[0]
    assert 'data-ga="' in html and "consent-ga.js" not in html
    own = re.search(r'src="(/_consent/static/[0-9a-f]{8}/)consent\.js"', tags[0])
    assert own is not None
    r = await client.get(own.group(1) + "consent-ga.js")
    assert r.status_code == 200 and r.content == static_files()["consent-ga.js"].body
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_advanced_mode_leaves_the_loader_to_consent_js_too() -> None:
    """Advanced mode loads gtag.js before consent (all denied): consent.js loads the loader at
    once (the browser tests watch it), so the page carries one script tag and the mode."""
    async with _client(make(google_analytics_id=GA, analytics_mode="advanced")) as c:
        for action in (None, "reject_all"):
            if action:
                await decide(c, action)
            html = snippet((await c.get("/")).text)
            tags = scripts(html)
            assert len(tags) == 1 and "/consent.js" in tags[0], tags
            assert 'data-ga-mode="advanced"' in html


async def test_no_loader_without_a_measurement_id() -> None:
    async with _client(make()) as c:
        await decide(c, "accept_all")
        tags = scripts(snippet((await c.get("/")).text))
    assert len(tags) == 1 and "/consent.js" in tags[0]


async def test_every_script_is_a_same_origin_file_carrying_the_csp_nonce(
    client: httpx.AsyncClient,
) -> None:
    async with _client(make(google_analytics_id=GA, analytics_mode="advanced")) as c:
        await decide(c, "accept_all")
        html = snippet((await c.get("/csp")).text)
    tags = re.findall(r"<(script|link)\b[^>]*>", html)
    assert tags == ["link", "script"]  # consent.js loads the Google loader with its nonce
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", html):
        assert 'nonce="abc123"' in tag
        assert re.search(r'(?:src|href)="/_consent/static/[0-9a-f]{8}/', tag)
    assert "style=" not in html  # no inline styles either: style-src needs no 'unsafe-inline'
    dialog = (await client.get("/_consent/dialog?lang=en")).text
    assert "<script" not in dialog and "style=" not in dialog
    assert re.search(r"<[^>]*\son\w+=", dialog) is None  # no inline event handlers


async def test_static_files_are_immutable_and_typed(client: httpx.AsyncClient) -> None:
    html = snippet((await client.get("/")).text)
    for name in ("consent.js", "consent.css"):
        url = re.search(rf'"(/_consent/static/[0-9a-f]{{8}}/{re.escape(name)})"', html)
        assert url is not None
        r = await client.get(url.group(1))
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.content == static_files()[name].body
    js = await client.get(f"/_consent/static/x/{'consent-ga.js'}")
    assert "javascript" in js.headers["content-type"]


def test_consent_js_is_under_6_kb_gzipped() -> None:
    for name in ("consent.js", "consent-ga.js"):
        body = (static_dir() / name).read_bytes()
        size = len(gzip.compress(body, compresslevel=9))
        assert size < 6 * 1024, f"{name} is {size} bytes gzipped"


def test_static_javascript_has_no_eval_or_string_built_code() -> None:
    for name in ("consent.js", "consent-ga.js"):
        text = (static_dir() / name).read_text()
        for banned in ("eval(", "new Function", "innerHTML", "document.write"):
            assert banned not in text, (name, banned)
