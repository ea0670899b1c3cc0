"""Receipts per second for each receipt-store backend.

    python benchmarks/bench_records.py [--json] [--count N]

Two shapes: ``sequential`` (one visitor at a time: each ``add`` waits for its own durable
commit, so this is really commit latency) and ``concurrent`` (100 visitors deciding at
once, as after a banner change: the SQLite writer thread groups them into few commits).
PostgreSQL runs only when ``CONSENTMW_TEST_PG`` holds a URL (see
scripts/start-postgres.sh); it uses a throwaway schema.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from consentmw.records import Receipt, ReceiptStore, open_store


def make_receipt(n: int) -> Receipt:
    return Receipt(
        consent_id=uuid.uuid4().hex,
        recorded_at=datetime.now(timezone.utc),
        policy_version="1.07",
        banner_hash="sha256:" + "ab" * 32,
        granted=("necessary", "analytics") if n % 2 else ("necessary",),
        denied=() if n % 2 else ("analytics",),
        action="accept_all" if n % 2 else "reject_all",
        source="banner",
        language="nb",
        masked_ip="192.168.0.0",
        browser="Firefox",
    )


async def measure(store: ReceiptStore, count: int, concurrency: int) -> float:
    """Receipts per second for ``count`` adds made by ``concurrency`` visitors at once."""
    await store.add(make_receipt(0))  # open the database, create the schema
    numbers = iter(range(count))

    async def visitor() -> None:
        for n in numbers:
            await store.add(make_receipt(n))

    start = time.perf_counter()
    await asyncio.gather(*(visitor() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if store.failures:
        raise SystemExit(f"{store.failures} receipts failed during the benchmark")
    return count / elapsed


@contextmanager
def pg_url(base: str) -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def run_backend(url: str, count: int) -> dict[str, float]:
    results = {}
    for shape, concurrency, n in (
        ("sequential", 1, max(50, count // 10)),
        ("concurrent", 100, count),
    ):
        store = open_store(url)
        try:
            results[shape] = round(await measure(store, n, concurrency))
        finally:
            await store.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--count", type=int, default=2000, help="receipts per concurrent run")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="consentmw-bench-") as tmp:
        results["sqlite"] = asyncio.run(run_backend(f"sqlite:///{tmp}/receipts.db", args.count))
    pg = os.environ.get("CONSENTMW_TEST_PG")
    if pg:
        with pg_url(pg) as url:
            results["postgresql"] = asyncio.run(run_backend(url, args.count))
    else:
        results["postgresql"] = "skipped: CONSENTMW_TEST_PG not set"

    if args.json:
        print(json.dumps({"unit": "receipts/s", "results": results}, indent=2))
        return 0
    print("receipts/s (durable: add returns after commit)")
    print(f"{'backend':<12}{'sequential':>12}{'concurrent':>12}")
    for backend, row in results.items():
        if isinstance(row, dict):
            print(f"{backend:<12}{row['sequential']:>12}{row['concurrent']:>12}")
        else:
            print(f"{backend:<12}{row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
