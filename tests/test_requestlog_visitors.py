"""Daily visitor keys: off by default, refused by signals and consent, salts that die.

Everything runs through the real middleware, the real writer and real salt stores (a
private directory, PostgreSQL with a per-test schema, several real processes).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from consentmw.requestlog import RequestLogMiddleware
from consentmw.requestlog.periods import load_timezone
from consentmw.requestlog.salts import FileSaltStore, PostgresSaltStore, default_salt_dir
from consentmw.requestlog.visitors import VisitorKeys, visitor_key
from tests.conftest import client_for, make_app
from tests.records_support import PG_SKIP_REASON, PG_URL, pg_schema, with_search_path
from tests.requestlog_helpers import UA_CHROME, UA_IPHONE, read_records, run
from tests.test_analytics_kind import html_app

ROOT = Path(__file__).resolve().parent.parent
NOON = datetime(2026, 11, 20, 12, tzinfo=timezone.utc).timestamp()
DAY = 86400.0
CHROME = [(b"user-agent", UA_CHROME.encode()), (b"host", b"www.example.no")]
postgres = [pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)]


def make(tmp_path: Path, clock: list[float] | None = None, **options: Any) -> RequestLogMiddleware:
    now = clock if clock is not None else [NOON]
    options.setdefault("flush_interval", 60)
    options.setdefault("maintenance_interval", 3600)
    if options.get("count_visitors") and "salt_url" not in options:
        options.setdefault("salt_dir", str(tmp_path / "salts"))
    return RequestLogMiddleware(
        html_app, directory=str(tmp_path / "logs"), clock=lambda: now[0], **options
    )


def keys(tmp_path: Path) -> list[str | None]:
    return [r.get("visitor", "absent") for r in read_records(tmp_path / "logs")]


# -- off by default, and what turns a key off -------------------------------------------


def test_off_by_default_no_visitor_field_at_all(tmp_path: Path) -> None:
    mw = make(tmp_path)
    run(mw, "/", headers=CHROME)
    mw.close()
    [record] = read_records(tmp_path / "logs")
    assert "visitor" not in record and record["kind"] == "page"
    assert not (tmp_path / "salts").exists()


def test_env_turns_it_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTMW_COUNT_VISITORS", "1")
    monkeypatch.setenv("CONSENTMW_SALT_DIR", str(tmp_path / "env-salts"))
    mw = make(tmp_path)
    run(mw, "/", headers=CHROME)
    mw.close()
    [key] = keys(tmp_path)
    assert isinstance(key, str) and len(key) == 16
    assert len(list((tmp_path / "env-salts").glob("*.salt"))) == 1


def test_a_page_view_gets_a_key_and_nothing_else_is_written(tmp_path: Path) -> None:
    mw = make(tmp_path, count_visitors=True)
    headers = [*CHROME, (b"x-forwarded-for", b"203.0.113.9")]
    run(mw, "/", headers=headers, client=("198.51.100.23", 1))
    run(mw, "/site.css", headers=headers, client=("198.51.100.23", 1))  # an asset
    mw.close()
    page, asset = read_records(tmp_path / "logs")
    assert list(page)[-1] == "visitor" and len(page["visitor"]) == 16
    assert asset["kind"] == "asset" and asset["visitor"] is None  # page views only
    [salt_file] = (tmp_path / "salts").glob("*.salt")
    salt_hex = salt_file.read_text().split()[3]
    disk = (tmp_path / "logs").rglob("*")
    data = b"".join(p.read_bytes() for p in disk if p.is_file())
    for secret in (b"198.51.100.23", b"203.0.113.9", UA_CHROME.encode(), salt_hex.encode()):
        assert secret not in data
    # the key is the keyed hash of host, the full (unmasked) peer address and User-Agent
    salt = bytes.fromhex(salt_hex)
    assert page["visitor"] == visitor_key(
        salt, b"www.example.no", "198.51.100.23", UA_CHROME.encode()
    )


@pytest.mark.parametrize(
    "signal", [(b"sec-gpc", b"1"), (b"dnt", b"1"), (b"Sec-GPC".lower(), b" 1 ")]
)
def test_gpc_or_dnt_means_no_key(tmp_path: Path, signal: tuple[bytes, bytes]) -> None:
    mw = make(tmp_path, count_visitors=True)
    run(mw, "/", headers=[*CHROME, signal])
    run(mw, "/", headers=[*CHROME, (signal[0], b"0")])  # an explicit "no signal"
    mw.close()
    refused, allowed = keys(tmp_path)
    assert refused is None and isinstance(allowed, str)


def test_bots_and_requests_without_user_agent_get_no_key(tmp_path: Path) -> None:
    from tests.test_analytics_kind import GOOGLEBOT

    mw = make(tmp_path, count_visitors=True)
    run(mw, "/", headers=[(b"user-agent", GOOGLEBOT.encode())])
    run(mw, "/", headers=[(b"user-agent", b"curl/8.5.0")])
    run(mw, "/", headers=[])
    mw.close()
    records = read_records(tmp_path / "logs")
    assert [r["kind"] for r in records] == ["bot", "bot", "bot"]
    assert [r["visitor"] for r in records] == [None, None, None]


async def _with_consent(tmp_path: Path, mode: object, action: str | None) -> str | None:
    """One page view through ConsentMiddleware inside the request log, after ``action``."""
    clock = [NOON]
    mw = make(tmp_path, clock, count_visitors=mode)
    mw.app = make_app()  # the real consent middleware and site, inside the request log
    async with client_for(mw) as client:
        client.headers["user-agent"] = UA_CHROME
        if action is not None:
            response = await client.post("/_consent", json={"action": action})
            assert response.status_code == 200
        assert (await client.get("/")).status_code == 200
    mw.close()
    [page] = [r for r in read_records(tmp_path / "logs") if r["kind"] == "page"]
    return page["visitor"]


@pytest.mark.parametrize(
    ("mode", "action", "keyed"),
    [
        (True, "reject_all", False),  # refused analytics: no key
        (True, "accept_all", True),
        (True, None, True),  # undecided: counted unless the site asks for consent first
        ("consented", None, False),
        ("consented", "reject_all", False),
        ("consented", "accept_all", True),
    ],
)
async def test_refused_analytics_means_no_key(
    tmp_path: Path, mode: object, action: str | None, keyed: bool
) -> None:
    key = await _with_consent(tmp_path, mode, action)
    assert (key is not None) is keyed


# -- the salt: one per day, shared, private, destroyed ----------------------------------


def test_same_day_same_key_next_day_another(tmp_path: Path) -> None:
    clock = [NOON]
    mw = make(tmp_path, clock, count_visitors=True)
    run(mw, "/", headers=CHROME)
    clock[0] = NOON + 3 * 3600
    run(mw, "/about", headers=CHROME)
    run(mw, "/", headers=[(b"user-agent", UA_IPHONE.encode()), (b"host", b"www.example.no")])
    clock[0] = NOON + DAY
    run(mw, "/", headers=CHROME)
    mw.close()
    first, again, other, tomorrow = keys(tmp_path)
    assert first == again
    assert other != first  # another browser from the same address is another visitor
    assert tomorrow != first  # another day's salt: the same visitor cannot be followed
    assert len(list((tmp_path / "salts").glob("*.salt"))) == 2


def test_salt_file_is_private_and_outside_the_log_directory(tmp_path: Path) -> None:
    mw = make(tmp_path, count_visitors=True)
    run(mw, "/", headers=CHROME)
    mw.close()
    [salt_file] = (tmp_path / "salts").glob("*.salt")
    assert salt_file.name == "2026-11-20_UTC.salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "salts").stat().st_mode) == 0o700
    logs = (tmp_path / "logs").resolve()
    assert logs not in salt_file.resolve().parents
    assert not [p for p in logs.rglob("*") if "salt" in p.name]
    for inside in (tmp_path / "logs", tmp_path / "logs" / "salts"):
        with pytest.raises(ValueError, match="inside the log directory"):
            make(tmp_path, count_visitors=True, salt_dir=str(inside))


def test_default_salt_dir_is_outside_any_log_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    assert default_salt_dir({"XDG_RUNTIME_DIR": str(runtime)}) == runtime / "consentmw" / "salts"
    state = default_salt_dir({"XDG_STATE_HOME": str(tmp_path / "state")})
    assert state == tmp_path / "state" / "consentmw" / "salts"


def test_an_open_or_foreign_salt_dir_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(ValueError, match="chmod 700"):
        FileSaltStore(open_dir)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError):
        FileSaltStore(link)


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    store = FileSaltStore(tmp_path / "salts")
    target = tmp_path / "victim"
    target.write_text("do not touch")
    (tmp_path / "salts" / "2026-11-20_UTC.salt").symlink_to(target)
    from consentmw.requestlog.salts import SaltUnavailable

    with pytest.raises(SaltUnavailable):
        store.salt("2026-11-20_UTC", NOON + DAY)
    assert target.read_text() == "do not touch"


def test_file_salt_is_gone_after_its_grace_period(tmp_path: Path) -> None:
    clock = [NOON]
    mw = make(tmp_path, clock, count_visitors=True, salt_grace=3600)
    run(mw, "/", headers=CHROME)
    visitors = mw.log.visitors
    assert visitors is not None
    end_of_day = datetime(2026, 11, 21, tzinfo=timezone.utc).timestamp()
    salt_file = tmp_path / "salts" / "2026-11-20_UTC.salt"
    clock[0] = end_of_day + 1800  # a late request's grace period: the salt is kept
    mw.log.maintain()
    assert salt_file.exists()
    clock[0] = end_of_day + 3600  # the day and its grace are over
    mw.log.maintain()
    assert not salt_file.exists()
    assert visitors._current is None or visitors._current[0] >= end_of_day
    mw.close()


def break_salt_dir(tmp_path: Path) -> None:
    """Any further use of the salt directory fails (chmod would not stop root)."""
    for f in (tmp_path / "salts").iterdir():
        f.unlink()
    (tmp_path / "salts").rmdir()
    (tmp_path / "salts").write_text("not a directory")


def test_salts_are_only_in_memory_after_the_first_request(tmp_path: Path) -> None:
    mw = make(tmp_path, count_visitors=True)
    run(mw, "/", headers=CHROME)
    break_salt_dir(tmp_path)  # a disk read now fails, a new salt cannot be made
    for _ in range(50):
        run(mw, "/", headers=CHROME)
    mw.close()
    found = keys(tmp_path)
    assert len(found) == 51 and len(set(found)) == 1 and found[0] is not None


def test_a_failing_store_means_no_key_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [NOON]
    mw = make(tmp_path, clock, count_visitors=True)
    run(mw, "/", headers=CHROME)
    break_salt_dir(tmp_path)
    clock[0] = NOON + DAY  # a new day: its salt cannot be stored
    results = [run(mw, "/", headers=CHROME) for _ in range(3)]
    mw.close()
    assert [r["sent"][0]["status"] for r in results] == [200, 200, 200]
    assert keys(tmp_path)[1:] == [None, None, None]
    assert caplog.text.count("salt store failed") == 1  # reported once


def test_bad_options_are_refused(tmp_path: Path) -> None:
    for bad in ({"count_visitors": "yes"}, {"count_visitors": 1}):
        with pytest.raises(ValueError, match="count_visitors"):
            make(tmp_path, **bad)
    with pytest.raises(ValueError, match="salt_grace"):
        make(tmp_path, count_visitors=True, salt_grace=-1)
    with pytest.raises(ValueError, match="postgresql://"):
        make(tmp_path, count_visitors=True, salt_url="mysql://x")
    with pytest.raises(ValueError, match="not both"):
        make(tmp_path, count_visitors=True, salt_url="postgresql://x", salt_dir="/tmp/x")
    store = VisitorKeys(FileSaltStore(tmp_path / "s"), load_timezone("UTC"))
    assert "salt" not in repr(store).replace("SaltStore", "").replace("salts", "")


# -- several real processes on one host --------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from consentmw.requestlog import RequestLogMiddleware
from tests.requestlog_helpers import UA_CHROME, run
from tests.test_analytics_kind import html_app

base, worker, go, days = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
clock = [0.0]
mw = RequestLogMiddleware(
    html_app, directory=str(base / "logs"), salt_dir=str(base / "salts"),
    count_visitors=True, flush_interval=60, maintenance_interval=3600,
    clock=lambda: clock[0],
)
while not go.exists():
    time.sleep(0.001)
for day in range(days):
    clock[0] = float(sys.argv[5]) + day * 86400
    run(mw, "/w" + worker, headers=[(b"user-agent", UA_CHROME.encode()), (b"host", b"h")])
mw.close()
"""


