"""End-to-end in real Chromium: what the browser stores and what it asks Google for.

Google's hosts never see a request: the ``visit`` fixture answers them with a stub gtag.js
and counts every request, so "nothing from Google" is a checked number, not a hope.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import GA_ID, Visit

pytestmark = pytest.mark.browser

NECESSARY = {"AWSALB", "access_token", "refresh_token", "io", "consentmw"}
DENIED = {
    "analytics_storage": "denied",
    "ad_storage": "denied",
    "ad_user_data": "denied",
    "ad_personalization": "denied",
}
PAGES = ("preferences", "cookies")
LANGS = ("nb", "en")
# The settings dialog is fetched when opened: it is in the page only after the first open.
DIALOG_OPEN = "() => document.querySelector('[data-cmw-dialog]')?.open === true"
DIALOG_CLOSED = "() => document.querySelector('[data-cmw-dialog]')?.open === false"
CLS_JS = """() => new Promise(done => {
  let sum = 0;
  new PerformanceObserver(list => { for (const e of list.getEntries()) sum += e.value; })
    .observe({type: "layout-shift", buffered: true});
  setTimeout(() => done(sum), 300);
})"""


def consent_calls(v: Visit, kind: str) -> list[dict[str, Any]]:
    return [e[2] for e in v.gtag_log() if e[0] == "consent" and e[1] == kind]


def wait_for_tag(v: Visit) -> None:
    v.page.wait_for_function("() => (window.__gtag || []).some(e => e[0] === 'config')")


def banner(v: Visit) -> Any:
    return v.page.locator("[data-cmw-banner]")


def test_fresh_visit_stores_only_necessary_cookies_and_asks_google_nothing(visit: Any) -> None:
    v = visit()
    page = v.goto("/")
    assert banner(v).is_visible()
    assert page.get_by_role("region", name="Vi bruker informasjonskapsler").is_visible()
    assert page.evaluate(CLS_JS) == 0  # fixed position: the page never moves
    v.goto("/track")  # the app tries to set _ga and _gid: blocked before consent
    v.goto("/en")
    assert v.cookie_names() <= NECESSARY
    assert v.ga_cookies() == []
    assert v.google == []
    assert page.evaluate("Object.keys(localStorage)") == []
    assert page.evaluate("typeof window.dataLayer") == "undefined"
    assert v.state()["decided"] is False


def test_reject_all_leaves_no_trace_and_the_site_still_works(visit: Any) -> None:
    v = visit()
    page = v.goto("/")
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Avvis alle").click()
    banner(v).wait_for(state="detached")
    assert page.evaluate("window.__marker") == 1  # no reload
    assert page.get_by_role("button", name="Informasjonskapsler").is_visible()
    state = v.state()
    assert state["decided"] is True and state["categories"]["analytics"] is False
    for path in ("/track", "/news", "/en", "/track", "/scripts"):
        v.goto(path)
        assert banner(v).count() == 0
    assert page.evaluate("window.__ran") == []
    v.goto("/login")
    page.get_by_label("Brukernavn").fill("anna")
    page.get_by_label("Passord").fill("secret")
    page.get_by_role("button", name="Logg inn").click()
    assert page.locator("#who").inner_text() == "Innlogget som anna"
    assert {"access_token", "refresh_token"} <= v.cookie_names()
    assert v.ga_cookies() == []
    assert v.google == []


def test_accept_all_loads_gtag_after_consent_default_with_one_update(visit: Any) -> None:
    v = visit()
    page = v.goto("/")
    page.evaluate("window.__marker = 1")
    assert v.google == []
    page.get_by_role("button", name="Godta alle").click()
    wait_for_tag(v)
    assert page.evaluate("window.__marker") == 1  # no reload
    assert banner(v).count() == 0
    log = v.gtag_log()
    # The tag found consent 'default' already first in the dataLayer when it loaded.
    assert log[0][0] == "loaded" and log[0][2] is True
    assert consent_calls(v, "default") == [{**DENIED, "wait_for_update": 500}]
    assert consent_calls(v, "update") == [{**DENIED, "analytics_storage": "granted"}]
    assert len(v.gtag_requests()) == 1
    assert any(c == ("_ga", ".consentmw.test") for c in v.ga_cookies())
    assert any(c[0] == "_ga_" + GA_ID[2:] for c in v.ga_cookies())
    # Next page: consent.js loads the loader (basic mode); again default first, one update.
    v.goto("/news")
    wait_for_tag(v)
    assert consent_calls(v, "default") == [{**DENIED, "wait_for_update": 500}]
    assert len(consent_calls(v, "update")) == 1
    assert len(v.gtag_requests()) == 2
    v.goto("/track")  # with consent the app's own _ga may pass
    assert ("_ga", "www.consentmw.test") in v.ga_cookies()


def test_withdraw_after_accept_removes_ga_cookies_on_host_and_parent(visit: Any) -> None:
    v = visit()
    page = v.goto("/")
    page.get_by_role("button", name="Godta alle").click()
    wait_for_tag(v)
    v.goto("/track")  # host-only _ga and an HttpOnly _gid from the app
    wait_for_tag(v)
    names = {c for c in v.ga_cookies()}
    assert ("_ga", ".consentmw.test") in names and ("_ga", "www.consentmw.test") in names
    assert any(n == "_gid" for n, _ in names)
    page.get_by_role("button", name="Informasjonskapsler").click()
    dialog = page.get_by_role("dialog", name="Valgene dine for informasjonskapsler")
    dialog.wait_for(state="visible")
    assert dialog.get_by_role("checkbox", name="Tillat").is_checked()  # shows the current state
    dialog.get_by_role("button", name="Avvis alle").click()
    page.wait_for_function(DIALOG_CLOSED)
    assert consent_calls(v, "update")[-1] == DENIED
    # consent.js already deleted what it can reach (everything but the HttpOnly _gid).
    assert "_ga" not in page.evaluate("document.cookie")
    before = len(v.google)
    v.goto("/news")  # the server expires the HttpOnly rest
    assert v.ga_cookies() == []
    v.goto("/en")
    assert v.ga_cookies() == []
    assert len(v.google) == before
    assert page.evaluate("window.__gtag") is None


def test_without_javascript_the_form_banner_records_reject_and_accept(visit: Any) -> None:
    v = visit(java_script_enabled=False)
    page = v.goto("/news?page=2")
    page.get_by_role("button", name="Avvis alle").click()
    assert page.url.endswith("/news?page=2")  # back where the visitor was
    assert banner(v).count() == 0
    assert v.state()["categories"]["analytics"] is False
    page.get_by_role("button", name="Informasjonskapsler").click()
    # The settings button is a GET form: the preferences page, in the page's language; the
    # way back is the page the browser's Referer names (no address in the page or the URL).
    assert page.url == v.base + "/_consent/preferences?lang=nb"
    assert page.get_by_role("checkbox", name="Tillat").is_checked() is False
    page.get_by_role("button", name="Godta alle").click()
    assert page.url.endswith("/news?page=2")
    state = v.state()
    assert state["decided"] is True and state["categories"]["analytics"] is True
    # Settings on the first layer also works without JavaScript.
    v2 = visit(java_script_enabled=False)
    page2 = v2.goto("/en")
    page2.get_by_role("button", name="Settings").click()
    assert "/_consent/preferences" in page2.url
    page2.get_by_role("checkbox", name="Allow").check()
    page2.get_by_role("button", name="Save choices").click()
    assert page2.url.endswith("/en")
    assert v2.state()["categories"]["analytics"] is True
    assert v.google == [] and v2.google == []


def test_without_javascript_a_no_referrer_page_still_records_the_choice(visit: Any) -> None:
    """Under ``Referrer-Policy: no-referrer`` the form posts with ``Origin: null`` and no
    Referer: the choice is recorded (Sec-Fetch-Site says same-origin) and the visitor goes
    to the home page, as the README says."""
    v = visit(java_script_enabled=False)
    # Browsers send Sec-Fetch-Site only to secure origins: localhost is one, plain-http
    # www.consentmw.test is not (there Origin: null is refused, as a sandboxed frame's).
    v.base = v.base.replace("www.consentmw.test", "localhost")
    page = v.goto("/quiet?side=2")
    page.get_by_role("button", name="Avvis alle").click()
    assert page.url == v.base + "/"
    state = v.state()
    assert state["decided"] is True and state["categories"]["analytics"] is False


def test_keyboard_only_order_and_escape_closes_the_dialog_without_deciding(visit: Any) -> None:
    v = visit()
    page = v.goto("/")
    focused = "document.activeElement.textContent.trim()"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "Godta alle"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "Avvis alle"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "Innstillinger"
    page.keyboard.press("Enter")
    page.wait_for_function(DIALOG_OPEN)
    inside = "document.querySelector('[data-cmw-dialog]').contains(document.activeElement)"
    assert page.evaluate(inside)
    for _ in range(20):  # Tab stays trapped inside the dialog, both ways
        page.keyboard.press("Tab")
        assert page.evaluate(inside)
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside)
    page.keyboard.press("Escape")
    page.wait_for_function(DIALOG_CLOSED)
    assert page.evaluate(focused) == "Innstillinger"  # focus returns to the opener
    assert banner(v).is_visible()
    assert v.state()["decided"] is False
    assert v.google == []
    # Keyboard can decide too: Tab back to Reject and press Space.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    banner(v).wait_for(state="detached")
    assert page.evaluate(focused) == "Informasjonskapsler"  # focus not lost to <body>
    assert v.state()["categories"]["analytics"] is False


def test_sec_gpc_refuses_until_an_explicit_opt_in(visit: Any) -> None:
    v = visit(extra_http_headers={"Sec-GPC": "1"})
    page = v.goto("/")
    assert banner(v).count() == 0
    state = v.state()
    assert state["signal"] == "gpc" and state["categories"]["analytics"] is False
    for path in ("/track", "/news"):
        v.goto(path)
    assert v.ga_cookies() == [] and v.google == []
    page.get_by_role("button", name="Informasjonskapsler").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("checkbox", name="Tillat").check()
    dialog.get_by_role("button", name="Lagre valgene").click()
    wait_for_tag(v)
    assert consent_calls(v, "update") == [{**DENIED, "analytics_storage": "granted"}]
    assert any(n == "_ga" for n, _ in v.ga_cookies())


def test_navigator_global_privacy_control_refuses_like_the_header(visit: Any) -> None:
    v = visit()
    v.context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    page = v.goto("/")
    banner(v).wait_for(state="detached")
    assert v.state()["categories"]["analytics"] is False
    assert page.evaluate("consentmw.get().categories.analytics") is False
    v.goto("/track")
    assert v.ga_cookies() == [] and v.google == []


def test_script_activation_keeps_order_and_nonce_under_strict_csp(visit: Any) -> None:
    v = visit()
    page = v.goto("/scripts")
    assert page.evaluate("window.__ran") == []
    page.get_by_role("button", name="Godta alle").click()
    page.wait_for_function("() => window.__ran.length === 3")
    assert page.evaluate("window.__ran") == ["inline-1", "external:kept", "inline-2"]
    wait_for_tag(v)  # gtag.js also loaded through the nonce, no 'self' in script-src
    assert page.evaluate("window.__csp") == []
    v.goto("/scripts")  # already granted: activated at load, once, in order
    page.wait_for_function("() => window.__ran.length === 3")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran") == ["inline-1", "external:kept", "inline-2"]
    assert page.evaluate("window.__csp") == []
    page.evaluate("consentmw.set([])")
    page.wait_for_function("() => !consentmw.get().categories.analytics")
    v.goto("/scripts")  # withdrawn: nothing runs
    page.wait_for_timeout(500)
    assert page.evaluate("window.__ran") == []
    assert page.evaluate("window.__csp") == []


def test_javascript_api_get_set_on_show(visit: Any) -> None:
    v = visit()
    page = v.goto("/en")
    assert page.evaluate("consentmw.get()") == {
        "decided": False,
        "signal": None,
        "categories": {"necessary": True, "analytics": False},
    }
    page.evaluate("() => { window.__changes = []; consentmw.on('change', s => __changes.push(s)) }")
    result = page.evaluate("consentmw.set(['analytics'])")
    assert result["categories"]["analytics"] is True
    assert page.evaluate("__changes.length") == 1
    wait_for_tag(v)
    assert v.state()["categories"]["analytics"] is True
    page.evaluate("consentmw.show()")
    assert page.get_by_role("dialog", name="Your cookie choices").is_visible()
    assert page.get_by_role("checkbox", name="Allow").is_checked()


def test_advanced_mode_loads_gtag_with_everything_denied(visit: Any) -> None:
    v = visit("advanced")
    page = v.goto("/")
    wait_for_tag(v)
    assert consent_calls(v, "default") == [{**DENIED, "wait_for_update": 500}]
    assert consent_calls(v, "update") == []
    assert v.ga_cookies() == []
    page.get_by_role("button", name="Godta alle").click()
    page.wait_for_function("() => (window.__gtag || []).some(e => e[1] === 'update')")
    assert consent_calls(v, "update") == [{**DENIED, "analytics_storage": "granted"}]
    assert len(v.gtag_requests()) == 1
    assert any(n == "_ga" for n, _ in v.ga_cookies())


def test_advanced_mode_on_the_next_page_sets_the_defaults_before_the_stored_choice(
    visit: Any,
) -> None:
    """No page carries the loader: consent.js loads it at once, and it reads the decision
    already in the page, so a returning visitor's defaults still come first."""
    v = visit("advanced")
    v.goto("/").get_by_role("button", name="Godta alle").click()
    v.page.wait_for_function("() => (window.__gtag || []).some(e => e[1] === 'update')")
    page = v.goto("/")
    wait_for_tag(v)
    calls = [(e[1], e[2]) for e in v.gtag_log() if e[0] == "consent"]
    assert calls == [
        ("default", {**DENIED, "wait_for_update": 500}),
        ("update", {**DENIED, "analytics_storage": "granted"}),
    ]
    assert page.locator("script[src$='/consent-ga.js']").count() == 1


