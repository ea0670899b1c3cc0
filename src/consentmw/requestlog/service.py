"""The request log of one process: validated options, the writer, and housekeeping.

:class:`RequestLogMiddleware` is the ASGI glue around this; keeping the state here lets
tests, the benchmark and other servers drive the same code without an ASGI app.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from consentmw.analytics.sources import COLUMNAR_RE, find_periods
from consentmw.privacy.ip import TrustedProxies, mask_ip, parse_trusted_proxies
from consentmw.requestlog.asn import (
    AsnLookup,
    CountryLookup,
    open_asn_database,
    open_country_database,
)
from consentmw.requestlog.encoder import make_encoder
from consentmw.requestlog.files import PeriodFiles
from consentmw.requestlog.maintenance import compress_ended, log_legal_hold, purge
from consentmw.requestlog.periods import ROTATIONS, Schedule, load_timezone
from consentmw.requestlog.useragent import UAParser
from consentmw.requestlog.visitors import VisitorKeys, make_visitor_keys
from consentmw.requestlog.writer import LogWriter
from consentmw.retention import DEFAULT_RETENTION_MONTHS, validate_retention_months

__all__ = ["RequestLog"]

logger = logging.getLogger("consentmw.requestlog")


def _positive(value: object, option: str, kind: type = float, allow_zero: bool = False) -> Any:
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise ValueError(f"{option} must be a {kind.__name__}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{option} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def _prefix(value: object, option: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{option} must be a whole number from 0 to {maximum}, got {value!r}")
    return value


class RequestLog:
    """Everything but the ASGI protocol. All options are validated here, at start-up."""

    def __init__(
        self,
        directory: str | os.PathLike[str] = "logs",
        *,
        rotation: str = "daily",
        timezone: str = "UTC",
        retention_months: int = DEFAULT_RETENTION_MONTHS,
        trusted_proxies: Iterable[str] | str | TrustedProxies | None = (),
        forwarded_header: str | None = None,
        ipv4_prefix: int = 16,
        ipv6_prefix: int = 48,
        legal_hold: bool | str = False,
        queue_size: int = 10_000,
        asn_database: str | os.PathLike[str] | None = None,
        country_database: str | os.PathLike[str] | None = None,
        ua_backend: str = "user-agents",
        ua_cache_size: int = 4096,
        compress: bool = True,
        compress_after: float = 600.0,
        maintenance_interval: float = 300.0,
        flush_interval: float = 0.2,
        redact_path: Callable[[str], str] | None = None,
        consent_prefix: str = "/_consent",
        columnar: bool | None = None,
        clock: Callable[[], float] = time.time,
        rotation_seconds: int | None = None,
        file_mode: int = 0o640,
        count_visitors: bool | str = False,
        salt_dir: str | os.PathLike[str] | None = None,
        salt_url: str | None = None,
        salt_grace: float = 3600.0,
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ValueError(f"directory must be a path, got {directory!r}")
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if rotation_seconds is not None:
            _positive(rotation_seconds, "rotation_seconds", int)
        if not isinstance(legal_hold, (bool, str)):
            raise ValueError(f"legal_hold must be True/False or a reason, got {legal_hold!r}")
        if redact_path is not None and not callable(redact_path):
            raise ValueError("redact_path must be a callable taking and returning a path")
        if not isinstance(consent_prefix, str) or not consent_prefix.startswith("/"):
            raise ValueError(f"consent_prefix must be a path (/_consent), got {consent_prefix!r}")
        if not callable(clock):
            raise ValueError("clock must be a callable returning POSIX seconds")
        self.directory = Path(directory)
        self.tz = load_timezone(timezone)
        self.retention_months = validate_retention_months(retention_months)
        self.trusted = parse_trusted_proxies(trusted_proxies, header=forwarded_header)
        self.ipv4_prefix = _prefix(ipv4_prefix, "ipv4_prefix", 32)
        self.ipv6_prefix = _prefix(ipv6_prefix, "ipv6_prefix", 128)
        self.legal_hold = legal_hold
        self.compress = bool(compress)
        # Parquet copies of compressed periods for analytics; None: if its extra is there.
        self.columnar = _columnar_available() if columnar is None else bool(columnar)
        self.consent_prefix = consent_prefix
        self.compress_after = _positive(compress_after, "compress_after", allow_zero=True)
        self.maintenance_interval = _positive(maintenance_interval, "maintenance_interval")
        self.rotation_seconds = rotation_seconds
        self.clock = clock
        self.asn: AsnLookup | None = (
            None if asn_database is None else open_asn_database(asn_database)
        )
        # The visitor's country (ISO code) from the full address, before it is masked.
        self.country: CountryLookup | None = (
            None if country_database is None else open_country_database(country_database)
        )
        # Off by default: a key derived from IP and User-Agent may need consent (README).
        self.visitors: VisitorKeys | None = make_visitor_keys(
            count_visitors, self.tz, directory, salt_dir, salt_url, salt_grace
        )
        ua_cache_size = _positive(ua_cache_size, "ua_cache_size", int)
        parse_ua = UAParser(ua_backend, ua_cache_size)
        self.writer = LogWriter(
            PeriodFiles(self.directory, file_mode),
            Schedule(rotation, self.tz, rotation_seconds),
            queue_size=_positive(queue_size, "queue_size", int),
            flush_interval=_positive(flush_interval, "flush_interval"),
            encode=make_encoder(
                parse_ua,
                redact_path,
                ua_cache_size,
                consent_prefix.rstrip("/") or "/",
                visitors=self.visitors is not None,
                countries=self.country is not None,
            ),
        )
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._last_hold: str | None = None
        self._closed = False
        _register_process_hooks(self)

    def mask(self, ip: str | None) -> str:
        return mask_ip(ip, self.ipv4_prefix, self.ipv6_prefix)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and the housekeeping thread (idempotent)."""
        self._closed = False
        self.writer.start()
        if self._housekeeper is None:
            self._stop.clear()
            self._housekeeper = threading.Thread(
                target=self._housekeeping, name="consentmw-requestlog-maintenance", daemon=True
            )
            self._housekeeper.start()
        # Both threads run: requests may go straight to the writer's queue (the instance
        # attribute hides the method below until close or fork removes it).
        self.put = self.writer.put  # type: ignore[method-assign]

    def put(self, record: Sequence[Any]) -> bool:
        """Enqueue a record (:mod:`~consentmw.requestlog.record`), never blocking.

        Without a lifespan (or for a request after close) this starts the threads.
        """
        self.start()
        return self.writer.put(record)

    def close(self) -> None:
        """Flush everything, stop the threads and report drops. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.__dict__.pop("put", None)
        self._stop.set()
        housekeeper, self._housekeeper = self._housekeeper, None
        if housekeeper is not None and housekeeper is not threading.current_thread():
            housekeeper.join(30)
        self.writer.close()
        s = self.writer.stats()
        if s["dropped"] or s["lost"]:
            logger.warning(
                "request log: %d record(s) dropped (queue of %d full) and %d lost "
                "(write errors) in this process; %d written",
                s["dropped"],
                self.writer.queue_size,
                s["lost"],
                s["written"],
            )
        else:
            logger.info("request log: closed, %d record(s) written, none dropped", s["written"])
        if self.asn is not None:
            self.asn.lookup.cache_clear()
        if self.visitors is not None:
            self.visitors.close()  # the salt leaves memory; a restart fetches it again

    def stats(self) -> dict[str, int]:
        """Counters for metrics: enqueued, written, dropped (queue full), lost, queued."""
        return self.writer.stats()

    # -- housekeeping ------------------------------------------------------------------

    def maintain(self) -> None:
        """Delete expired salts, compress ended periods, purge expired files (once)."""
        now = self.clock()
        if self.visitors is not None:
            self.visitors.housekeep(now)
        if self.compress:
            compress_ended(self.directory, self.tz, now, self.compress_after, self.rotation_seconds)
            if self.columnar and _columnar_due(self.directory):
                from consentmw.analytics.columnar import sync

                sync(self.directory, self.consent_prefix, limit=4)
        result = purge(
            self.directory,
            self.retention_months,
            now=now,
            tz=self.tz,
            legal_hold=self.legal_hold,
            rotation_seconds=self.rotation_seconds,
            log_hold=False,
        )
        if result.held is not None and result.held != self._last_hold:
            log_legal_hold(result, self.directory, self.retention_months)
        self._last_hold = result.held

    def _housekeeping(self) -> None:
        while not self._stop.is_set():
            try:
                self.maintain()
            except Exception:
                logger.exception("request log: housekeeping failed (will retry)")
            self._stop.wait(self.maintenance_interval)

    def _after_fork(self) -> None:
        self.__dict__.pop("put", None)
        self._housekeeper = None
        self._stop = threading.Event()
        self.writer.reset_after_fork()


def _columnar_available() -> bool:
    return importlib.util.find_spec("duckdb") is not None  # the analytics extra


def _columnar_due(directory: Path) -> bool:
    """Whether :func:`~consentmw.analytics.columnar.sync` has anything to do here: a
    compressed period without a fresh copy, or a copy whose period is gone.

    Checked first because sync loads DuckDB, a quarter of a second of CPU in every worker
    that starts beside a log directory with nothing to copy.
    """
    periods = find_periods(directory)
    if any(p.compressed is not None and p.columnar is None for p in periods):
        return True
    kept: dict[Path, set[str]] = {Path(directory): set()}
    for p in periods:
        kept.setdefault(p.directory, set()).add(p.key)
    for folder, keys in kept.items():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            m = COLUMNAR_RE.match(name)
            if m is not None and m["key"] not in keys:
                return True
    return False


def _register_process_hooks(log: RequestLog) -> None:
    """atexit flush as a safety net; a forked child (gunicorn --preload) starts afresh."""
    ref = weakref.ref(log)

    def at_exit() -> None:
        obj = ref()
        if obj is not None:
            obj.close()

    def after_fork() -> None:
        obj = ref()
        if obj is not None:
            obj._after_fork()

    atexit.register(at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork)
