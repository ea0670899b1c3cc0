"""In-process microbenchmarks of consentmw's per-request work (timeit, no server).

    python benchmarks/micro.py [--quick] [--json out.json]
    python benchmarks/micro.py --rss injector|middleware [--mb 100]   # one RSS child

Each line is the best of several timeit repeats, in microseconds per operation. The
ASGI sends are driven without an event loop (nothing in them really suspends), so the
numbers are the middleware's own CPU cost, not asyncio's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import PAGE_20K, consent_options

from consentmw import ConsentMiddleware, RequestLogMiddleware
from consentmw.consent import ConsentState
from consentmw.pages import SNIPPET_MARKER
from consentmw.responder import Responder

BROWSER_HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"www.example.no"),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        b"Chrome/126.0.0.0 Safari/537.36",
    ),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"nb-NO,nb;q=0.9,en;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"referer", b"https://www.example.no/"),
    (b"sec-fetch-dest", b"document"),
    (b"sec-fetch-mode", b"navigate"),
    (b"sec-fetch-site", b"same-origin"),
    (b"upgrade-insecure-requests", b"1"),
]
RESPONSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(PAGE_20K)).encode()),
    (b"cache-control", b"no-cache"),
    (b"set-cookie", b"access_token=abc123; Path=/; HttpOnly; Secure; SameSite=Lax"),
    (b"set-cookie", b"_ga=GA1.1.123456789.1700000000; Path=/; Domain=.example.no; Max-Age=6307"),
    (b"set-cookie", b"_gid=GA1.1.987654321.1700000000; Path=/; Domain=.example.no; Max-Age=86400"),
    (b"x-frame-options", b"DENY"),
]


def drive(awaitable: Awaitable[Any]) -> Any:
    """Run an awaitable that never really suspends, without an event loop."""
    steps = awaitable.__await__()
    try:
        next(steps)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("awaitable suspended; drive() only runs non-suspending code")


async def _discard(message: Any) -> None:
    return None


def scope_for(path: str, cookie: bytes | None = None) -> dict[str, Any]:
    headers = list(BROWSER_HEADERS)
    if cookie:
        headers.append((b"cookie", cookie))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.7", 50000),
        "server": ("127.0.0.1", 8000),
    }


def raw_app(body: bytes, content_type: bytes, chunk: int | None = None) -> Any:
    """A minimal ASGI app (no Starlette) answering every request with ``body``."""
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
    }
    if chunk:
        start["headers"] = start["headers"][:1]
    parts = [body] if not chunk else [body[i : i + chunk] for i in range(0, len(body), chunk)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({**start, "headers": list(start["headers"])})
        for part in parts[:-1]:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": parts[-1], "more_body": False})

    return app


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def decided_cookie(mw: ConsentMiddleware, granted: bool = False) -> str:
    optional = frozenset(mw.registry.optional)
    state = ConsentState(
        decided=True,
        granted=optional if granted else frozenset(),
        denied=frozenset() if granted else optional,
        policy_version=mw.config.policy_version,
        consent_id="benchmark-consent-id-000",
        decided_at=1_700_000_000,
    )
    return mw.codec.encode(state)


class Micro:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.rows: list[dict[str, Any]] = []
        self._cleanup: list[Callable[[], None]] = []

    def time(self, name: str, fn: Callable[[], Any], number: int, note: str = "") -> None:
        if self.quick:
            number, repeat = max(1, number // 50), 2
        else:
            repeat = 5
        fn()  # warm caches that belong to the steady state
        best = min(timeit.repeat(fn, number=number, repeat=repeat)) / number
        self.rows.append({"name": name, "us": best * 1e6, "ops_per_s": 1 / best, "note": note})

    def run(self) -> list[dict[str, Any]]:
        logging.getLogger("consentmw").setLevel(logging.ERROR)
        page_app = raw_app(PAGE_20K, b"text/html; charset=utf-8")
        mw = ConsentMiddleware(page_app, **consent_options())
        codec = mw.codec
        cookie_value = decided_cookie(mw)
        cookie_header = f"_ga=GA1.1.1.1; _gid=GA1.1.2.2; consentmw={cookie_value}".encode()
        undecided = ConsentState(policy_version=mw.config.policy_version)

        # -- consent cookie ------------------------------------------------------------
        def verify_cold() -> Any:
            codec._verified.clear()
            return codec.verify(cookie_value)[0]

        self.time("consent cookie verify, cold (cache cleared)", verify_cold, 5000)
        self.time("consent cookie verify, cached", lambda: codec.verify(cookie_value)[0], 200_000)
        decided_scope = scope_for("/html", cookie_header)
        plain_scope = scope_for("/html")
        context = mw.policy.context
        self.time("request context, no cookie", lambda: context(dict(plain_scope)), 100_000)
        self.time("request context, decided", lambda: context(dict(decided_scope)), 100_000)

        # -- Set-Cookie filtering ------------------------------------------------------
        ctx = mw.policy.context(dict(decided_scope))
        plain_ctx = mw.policy.context(dict(plain_scope))
        json_start = [(b"content-type", b"application/json"), *RESPONSE_HEADERS[1:]]

        def start_message(context: Any) -> Any:
            # The whole start-message pass: Set-Cookie filter, expiries, header scan.
            message = {"type": "http.response.start", "status": 200, "headers": json_start}
            responder = Responder(_discard, context, mw.policy, mw.snippets.for_page)
            return drive(responder.send(message))

        self.time(
            "Set-Cookie filtering (7 headers, 3 cookies; 2 expiries x host+domain)",
            lambda: start_message(ctx),
            50_000,
        )
        self.time(
            "Set-Cookie filtering, no Cookie header",
            lambda: start_message(plain_ctx),
            50_000,
        )

        # -- snippet and injection -----------------------------------------------------
        banner = mw.banner
        self.time(
            "snippet render (cached, undecided, en)",
            lambda: banner.snippet_parts("en", undecided, None).encode(),
            100_000,
        )
        self.time(
            "snippet render (cached, decided, with nonce)",
            lambda: banner.snippet_parts("en", ctx.state, "r4nd0mN0nce==").encode(),
            100_000,
        )

        start = {"type": "http.response.start", "status": 200, "headers": RESPONSE_HEADERS[:3]}
        single = [start, {"type": "http.response.body", "body": PAGE_20K, "more_body": False}]
        chunked = [{"type": "http.response.start", "status": 200, "headers": RESPONSE_HEADERS[:1]}]
        for i in range(0, len(PAGE_20K), 16 * 1024):
            part = PAGE_20K[i : i + 16 * 1024]
            chunked.append({"type": "http.response.body", "body": part, "more_body": True})
        chunked.append({"type": "http.response.body", "body": b"", "more_body": False})

        async def inject(messages: list[dict[str, Any]]) -> None:
            context = mw.policy.context(dict(plain_scope))
            send = Responder(_discard, context, mw.policy, mw.snippets.for_page).send
            for m in messages:
                await send(m)

        self.time("inject 20 KB page, single message", lambda: drive(inject(single)), 20_000)
        self.time("inject 20 KB page, 16 KB chunks", lambda: drive(inject(chunked)), 20_000)

        # -- request log ---------------------------------------------------------------
        tmp = tempfile.TemporaryDirectory(prefix="consentmw-micro-")
        self._cleanup.append(tmp.cleanup)
        log_mw = RequestLogMiddleware(mw, directory=tmp.name, queue_size=1_000_000)
        self._cleanup.append(log_mw.close)
        log_mw.log.start()

        # -- whole requests through the ASGI stack, in process -----------------------
        json_app = raw_app(b'{"ok":true}', b"application/json")
        json_mw = ConsentMiddleware(json_app, **consent_options())
        cases = [
            ("bare app, 20 KB HTML", page_app, plain_scope),
            ("ConsentMiddleware, 20 KB HTML, undecided", mw, plain_scope),
            ("ConsentMiddleware, 20 KB HTML, decided", mw, decided_scope),
            ("bare app, JSON", json_app, plain_scope),
            ("ConsentMiddleware, JSON", json_mw, plain_scope),
            ("full stack (log + consent), 20 KB HTML, undecided", log_mw, plain_scope),
        ]
        for name, app, scope in cases:
            self.time(
                f"ASGI request: {name}",
                lambda app=app, scope=scope: drive(app(dict(scope), _receive, _discard)),
                20_000,
            )
        return self.rows

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            fn()


def run_micro(quick: bool = False) -> list[dict[str, Any]]:
    micro = Micro(quick)
    try:
        return micro.run()
    finally:
        micro.close()


def format_table(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'microbenchmark':<{width}}  {'us/op':>9}  {'ops/s':>11}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(f"{r['name']:<{width}}  {r['us']:>9.2f}  {r['ops_per_s']:>11,.0f}")
    return "\n".join(lines)


# -- peak RSS while streaming ----------------------------------------------------------------


def vm_hwm_kb() -> int:
    """Peak resident set size of this process so far (VmHWM), in KB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def stream_messages(total: int, chunk: int = 64 * 1024) -> tuple[bytes, bytes, bytes, int]:
    """First chunk, repeated middle chunk, last chunk and the middle count for ``total``."""
    first = b'<!doctype html><html lang="en"><head><title>big</title></head><body>\n'
    first += b"x" * (chunk - len(first) - 1) + b"\n"
    middle = (b"<p>" + b"y" * 120 + b"</p>\n") * (chunk // 128)
    middle += b"z" * (chunk - len(middle))
    last = b"<p>end</p>\n</body>\n</html>\n"
    count = max(0, (total - len(first) - len(last)) // len(middle))
    return first, middle, last, count


def rss_child(mode: str, megabytes: int) -> dict[str, Any]:
    """Stream ``megabytes`` of HTML through the responder alone (or the whole middleware)."""
    logging.getLogger("consentmw").setLevel(logging.ERROR)
    first, middle, last, count = stream_messages(megabytes * 1024 * 1024)
    out = {"bytes": 0, "injected": False}

    async def sink(message: Any) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            out["bytes"] += len(body)
            if SNIPPET_MARKER in body:
                out["injected"] = True

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        for _ in range(scope["count"]):
            await send({"type": "http.response.body", "body": middle, "more_body": True})
        await send({"type": "http.response.body", "body": last, "more_body": False})

    mw = ConsentMiddleware(app, **consent_options())

    async def once(n: int) -> None:
        scope = scope_for("/big")
        scope["count"] = n
        if mode == "middleware":
            await mw(scope, _receive, sink)
            return
        responder = Responder(sink, mw.policy.context(scope), mw.policy, mw.snippets.for_page)
        await app(scope, _receive, responder.send)

    async def main() -> dict[str, Any]:
        await once(16)  # 1 MB warm-up: every code path and cache in place
        out["bytes"], out["injected"] = 0, False
        before = vm_hwm_kb()
        await once(count)
        after = vm_hwm_kb()
        return {
            "mode": mode,
            "streamed_mb": round(out["bytes"] / 2**20, 1),
            "injected": out["injected"],
            "hwm_before_kb": before,
            "hwm_after_kb": after,
            "growth_kb": after - before,
        }

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--rss", choices=("injector", "middleware"), help="run one RSS child")
    parser.add_argument("--mb", type=int, default=100, help="MB streamed by --rss")
    args = parser.parse_args(argv)
    if args.rss:
        print(json.dumps(rss_child(args.rss, args.mb)))
        return 0
    rows = run_micro(args.quick)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
