"""``consentmw records ...`` run as a real subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import pytest

from consentmw.records import open_store
from tests.records_support import BACKENDS, PG_URL, pg_schema, receipt, with_search_path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consentmw.records.cli", "records", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})},
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