def test_worker_processes_agree_on_each_days_salt(tmp_path: Path) -> None:
    go = tmp_path / "go"
    days = 15
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(n), str(go), str(days), str(NOON)],
            env=env,
            cwd=ROOT,
        )
        for n in range(4)
    ]
    time.sleep(1.5)  # let every child import and wait at the gate
    go.touch()
    for child in children:
        assert child.wait(120) == 0
    by_day: dict[str, set[str]] = {}
    for record in read_records(tmp_path / "logs"):
        by_day.setdefault(record["time"][:10], set()).add(record["visitor"])
    assert len(by_day) == days
    assert all(len(found) == 1 for found in by_day.values())  # one salt per day for all four
    assert len(set.union(*by_day.values())) == days  # and a new one every day
    files = sorted((tmp_path / "salts").iterdir())
    assert len(files) == days and all(f.suffix == ".salt" for f in files)  # no temp left


# -- PostgreSQL: one salt for a fleet ---------------------------------------------------


@pytest.mark.parametrize("_", [0], ids=["postgres"])
@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
def test_postgres_salt_shared_and_gone_after_grace(tmp_path: Path, _: int) -> None:
    import psycopg

    with pg_schema() as schema:
        url = with_search_path(PG_URL, schema)
        clock = [NOON]
        hosts = [
            make(tmp_path / f"host{n}", clock, count_visitors=True, salt_url=url) for n in (1, 2)
        ]
        for mw in hosts:
            run(mw, "/", headers=CHROME)
        for mw in hosts:
            mw.close()
        [a], [b] = keys(tmp_path / "host1"), keys(tmp_path / "host2")
        assert a == b and a is not None  # two hosts, one salt: one visitor
        assert "@" not in repr(hosts[0].log.visitors)  # no credentials in repr
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT day, length(salt) FROM consentmw_salts").fetchall()
        assert rows == [("2026-11-20_UTC", 32)]
        store = PostgresSaltStore(url)
        end_of_day = datetime(2026, 11, 21, tzinfo=timezone.utc).timestamp()
        assert store.purge(end_of_day + 1800) == 0  # within the grace period: kept
        clock[0] = end_of_day + 3600
        hosts[0].log.maintain()  # a worker's housekeeping pass deletes it (and makes today's)
        with psycopg.connect(url) as conn:
            days = conn.execute("SELECT day FROM consentmw_salts").fetchall()
        assert days == [("2026-11-21_UTC",)]


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
def test_postgres_concurrent_first_requests_agree() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with pg_schema() as schema:
        url = with_search_path(PG_URL, schema)
        stores = [PostgresSaltStore(url) for _ in range(8)]
        with ThreadPoolExecutor(8) as pool:
            salts = list(pool.map(lambda s: s.salt("2026-11-20_UTC", NOON + DAY), stores))
        assert len(set(salts)) == 1 and len(salts[0]) == 32


def test_the_salt_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mw = make(tmp_path, count_visitors=True)
    run(mw, "/", headers=CHROME)
    mw.log.maintain()
    mw.close()
    [salt_file] = (tmp_path / "salts").glob("*.salt")
    salt_hex = salt_file.read_text().split()[3]
    assert salt_hex not in caplog.text and salt_hex not in repr(mw.log.visitors)
