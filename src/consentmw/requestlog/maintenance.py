"""Compressing ended periods and purging files older than the retention.

Both are safe when several processes (workers, a cron'd ``consentmw logs purge``) run
them at once: compression writes to a private temporary name, renames it into place
atomically and only then unlinks the original, under an exclusive ``flock`` that writers
respect; purging just unlinks and treats "already gone" as done. A legal hold suspends
every deletion and says so in the log.

The compressed file is created with the mode of the file it replaces (0640 by default),
in the ``open`` call itself: a file created 0644 and narrowed afterwards would be
readable by anyone in the window between, and a crash there would leave it so. No file
is opened through a symbolic link (see :mod:`consentmw.requestlog.files`).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from consentmw.analytics.sources import COLUMNAR_RE
from consentmw.requestlog.files import (
    CREATE_NEW_FLAGS,
    READ_FLAGS,
    lock_exclusive_nb,
    open_log_file,
    unlock,
)
from consentmw.requestlog.periods import LOG_FILE_RE, period_end
from consentmw.retention import (
    LEGAL_HOLD_FILE,
    legal_hold_reason,
    legal_hold_review,
    months_before,
)

__all__ = ["LogFile", "PurgeResult", "compress_ended", "list_log_files", "purge"]

logger = logging.getLogger("consentmw.requestlog")

TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 86400


@dataclass(frozen=True)
class LogFile:
    path: Path
    key: str
    compressed: bool


@dataclass
class PurgeResult:
    deleted: list[Path] = field(default_factory=list)
    expired: list[Path] = field(default_factory=list)  # past retention (deleted unless held)
    held: str | None = None  # the legal-hold reason when deletion was suspended
    dry_run: bool = False


def list_log_files(directory: str | Path) -> list[LogFile]:
    """The request-log files in ``directory``, oldest period first; missing dir: none."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        match = LOG_FILE_RE.match(name)
        if match:
            found.append(LogFile(Path(directory) / name, match["key"], bool(match["gz"])))
    found.sort(key=lambda f: (f.key, f.compressed))
    return found


def compress_ended(
    directory: str | Path,
    tz: ZoneInfo,
    now: float,
    grace_seconds: float,
    rotation_seconds: int | None = None,
    level: int = 6,
) -> list[Path]:
    """gzip every ``.jsonl`` whose period ended more than ``grace_seconds`` ago."""
    done = []
    for log in list_log_files(directory):
        if log.compressed:
            continue
        end = period_end(log.key, tz, rotation_seconds)
        if end is None or end + grace_seconds > now:
            continue
        try:
            if _compress_one(log.path, level):
                done.append(log.path)
        except OSError as exc:
            logger.warning("request log: could not compress %s: %s", log.path, exc)
    return done


def _compress_one(path: Path, level: int) -> bool:
    try:
        fd = open_log_file(path, READ_FLAGS)
    except FileNotFoundError:
        return False  # another process compressed it first
    tmp: Path | None = None
    try:
        if not lock_exclusive_nb(fd):
            return False  # a writer is appending or another compressor is at it
        try:
            source = os.fstat(fd)
            if os.lstat(path).st_ino != source.st_ino:
                return False  # replaced since we opened it
        except FileNotFoundError:
            return False
        target = path.with_name(path.name + ".gz")
        tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}-{path.name}.gz")
        mode = stat.S_IMODE(source.st_mode)
        with os.fdopen(open_log_file(tmp, CREATE_NEW_FLAGS, mode), "wb") as out:
            # A late record may have made a new .jsonl after an earlier compression:
            # gzip members concatenate, so keep the old ones and add ours.
            try:
                with os.fdopen(open_log_file(target, READ_FLAGS), "rb") as old:
                    shutil.copyfileobj(old, out)
            except FileNotFoundError:
                pass
            with (
                os.fdopen(os.dup(fd), "rb") as src,
                gzip.GzipFile(
                    filename=path.name, mode="wb", fileobj=out, compresslevel=level
                ) as gz,
            ):
                shutil.copyfileobj(src, gz, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        tmp = None
        os.unlink(path)
        return True
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        unlock(fd)
        os.close(fd)


def purge(
    directory: str | Path,
    retention_months: int,
    now: float | None = None,
    tz: ZoneInfo | None = None,
    legal_hold: bool | str = False,
    dry_run: bool = False,
    rotation_seconds: int | None = None,
    log_hold: bool = True,
) -> PurgeResult:
    """Delete files whose period ended before ``now`` minus ``retention_months``.

    Under a legal hold (flag or ``LEGAL_HOLD`` file) nothing is deleted and a warning
    names the reason and how many files are kept past their retention.
    """
    tz = tz or ZoneInfo("UTC")
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz)
    cutoff = months_before(moment, retention_months).timestamp()
    result = PurgeResult(dry_run=dry_run)
    for log in list_log_files(directory):
        end = period_end(log.key, tz, rotation_seconds)
        if end is not None and end <= cutoff:
            result.expired.append(log.path)
    for path, key in _columnar_copies(directory):  # analytics' copies share the retention
        end = period_end(key, tz, rotation_seconds)
        if end is not None and end <= cutoff:
            result.expired.append(path)
    _clean_stale_tmp(directory, moment.timestamp(), dry_run)
    if not result.expired:
        return result
    result.held = legal_hold_reason(directory, legal_hold)
    if result.held is not None:
        if log_hold:
            log_legal_hold(result, directory, retention_months)
        return result
    if dry_run:
        return result
    for path in result.expired:
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another process purged it first
        except OSError as exc:
            logger.warning("request log: could not delete %s: %s", path, exc)
            continue
        result.deleted.append(path)
    if result.deleted:
        logger.info(
            "request log: deleted %d file(s) older than %d months from %s",
            len(result.deleted),
            retention_months,
            directory,
        )
    return result


def _columnar_copies(directory: str | Path) -> list[tuple[Path, str]]:
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        (Path(directory) / name, m["key"]) for name in names if (m := COLUMNAR_RE.match(name))
    ]


def log_legal_hold(result: PurgeResult, directory: str | Path, retention_months: int) -> None:
    logger.warning(
        "request log: deletion suspended by legal hold (%s); %d file(s) in %s are past "
        "the %d-month retention and are kept",
        result.held,
        len(result.expired),
        directory,
        retention_months,
    )
    review = legal_hold_review(directory)
    if review is None:
        logger.warning(
            "request log: the legal hold names no review date; put it in a %s file in %s "
            "with the reason and a line 'review: YYYY-MM-DD'",
            LEGAL_HOLD_FILE,
            directory,
        )
    elif review < date.today():
        logger.warning(
            "request log: the legal hold's review date %s has passed; the hold stays until "
            "%s is removed from %s",
            review.isoformat(),
            LEGAL_HOLD_FILE,
            directory,
        )


def _clean_stale_tmp(directory: str | Path, now: float, dry_run: bool) -> None:
    """Temporary files of a compressor that crashed (older than a day) are removed."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX) or dry_run:
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < now - STALE_TMP_SECONDS:
                os.unlink(entry.path)
        except OSError:
            pass
