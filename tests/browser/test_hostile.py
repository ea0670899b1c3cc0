"""Real Chromium: page content that imitates consentmw's markup cannot steer its scripts.

Each page (tests/browser/site.py ``/comment/{kind}``) holds a user comment with a forged
``id="consentmw-root"`` element, as an HTML sanitiser lets it through, before the real
snippet, under a nonce-only CSP (so a script consentmw loads with its nonce would run).
Every request the page makes is recorded; any to an origin other than the site's is aborted,
except Google's, which the ``visit`` fixture answers with a stub tag.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import GA_ID, GOOGLE, Visit
from .test_e2e import DENIED, banner, consent_calls, wait_for_tag

pytestmark = pytest.mark.browser

GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"


def record(v: Visit) -> list[tuple[str, str]]:
    """(method, url) of every request from now on; other origins than the site's (and
    Google's stand-in) are aborted."""
    seen: list[tuple[str, str]] = []
    v.context.on("request", lambda r: seen.append((r.method, r.url)))
    v.context.route(
        lambda url: not url.startswith(v.base + "/") and not GOOGLE.match(url),
        lambda route: route.abort(),
    )
    return seen


def elsewhere(v: Visit, seen: list[tuple[str, str]]) -> list[str]:
    """Requests that left the site, other than Google's tag and hits for the real id."""
    return [
        url
        for _, url in seen
        if not url.startswith(v.base + "/")
        and not (GOOGLE.match(url) and ("id=" + GA_ID in url or "tid=" + GA_ID in url))
    ]


def configs(v: Visit) -> list[Any]:
    return [e[1] for e in v.gtag_log() if e[0] == "config"]


def until(v: Visit, done: Callable[[], object], seen: list[tuple[str, str]]) -> None:
    """Wait until ``done()`` or a request has left the site (so that shows as the failure)."""
    deadline = time.monotonic() + 10
    while not done() and not elsewhere(v, seen) and time.monotonic() < deadline:
        v.page.wait_for_timeout(50)


@pytest.mark.parametrize("kind", ["steer", "loader"])
def test_forged_root_cannot_redirect_the_loader_or_the_decision(visit: Any, kind: str) -> None:
    v = visit()
    seen = record(v)
    page = v.goto(f"/comment/{kind}")
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Godta alle").click()
    until(v, lambda: any(e[0] == "config" for e in v.gtag_log()), seen)
    assert elsewhere(v, seen) == []
    assert page.evaluate("window.__marker") == 1  # decided by the script, no reload
    assert not any("evil" in url.lower() for _, url in seen)
    # The real configuration: the decision went to the site's own prefix, the loader came
    # from it, and the tag runs for the site's measurement id.
    assert ("POST", v.base + "/_consent") in seen
    loaders = [u for _, u in seen if u.endswith("/consent-ga.js")]
    assert len(loaders) == 1 and loaders[0].startswith(v.base + "/_consent/static/")
    assert configs(v) == [GA_ID]
    assert v.gtag_requests() == [f"https://www.googletagmanager.com/gtag/js?id={GA_ID}"]
    assert consent_calls(v, "update") == [{**DENIED, "analytics_storage": "granted"}]
    assert v.state()["categories"]["analytics"] is True
    assert page.evaluate("window.__csp") == []


def test_forged_prefix_does_not_take_the_gpc_refusal_elsewhere(visit: Any) -> None:
    v = visit()
    v.context.add_init_script(GPC)
    seen = record(v)
    page = v.goto("/comment/gpc")
    until(v, lambda: banner(v).count() == 0, seen)  # refused by the script
    assert elsewhere(v, seen) == [] and v.google == []
    assert ("POST", v.base + "/_consent") in seen
    state = v.state()
    assert state["categories"]["analytics"] is False and state["decided"] is True
    assert page.evaluate("consentmw.get().categories.analytics") is False


def test_forged_root_cannot_grant_analytics_in_advanced_mode(visit: Any) -> None:
    """The forged root says "decided, analytics granted" and names another id: the real
    snippet says undecided, so the tag gets everything denied, for the real id only."""
    v = visit("advanced")
    seen = record(v)
    page = v.goto("/comment/steer")
    wait_for_tag(v)
    page.wait_for_timeout(200)  # anything else the scripts would do on load
    assert consent_calls(v, "default") == [{**DENIED, "wait_for_update": 500}]
    assert consent_calls(v, "update") == []
    assert configs(v) == [GA_ID]
    assert elsewhere(v, seen) == [] and v.ga_cookies() == []
    assert page.evaluate("consentmw.get()")["decided"] is False


def test_elements_named_like_the_scripts_globals_do_not_break_them(visit: Any) -> None:
    """``<a id="consentmwGa">`` and ``<div id="dataLayer">`` become window properties."""
    v = visit()
    page = v.goto("/comment/clobber")
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Godta alle").click()
    wait_for_tag(v)
    assert page.evaluate("window.__marker") == 1
    assert consent_calls(v, "update") == [{**DENIED, "analytics_storage": "granted"}]
    v.goto("/comment/clobber")  # the server now includes the loader itself
    wait_for_tag(v)
    assert configs(v) == [GA_ID]


def test_a_form_in_page_content_is_not_taken_for_the_banner(visit: Any) -> None:
    """A comment's form marked data-cmw-banner submits as the page wrote it: the script
    does not turn its button into a consent decision."""
    v = visit()
    page = v.goto("/comment/form")
    with page.expect_navigation():
        page.get_by_role("button", name="Les mer").click()
    assert page.url == v.base + "/news?action=accept_all"
    assert v.state()["decided"] is False and v.google == []
