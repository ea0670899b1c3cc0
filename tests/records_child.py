"""Child process for the crash and multi-process tests.

``python tests/records_child.py URL PREFIX COUNT [CONCURRENCY]`` adds COUNT receipts
(forever if COUNT is 0) with consent ids ``PREFIX-<n>``, printing each id on its own
flushed line once its ``add`` has completed: the parent may SIGKILL us at any moment and
then expects every printed id to be stored.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from datetime import datetime, timezone

from consentmw.records import Receipt, open_store


async def main(url: str, prefix: str, count: int, concurrency: int) -> None:
    store = open_store(url)
    numbers = itertools.count() if count == 0 else iter(range(count))

    async def worker() -> None:
        for n in numbers:
            consent_id = f"{prefix}-{n}"
            await store.add(
                Receipt(
                    consent_id=consent_id,
                    recorded_at=datetime.now(timezone.utc),
                    policy_version="1.07",
                    banner_hash="sha256:crash",
                    granted=("necessary",),
                    denied=("analytics",),
                    action="reject_all",
                    source="banner",
                    language="en",
                    masked_ip="10.0.0.0",
                    browser="Chrome",
                )
            )
            sys.stdout.write(consent_id + "\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await store.close()
    if store.failures:
        sys.exit(f"{store.failures} receipts failed")


if __name__ == "__main__":
    url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    asyncio.run(main(url, prefix, count, concurrency))
