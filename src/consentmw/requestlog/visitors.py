"""Optional daily visitor keys: count visitors and visits without cookies, for one day.

A key is ``blake2b(host, IP, User-Agent; key=the day's salt)`` cut to 64 bits, as hex.
The full IP (resolved through trusted proxies, before masking) goes in, so two people
behind one masked /16 stay apart; only the key comes out. The salt is random per local
day, shared by the workers through a :mod:`~consentmw.requestlog.salts` store, kept in
memory for the day, and destroyed when the day and a grace period are over: then
nobody, the site owner included, can compute that day's keys again.

No key at all for a request that carries ``Sec-GPC: 1`` or ``DNT: 1``, for a visitor
who refused analytics (or, in ``"consented"`` mode, did not grant it), for requests
without an IP or a User-Agent, and (decided by the writer) for anything but page views.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from hashlib import blake2b
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from consentmw.requestlog.periods import Schedule
from consentmw.requestlog.salts import (
    FileSaltStore,
    PostgresSaltStore,
    SaltStore,
    SaltUnavailable,
    default_salt_dir,
)

__all__ = ["ANALYTICS", "MODES", "VisitorKeys", "make_visitor_keys", "refused", "visitor_key"]

logger = logging.getLogger("consentmw.requestlog")

ANALYTICS = "analytics"
#: ``count_visitors`` values: ``True`` keys everyone who did not refuse analytics,
#: ``"consented"`` only visitors who granted it.
MODES = (True, "consented")
_RETRY_AFTER = 30.0  # seconds without keys after the salt store failed
_LOOKAHEAD = 900.0  # the housekeeping pass fetches tomorrow's salt this close to midnight
_MAX_PART = 1024
_LENGTHS = struct.Struct(">HHH").pack


def visitor_key(salt: bytes, host: bytes, ip: str, user_agent: bytes) -> str:
    """16 hex digits. The parts' lengths go first, so no two inputs run together."""
    address = ip.encode("ascii", "replace")[:_MAX_PART]
    host, user_agent = host[:_MAX_PART], user_agent[:_MAX_PART]
    data = _LENGTHS(len(host), len(address), len(user_agent)) + host + address + user_agent
    return blake2b(data, digest_size=8, key=salt).hexdigest()


def refused(state: object, mode: object = True) -> bool:
    """Whether the consent state ConsentMiddleware resolved rules out a key.

    No state (no ConsentMiddleware) or an undecided visitor without a browser signal is
    not a refusal; ``"consented"`` mode needs analytics granted.
    """
    allows = getattr(state, "allows", None)
    if allows is None:
        return mode == "consented"
    if allows(ANALYTICS):
        return False
    decided = getattr(state, "decided", False) or getattr(state, "signal", None)
    return mode == "consented" or bool(decided)


