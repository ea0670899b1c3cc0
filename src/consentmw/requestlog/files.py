"""Append-only, period-named log files that several processes share safely.

Each write is one ``os.write`` on an ``O_APPEND`` descriptor, so lines from different
processes never interleave or overwrite each other. Writers hold a shared ``flock``
while appending and compressors an exclusive one, and a writer re-checks after locking
that its descriptor is still the file at that name: a line written just after a period
was compressed goes to a fresh file (compressed later), never into an unlinked inode.

Every log file is opened with ``O_NOFOLLOW``: a symbolic link planted where a log file
should be (say by whoever can write to the directory) must not redirect our appends, or
a compressor's reads, to some other file. Such a link is an error naming it, not a write.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locking, same files
    fcntl = None  # type: ignore[assignment]

import contextlib

from consentmw.requestlog.periods import file_name

__all__ = [
    "APPEND_FLAGS",
    "CREATE_NEW_FLAGS",
    "READ_FLAGS",
    "PeriodFiles",
    "lock_exclusive_nb",
    "open_log_file",
    "unlock",
]

# Windows has no O_NOFOLLOW (nor the symlinks an unprivileged user could plant there).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Opening a FIFO blocks until its other end is opened: non-blocking, it fails or returns
# at once, and the regular-file check below refuses it.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC | _NOFOLLOW
READ_FLAGS = os.O_RDONLY | _CLOEXEC | _NOFOLLOW
CREATE_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | _NOFOLLOW


def open_log_file(path: str | os.PathLike[str], flags: int, mode: int = 0o640) -> int:
    """``os.open`` of a regular file that never follows a symbolic link at ``path``.

    ``flags`` should be one of :data:`APPEND_FLAGS`, :data:`READ_FLAGS` or
    :data:`CREATE_NEW_FLAGS`; ``O_NOFOLLOW`` is added in any case. A link, or anything
    but a regular file (a FIFO, a device), raises an ``OSError`` that says what is wrong;
    other errors propagate unchanged. The descriptor returned is blocking.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, mode)
    except OSError as exc:
        # Linux and macOS say ELOOP, FreeBSD EMLINK; only a link at path means "link".
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise OSError(
                errno.ELOOP,
                "is a symbolic link; request-log files are never opened through one "
                "(remove the link)",
                os.fspath(path),
            ) from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise _not_regular(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(path)
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd


def _not_regular(path: str | os.PathLike[str]) -> OSError:
    return OSError(
        errno.EINVAL,
        "is not a regular file; request-log files are never opened as anything else "
        "(remove it)",
        os.fspath(path),
    )


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
        self._paths: dict[str, str] = {}  # of the open periods, as their descriptors

    def path(self, key: str) -> Path:
        return self.directory / file_name(key)

    def append(self, key: str, data: bytes) -> None:
        """Append ``data`` (whole lines) to the file of period ``key``. Raises ``OSError``."""
        path = self._paths.get(key) or os.fspath(self.path(key))
        for _ in range(5):
            fd = self._fds.get(key)
            if fd is None:
                fd = self._open(path)
                self._fds[key] = fd
                self._paths[key] = path
            _lock_shared(fd)
            try:
                try:
                    # lstat: a link swapped in for the file is "replaced", so we reopen
                    # and refuse it rather than keep appending to the file it names.
                    current = os.lstat(path).st_ino
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

    def _open(self, path: str) -> int:
        try:
            return open_log_file(path, APPEND_FLAGS, self.file_mode)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            return open_log_file(path, APPEND_FLAGS, self.file_mode)

    def keep_only(self, keys: set[str]) -> None:
        """Close descriptors of other periods, so a compressor's unlink frees them."""
        if not keys.issuperset(self._fds):
            for key in [k for k in self._fds if k not in keys]:
                self._close(key)

    def _close(self, key: str) -> None:
        self._paths.pop(key, None)
        fd = self._fds.pop(key, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for key in list(self._fds):
            self._close(key)
