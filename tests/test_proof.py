"""Proof of consent that holds up: what a receipt says is what happened, and nothing a
client sends can make it say otherwise. Real ASGI calls, real receipt stores."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consentmw import ConsentMiddleware
from consentmw.records import Hold
from consentmw.records.holds import parse_day

from .conftest import PAGE, SECRET, client_for, make_app

GPC = {"Sec-GPC": "1"}
PAGE_LOAD = {"Sec-GPC": "1", "Sec-Fetch-Dest": "document", "Accept": "text/html"}


def receipts_of(app: ConsentMiddleware, consent_id: str) -> list[dict[str, object]]:
    store = app.receipts.store
    assert store is not None
    return [r.to_dict() for r in store.for_consent_id_sync(consent_id)]


def consent_cookies(response: httpx.Response) -> list[str]:
    return [
        v
        for v in response.headers.get_list("set-cookie")
        if v.startswith(("consentmw=", "__Host-consentmw=")) and "Max-Age=0" not in v
    ]


async def test_client_cannot_choose_its_source(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        r = await c.post("/_consent", json={"action": "accept_all", "source": "signal"})
        assert r.status_code == 200
        consent_id = app.codec.verify(c.cookies["consentmw"])[0].consent_id
    (receipt,) = receipts_of(app, consent_id)
    assert (receipt["action"], receipt["source"]) == ("accept_all", "api")
    assert receipt["granted"] == ["analytics"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"action": "reject_all", "source": "signal"}, ("reject_all", "api")),
        ({"action": "save", "categories": [], "source": "preferences"}, ("save", "preferences")),
        ({"action": "accept_all", "source": "banner"}, ("accept_all", "banner")),
        ({"action": "accept_all", "source": "anything"}, ("accept_all", "api")),
    ],
)
async def test_action_and_source_are_derived_on_the_server(
    tmp_path: Path, body: dict[str, object], expected: tuple[str, str]
) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        await c.post("/_consent", json=body)
        consent_id = app.codec.verify(c.cookies["consentmw"])[0].consent_id
    (receipt,) = receipts_of(app, consent_id)
    assert (receipt["action"], receipt["source"]) == expected


async def test_form_source_is_a_closed_set(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        await c.post("/_consent", data={"action": "reject_all", "source": "signal", "next": "/"})
        consent_id = app.codec.verify(c.cookies["consentmw"])[0].consent_id
    (receipt,) = receipts_of(app, consent_id)
    assert (receipt["action"], receipt["source"]) == ("reject_all", "banner")


async def test_json_language_is_the_one_rendered_and_hash_matches(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        await c.post(
            "/_consent",
            json={"action": "accept_all", "lang": "en", "source": "banner"},
            headers={"Accept-Language": "nb"},
        )
        consent_id = app.codec.verify(c.cookies["consentmw"])[0].consent_id
        await c.post("/_consent", json={"action": "reject_all", "lang": "xx"})
    first, second = receipts_of(app, consent_id)
    assert first["language"] == "en"
    assert first["banner_hash"] == app.banner.shown_texts("en")[0]
    assert second["language"] in ("nb", "en")  # an unknown language is never recorded


async def test_signal_flood_of_static_files_and_json_mints_nothing(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        page = (await c.get("/", headers={"Sec-GPC": "1", "Sec-Fetch-Dest": "empty"})).text
        css = next(
            part.split('"')[0] for part in page.split('href="')[1:] if "consent.css" in part
        )
        urls = [css, "/_consent", "/api", "/_consent/cookies"]
        set_cookies = 0
        for i in range(5000):
            headers = {"Sec-GPC": "1"} if i % 2 else {"DNT": "1"}
            r = await c.get(urls[i % len(urls)], headers=headers)
            assert r.status_code == 200
            set_cookies += len(consent_cookies(r))  # /api sets the app's own cookies
            c.cookies.clear()
    assert set_cookies == 0
    store = app.receipts.store
    assert store is not None and list(store.export_sync()) == []


async def test_static_answer_is_immutable_and_carries_no_cookie() -> None:
    async with client_for(make_app()) as c:
        page = (await c.get("/", headers=PAGE_LOAD)).text
        css = next(p.split('"')[0] for p in page.split('href="')[1:] if "consent.css" in p)
        c.cookies.clear()
        r = await c.get(css, headers=PAGE_LOAD)  # even a browser that says "document"
    assert "immutable" in r.headers["cache-control"]
    assert "set-cookie" not in r.headers


async def test_explicit_decision_wins_over_the_signal(tmp_path: Path) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        r = await c.post(
            "/_consent",
            data={"action": "accept_all", "next": "/"},
            headers={**PAGE_LOAD, "Content-Type": "application/x-www-form-urlencoded"},
        )
        (cookie,) = consent_cookies(r)  # one consent cookie: the decision's
        state = app.codec.verify(cookie.split(";")[0].split("=", 1)[1])[0]
    assert state is not None and state.decided and "analytics" in state.granted
    (receipt,) = receipts_of(app, state.consent_id or "")
    assert receipt["action"] == "accept_all" and receipt["granted"] == ["analytics"]


async def cached_page(request: Request) -> Response:
    return HTMLResponse(PAGE, headers={"Cache-Control": "public, max-age=600"})


async def plain_page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def test_signal_cookie_never_on_a_publicly_cacheable_page() -> None:
    site = Starlette(routes=[Route("/cached", cached_page), Route("/plain", plain_page)])
    app = ConsentMiddleware(site, secret_key=SECRET, records_url=None, controller="X")
    async with client_for(app) as c:
        shared = await c.get("/cached", headers=PAGE_LOAD)
        assert consent_cookies(shared) == [] and shared.headers["cache-control"].startswith(
            "public"
        )
        assert "cmw-banner" not in shared.text  # the refusal still applies
        private = await c.get("/plain", headers=PAGE_LOAD)
        assert len(consent_cookies(private)) == 1
        assert private.headers["cache-control"] == "private"


async def test_policy_bump_keeps_the_consent_id_and_rights_cover_all_versions(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    v1 = make_app(records_url=url, policy_version="1")
    async with client_for(v1) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        cookie = c.cookies["consentmw"]
    consent_id = v1.codec.verify(cookie)[0].consent_id
    v1.receipts.store.close_sync()
    v2 = make_app(records_url=url, policy_version="2")
    async with client_for(v2) as c:
        c.cookies.set("consentmw", cookie, domain="www.example.no")
        state = (await c.get("/_consent")).json()
        assert state["decided"] is False  # asked again under the new policy
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
        assert me["consent_id"] == consent_id and len(me["receipts"]) == 1
        await c.post("/_consent", data={"action": "reject_all"})
        assert v2.codec.verify(c.cookies["consentmw"])[0].consent_id == consent_id
        me = (await c.get("/_consent/me", headers={"Accept": "application/json"})).json()
        assert [r["policy_version"] for r in me["receipts"]] == ["1", "2"]
        gone = await c.post("/_consent/forget", headers={"Accept": "application/json"})
        assert gone.json()["deleted_receipts"] == 2
    assert receipts_of(v2, consent_id) == []


async def test_forget_keeps_held_receipts_and_tells_the_visitor_without_the_case(
    tmp_path: Path,
) -> None:
    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    async with client_for(app) as c:
        await c.post("/_consent", data={"action": "accept_all"})
        consent_id = app.codec.verify(c.cookies["consentmw"])[0].consent_id
        store = app.receipts.store
        store.add_hold_sync(
            Hold(case="Sak 12/2026", consent_ids=(consent_id,), review=parse_day("2027-06-01", "x"))
        )
        cookie = c.cookies["consentmw"]
        as_json = await c.post("/_consent/forget", headers={"Accept": "application/json"})
        assert as_json.json() == {"deleted_receipts": 0, "kept_under_legal_hold": 1}
        assert "Sak 12/2026" not in as_json.text
        c.cookies.clear()
        page = await c.post(
            "/_consent/forget",
            headers={"Accept-Language": "en", "Cookie": f"consentmw={cookie}"},
        )
    assert "legal obligation" in page.text and "Sak 12/2026" not in page.text
    assert len(receipts_of(app, consent_id)) == 1




async def test_banner_views_and_signal_refusals_are_counted_not_receipted(tmp_path: Path) -> None:
    from datetime import date

    app = make_app(records_url=f"sqlite:///{tmp_path}/r.db")
    counter = app.receipts.counter
    assert counter is not None
    async with client_for(app) as c:
        for _ in range(3):
            await c.get("/", headers={"Accept-Language": "en"})  # the banner, three times
        await c.get("/", headers=PAGE_LOAD)  # a signal refusal, persisted
        await c.get("/", headers=PAGE_LOAD)  # already persisted: not counted again
        await c.get("/api", headers=GPC)  # not a page: neither persisted nor counted
    await counter.flush()
    store = app.receipts.store
    today = date.today()
    rows = {(r.kind, r.language): r.count for r in store.counts_sync(today, today)}
    assert rows[("banner_shown", "en")] == 3
    assert sum(n for (kind, _), n in rows.items() if kind == "signal_refusal") == 1
    assert list(store.export_sync()) == []
