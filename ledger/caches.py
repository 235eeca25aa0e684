"""The SQLite caches beside the log (`index.sqlite`, `views.sqlite`) when they cannot be written.

Both are derived from the log, so a cache that cannot be written must never stop a read: on a
read-only store (a read-only mount, a folder the user may not write) and on a full disk, a
process works on a copy of the cache in memory, caught up with the log there, and leaves the
file as it was. The next process that can write brings the file up to date.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ledger.errors import StoreError, StoreLockedError

log = logging.getLogger("ledger")

# The SQLite result codes (primary part) that mean "this file cannot be written here", as opposed
# to a damaged file.
_CANNOT_WRITE = {
    sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
}


class _Connection(sqlite3.Connection):
    """A cache's connection. A file damaged where SQLite keeps its schema can make SQLite's own
    message about it undecodable, which Python raises as `UnicodeDecodeError`: here it is the
    `sqlite3.DatabaseError` every cache treats as damage (deleted and rebuilt)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """`sqlite3.Connection.execute`."""
        try:
            return super().execute(sql, parameters)
        except UnicodeDecodeError:
            raise sqlite3.DatabaseError("its file is damaged (SQLite's own message about it is not text)") from None

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        """`sqlite3.Connection.executemany`."""
        try:
            return super().executemany(sql, parameters)
        except UnicodeDecodeError:
            raise sqlite3.DatabaseError("its file is damaged (SQLite's own message about it is not text)") from None

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        """`sqlite3.Connection.executescript`."""
        try:
            return super().executescript(sql_script)
        except UnicodeDecodeError:
            raise sqlite3.DatabaseError("its file is damaged (SQLite's own message about it is not text)") from None


def connect(target: str | Path, **options: Any) -> sqlite3.Connection:
    """`sqlite3.connect` for a cache (a file or `:memory:`), whose damage is always a
    `sqlite3.DatabaseError` (`_Connection`)."""
    return sqlite3.connect(target, factory=_Connection, **options)


def open_file(path: Path) -> sqlite3.Connection:
    """A cache file beside the log, in WAL mode (readers never wait for a writer). Something
    else there but a folder (a FIFO, a device) is a damaged cache: SQLite would wait for ever
    reading a FIFO."""
    if _special(path):
        raise sqlite3.DatabaseError(f"{path.name} is not a regular file")
    db = connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        # Switching to WAL creates the -wal and -shm files: on a full disk it is the first
        # thing that fails, and the connection would otherwise stay open on the file.
        db.close()
        raise
    return db


