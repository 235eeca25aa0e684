"""The catalog: the persisted read model of all articles and their snapshots, in `views.sqlite`.

This module is the one owner of `views.sqlite`: its tables are defined here and every SQL
statement against them is here, as the query methods the `Ledger` calls.

The catalog follows the log: each query first folds the records appended since the position the
catalog last saw (`CatalogFold`), in one SQLite transaction, so the catalog and the position it
stands at change together or not at all. The checkpoint keeps that position and the hash of the
record at it; when the log no longer has that hash there (another or a rewritten log), or the
file is unreadable, the catalog is rebuilt from the log. Deleting `views.sqlite` is always safe.
Only SQLite errors rebuild the catalog: a record the fold cannot take (an event of an article that
was never created, a block that does not exist) raises `CorruptStoreError` naming its position,
and the catalog stays as it was.

Snapshots: an article's state every `SNAPSHOT_EVERY` versions, written when the catalog catches up
past such a version and whenever a read folds past one, so that a historical read folds only the
records after the nearest snapshot. A very big article's whole state is kept further apart (see
`snapshot_due`), and between those as a part: what changed since the last whole one
(`part_row`, every `_PART_EVERY` versions), so that a read of a live blog's old version folds
few records too without its snapshots outgrowing the log.
A snapshot is keyed by version, never by time: reads at a time first find the version that was
current then (from `occurred_at`), so snapshots cannot change what "as of" means.

A snapshot is never trusted as it is: it carries the hash of the log record it was folded up to
and a digest of its content bound to that hash. Before a read uses one, the record at its
position is read from the log and both are checked (for a part, its whole snapshot's too); a
snapshot that fails is passed over and the state folded from an earlier one (or from version 1).
Appends never start from a snapshot.
"""

from __future__ import annotations

import difflib
import functools
import gc
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ledger import caches, codec
from ledger.errors import CorruptStoreError, StoreError
from ledger.projections import (
    AUTHORS,
    BLOCKS,
    CATEGORIES,
    SNAPSHOT_EVERY,
    UNFOLDABLE,
    VERSION,
    WITHDRAWN,
    ArticleState,
    CatalogFold,
    apply,
    state_from_list,
    state_to_list,
    unfoldable,
)
from ledger.store import EventStore, StoredRecord

if TYPE_CHECKING:
    # Loaded by a rebuild only: reads that fold from snapshots (`ledger show`) need none of the
    # result models of `ledger.views` (issue 14).
    from ledger.views import ReplayStats

log = logging.getLogger("ledger")

VIEWS_FILE = "views.sqlite"
FORMAT = 7
_BATCH = 50_000
_CHARS_PER_VERSION = 2000
# Versions between a big article's parts (multiples of it): half `SNAPSHOT_EVERY`, so that a read
# between two snapshots of a live blog, the costliest there is, folds at most 15 records.
_PART_EVERY = SNAPSHOT_EVERY // 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS articles (
    article TEXT PRIMARY KEY, version INTEGER NOT NULL, title TEXT NOT NULL, categories TEXT NOT NULL,
    withdrawn INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    position INTEGER NOT NULL, last_block_at TEXT, blocks TEXT NOT NULL, authors TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memberships (
    article TEXT NOT NULL, category TEXT NOT NULL, entered_version INTEGER NOT NULL,
    entered_at TEXT NOT NULL, left_version INTEGER, left_at TEXT);
CREATE TABLE IF NOT EXISTS withdrawals (
    article TEXT NOT NULL, withdrawn_version INTEGER NOT NULL, withdrawn_at TEXT NOT NULL,
    restored_version INTEGER, restored_at TEXT);
