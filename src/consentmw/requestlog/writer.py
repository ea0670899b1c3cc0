"""The writer thread: the request path only appends to a bounded queue; this thread
parses User-Agents, encodes lines and appends them to their period's file in batches.

A full queue drops the record and counts it instead of blocking the event loop or
growing without bound. Disk errors (read-only or full directory) are logged once, not
per request, and the records they cost are counted as lost; the app keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

from consentmw.requestlog.files import PeriodFiles
from consentmw.requestlog.periods import Schedule

_BATCH = 5000  # records per append (per period): bounds the memory of one pass
_time_of = itemgetter(0)  # every kind of record starts with its time

__all__ = ["LogWriter"]

logger = logging.getLogger("consentmw.requestlog")


class LogWriter:
    """Bounded queue plus one daemon thread writing to :class:`PeriodFiles`.

    Records are :class:`PendingRecord` or plain tuples in its field order; ``encode``
    (``record -> line``, see :func:`~consentmw.requestlog.record.make_encoder`) turns
    them into lines.
    """

    def __init__(
        self,
        files: PeriodFiles,
        schedule: Schedule,
        *,
        encode: Callable[[Sequence[Any]], str],
        queue_size: int = 10_000,
        flush_interval: float = 0.2,
    ) -> None:
        self.files = files
        self.schedule = schedule
        self.encode = encode
        self.queue_size = queue_size
        self.flush_interval = flush_interval
        self._queue: deque[Sequence[Any]] = deque()
        self._wake = threading.Event()
        self._high_water = max(1, queue_size // 2)
        self._lock = threading.Lock()  # one drain at a time
        self._drop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failing = False
        self.taken = 0  # records the writer took from the queue
        self.written = 0
        self.dropped = 0  # queue full
        self.lost = 0  # could not be written (disk errors, bad records)

    # -- request path ------------------------------------------------------------------

    def put(self, record: Sequence[Any]) -> bool:
        """Enqueue without blocking; ``False`` (and counted) when the queue is full.

        Records wait for the thread (:meth:`start`) or for :meth:`flush` or :meth:`close`.
        """
        queue = self._queue
        if len(queue) >= self._high_water:
            if len(queue) >= self.queue_size:
                with self._drop_lock:
                    self.dropped += 1
                return False
            self._wake.set()
        queue.append(record)
        return True

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="consentmw-requestlog-writer", daemon=True
            )
            self._thread.start()

    def flush(self) -> None:
        """Write everything queued so far (from any thread; used by tests and close)."""
        with self._lock:
            self._drain()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after it wrote everything; safe to call twice."""
        thread = self._thread
        self._stopping = True
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()  # whatever arrived after the thread's last pass
        self.files.close()
        self._thread = None

    def reset_after_fork(self) -> None:
        """In a forked child: the thread did not survive, the parent's queue is not ours."""
        self._queue = deque()
        self._lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._stopping = False
        self.files.close()

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            with self._lock:
                self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        queue = self._queue
        take = iter(queue.popleft, None)  # no record is None, and only one drain pops
        key = ""
        while queue:
            count = min(len(queue), _BATCH)
            self.taken += count
            for key, lines in self._encode(list(islice(take, count))).items():
                self._write(key, lines)
            self.files.keep_only({key})

    def _encode(self, records: list[Sequence[Any]]) -> dict[str, list[str]]:
        """Lines by period key. Nearly always one period: then one pass over the batch."""
        try:
            lines = list(map(self.encode, records))
            first, last = min(map(_time_of, records)), max(map(_time_of, records))
            start, end, key = self.schedule.period(first)
        except Exception:
            return self._encode_each(records)
        if start <= first and last < end:
            return {key: lines}
        return self._encode_each(records)

    def _encode_each(self, records: list[Sequence[Any]]) -> dict[str, list[str]]:
        """Record by record: around the end of a period, or to find a record that fails."""
        encode = self.encode
        period = self.schedule.period
        batch: dict[str, list[str]] = {}
        lines: list[str] = []
        start, end = 1.0, 0.0
        lost = 0
        for pending in records:
            try:
                line = encode(pending)
                ts = pending[0]
                if not start <= ts < end:
                    start, end, key = period(ts)
                    lines = batch.setdefault(key, [])
            except Exception:
                lost += 1
                logger.exception("request log: could not encode a record (skipped)")
                continue
            lines.append(line)
        self.lost += lost
        return batch

    def _write(self, key: str, lines: list[str]) -> None:
        try:
            self.files.append(key, "".join(lines).encode("ascii"))
        except OSError as exc:
            self.lost += len(lines)
            if not self._failing:
                self._failing = True
                logger.error(
                    "request log: cannot write to %s (%s); records are lost until this is "
                    "fixed, and this is reported once, the app keeps serving",
                    self.files.directory,
                    exc,
                )
            return
        if self._failing:
            self._failing = False
            logger.warning(
                "request log: writing to %s works again (%d records lost so far)",
                self.files.directory,
                self.lost,
            )
        self.written += len(lines)

    def stats(self) -> dict[str, int]:
        queued = len(self._queue)
        return {
            "enqueued": self.taken + queued,
            "written": self.written,
            "dropped": self.dropped,
            "lost": self.lost,
            "queued": queued,
        }

