"""Append-only, period-named log files that several processes share safely.

Each write is one ``os.write`` on an ``O_APPEND`` descriptor, so lines from different
processes never interleave or overwrite each other. Writers hold a shared ``flock``
while appending and compressors an exclusive one, and a writer re-checks after locking
that its descriptor is still the file at that name: a line written just after a period
was compressed goes to a fresh file (compressed later), never into an unlinked inode.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locking, same files
    fcntl = None  # type: ignore[assignment]

import contextlib

from consentmw.requestlog.periods import file_name

__all__ = ["PeriodFiles", "lock_exclusive_nb", "unlock"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def _lock_shared(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_SH)


def unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_exclusive_nb(fd: int) -> bool:
    """Try to take the compressor's lock; ``False`` when someone else holds any lock."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class PeriodFiles:
    """Open descriptors by period key; :meth:`append` writes a batch to its period's file."""

    def __init__(self, directory: str | Path, file_mode: int = 0o640) -> None:
        self.directory = Path(directory)
        self.file_mode = file_mode
        self._fds: dict[str, int] = {}

    def path(self, key: str) -> Path:
        return self.directory / file_name(key)

    def append(self, key: str, data: bytes) -> None:
        """Append ``data`` (whole lines) to the file of period ``key``. Raises ``OSError``."""
        path = self.path(key)
        for _ in range(5):
            fd = self._fds.get(key)
            if fd is None:
                fd = self._open(path)
                self._fds[key] = fd
            _lock_shared(fd)
            try:
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = None
                if current != os.fstat(fd).st_ino:  # compressed (unlinked) meanwhile
                    self._close(key)
                    continue
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                return
            finally:
                if key in self._fds:
                    unlock(fd)
        raise OSError(f"could not append to {path}: it keeps being replaced")

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, _OPEN_FLAGS, self.file_mode)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, _OPEN_FLAGS, self.file_mode)

    def keep_only(self, keys: set[str]) -> None:
        """Close descriptors of other periods, so a compressor's unlink frees them."""
        for key in [k for k in self._fds if k not in keys]:
            self._close(key)

    def _close(self, key: str) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for key in list(self._fds):
            self._close(key)
