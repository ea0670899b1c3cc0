"""``consentmw records ...`` run as a real subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import consentmw
from consentmw.records import CountRow, Hold, open_store
from tests.records_support import BACKENDS, PG_URL, pg_schema, receipt, with_search_path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consentmw.records.cli", "records", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(consentmw.__file__).parents[1]), **(env or {})},
    )


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store holding: alice twice (one very old), bob once."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/receipts.db"
        else:
            url = with_search_path(PG_URL, stack.enter_context(pg_schema()))
        store = open_store(url)
        store.add_sync(receipt("alice", at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
        store.add_sync(receipt("alice", action="withdraw", granted=(), denied=("analytics",)))
        store.add_sync(receipt("bob"))
        store.close_sync()
        yield url


def test_show_and_export(url: str, tmp_path: Path) -> None:
    shown = cli("show", "--url", url, "--consent-id", "alice")
    assert shown.returncode == 0, shown.stderr
    assert "accept_all" in shown.stdout and "withdraw" in shown.stdout
    assert "bob" not in shown.stdout

    everything = cli("export", "--url", url)
    lines = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [d["consent_id"] for d in lines] == ["alice", "alice", "bob"]

    out = tmp_path / "alice.jsonl"
    assert cli("export", "--url", url, "--consent-id", "alice", "-o", str(out)).returncode == 0
    assert [json.loads(line)["action"] for line in out.read_text().splitlines()] == [
        "accept_all",
        "withdraw",
    ]


def test_forget_then_show_nothing(url: str) -> None:
    forgot = cli("forget", "--consent-id", "alice", env={"CONSENTMW_RECORDS_URL": url})
    assert forgot.returncode == 0 and "deleted 2 receipts" in forgot.stdout
    assert "no receipts" in cli("show", "--url", url, "--consent-id", "alice").stdout
    assert "bob" in cli("export", "--url", url).stdout


def test_purge_dry_run_then_purge(url: str) -> None:
    dry = cli("purge", "--url", url, "--dry-run", "--retention-months", "12")
    assert dry.returncode == 0 and "would delete 1 receipts" in dry.stdout
    assert "deleted 1 receipts" in cli("purge", "--url", url).stdout
    assert len(cli("export", "--url", url).stdout.splitlines()) == 2


def test_old_legal_hold_file_stops_purge_with_how_to_convert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/receipts.db"
    store = open_store(url)
    store.add_sync(receipt("alice", at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    store.close_sync()
    (tmp_path / "LEGAL_HOLD").write_text("litigation 12/2026")
    held = cli("purge", "--url", url)
    assert held.returncode == 1 and "nothing deleted" in held.stderr
    assert "records hold add --case" in held.stderr
    assert len(cli("export", "--url", url).stdout.splitlines()) == 1


def test_bad_input_gives_clear_errors(tmp_path: Path) -> None:
    bad_url = cli("show", "--url", "mysql://u:hunter2@h/db", "--consent-id", "x")
    assert bad_url.returncode == 2 and "records_url" in bad_url.stderr
    assert "hunter2" not in bad_url.stderr
    bad_months = cli("purge", "--url", f"sqlite:///{tmp_path}/r.db", "--retention-months", "200")
    assert bad_months.returncode == 2 and "3..120" in bad_months.stderr
    down = cli("show", "--url", "postgresql://nobody@127.0.0.1:1/x", "--consent-id", "x")
    assert down.returncode == 1 and "unavailable" in down.stderr
    assert not (tmp_path / "r.db").exists()  # reading never creates a database


def test_show_prints_the_exact_texts_of_each_receipt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/receipts.db"
    store = open_store(url)
    material = json.dumps({"controller": "Front Information AS", "texts": {"intro": "Hei"}})
    store.add_texts_sync("sha256:t1", "nb", "1.07", material)
    store.add_sync(receipt("alice", banner_hash="sha256:t1"))
    store.add_sync(receipt("alice", banner_hash="sha256:t1", action="withdraw", granted=(),
                           denied=("analytics",)))  # fmt: skip
    store.add_sync(receipt("alice", banner_hash="sha256:gone"))
    store.close_sync()
    shown = cli("show", "alice", "--url", url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count('"controller": "Front Information AS"') == 1
    assert '"intro": "Hei"' in shown.stdout
    assert "texts:   as shown with #1 above" in shown.stdout
    assert "texts:   not stored" in shown.stdout
    assert cli("show", "--url", url).returncode == 2


def test_hold_add_list_forget_release(url: str) -> None:
    add = cli("hold", "add", "--url", url, "--case", "Suit 12", "--consent-id", "alice",
              "--from", "2019-12-31", "--to", "2020-01-01", "--review", "2099-01-01")  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert "1 consent id(s) within receipts from 2019-12-31 to 2020-01-01" in add.stdout
    listed = cli("hold", "list", "--url", url)
    assert "Suit 12:" in listed.stdout and "review 2099-01-01" in listed.stdout
    forgot = cli("forget", "--url", url, "--consent-id", "alice")
    assert "deleted 1 receipts" in forgot.stdout
    assert "kept 1 receipts under legal hold: Suit 12 (1, review 2099-01-01)" in forgot.stdout
    assert "would delete 0 receipts" in cli("purge", "--url", url, "--dry-run").stdout
    again = cli("hold", "add", "--url", url, "--case", "Suit 12", "--consent-id", "x",
                "--review", "2099-01-01")  # fmt: skip
    assert again.returncode == 2 and "exists already" in again.stderr
    released = cli("hold", "release", "--url", url, "Suit 12")
    assert released.returncode == 0 and "released" in released.stdout
    assert cli("hold", "release", "--url", url, "Suit 12").returncode == 1
    assert "deleted 1 receipts" in cli("purge", "--url", url).stdout


def test_hold_add_refuses_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    for args, message in [
        (["--review", "2099-01-01"], "consent ids, a time range, or both"),
        (["--consent-id", "a", "--review", "2020-01-01"], "in the past"),
        (["--consent-id", "a", "--review", "soon"], "must be a date"),
        (["--from", "2021-01-01", "--to", "2020-01-01", "--review", "2099-01-01"], "--from"),
    ]:
        done = cli("hold", "add", "--url", url, "--case", "A", *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / "r.db").exists()


def test_overdue_review_is_shown_and_the_hold_stays(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    store = open_store(url)
    store.add_sync(receipt("alice", at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    store.add_hold_sync(Hold(case="Old", review=date(2021, 1, 1), consent_ids=("alice",)))
    store.close_sync()
    listed = cli("hold", "list", "--url", url)
    assert "REVIEW OVERDUE" in listed.stdout and "due for review on 2021-01-01" in listed.stderr
    purged = cli("purge", "--url", url)
    assert "deleted 0 receipts" in purged.stdout and "due for review" in purged.stderr
    assert len(cli("export", "--url", url).stdout.splitlines()) == 1


def test_counts_prints_the_daily_counts(url: str, tmp_path: Path) -> None:
    today = datetime.now(timezone.utc).date()
    store = open_store(url)
    store.add_counts_sync([
        CountRow(today, "banner_shown", "1.07", "nb", 120),
        CountRow(today, "banner_shown", "1.07", "en", 30),
        CountRow(today, "signal_refusal", "1.07", "nb", 4),
        CountRow(today - timedelta(days=40), "banner_shown", "1.06", "nb", 999),
    ])  # fmt: skip
    store.close_sync()
    shown = cli("counts", "--url", url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"{today.isoformat()}  banner_shown    1.07        nb          120" in lines
    assert f"{today.isoformat()}  signal_refusal  1.07        nb            4" in lines
    assert lines[-1] == "total: banner_shown 150, signal_refusal 4"  # the last 30 days
    old = (today - timedelta(days=40)).isoformat()
    ranged = cli("counts", "--url", url, "--from", old, "--to", old, "--json")
    assert ranged.returncode == 0, ranged.stderr
    assert json.loads(ranged.stdout) == {
        "from": old, "to": old, "totals": {"banner_shown": 999, "signal_refusal": 0},
        "rows": [{"day": old, "kind": "banner_shown", "policy_version": "1.06",
                  "language": "nb", "count": 999}],
    }  # fmt: skip
    week = json.loads(cli("counts", "--url", url, "--since", "41d", "--json").stdout)
    assert week["totals"] == {"banner_shown": 1149, "signal_refusal": 4}
    for bad in (["--since", "x"], ["--from", "2026-11-20"], ["--since", "3d", "--to", "x"],
                ["--from", "2026-11-20", "--to", "2026-11-19"]):  # fmt: skip
        out = cli("counts", "--url", url, *bad)
        assert out.returncode == 2 and "Traceback" not in out.stderr, (bad, out.stderr)
    empty = cli("counts", "--url", f"sqlite:///{tmp_path}/none.db")
    assert empty.returncode == 0 and "nothing counted" in empty.stdout
    assert not (tmp_path / "none.db").exists()  # reading never creates a database


def test_export_and_forget_take_the_consent_id_as_an_argument(url: str) -> None:
    exported = cli("export", "--url", url, "alice")
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line)["consent_id"] for line in exported.stdout.splitlines()] == [
        "alice",
        "alice",
    ]
    assert cli("forget", "--url", url).returncode == 2
    both = cli("forget", "--url", url, "alice", "--consent-id", "bob")
    assert both.returncode == 2 and "two consent ids" in both.stderr
    assert "Traceback" not in both.stderr
    forgot = cli("forget", "--url", url, "alice")
    assert forgot.returncode == 0 and "deleted 2 receipts" in forgot.stdout
