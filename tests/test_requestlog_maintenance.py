"""Compression of ended periods, retention purge, legal hold, and races between processes."""

from __future__ import annotations

import gzip
import json
import logging
import multiprocessing
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from consentmw.requestlog.files import PeriodFiles
from consentmw.requestlog.maintenance import compress_ended, list_log_files, purge
from consentmw.requestlog.service import RequestLog

UTC = ZoneInfo("UTC")


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def write(directory: Path, key: str, lines: list[str]) -> None:
    PeriodFiles(directory).append(key, "".join(f'{{"n":"{x}"}}\n' for x in lines).encode())


def read_all(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line)["n"] for line in fh]


def test_compresses_only_ended_periods_after_grace(tmp_path: Path) -> None:
    write(tmp_path, "2026-11-26", ["a", "b"])
    write(tmp_path, "2026-11-27", ["c"])
    now = ts(2026, 11, 27, 0, 5)  # the 26th ended 5 minutes ago
    assert compress_ended(tmp_path, UTC, now, grace_seconds=600) == []
    done = compress_ended(tmp_path, UTC, now + 600, grace_seconds=600)
    assert [p.name for p in done] == ["requests-2026-11-26.jsonl"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["requests-2026-11-26.jsonl.gz", "requests-2026-11-27.jsonl"]
    assert read_all(tmp_path / "requests-2026-11-26.jsonl.gz") == ["a", "b"]


def test_late_record_after_compression_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "2026-11-26", ["a"])
    compress_ended(tmp_path, UTC, ts(2026, 11, 28), 0)
    write(tmp_path, "2026-11-26", ["late"])  # a new .jsonl next to the .gz
    compress_ended(tmp_path, UTC, ts(2026, 11, 28), 0)
    assert [p.name for p in tmp_path.iterdir()] == ["requests-2026-11-26.jsonl.gz"]
    assert read_all(tmp_path / "requests-2026-11-26.jsonl.gz") == ["a", "late"]


def test_writer_with_open_descriptor_survives_compression(tmp_path: Path) -> None:
    files = PeriodFiles(tmp_path)
    files.append("2026-11-26", b'{"n":"a"}\n')  # keeps its descriptor open
    compress_ended(tmp_path, UTC, ts(2026, 11, 28), 0)
    files.append("2026-11-26", b'{"n":"b"}\n')  # notices the unlink, writes a new file
    files.close()
    assert read_all(tmp_path / "requests-2026-11-26.jsonl") == ["b"]


def _compress_worker(directory: str) -> None:
    compress_ended(directory, UTC, ts(2030, 1, 1), 0)


def test_concurrent_compressors_lose_nothing(tmp_path: Path) -> None:
    expected = {}
    for day in range(1, 21):
        key = f"2026-10-{day:02d}"
        expected[key] = [f"{key}-{i}" for i in range(300)]
        write(tmp_path, key, expected[key])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_compress_worker, args=(str(tmp_path),)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    logs = list_log_files(tmp_path)
    assert all(f.compressed for f in logs) and len(logs) == 20
    for f in logs:
        assert read_all(f.path) == expected[f.key]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_purge_by_retention_and_dry_run(tmp_path: Path) -> None:
    for key in ("2025-05-26", "2025-05-27", "2025-05-28", "2026-11-27"):
        write(tmp_path, key, ["x"])
    compress_ended(tmp_path, UTC, ts(2025, 6, 1), 0)
    now = ts(2026, 11, 28, 12)  # 18 months back: 2025-05-28 12:00
    dry = purge(tmp_path, 18, now=now, dry_run=True)
    assert sorted(p.name for p in dry.expired) == [
        "requests-2025-05-26.jsonl.gz",
        "requests-2025-05-27.jsonl.gz",
    ]
    assert dry.deleted == [] and len(list(tmp_path.iterdir())) == 4
    result = purge(tmp_path, 18, now=now)
    assert len(result.deleted) == 2
    assert sorted(f.key for f in list_log_files(tmp_path)) == ["2025-05-28", "2026-11-27"]
    again = purge(tmp_path, 18, now=now)  # idempotent
    assert again.deleted == [] and again.expired == []