def test_ad_signals_follow_a_marketing_category_when_one_exists(visit: Any) -> None:
    v = visit("marketing")
    page = v.goto("/")
    page.get_by_role("button", name="Godta alle").click()
    wait_for_tag(v)
    granted = dict.fromkeys(DENIED, "granted")
    assert consent_calls(v, "update") == [granted]
    page.evaluate("consentmw.set(['analytics'])")
    page.wait_for_function("() => window.__gtag.filter(e => e[1] === 'update').length === 2")
    assert consent_calls(v, "update")[-1] == {**DENIED, "analytics_storage": "granted"}


def _axe(page: Any, axe_path: Any) -> list[str]:
    page.add_script_tag(path=str(axe_path))
    result = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',"
        " 'wcag21aa', 'wcag22aa', 'best-practice']}})"
    )
    return [
        f"{x['id']}: {x['help']} at {[n['target'] for n in x['nodes']]}"
        for x in result["violations"]
    ]


@pytest.mark.parametrize("path", ["/", "/en"])
def test_axe_banner_dialog_and_pages_have_no_violations(
    visit: Any, axe_path: Any, path: str
) -> None:
    v = visit()
    page = v.goto(path)
    assert _axe(page, axe_path) == []
    page.locator("[data-cmw-banner] [data-cmw-open]").click()
    page.wait_for_function(DIALOG_OPEN)
    assert _axe(page, axe_path) == []
    lang = "nb" if path == "/" else "en"
    for sub in ("cookies", "preferences"):
        v.goto(f"/_consent/{sub}?lang={lang}")
        assert _axe(page, axe_path) == []


