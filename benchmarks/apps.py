"""The app every benchmark stack serves, and the stacks themselves.

``run.py`` starts ``uvicorn --factory apps:create_app`` once per stack; the stack and its
options come from the environment so that every server imports the very same app:

    BENCH_STACK       bare | consent | full | naive | floor
    BENCH_LOG_DIR     where the request log writes (stack ``full``)
    BENCH_ROWS        table rows of the "realistic" template (run.py calibrates ~1 ms)

Routes: ``/html`` (20 KB HTML), ``/html28`` (28 KB, the control), ``/json``, ``/stream``
(1 MB HTML in 64 KB chunks), ``/realistic`` (a Jinja2 template rendered per request).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STACKS = ("bare", "consent", "full", "naive", "floor")
SECRET_KEY = "benchmark-secret-key-0123456789-abcdefghijklmnop"
GA_ID = "G-BENCH12345"
STREAM_CHUNK = 64 * 1024
STREAM_SIZE = 1024 * 1024
DEFAULT_ROWS = 60


def html_page(size: int = 20 * 1024, title: str = "Benchmark page") -> bytes:
    """A full HTML document of exactly ``size`` bytes with a ``</body>`` near the end."""
    head = (
        f'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title>'
        '<link rel="stylesheet" href="/static/site.css"></head>\n<body>\n<main>\n'
    ).encode()
    tail = b"</main>\n<footer>Footer</footer>\n</body>\n</html>\n"
    para = b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.</p>\n"
    filler = para * ((size - len(head) - len(tail)) // len(para) + 1)
    body = filler[: size - len(head) - len(tail)]
    return head + body + tail


PAGE_20K = html_page()
#: Control: a bare page as large as the 20 KB page plus the undecided snippet, to tell the
#: cost of the extra bytes on the wire from the middleware's CPU time.
PAGE_28K = html_page(28 * 1024)


def stream_chunks(total: int = STREAM_SIZE, chunk: int = STREAM_CHUNK) -> list[bytes]:
    """``total`` bytes of HTML in ``chunk``-sized pieces; only the last has ``</body>``."""
    page = html_page(total, "Streamed page")
    return [page[i : i + chunk] for i in range(0, len(page), chunk)]


STREAM = stream_chunks()

TEMPLATE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ title }}</title></head>
<body>
<nav>{% for item in nav %}<a href="{{ item.href }}">{{ item.label }}</a> {% endfor %}</nav>
<main>
<h1>{{ title }}</h1>
<table>
{% for row in rows %}
<tr class="{{ loop.cycle('odd', 'even') }}"><td>{{ row.id }}</td><td>{{ row.name | title }}</td>
<td>{{ "%.2f" | format(row.price) }}</td><td>{{ row.note | e }}</td></tr>
{% endfor %}
</table>
</main>
<footer>{{ footer }}</footer>
</body>
</html>
"""

_env = Environment(autoescape=True)
_template = _env.from_string(TEMPLATE)


def render_realistic(rows: int) -> str:
    data = [
        {"id": i, "name": f"product number {i}", "price": i * 1.25, "note": f"<note {i} & more>"}
        for i in range(rows)
    ]
    nav = [{"href": f"/section/{i}", "label": f"Section {i}"} for i in range(10)]
    return _template.render(title="Realistic page", rows=data, nav=nav, footer="(c) bench")


def calibrate_rows(target_ms: float = 1.0) -> int:
    """Rows for which :func:`render_realistic` takes about ``target_ms`` here.

    Fits ``time = fixed + per_row * rows`` from the best of 7 timings at two sizes.
    """
    small, large = 10, 200
    render_realistic(large)
    t_small = min(_timed(render_realistic, small) for _ in range(7))
    t_large = min(_timed(render_realistic, large) for _ in range(7))
    per_row = max((t_large - t_small) / (large - small), 1e-9)
    fixed = max(t_small - per_row * small, 0.0)
    return max(1, round((target_ms / 1000.0 - fixed) / per_row))


def _timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def build_app(rows: int = DEFAULT_ROWS) -> Starlette:
    async def html(request: Request) -> Response:
        return Response(PAGE_20K, media_type="text/html; charset=utf-8")

    async def html28(request: Request) -> Response:
        return Response(PAGE_28K, media_type="text/html; charset=utf-8")

    async def json_route(request: Request) -> Response:
        return JSONResponse({"ok": True, "items": [1, 2, 3], "name": "benchmark"})

    async def stream(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for chunk in STREAM:
                yield chunk

        return StreamingResponse(body(), media_type="text/html; charset=utf-8")

    async def realistic(request: Request) -> Response:
        return HTMLResponse(render_realistic(rows))

    return Starlette(
        routes=[
            Route("/html", html),
            Route("/html28", html28),
            Route("/json", json_route),
            Route("/stream", stream),
            Route("/realistic", realistic),
        ]
    )


def consent_options() -> dict[str, Any]:
    return {"secret_key": SECRET_KEY, "records_url": None, "google_analytics_id": GA_ID}


def reference_snippet() -> bytes:
    """consentmw's own undecided-visitor snippet, which the reference injectors insert."""
    from consentmw import ConsentMiddleware
    from consentmw.consent import ConsentState

    mw = ConsentMiddleware(None, **consent_options())
    state = ConsentState(policy_version=mw.config.policy_version)
    return mw.banner.snippet_parts("en", state, None).encode()


def build_stack(stack: str, rows: int = DEFAULT_ROWS, log_dir: str | None = None) -> Any:
    """The ASGI app of one stack (outermost first: request log, consent, app)."""
    from consentmw import ConsentMiddleware

    app = build_app(rows)
    if stack == "bare":
        return app
    if stack == "naive":
        from naive import NaiveInjectMiddleware

        return NaiveInjectMiddleware(app, snippet=reference_snippet())
    if stack == "floor":
        from naive import FloorInjectMiddleware

        return FloorInjectMiddleware(app, snippet=reference_snippet())
    consent = ConsentMiddleware(app, **consent_options())
    if stack == "consent":
        return consent
    if stack == "full":
        from consentmw import RequestLogMiddleware

        if not log_dir:
            raise ValueError("stack 'full' needs BENCH_LOG_DIR")
        return RequestLogMiddleware(consent, directory=log_dir)
    raise ValueError(f"unknown stack {stack!r}; one of {', '.join(STACKS)}")


def create_app() -> Any:
    """uvicorn ``--factory`` entry point."""
    return build_stack(
        os.environ.get("BENCH_STACK", "bare"),
        rows=int(os.environ.get("BENCH_ROWS", DEFAULT_ROWS)),
        log_dir=os.environ.get("BENCH_LOG_DIR"),
    )
