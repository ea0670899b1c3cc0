"""Where the day's visitor salt lives: a private directory on one host, PostgreSQL for many.

A salt is 32 random bytes for one local day (``2026-11-27_Europe-Oslo``). Every worker
that asks for a day's salt gets the same one (the first to create it wins, the others
read it), and once the day and its grace period are over, :meth:`purge` deletes it, so
the keys written with it can never be computed again. Nothing here writes to the log
directory, and nothing here logs a salt.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Protocol

__all__ = [
    "SALT_BYTES",
    "FileSaltStore",
    "PostgresSaltStore",
    "SaltStore",
    "SaltUnavailable",
    "default_salt_dir",
]

SALT_BYTES = 32
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_[A-Za-z0-9_+\-]{1,64}$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SUFFIX = ".salt"
_STALE_TEMP = 3600.0  # a temp file this old belongs to a worker that died mid-create


class SaltUnavailable(Exception):
    """The store cannot give a salt now (unreadable directory, database down, ...)."""


class SaltStore(Protocol):
    def salt(self, day: str, expires_at: float) -> bytes:
        """The salt of ``day``: created (random) if nobody has, else the existing one."""

    def purge(self, now: float) -> int:
        """Delete every salt whose ``expires_at`` is not after ``now``; how many went."""

    def close(self) -> None: ...


def default_salt_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/consentmw/salts``, else ``$XDG_STATE_HOME/consentmw/salts``.

    The runtime directory is a per-user tmpfs: a deleted salt leaves no copy on a disk,
    in a filesystem journal or in a backup. The state directory (``~/.local/state``) is
    the fallback for services without a login session. Neither is near the log directory,
    which is the thing that gets shipped and backed up.
    """
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "consentmw" / "salts"
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "consentmw" / "salts"


def _check_day(day: str) -> str:
    if not isinstance(day, str) or not _DAY_RE.match(day):
        raise ValueError(f"not a salt day name: {day!r}")
    return day


def _encode(salt: bytes, expires_at: float) -> bytes:
    return f"consentmw-salt 1 {int(expires_at)} {salt.hex()}\n".encode("ascii")


def _decode(data: bytes) -> tuple[bytes, float] | None:
    parts = data.split()
    if len(parts) != 4 or parts[:2] != [b"consentmw-salt", b"1"]:
        return None
    try:
        salt = bytes.fromhex(parts[3].decode("ascii"))
        expires_at = float(int(parts[2]))
    except (ValueError, UnicodeDecodeError):
        return None
    return (salt, expires_at) if len(salt) == SALT_BYTES else None