@pytest.mark.parametrize("width", [320, 640])
def test_reflow_without_horizontal_scrolling(visit: Any, width: int) -> None:
    """320 CSS px is both a small phone and 1280 px at 400% zoom; 640 px is 200% zoom."""
    v = visit(viewport={"width": width, "height": 480})
    for path in ("/", "/en", *(f"/_consent/{p}?lang={lang}" for p in PAGES for lang in LANGS)):
        page = v.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        if "/_consent/" not in path:
            page.locator("[data-cmw-banner] [data-cmw-open]").click()
            page.wait_for_function(DIALOG_OPEN)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
            assert page.evaluate(
                "[...document.querySelectorAll('dialog *')].every(e => "
                "e.getBoundingClientRect().right <= innerWidth + 0.5)"
            ), path
    page = v.goto("/")
    box = banner(v).bounding_box()
    assert box is not None and box["height"] <= 480 * 0.75 + 1
    for name in ("Godta alle", "Avvis alle", "Innstillinger"):
        b = page.get_by_role("button", name=name).bounding_box()
        assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= width


def test_accept_and_reject_are_the_same_size_and_colour(visit: Any) -> None:
    v = visit()
    page = v.goto("/")
    look = """b => { const s = getComputedStyle(b); const r = b.getBoundingClientRect();
      return [b.tagName, Math.round(r.width), Math.round(r.height), s.backgroundColor, s.color,
              s.fontWeight, s.fontSize, s.borderColor]; }"""
    accept = page.get_by_role("button", name="Godta alle").evaluate(look)
    reject = page.get_by_role("button", name="Avvis alle").evaluate(look)
    settings = page.get_by_role("button", name="Innstillinger").evaluate(look)
    assert accept == reject == settings