class VisitorKeys:
    """The day's salt, cached in memory, and the key of one request.

    ``key`` runs on the request path: a tuple comparison and a hash, touching the store
    only on the first request of a day (the housekeeping thread usually fetched it
    already). ``housekeep`` runs in the housekeeping thread: it deletes expired salts,
    in the store and in memory, and fetches the coming day's.
    """

    def __init__(
        self,
        store: SaltStore,
        tz: ZoneInfo,
        grace: float = 3600.0,
        mode: object = True,
    ) -> None:
        self.store = store
        self.mode = mode
        self.grace = grace
        self._schedule = Schedule("daily", tz)
        self._zone = tz.key.replace("/", "-")
        # (start, end, expires_at, salt) of the day in use; the next day's, once fetched
        self._current: tuple[float, float, float, bytes] | None = None
        self._next: tuple[float, float, float, bytes] | None = None
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._failing = False

    def __repr__(self) -> str:
        return f"VisitorKeys({self.store!r}, mode={self.mode!r}, grace={self.grace})"

    # -- request path ------------------------------------------------------------------

    def key(self, headers: Any, ip: str | None, now: float) -> str | None:
        """The key of a request from ``ip`` at ``now`` (``None`` if it gets none)."""
        if not ip:
            return None
        host = user_agent = b""
        for name, value in headers or ():
            if name == b"user-agent":
                user_agent = value
            elif name == b"host":
                host = value
            elif (name == b"sec-gpc" or name == b"dnt") and value.strip() == b"1":
                return None
        if not user_agent:
            return None  # every browser sends one: a script, counted as a bot anyway
        salt = self.salt(now)
        if salt is None:
            return None
        return visitor_key(salt, bytes(host).lower(), ip, bytes(user_agent))

    def salt(self, now: float) -> bytes | None:
        current = self._current
        if current is not None and current[0] <= now < current[1]:
            return current[3]
        return self._slow_salt(now)

    def _slow_salt(self, now: float) -> bytes | None:
        with self._lock:
            if now < self._retry_at:
                return None
            nxt = self._next
            if nxt is not None and nxt[0] <= now < nxt[1]:
                self._current, self._next = nxt, None
                return nxt[3]
            try:
                self._current = self._fetch(now)
            except SaltUnavailable as exc:
                self._failed(exc, now)
                return None
            self._recovered()
            return self._current[3]

    def _fetch(self, now: float) -> tuple[float, float, float, bytes]:
        start, end, day = self._schedule.bounds(now)
        expires_at = end + self.grace
        return start, end, expires_at, self.store.salt(f"{day}_{self._zone}", expires_at)

    def _failed(self, exc: SaltUnavailable, now: float) -> None:
        self._retry_at = now + _RETRY_AFTER
        if not self._failing:
            self._failing = True
            logger.error(
                "request log: no visitor keys, the salt store failed (%s); retrying "
                "every %d s, reported once",
                exc,
                _RETRY_AFTER,
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.warning("request log: the salt store works again, visitor keys resume")

    # -- housekeeping thread -----------------------------------------------------------

    def housekeep(self, now: float, lookahead: float = _LOOKAHEAD) -> None:
        """Forget and delete expired salts; fetch the next day's shortly before midnight."""
        with self._lock:
            if self._current is not None and self._current[2] <= now:
                self._current = None  # nobody may compute that day's keys any more
            if self._next is not None and self._next[2] <= now:
                self._next = None
        try:
            self.store.purge(now)
            self.salt(now)
            current = self._current
            if current is not None and current[1] - now < lookahead and self._next is None:
                upcoming = self._fetch(current[1])
                with self._lock:
                    self._next = upcoming
        except SaltUnavailable as exc:
            with self._lock:
                self._failed(exc, now)

    def close(self) -> None:
        with self._lock:
            self._current = self._next = None
        self.store.close()


def make_visitor_keys(
    mode: object,
    tz: ZoneInfo,
    log_directory: str,
    salt_dir: str | None,
    salt_url: str | None,
    grace: float,
) -> VisitorKeys | None:
    """Validated options -> :class:`VisitorKeys` (``None`` when counting is off).

    The salt directory must not be the log directory or inside it: logs get shipped and
    backed up, and a salt that travels with them would let anyone recompute the keys.
    """
    if mode is False or mode is None:
        return None
    if mode not in MODES or (mode is not True and not isinstance(mode, str)):
        raise ValueError(f"count_visitors must be False, True or 'consented', got {mode!r}")
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= 86400:
        raise ValueError(f"salt_grace must be 0..86400 seconds, got {grace!r}")
    if salt_url is not None and salt_dir is not None:
        raise ValueError("give salt_dir (one host) or salt_url (many hosts), not both")
    store: SaltStore
    if salt_url is not None:
        store = PostgresSaltStore(salt_url)
    else:
        directory = Path(salt_dir if salt_dir is not None else default_salt_dir()).absolute()
        logs = Path(log_directory).absolute()
        real_dir, real_logs = os.path.realpath(directory), os.path.realpath(logs)
        if real_dir == real_logs or real_dir.startswith(real_logs.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"salt_dir {directory} is inside the log directory {logs}: the salt must "
                "never travel with the logs; choose a directory outside it"
            )
        store = FileSaltStore(directory)
    return VisitorKeys(store, tz, float(grace), mode)
