"""Durability across processes: SIGKILL mid-burst, and two writers on one SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from consentmw.records import ReceiptStore, open_store
from tests.records_support import BACKENDS, PG_URL, pg_schema, with_search_path

ROOT = Path(__file__).resolve().parent.parent
CHILD = [sys.executable, str(ROOT / "tests" / "records_child.py")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/receipts.db"
        return
    with ExitStack() as stack:
        yield with_search_path(PG_URL, stack.enter_context(pg_schema()))


def stored_ids(store: ReceiptStore) -> set[str]:
    return {r.consent_id for r in store.export_sync()}


def test_sigkill_mid_burst_loses_no_completed_receipt(url: str) -> None:
    child = subprocess.Popen(
        [*CHILD, url, "crash", "0", "32"], stdout=subprocess.PIPE, env=ENV, text=True
    )
    assert child.stdout is not None
    completed = []
    for line in child.stdout:  # the burst goes on while we read
        completed.append(line.strip())
        if len(completed) == 400:
            child.send_signal(signal.SIGKILL)
            break
    completed += [line.strip() for line in child.stdout if line.endswith("\n")]
    assert child.wait(timeout=30) == -signal.SIGKILL

    store = open_store(url)
    try:
        missing = set(completed) - stored_ids(store)
    finally:
        store.close_sync()
    assert len(completed) >= 400 and not missing
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_writing_the_same_store_lose_nothing(url: str) -> None:
    children = [
        subprocess.Popen(
            [*CHILD, url, name, "150", "8"], stdout=subprocess.PIPE, env=ENV, text=True
        )
        for name in ("one", "two")
    ]
    outputs = [child.communicate(timeout=120)[0].split() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    store = open_store(url)
    try:
        ids = stored_ids(store)
    finally:
        store.close_sync()
    assert all(len(out) == 150 for out in outputs)
    assert ids == {f"{name}-{n}" for name in ("one", "two") for n in range(150)}
