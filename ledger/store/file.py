"""`FileEventStore`: the embedded, file-backed `EventStore`.

`FileEventStore` keeps the log as one file of sealed JSON lines (see `ledger.codec`):

* **atomic appends**: the records of one append are written with one `write` and the last one
  carries `"end":true`. Readers use only records up to the last `end`, so a half-written append
  is never seen; a writer that finds records after the last `end` (a crash mid-append) cuts them
  off, with a warning, before it appends.
* **serialised writers**: appends take an exclusive `flock` on the log file itself, so several
  processes (a `ledger watch` and a `ledger append` typed by hand) can append to one store. (A
  lock file beside the log could be deleted under a writer and let a second one in.)
* **durable**: every append is `fdatasync`ed before it returns, unless inside `bulk()`, which
  syncs once at the end.
* **tamper evident**: each record carries the hash of the one before; `verify` checks the chain.
* **indexed**: `index.sqlite` maps articles and event ids to byte ranges of the log. It is derived
  data: it follows the log lazily, is rebuilt when missing, stale or inconsistent, and is safe to
  delete. It is never trusted blindly: its head is checked against the log's bytes whenever it
  is used, every record read through it is checked against what it claims (position, article,
  version, hash), and the writer proves an article's version against the log before appending.
  What the index saw committed must still be in the log, unchanged: a log cut or rewritten
  below that is damage (`CorruptStoreError`), never a torn tail to cut.

Its parts live beside it: the log's layout and reading in `logfile`, the index in `index`, the
index-checked reads in `checked`, the writers' lock in `locking`, `verify` in `verify`; this
module ties them together (index sync, the writer's state, appends, imports).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

from ledger import caches, codec
from ledger.errors import (
    CorruptStoreError,
    IndexMismatchError,
    LedgerError,
    NothingToDoError,
    StoreError,
    VersionConflictError,
)
from ledger.events import NewRecord, copy_json, format_time, parse_time
from ledger.store.checked import CheckedReads
from ledger.store.contract import (
    AppendResult,
    EventStore,
    Head,
    Problem,
    RecordOrder,
    StoredRecord,
    VerifyReport,
    new_versions,
    original_result,
)
from ledger.store.groups import Accepted, GroupCommit, Pending, answer, fail
from ledger.store.index import (
    INDEX_FILE,
    LogIndex,
    Sealed,
    check_head,
    committed_but_missing,
    meta_of,
    read_line,
)
from ledger.store.locking import WriterLock
from ledger.store.logfile import LOG_FILE, check_continuation, import_label, open_sealed, read_batches, read_marker, seal_append
from ledger.store.logfile import lines as log_lines
from ledger.store.logfile import scan as scan_log
from ledger.store.verify import verify_log

log = logging.getLogger("ledger")
_T = TypeVar("_T")

_WRITTEN_MAX = 20_000


@dataclass
class _WriterState:
    end: int = 0
    position: int = 0
    hash: str = codec.GENESIS_HASH
    recorded_at: str = ""
    versions: dict[str, int] = field(default_factory=dict)
    occurred: dict[str, str] = field(default_factory=dict)
    # Articles whose version and time were read from the log itself (or written by this process),
    # not taken from the index: only these are appended to without checking the log first.
    proven: set[str] = field(default_factory=set)


def _now() -> tuple[str, datetime]:
    """The time now, as canonical text (what `format_time` gives) and as a datetime."""
    moment = datetime.now(UTC)
    return format_time(moment), moment


class FileEventStore(EventStore):
    """The embedded store: an append-only file of sealed JSON lines plus a derived SQLite index.

    `lock_timeout` is how long an append waits for another writer (then `StoreLockedError`).
    """

    root: Path

    def __init__(
        self, path: str | os.PathLike[str], *, lock_timeout: float = 10.0, witness: Callable[[], tuple[int, str]] | None = None
    ) -> None:
        self.root = Path(path)
        # A cache's word on how far the log once went (the position it stood at, and its name),
        # asked before a torn tail is cut: records it saw are damage to report, not a crash's.
        self._witness = witness
        self._marker = read_marker(self.root)
        self.log_path = self.root / LOG_FILE
        if not self.log_path.exists():
            raise CorruptStoreError(f"{self.log_path}: the log file is missing")
        self.lock_timeout = lock_timeout
        # Not blocking: opening a FIFO put where the log goes would wait for a writer for ever.
        self._read_fd = os.open(self.log_path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(self._read_fd).st_mode):
            os.close(self._read_fd)
            raise CorruptStoreError(f"{self.log_path}: the log is not a regular file")
        os.set_blocking(self._read_fd, True)
        self._write_fd: int | None = None
        self._lock = WriterLock(self.log_path, self._read_fd)
        self._mutex = threading.RLock()
        # Group commit: appends queued while one thread leads a group (writes and syncs it);
        # the next leader takes them all.
        self._groups = GroupCommit(self._lead_locked)
        self._exclusive_owner: int | None = None
        self._writer: _WriterState | None = None
        self._idx = LogIndex(self.root / INDEX_FILE, busy_timeout=lock_timeout, on_memory=self._index_restarts)
        self._check = CheckedReads(self._idx, self._read_fd, self.log_path, self._mutex)
        self._indexed = 0
        # Records this process appended and has not indexed yet, from byte `_written_at` on: the
        # index takes them as they are instead of reading, parsing and hash-checking them again.
        self._written: list[Sealed] = []
        self._written_at = -1
        # The event ids of `_written`: id -> (position, article, version).
        self._written_ids: dict[str, tuple[int, str, int]] = {}
        # `_written` by article: an append's state cache miss folds them from memory rather than
        # have the index take them first (its inserts cost 10-16 µs per event at that moment).
        self._written_articles: dict[str, list[Sealed]] = {}
        self._bulk_depth = 0
        self._unsynced = False
        # Set when the index was found to disagree with the log: the next sync rebuilds it whole.
        self._distrusted = False

    # --- opening and recovery ------------------------------------------------------------

    def recover(self) -> int:
        """Bring the index up to date and cut off a torn tail (a crash mid-append), if no writer is
        busy. Returns the number of bytes cut. Raises `CorruptStoreError` for damage elsewhere,
        and instead of cutting when the store's witness says records past the log's last
        complete append were once committed."""
        with self._mutex:
            self._sync_index()
            if os.fstat(self._read_fd).st_size <= self._indexed:
                return 0
            if not caches.writable(self.log_path) or not self._lock.try_take():
                # Read-only: the torn tail stays (reads never use it) for a writer to cut.
                return 0
            try:
                return self._cut_torn_tail()
            finally:
                self._lock.release()

    def _cut_torn_tail(self) -> int:
        self._sync_index()
        size = os.fstat(self._read_fd).st_size
        if size > self._indexed:
            last = self.head().position
            loss = self._witnessed_loss(last)
            if loss is not None:
                raise CorruptStoreError(
                    f"{self.log_path}: {loss[0]}; nothing cut (if {loss[1]} is another store's, or the machine lost power during an "
                    "append, delete it and open the store again)",
                    position=last + 1,
                )
        return self._cut_after(self._indexed, size)

    def _witnessed_loss(self, last: int) -> tuple[str, str] | None:
        """What the store's witness says of a torn tail after position `last`, the log's last
        complete record, when it stood past it (and its name); None when it did not."""
        if self._witness is None:
            return None
        position, witness = self._witness()
        if position <= last:
            return None
        # A crash leaves at most the append being written unfinished, and no reader folds an
        # unfinished append: a cache that stood past the log's end saw those records committed.
        return (f"the log's complete records end at position {last}, but {witness} stood at position {position}: records committed "
                "after it were lost or damaged, not left unfinished by a crash"), witness

    def _cut_after(self, end: int, size: int) -> int:
        """Cut the log back to `end` (the end of its last complete append); returns the bytes cut."""
        cut = size - end
        if cut > 0:
            fd = self._writer_fd()
            os.ftruncate(fd, end)
            os.fsync(fd)
            log.warning("%s: cut %d bytes of an append that did not complete (a crash mid-write)", self.log_path, cut)
        return cut

    # --- the index -------------------------------------------------------------------------

    def _sync_index(self) -> None:
        """Index every committed record not yet indexed (any process may do this; SQLite
        serialises), with the index in memory if its file cannot take the write."""
        if os.fstat(self._read_fd).st_size == self._indexed and self._idx.db is not None:
            return
        self._idx.write_or_memory(self._index_the_rest)

    def _index_the_rest(self) -> None:
        size = os.fstat(self._read_fd).st_size
        if size == self._indexed and self._idx.db is not None:
            return
        db = self._idx.open()
        meta = meta_of(db)
        if meta.get("offset") == size and meta.get("store_id") == self._marker["store_id"] and not self._distrusted:
            try:
                check_head(db, meta, size, self._read_fd, self.log_path)
            except IndexMismatchError:
                pass  # rebuilt below, under the index's lock
            else:
                # Already up to date (the common case on open): no write transaction, so opening
                # a store writes nothing and closing it has no WAL to checkpoint.
                self._forget_written()
                self._indexed = size
                return
        db.execute("BEGIN IMMEDIATE")
        try:
            # Measured again under the index's lock: while this process waited for it, another
            # may have appended and indexed more (the log looked shorter than the index before).
            size = os.fstat(self._read_fd).st_size
            meta = meta_of(db)
            fresh = meta.get("store_id") != self._marker["store_id"] or self._distrusted
            if meta and fresh and not self._distrusted:
                log.warning("%s: index does not match the log (it belongs to another store); rebuilding it from the log", self.root / INDEX_FILE)
            if not fresh:
                try:
                    covered, position, last_hash = check_head(db, meta, size, self._read_fd, self.log_path)
                except IndexMismatchError as exc:
                    log.warning("%s; rebuilding it from the log", exc)
                    fresh = True
            if fresh:
                self._idx.clear()
                covered, position, last_hash = 0, 0, codec.GENESIS_HASH
            written = self._written
            if written and self._written_at == covered and written[-1][0] + written[-1][1] <= size:
                self._idx.write(written)
                position, last_hash = written[-1][2]["pos"], written[-1][3]
                covered = written[-1][0] + written[-1][1]
            self._forget_written()
            if covered < size:
                scan = scan_log(self._read_fd, self.log_path, covered, size, position, last_hash)
                if scan.records:
                    self._idx.write(scan.records)
                    last = scan.records[-1]
                    position, last_hash = last[2]["pos"], last[3]
                covered = scan.end
            self._idx.set_head(covered, position, last_hash, self._marker["store_id"])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._indexed = covered
        self._distrusted = False

    # --- reading the log -----------------------------------------------------------------

    def read(self, after: int = 0, to: int | None = None, *, check: bool = True) -> Iterator[StoredRecord]:
        """Every committed record with `after < pos <= to`, upcast, in order.

        Every line read is parsed, must hold the next position and must chain to the one before
        (its `prev` is the record before's `hash`), so damage is never read as data: it raises
        `CorruptStoreError` with the position. With `check` (the default) every line's SHA-256 is
        also computed again. `check=False` is for replays (`Ledger.replay`, the views' folds):
        it trusts the SHA-256 of the lines the index has already taken, because the index checked
        each of them once when it took it (validate on the way in, trust checksummed records on
        the way out); lines after that are still checked. `verify` checks everything.
        """
        start, expected = 0, 1
        if after > 0:
            start, expected = self._offset_of(after + 1)
        # Lines ending at or before `trusted` were hash-checked when the index took them.
        trusted = 0 if check else self._indexed
        for batch in read_batches(self._read_fd, self.log_path, start, expected, after, to, trusted):
            # Each line was hash-checked (now or when the index took it) and chains to the one
            # before: it is a record this store sealed after checking it, so it has its keys.
            yield from cast("list[StoredRecord]", batch)

    def _offset_of(self, position: int) -> tuple[int, int]:
        """Byte offset to start reading at for `position` (from the index when it has it)."""
        return self._checked_by_log(lambda: self._indexed_offset(position))

    def _indexed_offset(self, position: int) -> tuple[int, int]:
        with self._mutex:
            self._sync_index()
            at = self._idx.at(position)
            if at is not None:
                return at[0], position
            last = self._idx.end_of_last()
        if last is not None and last[0] < position:
            return last[1], last[0] + 1
        return 0, 1

    def read_article(self, article: str, from_version: int = 1, to_version: int | None = None) -> list[StoredRecord]:
        """One article's records through the index. Every line read is hash-checked and must be
        what the index says it is (position, article, version, hash), and the versions must run
        without gaps: an index that disagrees with the log is rebuilt from it and the read done
        again."""
        return self._checked_by_log(lambda: self._read_article(article, from_version, to_version))

    def _read_article(self, article: str, from_version: int, to_version: int | None) -> list[StoredRecord]:
        top = to_version if to_version is not None else 1 << 62
        with self._mutex:
            # When all the log holds beyond the index is what this process wrote and holds, the
            # article's part of it is taken from memory (records this process sealed) and the
            # index is not made to take it now: the next read that needs the index will.
            held = self._written_articles.get(article, []) if self._unindexed_are_held() else None
            if held is None:
                self._sync_index()
                held = []
            rows = self._idx.article_rows(article, from_version, top)
            # Their data copied as the log would give it (lists, not the tuples sealed): a caller
            # that changes a record it was given must not change what the next read returns.
            recent = [
                cast("StoredRecord", {**record, "data": copy_json(record["data"]), "hash": digest})
                for _, _, record, digest in held
                if from_version <= record["version"] <= top
            ]
            returned = recent[-1]["version"] if recent else rows[-1][1] if rows else from_version - 1
            if to_version is not None and returned < to_version:
                # Fewer versions than asked for: only right if the article has no more.
                highest = max(self._idx.max_version(article) or 0, held[-1][2]["version"] if held else 0)
                if highest > returned:
                    raise IndexMismatchError(f"{self.root / INDEX_FILE}: versions of {article!r} are missing from it")
        # Every line hash-checked and proved to be what the index says: records this store sealed.
        return cast("list[StoredRecord]", self._check.article_records(rows, article, from_version, top)) + recent

    def _checked_by_log(self, call: Callable[[], _T]) -> _T:
        """`call()`, which checks what it takes from the index against the log; when the index
        disagrees (`IndexMismatchError`), or SQLite finds its file damaged in the middle of a
        query (a page it cannot read: opening it read only the head), it is rebuilt from the
        log and `call` runs once more."""
        try:
            return call()
        except IndexMismatchError as exc:
            self._rebuild_index(exc)
        except sqlite3.DatabaseError as exc:
            if not caches.damaged(exc):
                raise
            with self._mutex:
                self._idx.discard()
            self._rebuild_index(IndexMismatchError(f"{self.root / INDEX_FILE}: damaged ({exc})"))
        return call()

    def _rebuild_index(self, reason: Exception) -> None:
        """Rebuild the index from the log (it disagreed with it), and forget what was taken from it."""
        log.warning("%s; rebuilding it from the log", reason)
        with self._mutex:
            self._distrusted = True
            self._indexed = -1
            self._writer = None
            self._sync_index()

    def raw_lines(self, article: str | None = None) -> Iterator[bytes]:
        """The sealed record lines exactly as stored, each ending in a newline (for `export`):
        every committed record, or one article's. Each line is checked against its hash, so
        damage is reported (`CorruptStoreError`) rather than copied."""
        with self._mutex:
            self._checked_by_log(self._sync_index)
            if article is None:
                lines: Iterator[tuple[int, bytes]] = log_lines(self._read_fd, 0, self._indexed)
            else:
                rows = self._checked_by_log(lambda: self._idx.article_ranges(article))
                lines = ((offset, read_line(self._read_fd, offset, length)) for offset, length in rows)
        for offset, line in lines:
            try:
                # Every line held or indexed ends in its newline: one without is damaged too.
                codec.check(line[:-1])
            except codec.RecordError as exc:
                raise CorruptStoreError(f"{self.log_path}: record at byte {offset}: {exc}") from None
            yield line

    def article_version(self, article: str) -> int:
        """The article's current version (0 when it has no events)."""
        return self.article_versions((article,))[article]

    def article_versions(self, articles: Iterable[str]) -> dict[str, int]:
        """The current version of each of `articles` (see `EventStore.article_versions`). The
        index's answer for each is checked against the article's latest record in the log."""
        wanted = list(articles)
        return self._checked_by_log(lambda: self._article_versions(wanted))

    def _article_versions(self, articles: list[str]) -> dict[str, int]:
        writer = self._writer
        if writer is not None and self._groups.leading:
            if not self._mutex.acquire(blocking=False):
                # Another thread is writing and syncing a group: answer from the versions
                # committed before it rather than wait for the sync, so that threads prepare their
                # next appends meanwhile (group commit). An answer that a group or another process
                # has since moved on only makes the append conflict under the lock, and the
                # caller prepare it again.
                versions = writer.versions
                return {article: versions.get(article, 0) for article in articles}
            self._mutex.release()
        with self._mutex:
            if self._writer is not None:
                # A process that appends keeps every version in memory: no index round trip.
                versions = self._refresh_writer(locked=False).versions
                return {article: versions.get(article, 0) for article in articles}
            self._sync_index()
            found: dict[str, int] = {}
            # Each from the article's latest record, read from the log and checked against the
            # index's row (not from the `articles` table, which nothing checks).
            for article in dict.fromkeys(articles):
                latest = self._check.latest(article)
                found[article] = latest["version"] if latest is not None else 0
            return found

    def articles(self) -> dict[str, int]:
        """Every article with its current version."""

        def indexed() -> dict[str, int]:
            with self._mutex:
                self._sync_index()
                found = self._idx.articles()
            # Nothing in the log vouches for this table: values of another kind are damage.
            if not all(type(article) is str and type(version) is int for article, version in found.items()):
                raise IndexMismatchError(f"{self.root / INDEX_FILE}: its table of latest versions holds values of the wrong kind")
            return found

        return self._checked_by_log(indexed)

    def version_at(self, article: str, when: str) -> int:
        """The last version that occurred at or before `when` (0 if none): found through the
        index, then checked against the records of that version and the next in the log."""
        return self._checked_by_log(lambda: self._version_at(article, when))

    def _version_at(self, article: str, when: str) -> int:
        with self._mutex:
            self._sync_index()
            version = self._idx.version_at(article, when)
        around = self._read_article(article, max(version, 1), version + 1)
        before = [r for r in around if r["version"] == version]
        after = [r for r in around if r["version"] == version + 1]
        if (before and before[-1]["occurred_at"] > when) or (after and after[0]["occurred_at"] <= when) or (version and not before):
            raise IndexMismatchError(f"{self.root / INDEX_FILE}: its times of {article!r} do not match the log")
        return version

    def version_times(self, article: str) -> list[tuple[int, str, str]]:
        """`(version, occurred_at, recorded_at)` of each version of the article."""

        def indexed() -> list[tuple[int, str, str]]:
            with self._mutex:
                self._sync_index()
                return self._idx.version_times(article)

        return self._checked_by_log(indexed)

    def head(self) -> Head:
        """The last committed position and its hash."""
        with self._mutex:
            self._sync_index()
            meta = self._idx.meta()
        return Head(position=int(meta.get("position", 0)), hash=str(meta.get("hash", codec.GENESIS_HASH)))

    def _index_restarts(self) -> None:
        """The index went to a copy in memory: what it covers is checked again from the start."""
        self._indexed = 0
        self._forget_written()

    def _forget_written(self) -> None:
        self._written = []
        self._written_ids = {}
        self._written_articles = {}

    def _unindexed_are_held(self) -> bool:
        """Whether all the log holds beyond the index is what this process wrote and still holds,
        so that ids can be looked up there, in memory, instead of indexing them first (a write
        transaction per append with ids: it tripled their cost)."""
        if not self._written or self._idx.db is None or self._written_at != self._indexed:
            return False
        last_offset, last_length = self._written[-1][0], self._written[-1][1]
        return os.fstat(self._read_fd).st_size == last_offset + last_length

    def lookup_ids(self, ids: Sequence[str]) -> dict[str, tuple[int, str, int]]:
        """`id -> (position, article, version)` for those of `ids` already in the log."""
        return self._checked_by_log(lambda: self._lookup_ids(ids))

    def _lookup_ids(self, ids: Sequence[str]) -> dict[str, tuple[int, str, int]]:
        with self._mutex:
            held = self._written_ids if self._unindexed_are_held() else {}
            if not held:
                self._sync_index()
            found: dict[str, tuple[int, str, int]] = {}
            for eid, pos, article, version in self._idx.ids(ids):
                found[eid] = (pos, article, version)
            for eid in ids:
                if eid in held:
                    found[eid] = held[eid]
            return found

    # --- writing -------------------------------------------------------------------------

    def _writer_fd(self) -> int:
        if self._write_fd is None:
            try:
                self._write_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
            except OSError as exc:
                raise StoreError(f"{self.log_path}: cannot write the log ({exc.strerror or exc}); nothing appended") from None
        return self._write_fd

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writers' lock (and this object's mutex) for the block (see `EventStore`);
        appends inside take neither again."""
        with self._mutex:
            self._lock.take(self.lock_timeout)
            outer, self._exclusive_owner = self._exclusive_owner, threading.get_ident()
            try:
                yield
            finally:
                self._exclusive_owner = outer
                self._lock.release()

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        self._lock.take(self.lock_timeout)
        try:
            yield
        finally:
            self._lock.release()

    def _refresh_writer(self, *, locked: bool) -> _WriterState:
        """Bring the writer's in-memory state to the end of the committed log. Under the write
        lock (`locked`), anything after the last complete append is a crash's leftover and is cut;
        without it, it may be an append in progress and is left alone."""
        state = self._writer
        if state is None:
            if locked:
                self._cut_torn_tail()
            else:
                self._sync_index()
            meta = self._idx.meta()
            state = _WriterState(end=self._indexed, position=int(meta.get("position", 0)), hash=str(meta.get("hash", codec.GENESIS_HASH)))
            for article, version, occurred in self._idx.article_states():
                state.versions[article] = version
                state.occurred[article] = occurred
            state.recorded_at = self._idx.last_recorded_at()
            self._writer = state
        size = os.fstat(self._read_fd).st_size
        if size < state.end:
            raise CorruptStoreError(f"{self.log_path}: the log is shorter than {state.end} bytes: something else truncated it")
        if size != state.end:
            scan = scan_log(self._read_fd, self.log_path, state.end, size, state.position, state.hash)
            for _, _, record, digest in scan.records:
                state.versions[record["article"]] = record["version"]
                state.occurred[record["article"]] = record["occurred_at"]
                state.proven.add(record["article"])
                state.recorded_at = max(state.recorded_at, record["recorded_at"])
                state.position, state.hash = record["pos"], digest
            state.end = scan.end
            if locked:
                self._cut_after(scan.end, size)
        return state

    def append(self, records: Sequence[NewRecord], expected_versions: Mapping[str, int] | None = None) -> AppendResult:
        """Append atomically (see `EventStore.append`); idempotent for explicitly given event ids.

        Group commit: appends that threads of this process make while another append is being
        written and synced wait for it, then go out together in one write and one sync (each
        still its own atomic append, checked on its own: one refused does not fail the others).
        Every append is durable when it returns."""
        pending = Pending.of(records, expected_versions)
        if self._exclusive_owner == threading.get_ident():
            # Inside `exclusive`: this thread holds the mutex and the writers' lock, and only its
            # own append goes (what it read must stay current until its own append).
            self._lead([pending])
            return pending.outcome()
        return self._groups.append(pending)

    def _lead_locked(self, group: list[Pending]) -> list[Pending]:
        with self._mutex:
            return self._lead(group)

    def _lead(self, group: list[Pending]) -> list[Pending]:
        """Commit the appends of `group` (one write, one sync) under the writers' lock (the
        caller holds the mutex); each gets its result or its own error. Returns the appends held
        back for the next group (an id also given by an earlier one of the group)."""
        try:
            self._lock.take(self.lock_timeout)
            try:
                return self._checked_by_log(lambda: self._commit_group(group))
            finally:
                self._lock.release()
        except LedgerError as exc:
            fail(group, exc)
            return []
        except BaseException as exc:
            fail(group, StoreError(f"{self.log_path}: append failed: {exc!r}"))
            raise

    def _commit_group(self, group: list[Pending]) -> list[Pending]:
        """Check, seal and write the appends of `group` (under the writers' lock); returns those
        left for the next group (an id also given by an earlier append of this one)."""
        for pending in group:
            # Run again after the index was rebuilt: nothing of the first run was written.
            pending.result = pending.error = None
        state = self._refresh_writer(locked=True)
        now, now_time = _now()
        if now < state.recorded_at:
            # The clock went back: recorded times never do.
            now, now_time = state.recorded_at, parse_time(state.recorded_at)
        # What the appends accepted so far will make of the log, over `state` until written.
        versions: dict[str, int] = {}
        occurred: dict[str, str] = {}
        position, prev, end = state.position, state.hash, state.end
        group_ids: set[str] = set()
        lines: list[bytes] = []
        sealed: list[Sealed] = []
        done: list[Accepted] = []
        deferred: list[Pending] = []
        for pending in group:
            records = pending.records
            if not group_ids.isdisjoint(pending.ids):
                deferred.append(pending)
                continue
            try:
                if any(r.explicit_id for r in records):
                    original = self.find_append(pending.ids)
                    if original is not None:
                        pending.result = original
                        continue
                for article in dict.fromkeys(record.article for record in records):
                    if article not in state.proven:
                        self._prove(state, article)
                # The first append of a group (most often the only one) reads the state as it is.
                current_versions: Mapping[str, int] = ChainMap(versions, state.versions) if versions else state.versions
                for article, expected in (pending.expected or {}).items():
                    current = current_versions.get(article, 0)
                    if current != expected:
                        raise VersionConflictError(
                            f"article {article!r} is at version {current}, not the expected {expected}; nothing appended",
                            article=article, expected=expected, actual=current,
                        )
                new, times = new_versions(records, current_versions, ChainMap(occurred, state.occurred) if occurred else state.occurred, now)
            except IndexMismatchError:
                raise
            except LedgerError as exc:
                pending.error = exc
                continue
            more_lines, more_sealed = seal_append(records, new, times, now, position, prev, end)
            first = position + 1
            position, prev = more_sealed[-1][2]["pos"], more_sealed[-1][3]
            end = more_sealed[-1][0] + more_sealed[-1][1]
            lines.extend(more_lines)
            sealed.extend(more_sealed)
            versions.update(new)
            occurred.update(times)
            group_ids.update(pending.ids)
            done.append((pending, new, times, first))
        if not lines:
            return deferred
        self._write(state, b"".join(lines))
        self._keep_for_index(sealed)
        state.position, state.hash, state.recorded_at = position, prev, now
        state.versions.update(versions)
        state.occurred.update(occurred)
        state.proven.update(versions)
        answer(done, now, now_time)
        return deferred

    def _prove(self, state: _WriterState, article: str) -> None:
        """Check the version and time the writer took from the index for `article` against the
        log: the article's latest indexed record must be that version, say so itself, and have
        the hash the index kept. Raises `IndexMismatchError` (the caller rebuilds the index)."""
        record = self._check.latest(article)
        version = record["version"] if record is not None else 0
        occurred = record["occurred_at"] if record is not None else None
        if version != state.versions.get(article, 0) or occurred != state.occurred.get(article):
            raise IndexMismatchError(f"{self.root / INDEX_FILE}: its version of {article!r} does not match the log")
        state.proven.add(article)

    def _keep_for_index(self, sealed: list[Sealed]) -> None:
        """Hold what was just written for the next index sync, if it continues what is held."""
        if not self._written or self._written[-1][0] + self._written[-1][1] != sealed[0][0]:
            self._forget_written()
            self._written_at = sealed[0][0]
        self._written.extend(sealed)
        self._written_ids.update((r["id"], (r["pos"], r["article"], r["version"])) for _, _, r, _ in sealed)
        by_article = self._written_articles
        for one in sealed:
            article = one[2]["article"]
            if article in by_article:
                by_article[article].append(one)
            else:
                by_article[article] = [one]
        if len(self._written) >= _WRITTEN_MAX:
            # A long run of appends with no read in between (an import): index what is held now,
            # rather than hold every record in memory or drop them and read the log back later.
            self._sync_index()

    def append_raw(self, lines: Sequence[bytes], labels: Sequence[str] | None = None) -> Head:
        """Append already sealed record lines exactly as they are (used by `import`). They must
        continue this log's positions and hash chain, hold known event types whose data fits
        their schema, number each article's versions without gaps (one version per append), start
        each article with `ArticleCreated`, and keep each article's `occurred_at` in order. All of
        it is checked before anything is written. `labels` name each line in errors (e.g. its
        `file:line`); by default `record N`."""
        if not lines:
            raise NothingToDoError("nothing to import")
        with self._mutex, self._write_lock():
            state = self._refresh_writer(locked=True)
            order = RecordOrder(state.versions, state.occurred)
            decoded = [open_sealed(line, import_label(labels, n)) for n, line in enumerate(lines, 1)]
            position, prev, recorded = check_continuation(decoded, labels, order, state.position, state.hash, state.recorded_at)
            self._write(state, b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
            state.position, state.hash, state.recorded_at = position, prev, recorded
            state.proven.update(article for article, version in order.versions.items() if version != state.versions.get(article))
            state.versions, state.occurred = order.versions, order.occurred
            return Head(position=position, hash=prev)

    def find_append(self, ids: Sequence[str]) -> AppendResult | None:
        """The original result of an append whose event ids are all `ids` (see `EventStore`)."""

        def times(first: int, last: int) -> list[tuple[str, str, str]]:
            with self._mutex:
                # The original append may not be indexed yet (a re-send is rare: indexing it now
                # costs nothing on the common path).
                self._sync_index()
                return self._idx.times_between(first, last)

        return original_result(ids, self.lookup_ids(ids), lambda first, last: self._checked_by_log(lambda: times(first, last)))

    def _write(self, state: _WriterState, data: bytes) -> None:
        fd = self._writer_fd()
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._bulk_depth:
                self._unsynced = True
            else:
                os.fdatasync(fd)
        except OSError as exc:
            # Leave the log exactly as it was: a partial append must not stay behind.
            try:
                os.ftruncate(fd, state.end)
            except OSError:
                log.error("%s: could not cut a failed append; the next writer will", self.log_path)
            raise StoreError(f"{self.log_path}: append failed: {exc.strerror or exc}") from None
        state.end += len(data)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Appends inside are not synced one by one; one `fdatasync` at the end makes them durable.
        A crash inside may lose the appends of the block (never corrupt the log)."""
        with self._mutex:
            self._bulk_depth += 1
        try:
            yield
        finally:
            with self._mutex:
                self._bulk_depth -= 1
                if self._bulk_depth == 0 and self._unsynced:
                    os.fdatasync(self._writer_fd())
                    self._unsynced = False

    # --- verification ----------------------------------------------------------------------

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Check every line: JSON, checksum, hash chain, gap-free positions, versions, appends
        closed (see `ledger.store.verify`); that what the index saw committed is still there; and
        that a torn tail is no loss the store's witness saw (which the next open would not cut)."""
        report = verify_log(self._read_fd, progress, self._committed_but_missing)
        if report.torn_tail_bytes and os.fstat(self._read_fd).st_size > report.log_bytes:
            # The log grew while it was read: its last bytes were an append another process was
            # writing, not a torn one.
            return report.model_copy(update={"torn_tail_bytes": 0})
        loss = self._witnessed_loss(report.head_position) if report.ok and report.torn_tail_bytes else None
        if loss is None:
            return report
        problem = Problem(position=report.head_position + 1, message=loss[0])
        return report.model_copy(update={"ok": False, "problems": [problem], "torn_tail_bytes": 0})

    def _committed_but_missing(self, size: int) -> str | None:
        """What the index saw committed that the log (`size` bytes when read) no longer holds
        unchanged, if anything (see `index.committed_but_missing`). Asked again while the log
        grows: another process may append and index past `size` after it was read, which is
        growth, not a cut."""
        for _ in range(10):
            missing = committed_but_missing(self._idx.path, self._marker["store_id"], size, self._read_fd, self.log_path)
            now = os.fstat(self._read_fd).st_size
            if missing is None or now == size:
                return missing
            size = now
        return missing

    def close(self) -> None:
        """Sync anything pending and release files and connections."""
        with self._mutex:
            if self._unsynced and self._write_fd is not None:
                os.fdatasync(self._write_fd)
                self._unsynced = False
            if self._written:
                # Index what this process wrote: the index's record of what was committed is what
                # tells a later cut of the log from a crash's torn tail. Best effort: it is a cache.
                try:
                    self._sync_index()
                except (sqlite3.Error, StoreError) as exc:
                    log.debug("index not brought up to date on close: %s", exc)
            self._lock.close()
            for fd in (self._write_fd, self._read_fd):
                if fd is not None:
                    with suppress(OSError):
                        os.close(fd)
            self._write_fd = None
            self._idx.close()
