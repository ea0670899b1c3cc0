"""A mountable ASGI dashboard: the report's numbers and charts, a period picker, consent.

    app.mount("/stats", Dashboard(directory="logs", authorize=lambda request: ...))
    app.mount("/stats", Dashboard(engine=ClickHouseEngine(client), authorize=...))

``authorize`` is required: it receives the Starlette ``Request`` and returns ``True``
(allowed), ``False`` (403) or ``None`` (401, not signed in); it may be async. With HTTP
authentication, ``challenge`` (e.g. ``'Basic realm="Analytics"'``) is the 401's
``WWW-Authenticate``, without which a browser never asks for the password. The page is
the HTML report (no script, inline SVG), rendered per request off the event loop.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse

from consentmw.analytics.consentcounts import ConsentCounts
from consentmw.analytics.render import CSS, render_body
from consentmw.analytics.report import build_report

__all__ = ["Dashboard"]

Authorize = Callable[[Request], "bool | Awaitable[bool | None] | None"]
PRESETS = (("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "12 months"))


class Dashboard:
    def __init__(
        self,
        directory: str | None = None,
        authorize: Authorize | None = None,
        *,
        engine: Any = None,
        timezone: str = "UTC",
        consent: ConsentCounts | None = None,
        title: str = "Analytics",
        top: int = 10,
        challenge: str | None = None,
    ) -> None:
        if authorize is None or not callable(authorize):
            raise ValueError(
                "Dashboard needs authorize=callable(request) -> bool: analytics are not public"
            )
        if (directory is None) == (engine is None):
            raise ValueError("Dashboard reads a log directory or an engine (one of them)")
        self.directory = directory
        self.engine = engine  # e.g. a ClickHouseEngine: anything with .report(first, last)
        self.authorize = authorize
        self.tz = ZoneInfo(timezone)
        self.consent = consent
        self.title = title
        self.top = top
        self.challenge = challenge

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        allowed = self.authorize(request)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed is None:
            response: Any = PlainTextResponse(
                "Sign in to see the analytics.",
                status_code=401,
                headers={"WWW-Authenticate": self.challenge} if self.challenge else None,
            )
        elif allowed is not True:
            response = PlainTextResponse("Not allowed.", status_code=403)
        elif request.method not in ("GET", "HEAD"):
            response = PlainTextResponse("Method not allowed.", status_code=405)
        else:
            first, last, days = self.period(request)
            data = await anyio.to_thread.run_sync(self._report, first, last)
            response = HTMLResponse(
                self.page(data, days, first, last),
                headers={
                    "Cache-Control": "private, no-store",
                    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                    "img-src 'self'; form-action 'self'; frame-ancestors 'none'",
                    "X-Robots-Tag": "noindex",
                },
            )
        await response(scope, receive, send)

    def period(self, request: Request) -> tuple[date, date, str]:
        today = datetime.now(self.tz).date()
        q = request.query_params
        try:
            first = date.fromisoformat(q.get("from", ""))
            last = date.fromisoformat(q.get("to", ""))
            if first <= last <= today + timedelta(1) and (last - first).days <= 3660:
                return first, last, ""
        except ValueError:
            pass
        days = q.get("days", "30")
        if days not in dict(PRESETS):
            days = "30"
        return today - timedelta(days=int(days) - 1), today, days

    def _report(self, first: date, last: date) -> dict[str, Any]:
        if self.engine is not None:
            return self.engine.report(
                first, last, timezone=self.tz.key, top=self.top, consent=self.consent
            ).to_dict()
        assert self.directory is not None
        return build_report(
            self.directory, first, last, timezone=self.tz.key, top=self.top, consent=self.consent
        ).to_dict()

    def page(self, data: dict[str, Any], days: str, first: date, last: date) -> str:
        options = "".join(
            f'<option value="{v}"{" selected" if v == days else ""}>{label}</option>'
            for v, label in PRESETS
        )
        picker = (
            '<form method="get" class="picker" aria-label="Period">'
            f'<label>Last <select name="days">{options}</select></label> '
            '<button type="submit">Show</button></form>'
            '<form method="get" class="picker" aria-label="Dates">'
            f'<label>From <input type="date" name="from" value="{first.isoformat()}"></label> '
            f'<label>to <input type="date" name="to" value="{last.isoformat()}"></label> '
            '<button type="submit">Show</button></form>'
        )
        style = CSS + (
            ".picker{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.4rem 0}"
            "button,select,input{font:inherit;padding:.25rem .5rem}"
        )
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{style}</style></head><body><main>"
            f"<nav>{picker}</nav>" + render_body(data, self.title) + "</main></body></html>"
        )