def test_purge_respects_legal_hold_file_and_flag(tmp_path: Path, caplog) -> None:
    write(tmp_path, "2020-01-01", ["x"])
    now = ts(2026, 1, 1)
    (tmp_path / "LEGAL_HOLD").write_text("litigation 2025-17 (Oslo tingrett)\n")
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        result = purge(tmp_path, 18, now=now)
    assert result.held == "litigation 2025-17 (Oslo tingrett)" and result.deleted == []
    assert (tmp_path / "requests-2020-01-01.jsonl").exists()
    assert "deletion suspended by legal hold" in caplog.text and "litigation" in caplog.text
    (tmp_path / "LEGAL_HOLD").unlink()
    assert purge(tmp_path, 18, now=now, legal_hold="police request").held == "police request"
    assert purge(tmp_path, 18, now=now, legal_hold=True).held
    assert len(purge(tmp_path, 18, now=now).deleted) == 1


def _purge_worker(directory: str, queue) -> None:
    queue.put(len(purge(directory, 3, now=ts(2030, 1, 1)).deleted))


def test_concurrent_purges(tmp_path: Path) -> None:
    for day in range(1, 29):
        write(tmp_path, f"2026-02-{day:02d}", ["x"])
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_purge_worker, args=(str(tmp_path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(queue.get() for _ in procs) == 28  # each file deleted exactly once
    assert list(tmp_path.iterdir()) == []


def test_service_maintain_with_injected_clock(tmp_path: Path, caplog) -> None:
    now = [ts(2026, 11, 28, 1)]
    log = RequestLog(
        tmp_path, clock=lambda: now[0], compress_after=600, legal_hold="audit", columnar=False
    )
    write(tmp_path, "2020-01-01", ["old"])
    write(tmp_path, "2026-11-27", ["y"])
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        log.maintain()
        log.maintain()
    assert caplog.text.count("deletion suspended") == 1  # once, not every run
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["requests-2020-01-01.jsonl.gz", "requests-2026-11-27.jsonl.gz"]
    log.close()


@pytest.mark.parametrize("months", [2, 121, "18", 18.0, True])
def test_retention_validated_at_startup(tmp_path: Path, months: object) -> None:
    with pytest.raises(ValueError, match="retention_months"):
        RequestLog(tmp_path, retention_months=months)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        ("review: 2020-06-01", "review date 2020-06-01 has passed"),
        ("review: 2999-01-01", None),
        ("", "names no review date"),
    ],
)
def test_legal_hold_review_date_warns_and_never_releases(
    tmp_path: Path, caplog, review: str, expected: str | None
) -> None:
    write(tmp_path, "2020-01-01", ["x"])
    (tmp_path / "LEGAL_HOLD").write_text(f"Sak 12/2026 (Oslo tingrett)\n{review}\n")
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        result = purge(tmp_path, 18, now=ts(2026, 1, 1))
    assert result.held and result.deleted == []  # a passed review date releases nothing
    assert (tmp_path / "requests-2020-01-01.jsonl").exists()
    if expected is None:
        assert "review date" not in caplog.text and "no review date" not in caplog.text
    else:
        assert expected in caplog.text


_MAINTAIN_THEN_LIST_DUCKDB = """
import sys
from consentmw.requestlog.service import RequestLog

log = RequestLog(sys.argv[1], compress_after=0, columnar=True)
log.maintain()
log.close()
print(any(name.split(".")[0] == "duckdb" for name in sys.modules))
"""


def _maintain_loads_duckdb(directory: Path) -> bool:
    """One housekeeping pass in a fresh interpreter: whether it loaded DuckDB."""
    result = subprocess.run(
        [sys.executable, "-c", _MAINTAIN_THEN_LIST_DUCKDB, str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip() == "True"


def test_housekeeping_loads_duckdb_only_when_there_is_a_copy_to_make(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    write(tmp_path, today, ["open period"])
    assert not _maintain_loads_duckdb(tmp_path)  # nothing compressed: no copy to make
    write(tmp_path, "2026-01-05", ["ended"])
    assert _maintain_loads_duckdb(tmp_path)  # compressed now, and copied
    assert (tmp_path / "requests-2026-01-05.parquet").exists()
    assert not _maintain_loads_duckdb(tmp_path)  # the copy is fresh
    (tmp_path / "requests-2026-01-05.jsonl.gz").unlink()
    assert _maintain_loads_duckdb(tmp_path)  # an orphaned copy goes
    assert not (tmp_path / "requests-2026-01-05.parquet").exists()
