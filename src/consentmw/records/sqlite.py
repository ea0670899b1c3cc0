"""SQLite receipt store: the default, needs no server, one file next to the app.

Design, and why:

* One writer thread owns the only writing connection (sqlite3 connections belong to a
  thread). ``add`` queues the receipt and awaits a future, so the event loop never waits
  on disk. The thread commits whatever is queued in one transaction (group commit), which
  is what makes ``synchronous=FULL`` affordable under load.
* ``synchronous=FULL`` in WAL mode: receipts are legal proof, so a completed ``add`` must
  survive a power cut, not just a process crash (NORMAL may lose the last commits).
* Reads open a short-lived connection each (WAL readers never block the writer), in
  ``mode=rw`` so reading a path that holds no database never creates one.
* Append-only is enforced by the schema itself: a trigger aborts any UPDATE (receipts
  and shown texts alike).
* The file is created 0600 before SQLite opens it: receipts are personal data, and SQLite
  gives its -wal and -shm files the database file's permissions.
* Legal holds are a table beside the receipts, and the purge and erasure statements
  exclude held receipts in SQL, so a hold added meanwhile cannot be raced past.
* Daily counts (``counters``) take the receipts' path: queued, merged by key in the writer
  thread, upserted (``count = count + excluded.count``) in the receipts' transaction, so
  several processes on one file add up instead of overwriting each other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from consentmw.records.base import (
    Receipt,
    ReceiptStore,
    RecordsUnavailable,
    split_waiting,
    with_pending,
)
from consentmw.records.counts import CountKey, CountRow, checked_rows, merge_counts
from consentmw.records.holds import ForgetResult, HeldBy, Hold
from consentmw.records.texts import StoredTexts

logger = logging.getLogger("consentmw.records")

SCHEMA_VERSION = 3
_SCHEMA_V1 = (
    """CREATE TABLE receipts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        consent_id TEXT NOT NULL,
        recorded_at TEXT NOT NULL,   -- UTC, 'YYYY-MM-DDTHH:MM:SS.ffffffZ': sorts as text
        policy_version TEXT NOT NULL,
        banner_hash TEXT NOT NULL,
        granted TEXT NOT NULL,       -- JSON array of category names
        denied TEXT NOT NULL,
        action TEXT NOT NULL,
        source TEXT NOT NULL,
        language TEXT NOT NULL,
        masked_ip TEXT NOT NULL,
        browser TEXT NOT NULL
    )""",
    "CREATE INDEX receipts_consent_id ON receipts (consent_id)",
    "CREATE INDEX receipts_recorded_at ON receipts (recorded_at)",
    """CREATE TRIGGER receipts_append_only BEFORE UPDATE ON receipts
       BEGIN SELECT RAISE(ABORT, 'consent receipts are append-only'); END""",
)
_SCHEMA_V2 = (
    """CREATE TABLE texts (
        hash TEXT PRIMARY KEY,
        language TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        material TEXT NOT NULL,      -- canonical JSON of everything the visitor read
        first_seen TEXT NOT NULL
    )""",
    "CREATE INDEX texts_version ON texts (policy_version, language)",
    """CREATE TRIGGER texts_append_only BEFORE UPDATE ON texts
       BEGIN SELECT RAISE(ABORT, 'shown texts are append-only'); END""",
    """CREATE TABLE holds (
        case_name TEXT PRIMARY KEY,
        consent_ids TEXT NOT NULL,   -- JSON array; empty: every consent id
        held_from TEXT,              -- inclusive, same format as recorded_at; NULL: open
        held_until TEXT,             -- exclusive
        review TEXT NOT NULL,        -- YYYY-MM-DD
        created_at TEXT NOT NULL
    )""",
)
_SCHEMA_V3 = (
    """CREATE TABLE counters (
        day TEXT NOT NULL,           -- UTC day, YYYY-MM-DD
        kind TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        language TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (day, kind, policy_version, language)
    ) WITHOUT ROWID""",
)
_STEPS = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}
# Whether hold h covers receipt r (both aliases must be in scope).
_COVERS = (
    "(h.consent_ids = '[]' OR r.consent_id IN (SELECT value FROM json_each(h.consent_ids))) "
    "AND (h.held_from IS NULL OR r.recorded_at >= h.held_from) "
    "AND (h.held_until IS NULL OR r.recorded_at < h.held_until)"
)
_HELD = f"EXISTS (SELECT 1 FROM holds AS h WHERE {_COVERS})"
_HOLD_COLUMNS = "case_name, consent_ids, held_from, held_until, review, created_at"
_TEXT_COLUMNS = "hash, language, policy_version, material, first_seen"
_COLUMNS = (
    "consent_id, recorded_at, policy_version, banner_hash, granted, denied, "
    "action, source, language, masked_ip, browser"
)
_INSERT = f"INSERT INTO receipts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_TEXTS = f"INSERT OR IGNORE INTO texts ({_TEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
_COUNT_COLUMNS = "day, kind, policy_version, language, count"
_UPSERT_COUNTS = (
    f"INSERT INTO counters ({_COUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (day, kind, policy_version, language) DO UPDATE SET count = count + excluded.count"
)
_QUEUED = ("add", "texts", "counts")  # jobs that never raise: logged, counted and retried
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_BATCH = 1000


def _time_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def _to_row(r: Receipt) -> tuple[str, ...]:
    return (
        r.consent_id,
        _time_text(r.recorded_at),
        r.policy_version,
        r.banner_hash,
        json.dumps(list(r.granted)),
        json.dumps(list(r.denied)),
        r.action,
        r.source,
        r.language,
        r.masked_ip,
        r.browser,
    )


def _hold_row(h: Hold) -> tuple[str | None, ...]:
    return (
        h.case,
        json.dumps(list(h.consent_ids)),
        _time_text(h.start) if h.start else None,
        _time_text(h.end) if h.end else None,
        h.review.isoformat(),
        _time_text(h.created_at),
    )


def _hold_from_row(row: tuple[Any, ...]) -> Hold:
    return Hold(
        case=row[0],
        consent_ids=tuple(json.loads(row[1])),
        start=_parse_time(row[2]) if row[2] else None,
        end=_parse_time(row[3]) if row[3] else None,
        review=date.fromisoformat(row[4]),
        created_at=_parse_time(row[5]),
    )


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=timezone.utc)


def _count_from_row(row: tuple[Any, ...]) -> CountRow:
    return CountRow(date.fromisoformat(row[0]), *row[1:4], count=row[4])


def _texts_from_row(row: tuple[Any, ...]) -> StoredTexts:
    return StoredTexts(*row[:4], first_seen=_parse_time(row[4]))


def _from_row(row: tuple[Any, ...]) -> Receipt:
    return Receipt(
        id=row[0],
        consent_id=row[1],
        recorded_at=_parse_time(row[2]),
        policy_version=row[3],
        banner_hash=row[4],
        granted=tuple(json.loads(row[5])),
        denied=tuple(json.loads(row[6])),
        action=row[7],
        source=row[8],
        language=row[9],
        masked_ip=row[10],
        browser=row[11],
    )


def failure_kind(exc: BaseException) -> str:
    """A short name for what went wrong, so each kind is logged once, not per request."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc).lower()
        for prefix, kind in (
            ("SQLITE_BUSY", "locked"),
            ("SQLITE_LOCKED", "locked"),
            ("SQLITE_FULL", "disk full"),
            ("SQLITE_READONLY", "read-only"),
            ("SQLITE_CANTOPEN", "cannot open"),
            ("SQLITE_IOERR", "I/O error"),
            ("SQLITE_CORRUPT", "corrupt"),
            ("SQLITE_NOTADB", "corrupt"),
        ):
            if name.startswith(prefix):
                return kind
        if "locked" in text:
            return "locked"
        if "readonly" in text:
            return "read-only"
    if isinstance(exc, OSError):
        return "cannot create"
    if isinstance(exc, RecordsUnavailable):
        return "unavailable"
    return type(exc).__name__


