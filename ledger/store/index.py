"""The file store's index, `index.sqlite`: where each record of the log is (position, event id,
article, version, times, byte range, kept hash) and each article's latest version.

It is derived data: opened, rebuilt when damaged or of another layout, kept in memory when its
file cannot be written, and checked against the log it claims to cover (`check_head`). The
file store (`ledger.store.file`) decides when to trust it; this module only keeps and asks it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ledger import caches, codec
from ledger.errors import CorruptStoreError, IndexMismatchError, StoreLockedError

log = logging.getLogger("ledger")

INDEX_FILE = "index.sqlite"
# The index's own layout: an index of another layout is rebuilt from the log.
INDEX_FORMAT = 2
# How much of each record's hash the index keeps: enough to notice a record changed after it was
# indexed (64 bits), at a quarter of the full hash's size.
HASH_KEPT = 16

# One record as the index takes it: (byte offset, byte length, record, full hash).
Sealed = tuple[int, int, dict[str, Any], str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY, id TEXT NOT NULL, article TEXT NOT NULL,
    version INTEGER NOT NULL, type TEXT NOT NULL, occurred_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_article ON events (article, version);
CREATE INDEX IF NOT EXISTS events_id ON events (id);
CREATE TABLE IF NOT EXISTS articles (
    article TEXT PRIMARY KEY, version INTEGER NOT NULL, occurred_at TEXT NOT NULL);
"""


def read_line(fd: int, offset: int, length: int) -> bytes:
    """The `length` bytes at `offset` of the log open as `fd`, as an index row places a line;
    nothing for a place no line can have (a damaged row: a negative offset, no length), which
    `sealed` then refuses like any line that is not one."""
    return os.pread(fd, length, offset) if offset >= 0 and length > 0 else b""


def sealed(line: bytes) -> tuple[str, dict[str, Any]]:
    """The hash and record of one whole line of the log, checked; raises `codec.RecordError`.
    Every committed line ends in its newline: one without it is damaged too."""
    if not line.endswith(b"\n"):
        raise codec.RecordError("record is cut short")
    return codec.check(line[:-1]), codec.decode(line)


def connect(target: Path | sqlite3.Connection) -> sqlite3.Connection:
    """The index at `target` (a file, or a database in memory), with its tables."""
    db = target if isinstance(target, sqlite3.Connection) else caches.open_file(target)
    db.executescript(_SCHEMA)
    if db.execute("SELECT 1 FROM meta").fetchone() is not None and db.execute(
        "SELECT value FROM meta WHERE key = 'format'"
    ).fetchone() != (INDEX_FORMAT,):
        # An index of another layout (an older ledger's): start it again from the log. Under
        # the index's lock, looking again, as another process may be doing the same.
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() != (INDEX_FORMAT,):
                db.execute("DROP TABLE IF EXISTS events")
                db.execute("DROP TABLE IF EXISTS articles")
                db.execute("DELETE FROM meta")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return db


def meta_of(db: sqlite3.Connection) -> dict[str, Any]:
    """The index's head and identity: offset, position, hash, store_id, format."""
    return dict(db.execute("SELECT key, value FROM meta").fetchall())