def remove(path: Path) -> None:
    """Delete the cache file at `path` with its `-wal` and `-shm` (a damaged or outdated cache:
    the next open makes a new one, filled from the log)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _special(path: Path) -> bool:
    """Whether `path` is there and neither a regular file nor a folder (a FIFO, a socket, a
    device, or a link to one)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def writable(path: Path) -> bool:
    """Whether this process may write the file at `path` (and its `-wal`/`-shm` beside it).

    `os.access` answers for read-only mounts too (EROFS), even for root, which chmod alone does
    not stop."""
    if not os.access(path.parent, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def cannot_write(exc: BaseException) -> bool:
    """Whether `exc` (or the error it was raised while handling, e.g. a failed ROLLBACK after a
    full disk) says the file cannot be written, rather than that it is damaged."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return True
        code = getattr(seen, "sqlite_errorcode", 0)
        # A short read is no failure to write: the file is shorter than its -wal and -shm say,
        # deleted while another process had it open and theirs left over (a cache to rebuild).
        if isinstance(seen, sqlite3.Error) and code & 0xFF in _CANNOT_WRITE and code != sqlite3.SQLITE_IOERR_SHORT_READ:
            return True
        seen = seen.__context__
    return False


def reason(exc: BaseException) -> str:
    """`exc`, in plain words, for the warning or error that names the cache."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return f"cannot be written ({seen.strerror or seen})"
        code = getattr(seen, "sqlite_errorcode", None)
        if code is not None:
            if code & 0xFF == sqlite3.SQLITE_FULL:
                return "cannot be written (the disk is full)"
            if code & 0xFF == sqlite3.SQLITE_IOERR:
                return "cannot be written (an I/O error; is the disk full?)"
            if code & 0xFF in _CANNOT_WRITE:
                return "cannot be written (a read-only store?)"
        seen = seen.__context__
    return f"failed ({exc})"


def check_tables(db: sqlite3.Connection, schema: str, stored_format: Callable[[], object], format: int) -> None:
    """Raise `sqlite3.DatabaseError` when `db` holds some of the tables `schema` creates but not
    all: a table dropped by hand, which `CREATE TABLE IF NOT EXISTS` would make again, empty,
    beside the others' rows (wrong answers with no error). A file whose `meta` table says it is
    of another format than `format` (`stored_format()`, read by the table's owner) has other
    tables: it is rebuilt for its format, not called damaged. Run it before the schema."""
    wanted = re.findall(r"CREATE (?:VIRTUAL )?TABLE IF NOT EXISTS (\w+)", schema)
    found = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" in found and stored_format() not in (None, format):
        return
    missing = [name for name in wanted if name not in found]
    if missing and len(missing) < len(wanted):
        raise sqlite3.DatabaseError(f"its table {missing[0]} is missing")


def damaged(exc: sqlite3.Error) -> bool:
    """Whether `exc` says the cache's file is damaged (to delete and rebuild), not that it cannot
    be written or is busy in another process."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return isinstance(exc, sqlite3.DatabaseError) and not cannot_write(exc) and code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def store_error(path: Path, exc: BaseException) -> StoreError:
    """A one-line `StoreError` for a cache that failed even in memory (or in a way that a copy in
    memory does not help)."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreLockedError(f"{path}: busy in another process for too long ({exc})")
    return StoreError(f"{path}: {reason(exc)}; it is a cache of the log, so deleting it is safe")


def to_memory(path: Path | None, what: str, exc: BaseException) -> None:
    """Say that the cache `what` at `path` goes on as a copy in memory for this run because its
    file failed (`exc`): a folder where the file goes is named as one (SQLite says only that it
    cannot open it)."""
    why = "is a folder, not the cache's file (delete it: it is a cache of the log)" if path is not None and path.is_dir() else reason(exc)
    log.warning("%s: %s; using a copy of the %s in memory for this run", path or what, why, what)


def leave_file(db: sqlite3.Connection, path: Path | None, what: str, exc: BaseException) -> None:
    """Say that the cache `what` at `path` goes on as a copy in memory because its file failed to
    take a write (`exc`), and roll back what `db` had begun: the copy starts from what the file
    holds."""
    to_memory(path, what, exc)
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("%s: nothing to roll back (SQLite already did)", path)


def memory_copy(source: sqlite3.Connection | Path | None) -> sqlite3.Connection:
    """A database in memory holding a copy of `source`: an open connection (read through it, so
    the copy is what it has committed), a file, or nothing. A file that is missing, unreadable or
    changing while it is copied gives an empty database: the caller checks the copy against the
    log and rebuilds what does not match, as it does with the file."""
    memory = connect(":memory:", isolation_level=None, check_same_thread=False)
    if source is None:
        return memory
    if isinstance(source, sqlite3.Connection):
        try:
            source.backup(memory)
        except sqlite3.Error as exc:
            log.debug("could not copy a cache into memory: %s", exc)
            memory.close()
            return connect(":memory:", isolation_level=None, check_same_thread=False)
        return memory
    try:
        before = _stamps(source)
        # A writer elsewhere (through another mount) may have commits only in the -wal, and a
        # checkpoint rewrites pages of the file in place: copy only a file that holds everything
        # and that did not change while it was read.
        if before[0] is None or before[1] is not None or _special(source):
            return memory
        # immutable: no -shm to create (a read-only folder cannot hold one), no locks to take.
        uri = "file:" + quote(os.fspath(source.resolve())) + "?mode=ro&immutable=1"
        file_db = connect(uri, uri=True, check_same_thread=False)
        try:
            file_db.backup(memory)
        finally:
            file_db.close()
        if _stamps(source) == before:
            return memory
    except (sqlite3.Error, OSError) as exc:
        log.debug("%s: could not copy it into memory: %s", source, exc)
    memory.close()
    return connect(":memory:", isolation_level=None, check_same_thread=False)


def _stamps(path: Path) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
    """(inode, size, mtime) of the file and of its non-empty `-wal`, None where there is none."""

    def stamp(p: Path, nonempty: bool) -> tuple[int, int, int] | None:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return None
        if nonempty and st.st_size == 0:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    return stamp(path, False), stamp(Path(str(path) + "-wal"), True)