CREATE TABLE IF NOT EXISTS titles (
    article TEXT NOT NULL, version INTEGER NOT NULL, occurred_at TEXT NOT NULL, title TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feed (
    position INTEGER PRIMARY KEY, article TEXT NOT NULL, version INTEGER NOT NULL,
    occurred_at TEXT NOT NULL, heading TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    position INTEGER PRIMARY KEY, article TEXT NOT NULL, version INTEGER NOT NULL,
    occurred_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS category_counts (category TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    article TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL, state BLOB NOT NULL,
    hash TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (article, version));
"""

# Indexes are made after a rebuild has inserted everything (much faster than keeping them
# up to date row by row) and exist from then on; a views file made before one was added gets it
# when next opened. `feed_recent` (covering the feed's pages) replaced `feed_time` (issue 16).
_INDEXES = """
CREATE INDEX IF NOT EXISTS memberships_category ON memberships (category, entered_at);
CREATE INDEX IF NOT EXISTS memberships_article ON memberships (article, category);
CREATE INDEX IF NOT EXISTS withdrawals_article ON withdrawals (article);
CREATE INDEX IF NOT EXISTS titles_article ON titles (article, version);
CREATE INDEX IF NOT EXISTS feed_recent ON feed (occurred_at, position, article);
CREATE INDEX IF NOT EXISTS feed_article ON feed (article, occurred_at);
DROP INDEX IF EXISTS feed_time;
CREATE INDEX IF NOT EXISTS changes_time ON changes (occurred_at);
CREATE INDEX IF NOT EXISTS articles_changed ON articles (updated_at, position);
CREATE INDEX IF NOT EXISTS articles_withdrawn ON articles (withdrawn, version);
"""

# An article is not in a listing at time :t while a withdrawal covers :t.
_NOT_WITHDRAWN_AT = (
    "NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.article = m.article AND w.withdrawn_at <= :t"
    " AND (w.restored_at IS NULL OR w.restored_at > :t))"
)

_VIEW_TABLES = ("articles", "memberships", "withdrawals", "titles", "feed", "changes", "category_counts")


def seen_position(cache_dir: Path) -> int:
    """The log position the views in `cache_dir` last stood at (0 when there are none, or they
    cannot be read): a witness that the log once held that many records, read without opening
    or repairing the views."""
    path = (cache_dir / VIEWS_FILE).absolute()
    if not path.is_file():
        return 0
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'position'").fetchone()
        finally:
            db.close()
    except (sqlite3.Error, ValueError):
        return 0
    return row[0] if row is not None and type(row[0]) is int else 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block.

    A replay creates millions of small lists and dicts, and a listing tens of thousands of
    result models, with no reference cycles; the collector would rescan them all again and
    again (two thirds of a replay's time; more than half of listing 100,000 articles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_Query = TypeVar("_Query", bound=Callable[..., Any])


def _stored_format(db: sqlite3.Connection) -> object:
    """The format a file's `meta` table names (None if none)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    return row[0] if row is not None else None


def _recovering(query: _Query) -> _Query:
    """`query`, asked once more from views rebuilt from the log when SQLite finds the file damaged
    in the middle of it (a page it cannot read: `refresh` reads only the checkpoint)."""

    @functools.wraps(query)
    def ask(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            try:
                return query(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
            try:
                return query(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise caches.store_error(self.path or Path(VIEWS_FILE), exc) from None

    return cast(_Query, ask)


class Catalog:
    """The read model of one store: kept in `views.sqlite` in the store folder (in memory for
    stores without a folder), caught up with the log by `refresh()`."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.path = cache / VIEWS_FILE if (cache := store.cache_dir) is not None else None
        self._db: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._position = -1
        self._hash = ""
        self._mutex = threading.RLock()
        self._checked = False
        # Set when the file cannot be written (a read-only store, a full disk): the catalog lives in
        # memory for the rest of this process, from a copy of the file.
        self._in_memory = False

    # --- the connection ----------------------------------------------------------------------

    def _connect(self, copy: sqlite3.Connection | None = None) -> sqlite3.Connection:
        """The catalog's database with its tables: the file, or in memory `copy` (a copy of the file)
        or an empty database for stores without a folder."""
        if copy is not None:
            db = copy
        elif self.path is None:
            db = caches.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            db = caches.open_file(self.path)
        try:
            caches.check_tables(db, _SCHEMA, lambda: _stored_format(db), FORMAT)
            db.executescript(_SCHEMA)
            db.executescript(_INDEXES)
            found = _stored_format(db)
            if found not in (None, FORMAT):
                raise sqlite3.DatabaseError(f"views format {found}, not {FORMAT}")
        except BaseException:
            db.close()
            raise
        return db

    @property
    def in_memory(self) -> bool:
        """Whether the catalog lives in this process's memory only (its file cannot be written)."""
        return self._in_memory or self.path is None

    def _open(self) -> sqlite3.Connection:
        if self._db is not None and self.path is not None and not self._in_memory:
            try:
                inode = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            if inode != self._inode:
                # Deleted (or replaced) under us: start again from whatever is there now.
                self._close_db()
        if self._db is None:
            self._db = self._open_memory(None) if self._in_memory else self._open_file()
            self._position = -1
            self._checked = False
        return self._db

    def _open_file(self) -> sqlite3.Connection:
        """The catalog file, rebuilt when it is unreadable; a copy in memory when it cannot be
        written."""
        if self.path is not None and not caches.writable(self.path):
            # A read-only store: expected, so no warning.
            log.debug("%s: not writable, using a copy of the views in memory", self.path)
            return self._open_memory(self.path)
        try:
            try:
                db = self._connect()
            except sqlite3.DatabaseError as exc:
                if caches.cannot_write(exc):
                    raise
                log.warning("%s: unreadable views (%s), rebuilding them from the log", self.path, exc)
                self._remove_files()
                db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            if not caches.cannot_write(exc) or self.path is None:
                raise
            caches.to_memory(self.path, "views", exc)
            return self._open_memory(self.path)
        self._inode = os.stat(self.path).st_ino if self.path is not None else None
        return db

    def _open_memory(self, source: sqlite3.Connection | Path | None) -> sqlite3.Connection:
        """Views in memory, from a copy of `source` (the file, or the connection that failed to
        write it); an unreadable copy gives an empty catalog, rebuilt from the log."""
        copy = caches.memory_copy(source)
        try:
            db = self._connect(copy)
        except sqlite3.DatabaseError as exc:
            log.debug("views copied into memory are unusable (%s), rebuilding them", exc)
            db = self._connect(caches.memory_copy(None))
        self._in_memory = True
        self._inode = None
        return db

    def _to_memory(self, exc: BaseException) -> None:
        """Go on in memory from what the catalog file holds (it failed to take a write)."""
        assert self._db is not None
        caches.leave_file(self._db, self.path, "views", exc)
        failed = self._db
        self._db = self._open_memory(failed)
        failed.close()
        self._position = -1
        self._checked = False

    def _remove_files(self) -> None:
        if self.path is None or self._in_memory:
            return
        caches.remove(self.path)

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._inode = None
            self._position = -1

    def close(self) -> None:
        """Close the database."""
        with self._mutex:
            self._close_db()

    @contextmanager
    def _write(self, db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # SQLite may have rolled back already (a full disk): a second ROLLBACK would raise
            # and hide the error that matters.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- following the log -------------------------------------------------------------------

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Make ready to try again after `exc`: go on in memory when the file cannot be written,
        else drop the damaged file (the next open makes a new one, caught up from the log)."""
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise StoreError(f"{self.path}: views locked by another process for too long") from None
        if caches.cannot_write(exc) and not self._in_memory and self._db is not None:
            self._to_memory(exc)
        else:
            log.warning("%s: damaged views (%s), rebuilding them from the log", self.path, exc)
            self._close_db()
            self._remove_files()

    def refresh(self) -> sqlite3.Connection:
        """Catch the catalog up with the log (rebuilding it if it belongs to another log) and
        return the connection to query them with."""
        with self._mutex:
            try:
                return self._refresh()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
            except CorruptStoreError as exc:
                if self._checkpoint(self._open())[0] == 0:
                    raise  # folded from the start: the log's records themselves do not fit
                # Caught up from a checkpoint the log does not fold onto from there: either the
                # views are wrong (a checkpoint moved in views.sqlite) or the log is. A rebuild
                # in one transaction tells: it fails, and changes nothing, only if the log is.
                try:
                    self.rebuild()
                except CorruptStoreError:
                    raise exc from None
                log.warning("%s: the views did not match the log (%s); rebuilt them from the log", self.path, exc)
            try:
                return self._refresh()
            except sqlite3.Error as exc:
                raise caches.store_error(self.path or Path(VIEWS_FILE), exc) from None

    def _refresh(self) -> sqlite3.Connection:
        db = self._open()
        head = self.store.head()
        if self._position == head.position and self._hash == head.hash:
            return db
        if self._checkpoint(db) == (head.position, head.hash):
            # Already at the head (another process caught them up): a read writes nothing.
            self._position, self._hash = head.position, head.hash
            self._checked = True
            return db
        with self._write(db):
            position, digest = self._validate(db)
            starts: dict[str, int] = {}
            before: dict[str, tuple[list[str], bool]] = {}
            fold = CatalogFold(self._loader(db, starts, before) if position > 0 else None)
            if position < head.position:
                with gc_paused():
                    self._fold_into(db, fold, position, None, None, before)
                if fold.events:
                    position, digest = fold.position, fold.hash
            self._save_checkpoint(db, position, digest)
        self._position, self._hash = position, digest
        self._checked = True
        self._snapshot_crossed(fold, starts)
        return db

    def _snapshot_crossed(self, fold: CatalogFold, starts: dict[str, int]) -> None:
        """Snapshot the articles whose versions passed a snapshot boundary during `fold`, so that
        historical reads never fold more than `SNAPSHOT_EVERY` versions, even the first time."""
        for article, entry in fold.entries.items():
            boundary = entry[VERSION] - entry[VERSION] % SNAPSHOT_EVERY
            if boundary > starts.get(article, 0):
                self.state_at(article, boundary)

    def _validate(self, db: sqlite3.Connection) -> tuple[int, str]:
        """The checkpoint, after clearing a catalog (and snapshots) that does not belong to this log."""
        position, digest = self._checkpoint(db)
        if position <= 0:
            # Nothing folded yet: rows left beside a checkpoint set back to 0 would be folded
            # again. (Snapshots may be there already: each is checked against its record.)
            if db.execute("SELECT 1 FROM articles LIMIT 1").fetchone() is not None:
                log.warning("%s: views do not match the log, rebuilding them", self.path)
                self._clear(db, snapshots=False)
            return 0, ""
        if not self._matches(position, digest):
            log.warning("%s: views do not match the log, rebuilding them", self.path)
            self._clear(db, snapshots=True)
            return 0, ""
        return position, digest

    def _checkpoint(self, db: sqlite3.Connection) -> tuple[int, str]:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return int(meta.get("position", 0)), str(meta.get("hash", ""))

    def _matches(self, position: int, digest: str) -> bool:
        # The head read now, under the catalog's write lock: another process may have caught the
        # catalog up past the head the caller saw before it waited for that lock.
        head = self.store.head()
        if position > head.position:
            return False
        if position == head.position:
            return digest == head.hash
        for record in self.store.read(position - 1, position):
            return bool(record.get("hash") == digest)
        return False

    def _save_checkpoint(self, db: sqlite3.Connection, position: int, digest: str) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT), ("position", position), ("hash", digest)],
        )

    def _clear(self, db: sqlite3.Connection, *, snapshots: bool) -> None:
        for table in _VIEW_TABLES + (("snapshots",) if snapshots else ()):
            db.execute(f"DELETE FROM {table}")
        db.execute("DELETE FROM meta")

    def _loader(
        self, db: sqlite3.Connection, starts: dict[str, int], before: dict[str, tuple[list[str], bool]]
    ) -> Callable[[str], list[Any] | None]:
        """Entries of articles from the catalog; `starts` notes each one's version, `before` its
        categories and withdrawn flag (what it counted for in `category_counts`)."""

        def load(article: str) -> list[Any] | None:
            row = db.execute(
                "SELECT version, title, categories, withdrawn, created_at, updated_at, position, last_block_at, blocks, authors"
                " FROM articles WHERE article = ?",
                (article,),
            ).fetchone()
            if row is None:
                return None
            entry = [*row[:-2], None, codec.loads(row[-2]), codec.loads(row[-1])]
            entry[CATEGORIES] = codec.loads(entry[CATEGORIES])
            entry[WITHDRAWN] = bool(entry[WITHDRAWN])
            starts[article] = entry[VERSION]
            before[article] = (list(entry[CATEGORIES]), entry[WITHDRAWN])
            return entry

        return load

    def _fold_into(
        self,
        db: sqlite3.Connection,
        fold: CatalogFold,
        after: int,
        to: int | None,
        progress: Callable[[int, int], None] | None,
        before: dict[str, tuple[list[str], bool]] | None = None,
    ) -> None:
        """Fold the records after `after` (up to `to`) and write what they change, inside the
        caller's transaction. `before` holds what the articles loaded from the catalog counted
        for in `category_counts` (nothing on a rebuild)."""
        head = self.store.head().position if progress is not None else 0
        step = fold.fold
        flush = _BATCH
        # check=False: the store skips re-hashing lines it checked when it indexed them (positions
        # and the chain's links are still checked); `verify` is the full check.
        records = self.store.read(after, to, check=False)
        if to is not None:
            records = _whole_appends(records)
        for count, record in enumerate(records, 1):
            try:
                step(record)
            except UNFOLDABLE as exc:
                raise self._unfoldable(record, exc) from None
            if count >= flush and "end" in record:
                flush = count + _BATCH
                self._write_rows(db, *fold.take_rows())
                if progress is not None:
                    progress(fold.position, head)
        self._write_rows(db, *fold.take_rows())
        dumps = codec.dumps
        db.executemany(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (article, e[0], e[1], dumps(e[2]).decode(), int(e[3]), e[4], e[5], e[6], e[7], dumps(e[BLOCKS]).decode(), dumps(e[AUTHORS]).decode())
                for article, e in fold.entries.items()
            ],
        )
        # Stints (and withdrawals) open before this fold are closed before the new ones are
        # written: an article that left a category and entered it again within one catch-up
        # had its new stint closed too (and vanished from the category's listing).
        db.executemany(
            "UPDATE memberships SET left_version = ?, left_at = ? WHERE left_version IS NULL AND article = ? AND category = ?",
            fold.closed_memberships,
        )
        db.executemany("INSERT INTO memberships VALUES (?, ?, ?, ?, ?, ?)", fold.memberships)
        db.executemany(
            "UPDATE withdrawals SET restored_version = ?, restored_at = ? WHERE restored_version IS NULL AND article = ?",
            fold.closed_withdrawals,
        )
        db.executemany("INSERT INTO withdrawals VALUES (?, ?, ?, ?, ?)", fold.withdrawals)
        db.executemany("INSERT INTO titles VALUES (?, ?, ?, ?)", fold.titles)
        # Each category's count of live articles, kept as a running total (`ledger categories`
        # and `stats` read it instead of counting a million stints): the touched articles'
        # categories now, minus what they counted for before this fold.
        counts: dict[str, int] = {}
        for article, e in fold.entries.items():
            if not e[WITHDRAWN]:
                for category in e[CATEGORIES]:
                    counts[category] = counts.get(category, 0) + 1
            old = (before or {}).get(article)
            if old is not None and not old[1]:
                for category in old[0]:
                    counts[category] = counts.get(category, 0) - 1
        db.executemany(
            "INSERT INTO category_counts VALUES (?, ?) ON CONFLICT (category) DO UPDATE SET count = count + excluded.count",
            [(category, n) for category, n in counts.items() if n],
        )
        if progress is not None:
            progress(fold.position, head)

    def _unfoldable(self, record: StoredRecord, exc: Exception) -> CorruptStoreError:
        """The error for a record the fold cannot take (`exc`: the fold's own). The fold trusts
        records the index checked once: the record is checked against its hash again, so a byte
        changed since is reported as that (the store raises); one that matches its hash was
        sealed again after it was changed, as no append writes it."""
        position = record["pos"]
        for _ in self.store.read(position - 1, position):
            pass
        return unfoldable(record, exc)

    @staticmethod
    def _write_rows(
        db: sqlite3.Connection,
        timeline: list[list[Any]],
        feed: list[list[Any]],
        headings: list[tuple[str, int]],
        removed: list[tuple[int]],
    ) -> None:
        """Write timeline rows and the feed's new rows, new headings and removed blocks."""
        db.executemany("INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)", timeline)
        db.executemany("INSERT OR REPLACE INTO feed VALUES (?, ?, ?, ?, ?)", feed)
        db.executemany("UPDATE feed SET heading = ? WHERE position = ?", headings)
        db.executemany("DELETE FROM feed WHERE position = ?", removed)

    def rebuild(self, to: int | None = None, progress: Callable[[int, int], None] | None = None) -> ReplayStats:
        """Throw the catalog away and fold the whole log again (up to position `to`), in one
        transaction: readers see the old catalog until the new one is complete. A catalog that
        cannot be written is rebuilt in memory (the replay still measures the fold)."""
        with self._mutex:
            try:
                return self._rebuild(to, progress)
            except sqlite3.DatabaseError as exc:
                # A damaged file is what a replay is for: it starts again from a new one.
                self._recover(exc)
            try:
                return self._rebuild(to, progress)
            except sqlite3.Error as exc:
                raise caches.store_error(self.path or Path(VIEWS_FILE), exc) from None

    def _rebuild(self, to: int | None, progress: Callable[[int, int], None] | None) -> ReplayStats:
        """`rebuild`, once."""
        with self._mutex:
            started = time.perf_counter()
            db = self._open()
            with self._write(db), gc_paused():
                # Snapshots of this very log stay valid (the log only grows): keep them unless
                # the checkpoint shows the catalog was made from another log.
                self._validate(db)
                # Fresh tables, filled without indexes and indexed once at the end: several
                # times faster than deleting rows and keeping the indexes up to date row by row.
                for table in (*_VIEW_TABLES, "meta"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        db.execute(statement)
                fold = CatalogFold()
                self._fold_into(db, fold, 0, to, progress)
                for statement in _INDEXES.strip().splitlines():
                    db.execute(statement)  # not executescript: it would commit the transaction
                self._save_checkpoint(db, fold.position, fold.hash)
                articles = len(fold.entries)
            self._position, self._hash = fold.position, fold.hash
            self._checked = True
            self._snapshot_crossed(fold, {})
            seconds = time.perf_counter() - started
            from ledger.views import ReplayStats

            return ReplayStats(
                events=fold.events,
                articles=articles,
                position=fold.position,
                seconds=seconds,
                events_per_second=fold.events / seconds if seconds > 0 else 0.0,
            )

    # --- queries -----------------------------------------------------------------------------

    @_recovering
    def category_members(self, name: str, at: str | None) -> list[tuple[str, str, str, int]]:
        """Article, title, entered_at and entered_version of the articles (not withdrawn) in
        category `name` now, or at log time `at`, by article id."""
        db = self.refresh()
        if at is None:
            return db.execute(
                "SELECT m.article, a.title, m.entered_at, m.entered_version FROM memberships m"
                " JOIN articles a ON a.article = m.article"
                " WHERE m.category = ? AND m.left_version IS NULL AND a.withdrawn = 0 ORDER BY m.article",
                (name,),
            ).fetchall()
        return db.execute(
            "SELECT m.article, (SELECT title FROM titles t WHERE t.article = m.article AND t.occurred_at <= :t"
            " ORDER BY t.version DESC LIMIT 1), m.entered_at, m.entered_version FROM memberships m"
            " WHERE m.category = :c AND m.entered_at <= :t AND (m.left_at IS NULL OR m.left_at > :t)"
            f" AND {_NOT_WITHDRAWN_AT} ORDER BY m.article",
            {"c": name, "t": at},
        ).fetchall()

    @_recovering
    def category_counts(self, at: str | None) -> list[tuple[str, int]]:
        """Every category with its number of (not withdrawn) articles, now or at log time `at`,
        by name."""
        db = self.refresh()
        if at is None:
            return db.execute("SELECT category, count FROM category_counts WHERE count > 0 ORDER BY category").fetchall()
        return db.execute(
            "SELECT m.category, COUNT(*) FROM memberships m"
            " WHERE m.entered_at <= :t AND (m.left_at IS NULL OR m.left_at > :t)"
            f" AND {_NOT_WITHDRAWN_AT} GROUP BY m.category ORDER BY m.category",
            {"t": at},
        ).fetchall()

    @_recovering
    def article_rows(
        self, category: str | None, since: str | None, withdrawn: bool | None, limit: int | None = None, offset: int = 0
    ) -> list[tuple[str, str, int, str, str, int, str]]:
        """Article, title, version, updated_at, categories (JSON text), withdrawn (0 or 1) and
        the metadata naming its authors (`author_keys`, JSON text) of every article, the most
        recently changed first: only those in `category` now, changed at or after log time
        `since`, and withdrawn (or not) as `withdrawn` says, when given; `limit` rows at most
        (all when None) after skipping the first `offset`."""
        where, params = self._article_filter(category, since, withdrawn)
        # An article's position is that of its latest record: unique, so pages never overlap
        # or skip a row when several articles changed at the same time.
        sql = "SELECT a.article, a.title, a.version, a.updated_at, a.categories, a.withdrawn, a.authors FROM articles a"
        sql += where + " ORDER BY a.updated_at DESC, a.position DESC LIMIT ? OFFSET ?"
        return self.refresh().execute(sql, [*params, -1 if limit is None else limit, offset]).fetchall()

    @_recovering
    def article_count(self, category: str | None, since: str | None, withdrawn: bool | None) -> int:
        """How many rows `article_rows` gives for these filters without a limit."""
        where, params = self._article_filter(category, since, withdrawn, counting=True)
        return int(self.refresh().execute("SELECT COUNT(*) FROM articles a" + where, params).fetchone()[0])

    @staticmethod
    def _article_filter(
        category: str | None, since: str | None, withdrawn: bool | None, *, counting: bool = False
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if category is not None:
            if counting:
                # The category's open stints by its index, each article then by its key: 25-90 ms
                # for a category of 14,541 articles among 97,380, against 100-300 ms probing
                # every article for an open stint.
                where.append("a.article IN (SELECT m.article FROM memberships m WHERE m.category = ? AND m.left_version IS NULL)")
            else:
                # Probing each article, newest first, reaches a page of a common category at once.
                where.append(
                    "EXISTS (SELECT 1 FROM memberships m WHERE m.article = a.article AND m.category = ? AND m.left_version IS NULL)"
                )
            params.append(category)
        if since is not None:
            where.append("a.updated_at >= ?")
            params.append(since)
        if withdrawn is not None:
            # Withdrawn articles are few: found by their index. Live ones are nearly all: by the
            # index they would all be visited and sorted for a page (90 ms at 97,380, 470 ms for
            # the last page) instead of walking the newest first (1 ms); `+` keeps it unused.
            where.append("a.withdrawn = ?" if withdrawn else "+a.withdrawn = ?")
            params.append(int(withdrawn))
        return (" WHERE " + " AND ".join(where) if where else ""), params

    @_recovering
    def memberships(self, article: str) -> tuple[list[tuple[str, int, str, int | None, str | None]], bool] | None:
        """Category, entered_version, entered_at, left_version and left_at of each of the
        article's category memberships, in order of entry, and whether the article is withdrawn
        now; None when the article is unknown."""
        db = self.refresh()
        found = db.execute("SELECT withdrawn FROM articles WHERE article = ?", (article,)).fetchone()
        if found is None:
            return None
        rows = db.execute(
            "SELECT category, entered_version, entered_at, left_version, left_at FROM memberships"
            " WHERE article = ? ORDER BY entered_version, rowid",
            (article,),
        ).fetchall()
        return rows, bool(found[0])

    @_recovering
    def category_known(self, category: str) -> bool:
        """Whether any article was ever in `category`."""
        return self.refresh().execute("SELECT 1 FROM memberships WHERE category = ? LIMIT 1", (category,)).fetchone() is not None

    @_recovering
    def category_names(self) -> list[str]:
        """Every category any article was ever in, by name."""
        return [name for (name,) in self.refresh().execute("SELECT DISTINCT category FROM memberships ORDER BY category")]

    @_recovering
    def category_memberships(self, category: str) -> list[tuple[str, int, str, int | None, str | None, int]]:
        """Article, entered_version, entered_at, left_version and left_at of every membership
        any article had in `category`, in order of entry (time, then article), and whether the
        article is withdrawn now (1 or 0)."""
        db = self.refresh()
        return db.execute(
            "SELECT m.article, m.entered_version, m.entered_at, m.left_version, m.left_at, a.withdrawn"
            " FROM memberships m JOIN articles a ON a.article = m.article"
            " WHERE m.category = ? ORDER BY m.entered_at, m.article, m.entered_version",
            (category,),
        ).fetchall()

    @_recovering
    def feed_since(self, since: str, limit: int | None = None, offset: int = 0) -> list[tuple[str, str, int, str, str]]:
        """Article, title, version, occurred_at and heading of the update blocks (of articles not
        withdrawn) whose version occurred at or after log time `since`, grouped by article, the
        article with the newest block first, each article's newest block first: the blocks of
        `limit` articles at most (all when None) after skipping the first `offset` articles."""
        db = self.refresh()
        withdrawn = {article for (article,) in db.execute("SELECT article FROM articles WHERE withdrawn = 1")}
        # The articles in the order of their newest block (its time, then its position: unique,
        # so articles updated at the same moment keep one order on every page), read from the
        # covering index newest first and only as far as the page reaches.
        page: dict[str, None] = {}  # an ordered set
        wanted = None if limit is None else offset + limit
        for (article,) in db.execute(
            "SELECT article FROM feed WHERE occurred_at >= ? ORDER BY occurred_at DESC, position DESC", (since,)
        ):
            if article not in page and article not in withdrawn:
                page[article] = None
                if len(page) == wanted:
                    break
        names = codec.dumps(list(page)[offset:]).decode()
        titles = dict(db.execute("SELECT article, title FROM articles WHERE article IN (SELECT value FROM json_each(?))", (names,)))
        blocks: dict[str, list[tuple[str, str, int, str, str]]] = {article: [] for article in titles}
        for article, version, occurred, heading in db.execute(
            "SELECT article, version, occurred_at, heading FROM feed WHERE article IN (SELECT value FROM json_each(?))"
            " AND occurred_at >= ? ORDER BY occurred_at DESC, position DESC",
            (names, since),
        ):
            blocks[article].append((article, titles[article], version, occurred, heading))
        return [row for article in page if article in blocks for row in blocks[article]]

    @_recovering
    def feed_count(self, since: str) -> int:
        """How many articles `feed_since` gives blocks of without a limit."""
        return int(self.refresh().execute(
            "SELECT COUNT(DISTINCT article) FROM feed WHERE occurred_at >= ?"
            " AND article NOT IN (SELECT article FROM articles WHERE withdrawn = 1)",
            (since,),
        ).fetchone()[0])

    @_recovering
    def versions_between(self, low: str | None, high: str | None, limit: int | None) -> list[tuple[str, int]]:
        """(article, version) of every version that occurred between log times `low` and `high`
        (both included, either open), newest first, at most `limit` of them."""
        where: list[str] = []
        params: list[Any] = []
        if low is not None:
            where.append("occurred_at >= ?")
            params.append(low)
        if high is not None:
            where.append("occurred_at <= ?")
            params.append(high)
        sql = "SELECT article, version FROM changes" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY occurred_at DESC, position DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self.refresh().execute(sql, params).fetchall()

    @_recovering
    def titles_at(self, versions: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The title each article had at each of `versions` ((article, version) pairs), from the
        titles the views keep (one query for all)."""
        if not versions:
            return {}
        rows = self.refresh().execute(
            "SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), (SELECT t.title FROM titles t"
            " WHERE t.article = json_extract(j.value, '$[0]') AND t.version <= json_extract(j.value, '$[1]')"
            " ORDER BY t.version DESC LIMIT 1) FROM json_each(?) j",
            (codec.dumps([list(pair) for pair in versions]).decode(),),
        ).fetchall()
        return {(article, version): title for article, version, title in rows if title is not None}

    @_recovering
    def totals(self) -> tuple[int, int, int, int]:
        """How many articles there are, their versions in all, how many are withdrawn now, and
        how many categories hold live articles (from indexes and running totals: no scan)."""
        db = self.refresh()
        articles, versions, withdrawn = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(version), 0), COALESCE(SUM(withdrawn), 0) FROM articles"
        ).fetchone()
        categories = db.execute("SELECT COUNT(*) FROM category_counts WHERE count > 0").fetchone()[0]
        return int(articles), int(versions), int(withdrawn), int(categories)

    # --- snapshots ---------------------------------------------------------------------------

    def snapshot_before(self, article: str, version: int) -> tuple[ArticleState, _Base | None, list[StoredRecord]] | None:
        """The article's latest snapshot at or before `version` that the log confirms (None if
        there is none, or if the views are found damaged: they are dropped, to be rebuilt), the
        whole snapshot it was made on (itself when it is whole) and the article's records after
        it up to `version`, read with the record that confirms it: see the module's notes on how
        a snapshot is checked."""
        with self._mutex:
            try:
                return self._snapshot_before(article, version)
            except sqlite3.DatabaseError as exc:
                if not caches.damaged(exc):
                    raise
                self._recover(exc)
                return None

    def _snapshot_before(self, article: str, version: int) -> tuple[ArticleState, _Base | None, list[StoredRecord]] | None:
        with self._mutex:
            db = self._open()
            if not self._checked:
                # Snapshots of another log must never be used: check the checkpoint first (cheap),
                # without catching up. An append must not wait for another process's rebuild of
                # the catalog: while it is busy, fold from the first version instead.
                try:
                    db.execute("PRAGMA busy_timeout = 200")
                    with self._write(db):
                        self._validate(db)
                except sqlite3.OperationalError as exc:
                    log.debug("snapshots not used: %s", exc)
                    return None
                finally:
                    db.execute("PRAGMA busy_timeout = 60000")
                self._checked = True
            query = "SELECT version, position, state, hash, digest FROM snapshots WHERE article = ? AND version <= ? ORDER BY version DESC"
            for found, position, blob, record_hash, digest in db.execute(query, (article, version)):
                values = _intact(blob, record_hash, digest)
                records: list[StoredRecord] = self.store.read_article(article, found, version) if values is not None else []
                # The snapshot was folded up to its version's last record.
                mine = sum(1 for record in records if record["version"] == found)
                if not mine or records[mine - 1]["pos"] != position or records[mine - 1]["hash"] != record_hash:
                    values = None
                if values is not None and isinstance(values[0], str):
                    state = self._state(article, found, position, values)
                    if state is not None:
                        return state, (state.copy(), digest), records[mine:]
                elif values is not None:
                    # A part, confirmed by the log at its own version: the log up to there is the
                    # one it was made from (the hash chain), and so is the whole snapshot it names
                    # if that still has the digest it had (it was confirmed or folded then).
                    row = db.execute(f"{query} LIMIT 1", (article, values[0])).fetchone() if isinstance(values[0], int) and values[0] < found else None
                    whole = _intact(row[2], row[3], row[4]) if row is not None and row[0] == values[0] and row[4] == values[1] else None
                    base = self._state(article, row[0], row[1], whole) if row is not None and whole is not None and isinstance(whole[0], str) else None
                    state = self._state(article, found, position, _from_part(base, values)) if base is not None else None
                    if state is not None and base is not None:
                        return state, (base, values[1]), records[mine:]
                log.warning("%s: the snapshot of %r at version %d does not match the log; not using it", self.path, article, found)
        return None

    @staticmethod
    def _state(article: str, version: int, position: int, values: list[Any] | None) -> ArticleState | None:
        """The state of a confirmed snapshot's values, if they are that of `article` at `version`."""
        if values is None:
            return None
        try:
            state = state_from_list(values)
        except (ValueError, TypeError):
            return None
        return state if (state.id, state.version, state.position) == (article, version, position) else None

    def state_at(self, article: str, version: int, *, snapshots: bool = True) -> ArticleState | None:
        """The article's state at `version`: its nearest snapshot at or before `version` plus
        its records after that (None if it has no records); without `snapshots`, folded from
        its first version. Versions passed on the way that are due a snapshot get one."""
        found = self.snapshot_before(article, version) if snapshots else None
        if found is not None:
            state, base, records = found
            if state.version == version:
                return state
        else:
            state, base, records = None, None, self.store.read_article(article, 1, version)
        record_hash = ""
        # The last whole snapshot (the spacing of whole ones counts from it) and the last of any kind.
        last = base[0].version if base is not None else 0
        written = state.version if state is not None else 0
        for record in records:
            if state is not None and record["version"] != state.version:
                base, last, written = self._snapshot_passed(state, record_hash, base, last, written)
            state = apply(state, record)
            record_hash = record["hash"]
        if state is not None:
            self._snapshot_passed(state, record_hash, base, last, written)
        return state

    def _snapshot_passed(self, state: ArticleState, record_hash: str, base: _Base | None, last: int, written: int) -> tuple[_Base | None, int, int]:
        """Keep a snapshot of `state` if one is due (whole, or a part of a big article's between
        its whole ones); returns the new `base`, `last` and `written` of `state_at`."""
        if snapshot_due(state, last):
            row = snapshot_row(state, record_hash)
            self.save_snapshots([row])
            return (state.copy(), row[5]), state.version, state.version
        if base is not None and state.version % _PART_EVERY == 0 and state.version > written:
            part = part_row(state, record_hash, *base)
            if part is not None:
                self.save_snapshots([part])
                return base, last, state.version
        return base, last, written

    def save_snapshots(self, rows: list[tuple[str, int, int, bytes, str, str]]) -> None:
        """Keep these `snapshot_row`s. Skipped, not waited for, while another process holds the
        catalog: snapshots only save time."""
        if not rows:
            return
        with self._mutex:
            db = self._open()
            damage = None
            try:
                db.execute("PRAGMA busy_timeout = 200")
                db.executemany("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.OperationalError as exc:
                log.debug("snapshots not saved: %s", exc)
            except sqlite3.DatabaseError as exc:
                if not caches.damaged(exc):
                    raise
                damage = exc
            finally:
                db.execute("PRAGMA busy_timeout = 60000")
            if damage is not None:
                self._recover(damage)  # the snapshots are not saved: the views are rebuilt


def _whole_appends(records: Iterator[StoredRecord]) -> Iterator[StoredRecord]:
    """The records of complete appends only: the catalog stops between appends, never inside one (a
    version's events are folded together or not at all)."""
    pending: list[StoredRecord] = []
    for record in records:
        pending.append(record)
        if "end" in record:
            yield from pending
            pending = []


def snapshot_due(state: ArticleState, last: int) -> bool:
    """Whether `state` is kept as a whole snapshot, the previous one being at version `last`.

    Snapshots fall on multiples of `SNAPSHOT_EVERY` versions, and whole ones are further apart
    for big articles (one version more per 2,000 characters of text): a live blog with thousands
    of update blocks would otherwise store its whole text again every 32 versions, and its
    snapshots would outgrow its log many times over. Between them it gets parts (`part_row`).
    """
    version = state.version
    if version % SNAPSHOT_EVERY or version <= last:
        return False
    return version - last >= _spacing(state)


def _size(state: ArticleState) -> int:
    """The characters of the article's body and blocks' text."""
    return len(state.body) + sum(len(block[1]) for block in state.blocks)


def _spacing(state: ArticleState) -> int:
    """Versions between an article's whole snapshots."""
    return max(SNAPSHOT_EVERY, _size(state) // _CHARS_PER_VERSION)


def snapshot_row(state: ArticleState, record_hash: str) -> tuple[str, int, int, bytes, str, str]:
    """A whole snapshot of `state` as it is now (serialised at once: the state may change after),
    folded up to the record whose hash is `record_hash`."""
    blob = codec.dumps(state_to_list(state))
    return (state.id, state.version, state.position, blob, record_hash, _digest(record_hash, blob))


def part_row(state: ArticleState, record_hash: str, base: ArticleState, base_digest: str) -> tuple[str, int, int, bytes, str, str] | None:
    """A part: `snapshot_row` of only what changed since `base` (the article's last whole
    snapshot, whose row has `base_digest`), as `[base version, base digest, article, version,
    title, the body (`_body_runs`), the number of blocks kept from base's start, the blocks after
    them, ...the rest of the state]`; None when it would be too big. There are at most
    `_spacing / _PART_EVERY` parts between two whole snapshots, and each may take that share
    of the whole one's size: together they add at most the whole snapshots' bytes again (a part
    grows with the versions since its base, so what is left out is the last ones of a huge or
    much edited article's interval, whose reads fold more records there)."""
    kept = 0
    for was, now in zip(base.blocks, state.blocks, strict=False):
        if was is not now and was != now:
            break
        kept += 1
    budget = _size(base) // max(1, _spacing(base) // _PART_EVERY)
    if sum(len(block[1]) for block in state.blocks[kept:]) > budget:
        return None  # no need to compare the bodies: the blocks alone do not fit
    values = [
        base.version, base_digest, state.id, state.version, state.title, _body_runs(base.body, state.body), kept, state.blocks[kept:],
        state.categories, state.metadata, state.withdrawn, state.created_at, state.updated_at, state.position,
    ]
    blob = codec.dumps(values)
    if len(blob) > budget:
        return None
    return (state.id, state.version, state.position, blob, record_hash, _digest(record_hash, blob))


def _from_part(base: ArticleState, values: list[Any]) -> list[Any] | None:
    """`state_to_list`'s form of a part (`part_row`) on its whole snapshot `base`
    (None if the part is not in that form)."""
    try:
        _, _, article, version, title, runs, kept, blocks, *rest = values
        old = base.body
        body = "".join([run if isinstance(run, str) else old[run[0]:run[1]] for run in runs])
        return [article, version, title, body, base.blocks[:kept] + blocks, *rest]
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def _body_runs(old: str, new: str) -> list[Any]:
    """`new` as runs of `old`'s characters (`[start, end]`) and new text: the start and end they
    share, and between them the lines they share (an article's body is edited here and there)."""
    prefix = _common_prefix(old, new)
    suffix = _common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    runs: list[Any] = [[0, prefix]] if prefix else []
    old_lines = old[prefix:len(old) - suffix].splitlines(keepends=True)
    new_lines = new[prefix:len(new) - suffix].splitlines(keepends=True)
    starts = [prefix]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    for kind, first, end, new_first, new_end in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if kind == "equal":
            runs.append([starts[first], starts[end]])
        elif new_first < new_end:
            runs.append("".join(new_lines[new_first:new_end]))
    if suffix:
        runs.append([len(old) - suffix, len(old)])
    return runs


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common start of `a` and `b` (slices compared in C, halving)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


_Base = tuple[ArticleState, str]
"""A whole snapshot's state and its row's digest: what a part is made on."""


def _intact(blob: Any, record_hash: Any, digest: Any) -> list[Any] | None:
    """A snapshot row's values (`state_to_list`'s form, or a part's: `part_row`) if its content
    has its digest; else None. Whether it is of this log is for the caller to confirm."""
    if not isinstance(blob, bytes) or not isinstance(record_hash, str) or digest != _digest(record_hash, blob):
        return None
    try:
        values = codec.loads(blob)
    except ValueError:
        return None
    return values if isinstance(values, list) and values and isinstance(values[0], str | int) else None


def _digest(record_hash: str, blob: bytes) -> str:
    """What a snapshot's content is checked against: its bytes, bound to the record it ends at."""
    return hashlib.sha256(record_hash.encode("ascii") + blob).hexdigest()