def check_head(db: sqlite3.Connection, meta: dict[str, Any], size: int, read_fd: int, log_path: Path) -> tuple[int, int, str]:
    """The index's head `(offset, position, hash)`, checked against the log (open as `read_fd`,
    `size` bytes long).

    Raises `IndexMismatchError` when the index contradicts itself (its head is not the end of
    its own last record: a damaged cache, to rebuild), and `CorruptStoreError` when it is
    consistent but the log no longer holds, unchanged, the committed record it saw last: the
    log was cut or rewritten after the fact. That is damage to report, never a torn tail to
    cut or a cache to rebuild around it.
    """
    where = log_path.parent / INDEX_FILE
    try:
        covered, position = int(meta.get("offset", 0)), int(meta.get("position", 0))
    except (TypeError, ValueError):
        raise IndexMismatchError(f"{where}: its head is not readable") from None
    last_hash = str(meta.get("hash", codec.GENESIS_HASH))
    if covered == 0:
        if position != 0 or last_hash != codec.GENESIS_HASH:
            raise IndexMismatchError(f"{where}: its head (position {position}) does not match its own records")
        return covered, position, last_hash
    row = db.execute("SELECT offset, length, hash FROM events WHERE pos = ?", (position,)).fetchone()
    if row is None or row[0] + row[1] != covered or row[2] != last_hash[:HASH_KEPT]:
        raise IndexMismatchError(f"{where}: its head (position {position}, byte {covered}) does not match its own records")
    hint = f"restore the log from a copy (or, to accept the log as it is now, delete {INDEX_FILE})"
    if covered > size:
        raise CorruptStoreError(
            f"{log_path}: the log ends at byte {size}, but positions up to {position} (byte {covered}) were "
            f"committed: it was truncated after the fact; {hint}",
            position=position,
        )
    try:
        digest, record = sealed(read_line(read_fd, row[0], row[1]))
    except codec.RecordError:
        digest, record = "", {}
    if digest != last_hash or record.get("pos") != position or not record.get("end"):
        raise CorruptStoreError(
            f"{log_path}: position {position} (byte {row[0]}) is no longer the record committed there: "
            f"the log was changed after it was written; {hint}",
            position=position,
        )
    return covered, position, last_hash


def committed_but_missing(path: Path, store_id: str, size: int, read_fd: int, log_path: Path) -> str | None:
    """What the index file at `path` saw committed that the log (open as `read_fd`, `size`
    bytes long) no longer holds unchanged, if anything: a tail cut or rewritten after the fact
    is damage, not an unfinished append. The index is only read (never built or repaired here);
    one that is missing, unreadable, of another store or inconsistent in itself proves nothing
    and is passed over."""
    if not path.exists():
        return None
    try:
        db = caches.connect(path, timeout=5)
        try:
            meta = meta_of(db)
            if meta.get("store_id") != store_id:
                return None
            check_head(db, meta, size, read_fd, log_path)
        finally:
            db.close()
    except (sqlite3.Error, IndexMismatchError):
        return None
    except CorruptStoreError as exc:
        return str(exc).removeprefix(f"{log_path}: ")
    return None


