"""What the pages tell a visitor must be true: Google's role, the request log, neutral defaults.

Each test reads the text a visitor really gets (through real ASGI calls), not a constant.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consentmw import ConsentConfig, ConsentMiddleware
from consentmw.config import ConfigError
from consentmw.registry import DEFAULT_COOKIES

from .conftest import SECRET, client_for, make_app


def texts_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("lang", ["nb", "en"])
async def test_analytics_texts_say_what_google_gets(lang: str) -> None:
    async with client_for(make_app()) as c:
        html = texts_of((await c.get(f"/_consent/cookies?lang={lang}")).text)
    # GA4 receives the full address (and does not store it); the old claim was false.
    assert "maskert IP" not in html and "masked IP" not in html
    if lang == "nb":
        assert "hele IP-adressen" in html and "lagrer den ikke" in html
        assert "databehandler" in html and "USA" in html
    else:
        assert "full IP address" in html and "does not store it" in html
        assert "processor" in html and "USA" in html


@pytest.mark.parametrize("lang", ["nb", "en"])
async def test_request_log_is_called_pseudonymous_not_anonymous(lang: str, tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        me = texts_of((await c.get(f"/_consent/me?lang={lang}")).text)
        gone = texts_of((await c.post("/_consent/forget", headers={"Accept-Language": lang})).text)
    word = {"nb": "pseudonym", "en": "pseudonymous"}[lang]
    assert word in me and ("ikke anonym" in me or "not anonymous" in me)
    for text in (me, gone):
        assert "ingenting der kan knyttes til deg" not in text
        assert "nothing in it can be linked to you" not in text


async def test_defaults_name_no_particular_site() -> None:
    # A site that sets nothing must not publish another company's name or its notes.
    app = ConsentMiddleware(lambda s, r, se: None, secret_key=SECRET, records_url=None)
    async with client_for(app) as c:
        for sub in ("cookies", "preferences", "me"):
            for lang in ("nb", "en"):
                html = (await c.get(f"/_consent/{sub}?lang={lang}")).text
                assert "Front" not in html and "Pling" not in html
                assert "localStorage" not in html and "local storage" not in html
                assert "Behandlingsansvarlig" not in html and "Data controller" not in html
    assert ConsentConfig(secret_key=SECRET).controller is None


async def test_the_demo_keeps_fronts_own_values() -> None:
    from consentmw.demo import create_app

    async with client_for(create_app(secret_key=SECRET, records_url=None)) as c:
        html = (await c.get("/_consent/cookies?lang=nb")).text
    assert "Front Information AS" in html and "localStorage" in html


def test_gat_lifetime_is_googles() -> None:
    gat = {s.name: s for s in DEFAULT_COOKIES}["_gat"]
    assert gat.lifetime == {"nb": "1 minutt", "en": "1 minute"}


@pytest.mark.parametrize("lang", ["nb", "en"])
async def test_me_page_speaks_plainly_in_local_time(lang: str, tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db", timezone="Europe/Oslo")
    async with client_for(app) as c:
        await c.post("/_consent", data={"action": "accept_all", "source": "banner"})
        html = (await c.get(f"/_consent/me?lang={lang}")).text
    row = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    assert row is not None
    body = row.group(1)
    for code in (">accept_all<", ">banner<", ">analytics<", ">-<"):
        assert code not in body, code
    assert ("Godtok alle" if lang == "nb" else "Accepted all") in body
    assert ("Statistikk" if lang == "nb" else "Analytics") in body
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d (CET|CEST)", body)  # Oslo time, not UTC ISO
    # Every cell has a label for the stacked (mobile) layout.
    cells = re.findall(r"<td([^>]*)>", body)
    assert cells
    assert all('data-label="' in a and 'data-label=""' not in a for a in cells)


async def test_me_page_offers_no_deletion_when_nothing_is_stored(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        html = (await c.get("/_consent/me?lang=en")).text
    assert "/_consent/forget" not in html and "nothing to delete" in html


def test_bad_timezone_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        ConsentConfig(secret_key=SECRET, timezone="Europe/Atlantis")


def test_request_log_module_does_not_claim_anonymity() -> None:
    import consentmw.requestlog as rl

    doc = rl.__doc__ or ""
    assert doc.startswith("Pseudonymous") and "not anonymous" in doc