@pytest.mark.parametrize("lang", ["nb", "en"])
@pytest.mark.parametrize("width", [1280, 320])
def test_screenshots(visit: Any, screenshots: Any, lang: str, width: int) -> None:
    v = visit(viewport={"width": width, "height": 800 if width > 400 else 640})
    page = v.goto("/" if lang == "nb" else "/en")
    page.screenshot(path=str(screenshots / f"banner-{lang}-{width}.png"))
    page.locator("[data-cmw-banner] [data-cmw-open]").click()
    page.wait_for_function(DIALOG_OPEN)
    page.screenshot(path=str(screenshots / f"dialog-{lang}-{width}.png"))
    v.goto(f"/_consent/preferences?lang={lang}")
    page.screenshot(path=str(screenshots / f"preferences-{lang}-{width}.png"), full_page=True)
    v.goto(f"/_consent/cookies?lang={lang}")
    page.screenshot(path=str(screenshots / f"cookies-{lang}-{width}.png"), full_page=True)


def test_receipt_language_is_the_page_s_not_the_browser_s(visit: Any) -> None:
    """An English page in a browser that prefers Norwegian: the visitor reads English, so the
    receipt says "en" and carries the hash of the English texts."""
    from consentmw import ConsentMiddleware

    v = visit("receipts", extra_http_headers={"Accept-Language": "nb-NO,nb;q=0.9"})
    page = v.goto("/en")
    page.get_by_role("button", name="Accept all").click()
    page.wait_for_function("() => consentmw.get().decided")
    data = page.evaluate(
        "fetch('/_consent/me', {headers: {Accept: 'application/json'}}).then(r => r.json())"
    )
    (receipt,) = data["receipts"]
    assert receipt["language"] == "en" and receipt["action"] == "accept_all"
    assert receipt["source"] == "banner"
    twin = ConsentMiddleware(
        lambda s, r, se: None,
        secret_key="x" * 40,
        records_url=None,
        google_analytics_id=GA_ID,
        privacy_policy_url="/privacy",
        secure_cookie=False,
        controller="Example AS",
    )
    assert receipt["banner_hash"] == twin.banner.shown_texts("en")[0]
    assert receipt["banner_hash"] != twin.banner.shown_texts("nb")[0]


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_me_page_at_375_px_reads_plainly(visit: Any, screenshots: Any, lang: str) -> None:
    """The visitor's access page on a phone: stacked receipt cards with a visible label on
    every value, plain words, local time, and no horizontal scrolling."""
    v = visit("receipts", viewport={"width": 375, "height": 667})
    page = v.goto("/" if lang == "nb" else "/en")
    page.get_by_role("button", name="Godta alle" if lang == "nb" else "Accept all").click()
    page.wait_for_function("() => consentmw.get().decided")
    v.goto(f"/_consent/me?lang={lang}")
    page.screenshot(path=str(screenshots / f"me-{lang}-375.png"), full_page=True)
    labels = page.evaluate(
        """() => [...document.querySelectorAll('.cmw-table td')].map(
             td => getComputedStyle(td, '::before').content)"""
    )
    assert labels and all(label not in ("none", '""', "") for label in labels)
    text = page.locator("main").inner_text()
    assert ("Godtok alle" if lang == "nb" else "Accepted all") in text
    assert "accept_all" not in text and "banner" not in text.replace("The banner", "")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