class FileSaltStore:
    """Salt files (mode 0600) in a private directory (mode 0700) of this user.

    Creation is race-free across processes: the salt is written to a temp file opened
    with ``O_CREAT | O_EXCL | O_NOFOLLOW``, then hard-linked to its final name; ``link``
    fails if the name exists, so the first worker wins and nobody ever reads half a file.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).absolute()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as exc:
            raise ValueError(
                f"salt_dir {self.directory} cannot be created ({exc.strerror}); set "
                "salt_dir= or CONSENTMW_SALT_DIR to a private directory this user can write"
            ) from None
        if not stat.S_ISDIR(info.st_mode):
            raise ValueError(f"salt_dir {self.directory} is not a directory (or is a symlink)")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise ValueError(f"salt_dir {self.directory} belongs to another user")
        if info.st_mode & 0o077:
            raise ValueError(
                f"salt_dir {self.directory} is open to other users "
                f"(mode {stat.S_IMODE(info.st_mode):o}): chmod 700 it"
            )

    def __repr__(self) -> str:
        return f"FileSaltStore({str(self.directory)!r})"

    def path(self, day: str) -> Path:
        return self.directory / (_check_day(day) + _SUFFIX)

    def salt(self, day: str, expires_at: float) -> bytes:
        path = self.path(day)
        for _ in range(3):
            found = self._read(path)
            if found is not None:
                return found[0]
            self._create(path, secrets.token_bytes(SALT_BYTES), expires_at)
        raise SaltUnavailable(f"salt file {path} keeps disappearing")

    def _read(self, path: Path) -> tuple[bytes, float] | None:
        """The salt in ``path``; ``None`` if there is none (a corrupt one is removed)."""
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SaltUnavailable(f"cannot open salt file {path}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
                raise SaltUnavailable(f"salt file {path} is not a private regular file")
            data = os.read(fd, 256)
        finally:
            os.close(fd)
        found = _decode(data)
        if found is None:  # a crash before the data reached the disk: start the day afresh
            path.unlink(missing_ok=True)
        return found

    def _create(self, path: Path, salt: bytes, expires_at: float) -> None:
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(temp, flags, 0o600)
            try:
                os.write(fd, _encode(salt, expires_at))
                os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # another worker was first: read its
                os.link(temp, path)
        except OSError as exc:
            raise SaltUnavailable(f"cannot create salt file {path}: {exc.strerror}") from None
        finally:
            temp.unlink(missing_ok=True)

    def purge(self, now: float) -> int:
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            raise SaltUnavailable(f"cannot list {self.directory}: {exc.strerror}") from None
        for entry in entries:
            path = Path(entry.path)
            if entry.name.endswith(".tmp"):
                if entry.stat(follow_symlinks=False).st_mtime < time.time() - _STALE_TEMP:
                    path.unlink(missing_ok=True)
                continue
            if not entry.name.endswith(_SUFFIX) or not _DAY_RE.match(entry.name[:-5]):
                continue
            found = self._read(path)  # a corrupt file is removed by the read
            if found is None or found[1] <= now:
                removed += self._destroy(path)
        return removed

    @staticmethod
    def _destroy(path: Path) -> int:
        """Overwrite, then unlink (the overwrite helps on plain disks, not on every SSD)."""
        try:
            fd = os.open(path, os.O_WRONLY | _NOFOLLOW | _CLOEXEC)
        except FileNotFoundError:
            return 0
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                os.write(fd, b"\0" * len(_encode(b"\0" * SALT_BYTES, 0)))
                os.fsync(fd)
            except OSError:
                pass  # the unlink below still removes it
            finally:
                os.close(fd)
        try:
            path.unlink()
        except FileNotFoundError:
            return 0  # another worker deleted it first
        return 1

    def close(self) -> None:
        pass


_TABLE = "consentmw_salts"
_CREATE = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    day        text PRIMARY KEY,
    salt       bytea NOT NULL CHECK (length(salt) = {SALT_BYTES}),
    expires_at timestamptz NOT NULL
)"""
_CREATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('consentmw_salts_schema'))"


class PostgresSaltStore:
    """The ``consentmw_salts`` table shared by every host: ``INSERT ... ON CONFLICT DO
    NOTHING``, then ``SELECT`` (first writer wins). A short-lived connection per call:
    a worker asks once a day, plus one ``DELETE`` per housekeeping pass.

    Backups of this database keep the salts they copied; see the README.
    """

    def __init__(self, url: str, connect_timeout: int = 3) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("salt_url must be a postgresql:// URL")
        try:
            import psycopg  # noqa: F401  (the postgres extra)
        except ImportError:
            raise ValueError(
                "salt_url needs psycopg: pip install 'consentmw[postgres]'"
            ) from None
        self._url = url
        self._timeout = connect_timeout
        self._ready = False

    def __repr__(self) -> str:
        return "PostgresSaltStore(<url hidden>)"

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        import psycopg

        try:
            with psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._timeout
            ) as conn:
                if not self._ready:
                    # Another worker may create it at the same moment, and CREATE TABLE IF
                    # NOT EXISTS is not atomic (the loser sees a unique violation on the
                    # catalog, DuplicateTable or DuplicateObject): one at a time, by lock.
                    with conn.transaction():
                        conn.execute(_CREATE_LOCK)
                        conn.execute(_CREATE)
                    self._ready = True
                cur = conn.execute(sql, params)
                return cur.fetchall() if cur.description else [(cur.rowcount,)]
        except psycopg.Error as exc:
            raise SaltUnavailable(f"salt database: {type(exc).__name__}") from None

    def salt(self, day: str, expires_at: float) -> bytes:
        _check_day(day)
        self._run(
            f"INSERT INTO {_TABLE} (day, salt, expires_at) VALUES (%s, %s, to_timestamp(%s)) "
            "ON CONFLICT (day) DO NOTHING",
            (day, secrets.token_bytes(SALT_BYTES), expires_at),
        )
        rows = self._run(f"SELECT salt FROM {_TABLE} WHERE day = %s", (day,))
        if not rows:
            raise SaltUnavailable(f"salt of {day} was deleted while it was being read")
        return bytes(rows[0][0])  # type: ignore[arg-type]

    def purge(self, now: float) -> int:
        rows = self._run(f"DELETE FROM {_TABLE} WHERE expires_at <= to_timestamp(%s)", (now,))
        return int(rows[0][0])  # type: ignore[call-overload]

    def close(self) -> None:
        pass