def _resolve(fut: concurrent.futures.Future[Any], result: Any = None) -> None:
    if not fut.done():
        fut.set_result(result)


def _fail(fut: concurrent.futures.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class SQLiteReceiptStore(ReceiptStore):
    """Receipts in one SQLite file; safe for several worker processes on one machine."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_months: int = 18,
        legal_hold_dir: str | os.PathLike[str] | None = None,
        busy_timeout: float = 5.0,
        retry_interval: float = 1.0,
    ) -> None:
        self.path = Path(path).absolute()
        dirs = (Path(legal_hold_dir),) if legal_hold_dir is not None else ()
        super().__init__(
            retention_months=retention_months,
            legal_hold_dirs=(*dirs, self.path.parent),
            description=f"sqlite:///{self.path}",
        )
        self.busy_timeout = busy_timeout
        self.retry_interval = retry_interval
        self._jobs: queue.SimpleQueue[tuple[str, Any, concurrent.futures.Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Owned by the writer thread only:
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        self._pending: list[Receipt] = []
        self._texts_pending: dict[str, tuple[str, str, str, str, str]] = {}
        self._counts_pending: dict[CountKey, int] = {}

    # -- public API -----------------------------------------------------------------

    async def add(self, receipt: Receipt) -> None:
        fut = self._submit("add", receipt)
        if fut is not None:
            # shield: a cancelled request must not cancel a write that may be under way.
            await asyncio.shield(asyncio.wrap_future(fut))

    def add_sync(self, receipt: Receipt) -> None:
        fut = self._submit("add", receipt)
        if fut is not None:
            fut.result()

    async def add_texts(
        self, text_hash: str, language: str, policy_version: str, material: str
    ) -> None:
        fut = self._submit("texts", (text_hash, language, policy_version, material))
        if fut is not None:
            await asyncio.shield(asyncio.wrap_future(fut))

    def add_texts_sync(
        self, text_hash: str, language: str, policy_version: str, material: str
    ) -> None:
        fut = self._submit("texts", (text_hash, language, policy_version, material))
        if fut is not None:
            fut.result()

    async def add_counts(self, rows: Iterable[CountRow]) -> None:
        fut = self._submit("counts", checked_rows(rows))
        if fut is not None:
            await asyncio.shield(asyncio.wrap_future(fut))

    def add_counts_sync(self, rows: Iterable[CountRow]) -> None:
        fut = self._submit("counts", checked_rows(rows))
        if fut is not None:
            fut.result()

    async def counts(self, first_day: date, last_day: date) -> list[CountRow]:
        return await asyncio.to_thread(self.counts_sync, first_day, last_day)

    def counts_sync(self, first_day: date, last_day: date) -> list[CountRow]:
        sql = (
            f"SELECT {_COUNT_COLUMNS} FROM counters WHERE day >= ? AND day <= ? "
            "ORDER BY day, kind, policy_version, language"
        )
        params = (first_day.isoformat(), last_day.isoformat())
        return [_count_from_row(row) for row in self._read(sql, params, 3)]

    async def texts_for_version(self, policy_version: str, language: str) -> list[StoredTexts]:
        sql = f"SELECT {_TEXT_COLUMNS} FROM texts WHERE policy_version = ? AND language = ?"
        rows = await asyncio.to_thread(
            lambda: list(self._read(f"{sql} ORDER BY first_seen", (policy_version, language), 2))
        )
        return [_texts_from_row(row) for row in rows]

    def texts_sync(self, text_hash: str) -> StoredTexts | None:
        sql = f"SELECT {_TEXT_COLUMNS} FROM texts WHERE hash = ?"
        row = next(iter(self._read(sql, (text_hash,), 2)), None)
        return _texts_from_row(row) if row else None

    async def for_consent_id(self, consent_id: str) -> list[Receipt]:
        return await asyncio.to_thread(self.for_consent_id_sync, consent_id)

    def for_consent_id_sync(self, consent_id: str) -> list[Receipt]:
        waiting = [r for r in self._pending if r.consent_id == consent_id]  # read first
        stored = list(self._select("WHERE consent_id = ?", (consent_id,)))
        return with_pending(stored, waiting)

    def export_sync(self, consent_id: str | None = None) -> Iterator[Receipt]:
        if consent_id is None:
            return self._select("", ())
        return self._select("WHERE consent_id = ?", (consent_id,))

    async def forget(self, consent_id: str) -> ForgetResult:
        return await asyncio.wrap_future(self._submit_or_raise("forget", consent_id))

    def forget_sync(self, consent_id: str) -> ForgetResult:
        return self._submit_or_raise("forget", consent_id).result()

    async def purge(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        return await asyncio.to_thread(self.purge_sync, now=now, dry_run=dry_run)

    def purge_sync(self, *, now: datetime | None = None, dry_run: bool = False) -> int:
        cutoff = _time_text(self.purge_cutoff(now))
        if self._purge_blocked():
            return 0
        self._warn_review(self.holds_sync(), now)
        if dry_run:
            return self._count_before(cutoff)
        deleted, held, days = self._submit_or_raise("purge", cutoff).result()
        logger.info(
            "purged %d receipts recorded before %s from %s (%d kept under legal holds) "
            "and %d daily count rows",
            deleted,
            cutoff,
            self,
            held,
            days,
        )
        return deleted

    def add_hold_sync(self, hold: Hold) -> None:
        self._submit_or_raise("hold", hold).result()

    def holds_sync(self) -> list[Hold]:
        sql = f"SELECT {_HOLD_COLUMNS} FROM holds ORDER BY created_at, case_name"
        return [_hold_from_row(row) for row in self._read(sql, (), 2)]

    def release_hold_sync(self, case: str) -> bool:
        return self._submit_or_raise("release", case).result()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join()

    # -- job queue --------------------------------------------------------------------

    def _submit(self, kind: str, arg: Any) -> concurrent.futures.Future[Any] | None:
        if kind == "add" and not isinstance(arg, Receipt):
            raise TypeError(f"add() takes a Receipt, not {type(arg).__name__}")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if not self._closed:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="consentmw-receipts", daemon=True
                    )
                    self._thread.start()
                self._jobs.put((kind, arg, fut))
                return fut
        closed = RecordsUnavailable(f"receipt store {self.description} is closed")
        if kind in _QUEUED:
            self._note_failure("closed", closed)
            return None
        fut.set_exception(closed)
        return fut

    def _submit_or_raise(self, kind: str, arg: Any) -> concurrent.futures.Future[Any]:
        fut = self._submit(kind, arg)
        assert fut is not None
        return fut

    def _run(self) -> None:
        """Writer thread: batch consecutive adds into one transaction, run other jobs in order."""
        stop = False
        while not stop:
            waiting = self._pending or self._texts_pending or self._counts_pending
            try:
                first = self._jobs.get(timeout=self.retry_interval if waiting else None)
            except queue.Empty:
                self._write([])  # retry what a failing database refused earlier
                continue
            jobs = [first]
            while len(jobs) < _BATCH:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            batch: list[tuple[Receipt | None, concurrent.futures.Future[Any]]] = []
            for job in jobs:
                if job is None:
                    stop = True
                    continue
                kind, arg, fut = job
                if kind == "add":
                    batch.append((arg, fut))
                    continue
                if kind == "texts":
                    first_seen = _time_text(datetime.now(timezone.utc))
                    self._texts_pending.setdefault(arg[0], (*arg, first_seen))
                    batch.append((None, fut))
                    continue
                if kind == "counts":
                    merge_counts(self._counts_pending, arg)
                    batch.append((None, fut))
                    continue
                self._write(batch)
                batch = []
                try:
                    _resolve(fut, self._job(kind, arg))
                except Exception as exc:
                    _fail(fut, exc if isinstance(exc, ValueError) else self._unavailable(exc))
            self._write(batch)
        if self._pending or self._counts_pending:
            logger.error(
                "receipt store %s closed with %d receipts and %d counted events that could "
                "not be written",
                self.description,
                len(self._pending),
                sum(self._counts_pending.values()),
            )
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _job(self, kind: str, arg: Any) -> Any:
        if kind == "forget":
            return self._forget(arg)
        if kind == "purge":
            return self._purge(arg)
        conn = self._connection()
        if kind == "hold":
            try:
                with _transaction(conn):
                    conn.execute(f"INSERT INTO holds ({_HOLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                 _hold_row(arg))  # fmt: skip
            except sqlite3.IntegrityError:
                raise ValueError(f"a hold for case {arg.case!r} exists already") from None
            return None
        with _transaction(conn):
            return conn.execute("DELETE FROM holds WHERE case_name = ?", (arg,)).rowcount > 0

    def _write(self, batch: list[tuple[Receipt | None, concurrent.futures.Future[Any]]]) -> None:
        fresh = [r for r, _ in batch if r is not None]
        receipts = self._pending + fresh
        texts = list(self._texts_pending.values())
        counts = [(day.isoformat(), *rest, n) for (day, *rest), n in self._counts_pending.items()]
        if receipts or texts or counts:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT_TEXTS, texts)
                    conn.executemany(_INSERT, [_to_row(r) for r in receipts])
                    conn.executemany(_UPSERT_COUNTS, counts)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                        conn.execute("ROLLBACK")
                    raise
            except Exception as exc:
                self._note_failure(failure_kind(exc), exc, count=len(fresh))
                if self._conn is not None and failure_kind(exc) not in ("locked", "disk full"):
                    self._drop_connection()  # reopen next time: the file may be back
                overflow = len(receipts) - self.max_pending
                if overflow > 0:
                    dropped = RecordsUnavailable(
                        f"{overflow} receipts dropped from the retry buffer"
                    )
                    self._note_failure("retry buffer full", dropped, count=0)
                    receipts = receipts[overflow:]
                self._pending = receipts
                self._bound_counts(self._counts_pending)
            else:
                self._pending = []
                self._texts_pending = {}
                self._counts_pending = {}
                self._note_success()
        for _, fut in batch:
            _resolve(fut)  # add() never raises: failures are logged, counted and retried

    def _forget(self, consent_id: str) -> ForgetResult:
        exists = self._conn is not None or self.path.exists()
        conn = self._connection() if exists else None
        holds = self._holds(conn) if conn is not None else []
        counts: dict[str, int] = {}
        self._pending, deleted, kept = split_waiting(self._pending, consent_id, holds, counts)
        if conn is not None:
            with _transaction(conn):
                for case, count in conn.execute(
                    f"SELECT h.case_name, count(*) FROM receipts AS r JOIN holds AS h "
                    f"ON {_COVERS} WHERE r.consent_id = ? GROUP BY h.case_name",
                    (consent_id,),
                ):
                    counts[case] = counts.get(case, 0) + count
                deleted += conn.execute(
                    f"DELETE FROM receipts AS r WHERE r.consent_id = ? AND NOT {_HELD}",
                    (consent_id,),
                ).rowcount
                sql = "SELECT count(*) FROM receipts WHERE consent_id = ?"
                kept += conn.execute(sql, (consent_id,)).fetchone()[0]
        reviews = {h.case: h.review for h in holds}
        held_by = tuple(HeldBy(case, reviews[case], n) for case, n in sorted(counts.items()))
        return ForgetResult(deleted=deleted, kept=kept, holds=held_by)

    def _purge(self, cutoff: str) -> tuple[int, int, int]:
        if self._conn is None and not self.path.exists():
            return 0, 0, 0
        conn = self._connection()
        with _transaction(conn):
            cur = conn.execute(
                f"DELETE FROM receipts AS r WHERE r.recorded_at < ? AND NOT {_HELD}", (cutoff,)
            )
            sql = "SELECT count(*) FROM receipts WHERE recorded_at < ?"
            held = conn.execute(sql, (cutoff,)).fetchone()[0]
            # Whole days before the cutoff's day: counts hold no personal data, so no hold
            # keeps them.
            days = conn.execute("DELETE FROM counters WHERE day < ?", (cutoff[:10],)).rowcount
        return cur.rowcount, held, days

    def _holds(self, conn: sqlite3.Connection) -> list[Hold]:
        sql = f"SELECT {_HOLD_COLUMNS} FROM holds"
        return [_hold_from_row(row) for row in conn.execute(sql)]

    # -- connections ------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The writer's connection; reopened if the file was deleted or replaced meanwhile."""
        if self._conn is not None and self._current_file_id() != self._file_id:
            logger.warning(
                "receipt database %s was removed or replaced; opening it again", self.path
            )
            self._drop_connection()
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    logger.warning(
                        "receipt database %s: WAL mode unavailable (%s)", self.path, mode
                    )
                conn.execute("PRAGMA synchronous = FULL")
                self._migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._conn, self._file_id = conn, self._current_file_id()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = self._file_id = None

    def _current_file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with _transaction(conn):  # BEGIN IMMEDIATE: two processes never both migrate
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _STEPS[step]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise RecordsUnavailable(
                f"{self.path} holds receipts in schema version {version}, newer than this "
                f"consentmw understands ({SCHEMA_VERSION}): upgrade consentmw"
            )

    def _select(self, where: str, params: tuple[Any, ...]) -> Iterator[Receipt]:
        """Yield receipts from a fresh read connection; nothing if no database exists yet."""
        sql = f"SELECT id, {_COLUMNS} FROM receipts {where} ORDER BY id"
        for row in self._read(sql, params):
            yield _from_row(row)

    def _count_before(self, cutoff: str) -> int:
        """What a purge would delete now (held receipts excluded)."""
        sql = f"SELECT count(*) FROM receipts AS r WHERE r.recorded_at < ? AND NOT {_HELD}"
        row = next(iter(self._read(sql, (cutoff,), 2)), None)
        if row is None:  # no database, or one from before holds (nothing held)
            sql = "SELECT count(*) FROM receipts WHERE recorded_at < ?"
            row = next(iter(self._read(sql, (cutoff,))), (0,))
        return int(row[0])

    def _read(
        self, sql: str, params: tuple[Any, ...], min_version: int = 1
    ) -> Iterator[tuple[Any, ...]]:
        # mode=rw: reading a path that holds no database must not create one.
        if not self.path.exists():
            return
        try:
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=rw", uri=True, timeout=self.busy_timeout
            )
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version >= min_version:  # an older schema has no such table yet: nothing
                yield from conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        finally:
            conn.close()

    def _unavailable(self, exc: BaseException) -> RecordsUnavailable:
        if isinstance(exc, RecordsUnavailable):
            return exc
        return RecordsUnavailable(f"receipt store {self.description}: {failure_kind(exc)}: {exc}")


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, in one step (no 0644 window)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on error (autocommit connection)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not exc_type:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
