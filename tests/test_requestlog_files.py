"""Log files on disk: the mode of compressed files, and symbolic links planted in the
log directory (never written or read through, reported, never crashing the app)."""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from consentmw.requestlog import RequestLogMiddleware
from consentmw.requestlog.files import PeriodFiles
from consentmw.requestlog.maintenance import compress_ended
from consentmw.requestlog.stats import collect_stats
from tests.requestlog_helpers import run, text_app

UTC = ZoneInfo("UTC")
LINE = b'{"time":"2026-11-26T10:00:00Z","path":"/"}\n'
VICTIM_TEXT = '{"time":"2026-11-26T10:00:00Z","path":"/secret"}\n'


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the log directory that a planted link points at."""
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


# -- modes -------------------------------------------------------------------------------


def test_compressed_file_keeps_0640_under_the_usual_umask(logs: Path) -> None:
    with umask(0o022):
        PeriodFiles(logs).append("2026-11-26", LINE)
        assert mode_of(logs / "requests-2026-11-26.jsonl") == 0o640
        compress_ended(logs, UTC, ts(2026, 11, 28), 0)
    assert mode_of(logs / "requests-2026-11-26.jsonl.gz") == 0o640


def test_compressed_file_keeps_0640_when_appending_to_an_earlier_gz(logs: Path) -> None:
    with umask(0o022):
        PeriodFiles(logs).append("2026-11-26", LINE)
        compress_ended(logs, UTC, ts(2026, 11, 28), 0)
        PeriodFiles(logs).append("2026-11-26", LINE)  # a late record, compressed again
        compress_ended(logs, UTC, ts(2026, 11, 28), 0)
    assert mode_of(logs / "requests-2026-11-26.jsonl.gz") == 0o640
    with gzip.open(logs / "requests-2026-11-26.jsonl.gz") as fh:
        assert fh.read() == LINE * 2


def test_compressed_file_is_created_with_its_mode_not_chmodded(logs: Path) -> None:
    """With umask 0 only the mode given to open() counts, and no chmod may narrow it later
    (between a wide create and a chmod, anyone could open the file and keep reading)."""
    chmods: list[Any] = []
    watching = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if watching[0] and event == "os.chmod":
            chmods.append(args)

    sys.addaudithook(hook)  # audit hooks cannot be removed: the flag turns it off
    try:
        with umask(0):
            PeriodFiles(logs, file_mode=0o600).append("2026-11-26", LINE)
            compress_ended(logs, UTC, ts(2026, 11, 28), 0)
    finally:
        watching[0] = False
    assert mode_of(logs / "requests-2026-11-26.jsonl.gz") == 0o600
    assert chmods == []


# -- symbolic links ----------------------------------------------------------------------


def test_append_refuses_a_planted_link(logs: Path, victim: Path) -> None:
    (logs / "requests-2026-11-27.jsonl").symlink_to(victim)
    files = PeriodFiles(logs)
    with pytest.raises(OSError, match="symbolic link"):
        files.append("2026-11-27", LINE)
    files.close()
    assert victim.read_text() == VICTIM_TEXT


def test_append_refuses_a_link_swapped_in_under_an_open_descriptor(
    logs: Path, victim: Path
) -> None:
    files = PeriodFiles(logs)
    files.append("2026-11-27", LINE)  # keeps its descriptor open
    path = logs / "requests-2026-11-27.jsonl"
    path.unlink()
    path.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        files.append("2026-11-27", LINE)
    files.close()
    assert victim.read_text() == VICTIM_TEXT


def test_middleware_reports_a_planted_link_once_and_keeps_serving(
    logs: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (logs / "requests-2026-11-27.jsonl").symlink_to(victim)
    mw = RequestLogMiddleware(
        text_app,
        directory=str(logs),
        timezone="UTC",
        clock=lambda: ts(2026, 11, 27, 12),
        flush_interval=60,
    )
    with caplog.at_level(logging.ERROR, logger="consentmw.requestlog"):
        for _ in range(3):
            assert run(mw)["sent"][0]["status"] == 200
            mw.log.writer.flush()
        mw.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "symbolic link" in errors[0] and "requests-2026-11-27.jsonl" in errors[0]
    assert mw.stats()["lost"] == 3
    assert victim.read_text() == VICTIM_TEXT
    assert (logs / "requests-2026-11-27.jsonl").is_symlink()


def test_compressor_does_not_read_through_a_planted_jsonl_link(
    logs: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (logs / "requests-2026-11-26.jsonl").symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        assert compress_ended(logs, UTC, ts(2026, 11, 28), 0) == []
    assert "symbolic link" in caplog.text
    assert sorted(p.name for p in logs.iterdir()) == ["requests-2026-11-26.jsonl"]
    assert victim.read_text() == VICTIM_TEXT


def test_compressor_does_not_copy_a_planted_gz_link(
    logs: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    PeriodFiles(logs).append("2026-11-26", LINE)
    (logs / "requests-2026-11-26.jsonl.gz").symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        assert compress_ended(logs, UTC, ts(2026, 11, 28), 0) == []
    assert "symbolic link" in caplog.text
    assert (logs / "requests-2026-11-26.jsonl").read_bytes() == LINE  # kept for next time
    assert not [p for p in logs.iterdir() if p.name.startswith(".tmp-")]
    assert victim.read_text() == VICTIM_TEXT


def test_stats_do_not_read_through_a_planted_link(logs: Path, victim: Path) -> None:
    PeriodFiles(logs).append("2026-11-26", LINE)
    (logs / "requests-2026-11-27.jsonl").symlink_to(victim)
    stats = collect_stats(logs)
    assert stats.records == 1 and stats.bad_lines == 1
    assert "/secret" not in stats.pages


# -- other things planted where a log file should be -------------------------------------


def _returns_promptly(fifo: Path, work: Any) -> tuple[bool, list[BaseException]]:
    """Runs ``work`` in a thread; a hang in open() on the FIFO is released and reported."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # blocked opening the FIFO: open its other end to free it
        for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
            with contextlib.suppress(OSError):
                fd = os.open(fifo, flags)
                thread.join(5)
                os.close(fd)
        return False, errors
    return True, errors


def test_append_refuses_a_planted_fifo_without_blocking(logs: Path) -> None:
    fifo = logs / "requests-2026-11-27.jsonl"
    os.mkfifo(fifo)
    files = PeriodFiles(logs)
    prompt, errors = _returns_promptly(fifo, lambda: files.append("2026-11-27", LINE))
    files.close()
    assert prompt, "the writer blocked on a FIFO planted as a log file"
    assert len(errors) == 1 and "not a regular file" in str(errors[0])


def test_compressor_skips_a_planted_fifo_without_blocking(
    logs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = logs / "requests-2026-11-26.jsonl"
    os.mkfifo(fifo)
    with caplog.at_level(logging.WARNING, logger="consentmw.requestlog"):
        prompt, _ = _returns_promptly(
            fifo, lambda: compress_ended(logs, UTC, ts(2026, 11, 28), 0)
        )
    assert prompt, "the compressor blocked on a FIFO planted as a log file"
    assert "not a regular file" in caplog.text
    assert sorted(p.name for p in logs.iterdir()) == ["requests-2026-11-26.jsonl"]
