"""Visitors, visits, bounce rate and entry pages from keys the real request log wrote.

A seeded plan of visits is sent through RequestLogMiddleware (count_visitors on, one
fake clock); the report must find exactly what the plan says, counted here in Python
from the plan, never from the log.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb", reason="the analytics extra is part of the test extra")

from consentmw.analytics.report import build_report
from consentmw.requestlog import RequestLogMiddleware
from tests.requestlog_helpers import UA_CHROME, UA_IPHONE, run
from tests.test_analytics_kind import GOOGLEBOT, html_app

DAYS = (date(2026, 11, 20), date(2026, 11, 21))
PAGES = ["/", "/pricing", "/products/sms", "/about", "/contact"]

Visit = list[tuple[float, str]]  # (time, path) of each page view


def plan(seed: int) -> dict[tuple[str, str, date], list[Visit]]:
    """Visitors (address, User-Agent, day) -> their visits, gaps chosen around 30 min."""
    rng = random.Random(seed)
    visitors: dict[tuple[str, str, date], list[Visit]] = {}
    for n in range(40):
        ua = UA_CHROME if n % 3 else UA_IPHONE
        ip = f"198.51.{n % 7}.{n}"  # several share a masked /16: keys still tell them apart
        for day in DAYS:
            if rng.random() < 0.3:
                continue
            t = datetime(day.year, day.month, day.day, 6, tzinfo=timezone.utc).timestamp()
            t += rng.randrange(0, 3600)
            visits: list[Visit] = []
            for _ in range(rng.randint(1, 3)):
                views = rng.choice([1, 1, 2, 3, 5])
                visit: Visit = []
                for _ in range(views):
                    visit.append((t, rng.choice(PAGES)))
                    t += rng.choice([5, 60, 600, 1799])  # always under 30 minutes
                visits.append(visit)
                # the next visit: 30 minutes or more after this one's last view
                t = visit[-1][0] + rng.choice([1800, 1801, 4000])
            visitors[(ip, ua, day)] = visits
    return visitors


def log_plan(directory: Path, visitors: dict[tuple[str, str, date], list[Visit]]) -> int:
    """Send the plan's page views, with noise, through the real request log in
    ``directory``/logs; returns how many planned page views were sent."""
    clock = [0.0]
    mw = RequestLogMiddleware(
        html_app,
        directory=str(directory / "logs"),
        salt_dir=str(directory / "salts"),
        count_visitors=True,
        flush_interval=60,
        maintenance_interval=3600,
        clock=lambda: clock[0],
    )
    requests = [
        (t, path, ip, ua)
        for (ip, ua, _), visits in visitors.items()
        for visit in visits
        for t, path in visit
    ]
    for t, path, ip, ua in sorted(requests):
        clock[0] = t
        headers = [(b"user-agent", ua.encode()), (b"host", b"www.example.no")]
        run(mw, path, client=(ip, 1), headers=headers)
        # noise the report must not count as visits: an asset, a bot, a GPC page view
        run(mw, "/site.css", client=(ip, 1), headers=headers)
    clock[0] = requests[0][0]
    run(mw, "/", client=("203.0.113.1", 1), headers=[(b"user-agent", GOOGLEBOT.encode())])
    gpc = [(b"user-agent", UA_CHROME.encode()), (b"sec-gpc", b"1")]
    run(mw, "/", client=("203.0.113.2", 1), headers=gpc)
    mw.close()
    return len(requests)


def check_plan(
    data: dict[str, Any], visitors: dict[tuple[str, str, date], list[Visit]], sent: int
) -> None:
    """The report ``data`` (of DAYS, any engine) counts what the plan says."""
    all_visits = [v for visits in visitors.values() for v in visits]
    bounces = sum(1 for v in all_visits if len(v) == 1)
    entries = Counter(v[0][1] for v in all_visits)
    assert data["pageviews"] == sent + 1  # the GPC view is a page view, unkeyed
    assert data["visitors"] == len(visitors)  # per day: yesterday's key is not today's
    assert data["visits"] == len(all_visits)
    assert data["bounce_rate"] == round(bounces / len(all_visits), 4)
    for entry in data["entry_pages"]:
        assert entry["visits"] == entries[entry["path"]]
        single = sum(1 for v in all_visits if len(v) == 1 and v[0][1] == entry["path"])
        assert entry["bounce_rate"] == round(single / entries[entry["path"]], 4)
    assert sum(e["visits"] for e in data["entry_pages"]) == len(all_visits)  # 5 paths < top
    per_day = {d["date"]: d["visitors"] for d in data["series"]["day"]}
    for day in DAYS:
        assert per_day[day.isoformat()] == sum(1 for k in visitors if k[2] == day)


@pytest.mark.parametrize("seed", [1, 2])
def test_report_counts_what_the_plan_says(tmp_path: Path, seed: int) -> None:
    visitors = plan(seed)
    sent = log_plan(tmp_path, visitors)
    check_plan(build_report(tmp_path / "logs", DAYS[0], DAYS[1]).to_dict(), visitors, sent)
