"""The routes under the prefix (default ``/_consent``), answered by consentmw itself.

POSTs work without JavaScript (a plain form, answered with 303) and with it (JSON). A
POST from another site is refused, so no page elsewhere can consent for a visitor.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl

from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Send

from .banner import Banner, choose_language
from .config import LANGUAGES, ConsentConfig
from .consent import ConsentState, new_consent_id
from .policy import ConsentPolicy, RequestContext
from .receipts import ReceiptWriter, derive_action
from .records import ForgetResult, RecordsUnavailable
from .resources import static_digest, static_files
from .setcookie import expire_headers, request_cookie_names
from .urls import Origin, origin_of_url, parse_origin, referer_next, request_origin, safe_next

MAX_BODY = 64 * 1024
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = {"Cache-Control": "no-store", "Vary": "Cookie"}
ACTIONS = ("accept_all", "reject_all", "save")
# Where a decision was made, as a form (or consent.js on its behalf) may say: a closed set.
# "api" is every other JSON call; "signal" is never accepted from a client: only the
# middleware's own privacy-signal path produces a signal-derived state, and it writes no
# receipt.
FORM_SOURCES = ("banner", "preferences")


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def is_same_origin(ctx: RequestContext, trusted: frozenset[Origin] = frozenset()) -> bool:
    """Whether a state-changing request comes from this site's own pages.

    The site's origin is ``trusted`` (the ``trusted_origins`` option) when set, else the
    request's scheme and ``Host``; scheme, host and port must all match.

    - ``Sec-Fetch-Site``, when sent, must be ``same-origin`` or ``none`` (typed by the
      user): ``same-site`` is refused, since a sibling subdomain is another origin.
    - ``Origin``, when sent, must be the site's origin; ``null`` (what a page under
      ``Referrer-Policy: no-referrer`` sends) only with ``Sec-Fetch-Site: same-origin``.
    - Without ``Origin`` (browsers before Firefox 70 on same-origin form posts), a
      ``Referer``, when sent, must be on the site's origin.
    - Without all three the request is accepted: that is a non-browser client (curl, a
      server-side script) deciding for itself, since every browser that could carry a
      visitor across sites sends at least one of them.
    """
    fetch_site = ctx.header(b"sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in (b"same-origin", b"none"):
        return False
    origin = ctx.header(b"origin")
    if origin is not None and origin.strip() == b"null" and fetch_site is not None:
        # A page under ``Referrer-Policy: no-referrer`` posts its forms with ``Origin: null``
        # (Fetch serialises the origin as null then): the browser's own Sec-Fetch-Site
        # answers instead. A sandboxed frame on the site is cross-site there. Browsers send
        # Sec-Fetch-Site to secure origins only: over plain http, null stays refused.
        return fetch_site.strip().lower() == b"same-origin"
    if origin is not None:
        sender = parse_origin(origin.decode("latin-1").strip())
    else:
        referer = ctx.header(b"referer")
        if referer is None:
            return True
        sender = origin_of_url(referer.decode("latin-1").strip())
    if sender is None:
        return False
    if trusted:
        return sender in trusted
    scheme = str(ctx.scope.get("scheme") or "http")
    return sender == request_origin(scheme, ctx.host)


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPError(413, f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Endpoints:
    """Dispatches requests under the prefix; holds no per-request state."""

    def __init__(
        self,
        config: ConsentConfig,
        policy: ConsentPolicy,
        banner: Banner,
        receipts: ReceiptWriter,
    ) -> None:
        self.config = config
        self.policy = policy
        self.banner = banner
        self.receipts = receipts
        self.prefix = config.prefix
        self.origins = frozenset(
            origin
            for origin in map(parse_origin, config.trusted_origins)
            if origin is not None  # validated in ConsentConfig: always an origin
        )

    async def __call__(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        scope = ctx.scope
        sub = scope["path"][len(self.prefix) :].rstrip("/") or "/"
        method = scope["method"]
        routes = {
            "/": ("GET", "HEAD", "POST"),
            "/preferences": ("GET", "HEAD"),
            "/dialog": ("GET", "HEAD"),
            "/cookies": ("GET", "HEAD"),
            "/me": ("GET", "HEAD"),
            "/forget": ("POST",),
        }
        try:
            if sub.startswith("/static/"):
                response = self.static(sub, method)
            elif sub not in routes:
                raise HTTPError(404, "not found")
            elif method not in routes[sub]:
                response = PlainTextResponse(
                    "method not allowed", 405, headers={"Allow": ", ".join(routes[sub])}
                )
            elif sub == "/" and method == "POST":
                response = await self.decide(ctx, receive)
            elif sub == "/":
                response = JSONResponse(self.state_json(ctx.state), headers=NO_STORE)
            elif sub == "/me":
                response = await self.me(ctx)
            elif sub == "/forget":
                response = await self.forget(ctx, receive)
            elif sub == "/dialog":
                response = self.dialog(ctx)
            else:
                response = self.page(ctx, sub[1:])
        except HTTPError as exc:
            response = PlainTextResponse(exc.message, exc.status, headers=NO_STORE)
        # Every answer, errors and static files included: no browser may read a text
        # answer as script or a JSON error as HTML.
        response.raw_headers.append(NOSNIFF)
        await response(scope, receive, send)

    # -- GET ---------------------------------------------------------------------------------
    def state_json(self, state: ConsentState) -> dict[str, object]:
        cats = [c.name for c in self.config.registry.categories]
        return state.as_dict(cats, self.config.lifetime_seconds)

    def language(self, ctx: RequestContext) -> str:
        query = dict(parse_qsl(ctx.scope.get("query_string", b"").decode("latin-1")))
        accept = (ctx.header(b"accept-language") or b"").decode("latin-1")
        return choose_language(query.get("lang"), accept, self.config.default_language)

    def page(self, ctx: RequestContext, name: str) -> Response:
        query = dict(parse_qsl(ctx.scope.get("query_string", b"").decode("latin-1")))
        state = ctx.state
        decided_at = (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(state.decided_at))
            if state.decided and state.decided_at
            else None
        )
        html = self.banner.page(
            f"{name}.html",
            self.language(ctx),
            state,
            next=self.return_to(ctx, query.get("next")),
            decided_at_text=decided_at,
        )
        return HTMLResponse(html, headers={**NO_STORE, "Vary": "Cookie, Accept-Language"})

    def return_to(self, ctx: RequestContext, value: str | None) -> str:
        """Where a form sends the visitor back to: the ``next`` our own pages pass on (the
        preferences page's form, the cookie page's link), else the page the request came
        from (a ``Referer`` on the site), else ``/``.

        The pages consentmw injects into carry no return address: it would add the page's
        address to every page's weight and put its query in the URLs of our own pages,
        where access logs keep it.
        """
        if value and safe_next(value) == value:
            return value
        referer = ctx.header(b"referer")
        if referer is not None:
            here = request_origin(str(ctx.scope.get("scheme") or "http"), ctx.host)
            site = self.origins
            if len(site) > 1:  # several sites: only this request's host is "here"
                site = frozenset(o for o in site if here is not None and o[1] == here[1])
            elif not site:
                site = frozenset((here,)) if here is not None else frozenset()
            found = referer_next(referer.decode("latin-1").strip(), site, self.prefix)
            if found is not None:
                return found
        return "/"

    def dialog(self, ctx: RequestContext) -> Response:
        """The settings dialog, fetched by consent.js when opened (not sent with every page)."""
        query = dict(parse_qsl(ctx.scope.get("query_string", b"").decode("latin-1")))
        next_path = self.return_to(ctx, query.get("next"))
        html = self.banner.dialog(self.language(ctx), ctx.state, next_path)
        # nosniff is added to every answer by __call__.
        return HTMLResponse(html, headers={**NO_STORE, "Vary": "Cookie, Accept-Language"})

    def static(self, sub: str, method: str) -> Response:
        if method not in ("GET", "HEAD"):
            return PlainTextResponse("method not allowed", 405, headers={"Allow": "GET, HEAD"})
        parts = sub.split("/", 3)
        digest, name = (parts[2], parts[3]) if len(parts) == 4 else ("", "")
        item = static_files().get(name)
        if item is None:
            raise HTTPError(404, "not found")
        # A hashed URL never changes content; an old hash still gets the current file.
        immutable = digest == static_digest()
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
        headers = {"Cache-Control": cache, "ETag": f'"{item.digest[:16]}"'}
        return Response(item.body, media_type=item.media_type, headers=headers)

    # -- the visitor's rights -----------------------------------------------------------
    async def receipts_of(self, state: ConsentState) -> list[dict[str, object]]:
        store = self.receipts.store
        if store is None or not state.consent_id:
            return []
        try:
            return [r.to_dict() for r in await store.for_consent_id(state.consent_id)]
        except RecordsUnavailable as exc:
            raise HTTPError(503, "consent records are unavailable right now; try later") from exc

    async def me(self, ctx: RequestContext) -> Response:
        """Everything held about this visitor: the state and every receipt of its id."""
        state = ctx.state
        receipts = await self.receipts_of(state)
        data = {
            "state": self.state_json(state),
            "consent_id": state.consent_id,
            "receipts": receipts,
            "request_log": "The request log holds no consent id and no full IP address, so "
            "nothing in it can be linked to you.",
        }
        accept = (ctx.header(b"accept") or b"").lower()
        if b"application/json" in accept and b"text/html" not in accept:
            return JSONResponse(data, headers=NO_STORE)
        html = self.banner.page(
            "me.html",
            self.language(ctx),
            state,
            next="/",
            receipts=receipts,
            data=data,
            consent_id=state.consent_id,
        )
        return HTMLResponse(html, headers={**NO_STORE, "Vary": "Cookie, Accept"})

    async def forget(self, ctx: RequestContext, receive: Receive) -> Response:
        """Delete this visitor's receipts and every optional cookie, and the consent cookie."""
        if not is_same_origin(ctx, self.origins):
            raise HTTPError(403, "cross-site requests are refused")
        await read_body(receive)
        store = self.receipts.store
        result = ForgetResult(deleted=0)
        if store is not None and ctx.state.consent_id:
            try:
                result = await store.forget(ctx.state.consent_id)
            except RecordsUnavailable as exc:
                raise HTTPError(503, "consent records are unavailable right now") from exc
        cleared = ConsentState(policy_version=self.config.policy_version)
        cookie_header = ctx.header(b"cookie") or b""
        headers = [
            *(
                value
                for name in self.config.consent_cookie_names
                for value in expire_headers(name, ctx.host, self.policy.secure(ctx))
            ),
            *self.policy.expiry_headers(ctx, cleared, request_cookie_names(cookie_header)),
        ]
        accept = (ctx.header(b"accept") or b"").lower()
        if b"application/json" in accept and b"text/html" not in accept:
            # The visitor learns that a hold keeps some receipts, never which case: a case
            # name can itself be confidential (the operator sees it in the CLI).
            response: Response = JSONResponse(result.visitor_dict(), headers=NO_STORE)
        else:
            html = self.banner.page(
                "forgotten.html",
                self.language(ctx),
                cleared,
                next="/",
                deleted=result.deleted,
                kept=result.kept,
            )
            response = HTMLResponse(html, headers=NO_STORE)
        for value in headers:
            response.raw_headers.append((b"set-cookie", value))
        return response

    # -- POST --------------------------------------------------------------------------------
    async def decide(self, ctx: RequestContext, receive: Receive) -> Response:
        if not is_same_origin(ctx, self.origins):
            raise HTTPError(403, "cross-site consent requests are refused")
        content_type = (ctx.header(b"content-type") or b"").split(b";")[0].strip().lower()
        body = await read_body(receive)
        next_path: str | None = None  # None: a JSON answer, else where the form goes back to
        if content_type == b"application/json":
            action, categories, source = self.parse_json(ctx, body)
        elif content_type in (b"application/x-www-form-urlencoded", b""):
            action, categories, source, next_value = self.parse_form(ctx, body)
            next_path = self.return_to(ctx, next_value)
        else:
            raise HTTPError(415, "send application/x-www-form-urlencoded or application/json")
        new_state = self.new_state(ctx.state, action, categories)
        recorded = derive_action(ctx.state, new_state, action)
        # The whole answer is built before the receipt is written: a receipt stands for a
        # decision the visitor's browser was then told about.
        if next_path is None:
            response: Response = JSONResponse(self.state_json(new_state), headers=NO_STORE)
        else:
            response = Response(status_code=303, headers={**NO_STORE, "Location": next_path})
        for value in self.decision_headers(ctx, new_state):
            response.raw_headers.append((b"set-cookie", value))
        lang = ctx.language or self.policy.language(ctx)
        await self.receipts.record(
            ctx.scope, ctx.headers, lang, ctx.state, new_state, recorded, source
        )
        return response

    def parse_form(self, ctx: RequestContext, body: bytes) -> tuple[str, set[str], str, str]:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPError(400, "malformed form body") from exc
        # Several 'action' fields come from the settings form's hidden default plus the
        # button pressed; the button is the last one.
        # The language the visitor was shown, for the receipt's text hash.
        langs = [v for k, v in pairs if k == "lang" and v in LANGUAGES]
        if langs:
            ctx.language = langs[-1]
        actions = [v for k, v in pairs if k == "action"]
        action = actions[-1] if actions else "save"
        categories = {v for k, v in pairs if k == "category"}
        sources = [v for k, v in pairs if k == "source"]
        source = sources[-1] if sources and sources[-1] in FORM_SOURCES else "banner"
        next_values = [v for k, v in pairs if k == "next"]
        return action, categories, source, next_values[-1] if next_values else ""

    def parse_json(self, ctx: RequestContext, body: bytes) -> tuple[str, set[str], str]:
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "malformed JSON body") from exc
        except RecursionError as exc:  # e.g. 30,000 '[': fits the size limit, not the stack
            raise HTTPError(400, "JSON body nested too deeply") from exc
        if not isinstance(data, dict):
            raise HTTPError(400, 'send a JSON object such as {"categories": ["analytics"]}')
        action = data.get("action", "save")
        categories = data.get("categories", [])
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise HTTPError(400, '"categories" must be a list of category names')
        if data.get("lang") in LANGUAGES:
            ctx.language = data["lang"]
        # consent.js posts on behalf of the banner or the settings dialog and says which;
        # anything else (a site's own script, curl) is "api".
        source = data.get("source")
        return action, set(categories), source if source in FORM_SOURCES else "api"

    def new_state(self, old: ConsentState, action: object, categories: set[str]) -> ConsentState:
        registry = self.config.registry
        optional = set(registry.optional)
        if action not in ACTIONS:
            raise HTTPError(400, f"action must be one of {', '.join(ACTIONS)}")
        unknown = categories - optional - {"necessary"}
        if unknown:
            raise HTTPError(
                400,
                f"unknown categories: {', '.join(sorted(unknown))[:200]}; "
                f"known: {', '.join(sorted(optional))}",
            )
        if action == "accept_all":
            granted = optional
        elif action == "reject_all":
            granted = set()
        else:
            granted = categories & optional
        return ConsentState(
            decided=True,
            granted=frozenset(granted),
            denied=frozenset(optional - granted),
            policy_version=self.config.policy_version,
            consent_id=old.consent_id or new_consent_id(),
            decided_at=int(time.time()),
        )

    def decision_headers(self, ctx: RequestContext, state: ConsentState) -> list[bytes]:
        """The new consent cookie, plus deletion of cookies the visitor no longer allows."""
        headers = self.policy.consent_cookie_headers(ctx, state)
        cookie_header = ctx.header(b"cookie")
        if cookie_header:
            headers += self.policy.expiry_headers(ctx, state, request_cookie_names(cookie_header))
        return headers