class LogIndex:
    """The open index of one store: its file, or a copy in memory when the file cannot be
    written. `on_memory` is called when it switches to memory (what was indexed is then to be
    checked again)."""

    def __init__(self, path: Path, *, busy_timeout: float, on_memory: Callable[[], None]) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.in_memory = False
        self.db: sqlite3.Connection | None = None
        self._on_memory = on_memory

    # --- opening ---------------------------------------------------------------------------

    def open(self) -> sqlite3.Connection:
        """The connection, opened (or rebuilt, or copied to memory) on first use."""
        if self.db is None:
            path = self.path
            if not caches.writable(path):
                # A read-only store: expected, so no warning; reads answer from a copy in memory.
                log.debug("%s: not writable, using a copy of the index in memory", path)
                self.db = self._memory(caches.memory_copy(path))
                return self.db
            try:
                self.db = self._open_file(path)
            except (sqlite3.Error, OSError) as exc:
                if not caches.cannot_write(exc):
                    raise caches.store_error(path, exc) from None
                caches.to_memory(path, "index", exc)
                self.db = self._memory(caches.memory_copy(path))
        return self.db

    def _open_file(self, path: Path) -> sqlite3.Connection:
        """The index file, rebuilt empty when it is damaged; raises what SQLite raises when it
        cannot be written."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return connect(path)
            except sqlite3.DatabaseError as exc:
                if caches.cannot_write(exc):
                    raise
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    break
                # Another process is creating the index at this moment (switching it to WAL
                # does not wait): it is not damaged, and deleting it would pull it from
                # under that process.
                if time.monotonic() >= deadline:
                    raise StoreLockedError(f"{path}: the index is busy in another process ({exc})") from None
                time.sleep(0.01)
        log.warning("%s: unreadable index, rebuilding it from the log", path)
        caches.remove(path)
        return connect(path)

    def _memory(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """`db` (a copy of the index in memory) with the index's tables, checked against the log
        by the next sync like the file would be."""
        self.in_memory = True
        self._on_memory()
        return connect(db)

    def to_memory(self, exc: BaseException) -> None:
        """Go on with a copy in memory of what the index file holds (it failed to take a write)."""
        assert self.db is not None
        caches.leave_file(self.db, self.path, "index", exc)
        copy = caches.memory_copy(self.db)
        self.db.close()
        self.db = self._memory(copy)

    def write_or_memory(self, sync: Callable[[], None]) -> None:
        """Run `sync`, which writes to the index; when the file cannot take the write (a full
        disk, a store made read-only while open), go on with the index in memory and run it
        again: the index is a cache, and a cache that cannot be written must not stop a read,
        nor an append that the log can still take."""
        try:
            sync()
        except sqlite3.Error as exc:
            if caches.damaged(exc) and not self.in_memory:
                # A page SQLite cannot read, found by the catch-up (opening read only the head).
                log.warning("%s: damaged (%s); rebuilding it from the log", self.path, exc)
                self.discard()
            elif self.in_memory or self.db is None or not caches.cannot_write(exc):
                raise caches.store_error(self.path, exc) from None
            else:
                self.to_memory(exc)
            try:
                sync()
            except sqlite3.Error as again:
                raise caches.store_error(self.path, again) from None

    def close(self) -> None:
        """Close the connection (the next use opens it again)."""
        if self.db is not None:
            self.db.close()
            self.db = None

    def discard(self) -> None:
        """Close and delete the index file (found damaged): the next use starts a new one."""
        self.close()
        if not self.in_memory:
            caches.remove(self.path)

    # --- writing ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """See `meta_of`."""
        return meta_of(self.open())

    def clear(self) -> None:
        """Forget everything indexed (inside a write transaction: the caller rebuilds it)."""
        db = self.open()
        db.execute("DELETE FROM events")
        db.execute("DELETE FROM articles")
        db.execute("DELETE FROM meta")

    def write(self, records: list[Sealed]) -> None:
        """Index `records` (inside a write transaction)."""
        db = self.open()
        db.executemany(
            "INSERT OR REPLACE INTO events (pos, id, article, version, type, occurred_at, recorded_at, offset, length, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r["pos"], r["id"], r["article"], r["version"], r["type"], r["occurred_at"], r["recorded_at"], off, length,
                 digest[:HASH_KEPT])
                for off, length, r, digest in records
            ],
        )
        latest: dict[str, tuple[int, str]] = {}
        for _, _, r, _ in records:
            latest[r["article"]] = (r["version"], r["occurred_at"])
        db.executemany(
            "INSERT OR REPLACE INTO articles (article, version, occurred_at) VALUES (?, ?, ?)",
            [(article, version, occurred) for article, (version, occurred) in latest.items()],
        )

    def set_head(self, offset: int, position: int, last_hash: str, store_id: str) -> None:
        """Note the head the index now covers (inside a write transaction)."""
        self.open().executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("offset", offset), ("position", position), ("hash", last_hash), ("store_id", store_id), ("format", INDEX_FORMAT)],
        )

    # --- queries ---------------------------------------------------------------------------

    def at(self, position: int) -> tuple[int, int] | None:
        """`(offset, length)` of the record at `position`, if indexed."""
        row = self.open().execute("SELECT offset, length FROM events WHERE pos = ?", (position,)).fetchone()
        return (row[0], row[1]) if row is not None else None

    def at_many(self, positions: list[int]) -> dict[int, tuple[int, int]]:
        """`position -> (offset, length)` of those of `positions` that are indexed, in one query."""
        found: dict[int, tuple[int, int]] = {}
        db = self.open()
        # In slices: SQLite takes at most 32,766 values in one statement.
        for start in range(0, len(positions), 10_000):
            part = positions[start : start + 10_000]
            marks = ",".join("?" * len(part))
            found.update((pos, (offset, length)) for pos, offset, length in db.execute(f"SELECT pos, offset, length FROM events WHERE pos IN ({marks})", part))
        return found

    def end_of_last(self) -> tuple[int, int] | None:
        """`(position, end offset)` of the last indexed record, if any."""
        row = self.open().execute("SELECT MAX(pos), offset + length FROM events").fetchone()
        return (row[0], row[1]) if row is not None and row[0] is not None else None

    def article_rows(self, article: str, from_version: int, to_version: int) -> list[tuple[int, int, int, int, str]]:
        """`(pos, version, offset, length, kept hash)` of the article's versions in range, by position."""
        return self.open().execute(
            "SELECT pos, version, offset, length, hash FROM events WHERE article = ? AND version >= ? AND version <= ? ORDER BY pos",
            (article, from_version, to_version),
        ).fetchall()

    def article_ranges(self, article: str) -> list[tuple[int, int]]:
        """`(offset, length)` of each of the article's records, by position."""
        return self.open().execute("SELECT offset, length FROM events WHERE article = ? ORDER BY pos", (article,)).fetchall()

    def max_version(self, article: str) -> int | None:
        """The article's highest indexed version (None if it has none)."""
        value: int | None = self.open().execute("SELECT MAX(version) FROM events WHERE article = ?", (article,)).fetchone()[0]
        return value

    def latest(self, article: str) -> tuple[int, int, int, int, str] | None:
        """`(pos, version, offset, length, kept hash)` of the article's latest record."""
        row = self.open().execute(
            "SELECT pos, version, offset, length, hash FROM events WHERE article = ? ORDER BY version DESC, pos DESC LIMIT 1",
            (article,),
        ).fetchone()
        return (row[0], row[1], row[2], row[3], row[4]) if row is not None else None

    def listed_version(self, article: str) -> int | None:
        """The article's version in the table of latest versions (None if it is not there): a
        second witness to the rows of `events`, which `latest` reads."""
        row = self.open().execute("SELECT version FROM articles WHERE article = ?", (article,)).fetchone()
        return row[0] if row is not None else None

    def articles(self) -> dict[str, int]:
        """Every article with its latest version, by name."""
        return dict(self.open().execute("SELECT article, version FROM articles ORDER BY article").fetchall())

    def article_states(self) -> Iterator[tuple[str, int, str]]:
        """`(article, version, occurred_at)` of every article's latest version."""
        yield from self.open().execute("SELECT article, version, occurred_at FROM articles")

    def last_recorded_at(self) -> str:
        """The latest `recorded_at` indexed ("" when empty)."""
        value: str | None = self.open().execute("SELECT MAX(recorded_at) FROM events").fetchone()[0]
        return value or ""

    def version_at(self, article: str, when: str) -> int:
        """The article's last indexed version that occurred at or before `when` (0 if none)."""
        value: int | None = self.open().execute(
            "SELECT MAX(version) FROM events WHERE article = ? AND occurred_at <= ?", (article, when)
        ).fetchone()[0]
        return value or 0

    def version_times(self, article: str) -> list[tuple[int, str, str]]:
        """`(version, occurred_at, recorded_at)` of each indexed version of the article."""
        return [
            (row[0], row[1], row[2])
            for row in self.open().execute(
                "SELECT version, MIN(occurred_at), MIN(recorded_at) FROM events WHERE article = ? GROUP BY version ORDER BY version",
                (article,),
            )
        ]

    def times_between(self, first: int, last: int) -> list[tuple[str, str, str]]:
        """`(article, first occurred_at, last recorded_at)` of each article in positions `first..last`."""
        return self.open().execute(
            "SELECT article, MIN(occurred_at), MAX(recorded_at) FROM events WHERE pos BETWEEN ? AND ? GROUP BY article",
            (first, last),
        ).fetchall()

    def ids(self, ids: Sequence[str]) -> Iterator[tuple[str, int, str, int]]:
        """`(id, pos, article, version)` of those of `ids` indexed: 500 a statement, under
        SQLite's limit on parameters."""
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            yield from self.open().execute(
                "SELECT id, pos, article, version FROM events WHERE id IN ({})".format(",".join("?" * len(part))), part
            )
