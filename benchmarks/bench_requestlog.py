"""Logging-path benchmark: what the request path pays per record, and what the writer sustains.

Run ``python benchmarks/bench_requestlog.py`` for a table or ``--json`` for JSON.
Measured: enqueue of a record (the only work on the request path), the whole
middleware per request against a bare ASGI app, User-Agent parsing cold (unseen
strings) and cached for each backend, and records per second the writer thread turns
into lines on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from consentmw.requestlog import RequestLogMiddleware
from consentmw.requestlog.encoder import make_encoder
from consentmw.requestlog.files import PeriodFiles
from consentmw.requestlog.periods import Schedule
from consentmw.requestlog.record import PendingRecord, build_record, encode_record
from consentmw.requestlog.useragent import UAParser, fast_backend_available
from consentmw.requestlog.writer import LogWriter

UAS = [
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120.0.0.0 Safari/537.36",
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    b"(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7; rv:121.0) Gecko/20100101 Firefox/121.0",
    b"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120.0.6099.43 Mobile Safari/537.36",
]


def pending(i: int) -> PendingRecord:
    return PendingRecord(
        time.time(),
        "203.0.0.0",
        None,
        None,
        "GET",
        b"/page/%d" % (i % 50),
        200,
        1234,
        1.5,
        UAS[i % len(UAS)],
        b"https://www.google.no/",
        "granted",
        b"nb-NO,nb;q=0.9",
    )


def us_per(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def bench_ua(backend: str, n_cold: int) -> dict[str, float]:
    parser = UAParser(backend, cache_size=n_cold + 10)
    base = UAS[0].decode()
    cold = us_per(lambda i: parser(f"{base} Build/{i}"), n_cold)
    parser(base)
    cached = us_per(lambda i: parser(base), 100_000)
    return {"cold_us": cold, "cached_us": cached}


def bench_enqueue(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        writer = LogWriter(
            PeriodFiles(d), Schedule(), encode=lambda p: "", queue_size=n + 1, flush_interval=3600
        )
        writer._thread = object()  # type: ignore[assignment]  # measure put() alone
        records = [pending(i) for i in range(n)]
        start = time.perf_counter()
        for r in records:
            writer.put(r)
        return (time.perf_counter() - start) / n * 1e6


def bench_writer(n: int, generic: bool = False) -> float:
    """Records per second of one drain; ``generic``: the dict + json path (for comparison)."""
    parse = UAParser()
    codec: dict[str, Any] = (
        {"encode": lambda p: encode_record(build_record(p, parse)).decode()}
        if generic
        else {"encode": make_encoder(parse)}
    )
    with tempfile.TemporaryDirectory() as d:
        writer = LogWriter(
            PeriodFiles(d), Schedule(), queue_size=n + 1, flush_interval=3600, **codec
        )
        writer._thread = object()  # type: ignore[assignment]  # fill first, then drain
        for i in range(n):
            writer.put(pending(i))
        writer._thread = None
        start = time.perf_counter()
        writer.flush()
        elapsed = time.perf_counter() - start
        lines = sum(len(p.read_bytes().splitlines()) for p in Path(d).iterdir())
        assert lines == n, lines
        writer.close()
        return n / elapsed


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def bench_middleware(n: int) -> dict[str, float]:
    async def noop_receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def noop_send(message: dict[str, Any]) -> None:
        pass

    def scope(i: int) -> dict[str, Any]:
        return {
            "type": "http",
            "method": "GET",
            "path": "/p",
            "raw_path": b"/p",
            "query_string": b"",
            "client": (f"198.51.100.{i % 200}", 1),
            "headers": [(b"user-agent", UAS[i % 4]), (b"accept-language", b"nb")],
        }

    async def run(app: Any) -> float:
        scopes = [scope(i) for i in range(n)]
        start = time.perf_counter()
        for s in scopes:
            await app(s, noop_receive, noop_send)
        return (time.perf_counter() - start) / n * 1e6

    with tempfile.TemporaryDirectory() as d:
        mw = RequestLogMiddleware(bare, directory=d, queue_size=n + 1, flush_interval=0.05)
        bare_us = asyncio.run(run(bare))
        mw_us = asyncio.run(run(mw))
        mw.close()
    return {"bare_app_us": bare_us, "with_requestlog_us": mw_us, "overhead_us": mw_us - bare_us}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    results: dict[str, Any] = {
        "enqueue_us": bench_enqueue(int(200_000 * scale)),
        "middleware": bench_middleware(int(20_000 * scale)),
        "ua_user_agents": bench_ua("user-agents", int(300 * scale)),
        "writer_records_per_s": bench_writer(int(100_000 * scale)),
        "writer_generic_records_per_s": bench_writer(int(50_000 * scale), generic=True),
    }
    if fast_backend_available():
        results["ua_ua_parser"] = bench_ua("ua-parser", int(2000 * scale))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    rows = [
        ("request path: enqueue one record", f"{results['enqueue_us']:.2f} us"),
        ("request path: bare app per request", f"{results['middleware']['bare_app_us']:.2f} us"),
        (
            "request path: app + RequestLogMiddleware",
            f"{results['middleware']['with_requestlog_us']:.2f} us",
        ),
        ("request path: middleware overhead", f"{results['middleware']['overhead_us']:.2f} us"),
        ("writer: UA parse cold (user-agents)", f"{results['ua_user_agents']['cold_us']:.1f} us"),
        (
            "writer: UA parse cached (user-agents)",
            f"{results['ua_user_agents']['cached_us']:.2f} us",
        ),
    ]
    if "ua_ua_parser" in results:
        rows += [
            (
                "writer: UA parse cold (ua-parser 1.x)",
                f"{results['ua_ua_parser']['cold_us']:.1f} us",
            ),
            (
                "writer: UA parse cached (ua-parser 1.x)",
                f"{results['ua_ua_parser']['cached_us']:.2f} us",
            ),
        ]
    rate = results["writer_records_per_s"]
    rows += [
        ("writer: records/s sustained (cached UA)", f"{rate:,.0f}"),
        ("writer: CPU per record (cached UA)", f"{1e6 / rate:.2f} us"),
        (
            "writer: records/s, generic dict + json path",
            f"{results['writer_generic_records_per_s']:,.0f}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
