"""The text index: where phrases came in and went out, and who wrote each word, in `text.sqlite`.

This module is the one owner of `text.sqlite` (in memory for stores without a folder). Like the
catalog it is a projection of the log, caught up before each query by folding the records
appended since the position it last saw (one transaction), rebuilt from the log when that
position's hash no longer matches (another or a rewritten log) and by `ledger replay`. Deleting
the file is always safe.

Search. For every event that changes text, the lines it changed are indexed, before (`side` -1)
and after (+1), one FTS5 document per line: a new title, heading or block whole, a patch's
operations widened to whole lines. A phrase never spans lines, so the number of lines of an
article's part that hold a phrase changes, at each version, by the number of that version's new
lines that hold it minus the number of its old lines that did: the versions where the phrase came
in and went out follow from the index alone (contentless: the lines' text is not kept), with no
scan of the log. Matching is FTS5's: the phrase's words in order, in any case, whatever
punctuation or spaces stand between them.

Blame. `Attribution`s are kept as snapshots every `SNAPSHOT_EVERY` versions, written when a
blame folds past such a version, so a blame folds at most that many records onto a snapshot.
For restores, each text a version set (title, body, block) is noted by a hash of its content:
a version that sets a text to what it was at an earlier version takes that version's runs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ledger import caches, codec
from ledger.attribution import Attribution, Runs, apply_attribution, settle_frame
from ledger.errors import InvalidInputError
from ledger.projections import SNAPSHOT_EVERY, ArticleState, apply
from ledger.store import EventStore, StoredRecord

log = logging.getLogger("ledger")

_T = TypeVar("_T")
_WORD = re.compile(r"[^\W_]")

TEXT_FILE = "text.sqlite"
FORMAT = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS articles (id INTEGER PRIMARY KEY, article TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY, article INTEGER NOT NULL, version INTEGER NOT NULL, part INTEGER NOT NULL,
    side INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS lines_fts USING fts5(
    text, content='', columnsize=0, tokenize='unicode61 remove_diacritics 0');
CREATE TABLE IF NOT EXISTS versions (
    article TEXT NOT NULL, version INTEGER NOT NULL, occurred_at TEXT NOT NULL, actor TEXT,
    reason TEXT, PRIMARY KEY (article, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS texts (
    article TEXT NOT NULL, kind TEXT NOT NULL, digest INTEGER NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (article, kind, digest, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blame (
    article TEXT NOT NULL, version INTEGER NOT NULL, runs BLOB NOT NULL,
    PRIMARY KEY (article, version)) WITHOUT ROWID;
"""

_TABLES = ("meta", "articles", "lines", "lines_fts", "versions", "texts", "blame")

PARTS = ("title", "body", "heading", "block")
"""The parts a line is kept from (stored as their index here)."""

Line = tuple[str, int, str, int, str]
"""A kept line run: (article, version, part, side, text)."""


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True)


def _block_key(heading: str, text: str) -> str:
    return heading + "\x00" + text


def _changed_lines(old: str, new: str, patch: Iterable[Any]) -> tuple[list[str], list[str]]:
    """The whole lines of `old` that `patch` changes, and what they became in `new`."""
    ranges: list[list[int]] = []
    for start, end, text in patch:
        low = old.rfind("\n", 0, start) + 1
        stop = old.find("\n", end)
        high = len(old) if stop < 0 else stop + 1
        shift = len(text) - (end - start)
        if ranges and low <= ranges[-1][1]:
            ranges[-1][1] = max(high, ranges[-1][1])
            ranges[-1][2] += shift
        else:
            ranges.append([low, high, shift])
    before: list[str] = []
    after: list[str] = []
    moved = 0
    for low, high, shift in ranges:
        before.append(old[low:high])
        after.append(new[low + moved : high + moved + shift])
        moved += shift
    return before, after


class TextFold:
    """Folds records into kept lines, version rows and text digests. `load(article, version)`
    gives an article's state at a version (incremental catch-up); None folds from nothing."""

    def __init__(self, load: Callable[[str, int], ArticleState | None] | None = None) -> None:
        self.states: dict[str, ArticleState] = {}
        self._load = load
        self.lines: list[Line] = []
        self.versions: dict[tuple[str, int], tuple[str, int, str, str | None, str | None]] = {}
        self.texts: list[tuple[str, str, int, int]] = []
        self.position = 0
        self.hash = ""

    def fold(self, record: StoredRecord) -> None:
        """Fold one record (upcast, in log order)."""
        article, version, kind, data = record["article"], record["version"], record["type"], record["data"]
        before = self.states.get(article)
        if before is None and version > 1 and self._load is not None:
            loaded = self._load(article, version - 1)
            # A copy: the fold changes states in place, and the loader may hand out a cached one.
            before = loaded.copy() if loaded is not None else None
        key = (article, version)
        if key not in self.versions:
            self.versions[key] = (article, version, record["occurred_at"], record.get("actor"), record.get("reason"))
        keep = self.keep
        if kind == "ArticleCreated":
            keep(article, version, "title", 1, data["title"])
            if data.get("body"):
                keep(article, version, "body", 1, data["body"])
            self.texts.append((article, "title", _digest(data["title"]), version))
            self.texts.append((article, "body", _digest(data.get("body", "")), version))
        elif before is not None and kind in ("ArticleEdited", "UpdateBlockEdited", "UpdateBlockRemoved"):
            old_title, old_body, old_blocks = before.title, before.body, list(before.blocks)
            after = apply(before, record)
            if kind == "ArticleEdited":
                if data.get("title") is not None:
                    keep(article, version, "title", -1, old_title)
                    keep(article, version, "title", 1, after.title)
                    self.texts.append((article, "title", _digest(after.title), version))
                if data.get("patch"):
                    self._patch(article, version, "body", old_body, after.body, data["patch"])
                    self.texts.append((article, "body", _digest(after.body), version))
            elif kind == "UpdateBlockEdited":
                index = data["index"]
                old_heading, old_text = old_blocks[index][0], old_blocks[index][1]
                heading, text = after.blocks[index][0], after.blocks[index][1]
                if data.get("heading") is not None:
                    keep(article, version, "heading", -1, old_heading)
                    keep(article, version, "heading", 1, heading)
                if data.get("patch"):
                    self._patch(article, version, "block", old_text, text, data["patch"])
                self.texts.append((article, "block", _digest(_block_key(heading, text)), version))
            else:
                heading, text = old_blocks[data["index"]][0], old_blocks[data["index"]][1]
                keep(article, version, "heading", -1, heading)
                if text:
                    keep(article, version, "block", -1, text)
            self.states[article] = after
            self._done(record)
            return
        elif kind == "UpdateBlockAdded":
            keep(article, version, "heading", 1, data["heading"])
            if data.get("text"):
                keep(article, version, "block", 1, data["text"])
            self.texts.append((article, "block", _digest(_block_key(data["heading"], data.get("text", ""))), version))
        self.states[article] = apply(before, record)
        self._done(record)

    def _patch(self, article: str, version: int, part: str, old: str, new: str, patch: Any) -> None:
        before, after = _changed_lines(old, new, patch)
        for text in before:
            self.keep(article, version, part, -1, text)
        for text in after:
            self.keep(article, version, part, 1, text)

    def keep(self, article: str, version: int, part: str, side: int, text: str) -> None:
        """Keep each line of `text` that holds a word (a line without one holds no phrase)."""
        for line in text.split("\n"):
            if _WORD.search(line):
                self.lines.append((article, version, part, side, line))

    def _done(self, record: StoredRecord) -> None:
        self.position = record["pos"]
        self.hash = record["hash"]


def lines_holding(phrase: str, text: str) -> int:
    """How many lines of `text` hold `phrase` exactly as typed (case and punctuation; any run of
    spaces matches any run of spaces or tabs), not inside a longer word."""
    words = phrase.split()
    body = r"[^\S\n]+".join(re.escape(word) for word in words)
    if re.match(r"\w", words[0]):
        body = r"(?<!\w)" + body
    if re.search(r"\w$", words[-1]):
        body += r"(?!\w)"
    pattern = re.compile(body)
    return sum(1 for line in text.split("\n") if pattern.search(line))


def check_phrase(phrase: str) -> str:
    """The FTS5 query of a phrase; raises `InvalidInputError` when it has no letter or digit."""
    if not isinstance(phrase, str) or not phrase.strip():
        raise InvalidInputError("the phrase to search for is empty")
    if "\n" in phrase or "\r" in phrase:
        raise InvalidInputError("the phrase to search for must be on one line")
    tokens = re.findall(r"[^\W_]+", phrase)
    if not tokens:
        raise InvalidInputError(f"the phrase {phrase!r} has no letter or digit to search for")
    return '"' + " ".join(tokens) + '"'


class TextIndex:
    """The text index of one store (`text.sqlite` in its folder, in memory without one)."""

    def __init__(self, store: EventStore, load: Callable[[str, int], ArticleState | None]) -> None:
        self.store = store
        self.path = cache / TEXT_FILE if (cache := store.cache_dir) is not None else None
        self._load = load
        self._db: sqlite3.Connection | None = None
        self._mutex = threading.RLock()
        self._in_memory = False

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path is not None and caches.writable(self.path):
                db = caches.open_file(self.path)
                self._create(db)
            else:
                db = self._memory()
            self._db = db
        return self._db

    def _memory(self) -> sqlite3.Connection:
        self._in_memory = True
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._create(db)
        return db

    def _guarded(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """`work(db)`; when the file fails (a full disk, a read-only or damaged file), again on an
        index in memory, built afresh from the log, for the rest of this process."""
        with self._mutex:
            try:
                return work(self._open())
            except sqlite3.Error as exc:
                if self._in_memory:
                    raise caches.store_error(self.path or Path(TEXT_FILE), exc) from None
                if self._db is not None:
                    caches.leave_file(self._db, self.path, "text index", exc)
                    self._db.close()
                self._db = self._memory()
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                raise caches.store_error(self.path or Path(TEXT_FILE), exc) from None

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                db.execute(statement)

    def close(self) -> None:
        """Close the file."""
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _write(self, db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _checkpoint(self, db: sqlite3.Connection) -> tuple[int, str]:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format", FORMAT) != FORMAT:
            return -1, ""
        return int(meta.get("position", 0)), str(meta.get("hash", ""))

    def _matches(self, position: int, digest: str) -> bool:
        if position == 0:
            return True
        for record in self.store.read(position - 1, position):
            return bool(record.get("hash") == digest)
        return False

    def refresh(self) -> sqlite3.Connection:
        """Fold the records appended since the index last looked; rebuild it when it belongs to
        another log."""
        return self._guarded(self._refresh)

    def _refresh(self, db: sqlite3.Connection) -> sqlite3.Connection:
        with self._mutex:
            position, digest = self._checkpoint(db)
            if position == self.store.head().position and self._matches(position, digest):
                return db
            with self._write(db):
                position, digest = self._checkpoint(db)
                if position < 0 or not self._matches(position, digest):
                    log.warning("text index does not match the log, rebuilding it")
                    self._clear(db)
                    position = 0
                fold = TextFold(None if position == 0 else self._load)
                fold.position, fold.hash = position, digest
                for record in self.store.read(position):
                    fold.fold(record)
                self._save(db, fold)
            return db

    def rebuild(self) -> None:
        """Throw the index away and fold the whole log again (`ledger replay`)."""
        self._guarded(self._rebuild)

    def _rebuild(self, db: sqlite3.Connection) -> None:
        with self._mutex, self._write(db):
            self._clear(db)
            # Article by article, so that one article's state is in memory at a time (folding
            # the log in order kept every article's, over a gigabyte for a million events). The
            # head is read first: each article is read up to it, and no further, so that the
            # index stands exactly at the head, whatever is appended meanwhile.
            head = self.store.head()
            fold = TextFold()
            for article, version in sorted(self.store.articles().items()):
                for record in self.store.read_article(article, 1, version):
                    if record["pos"] <= head.position:
                        fold.fold(record)
                fold.states.pop(article, None)
                if len(fold.lines) > 50_000:
                    self._save(db, fold)
            fold.position, fold.hash = head.position, head.hash
            self._save(db, fold)

    def _clear(self, db: sqlite3.Connection) -> None:
        for table in _TABLES:
            db.execute(f"DROP TABLE IF EXISTS {table}")
        self._create(db)

    def _save(self, db: sqlite3.Connection, fold: TextFold) -> None:
        ids: dict[str, int] = {}
        for article in dict.fromkeys(line[0] for line in fold.lines):
            db.execute("INSERT OR IGNORE INTO articles (article) VALUES (?)", (article,))
            ids[article] = db.execute("SELECT id FROM articles WHERE article = ?", (article,)).fetchone()[0]
        # Ids given here, so that lines and their documents go in by executemany (a row at a
        # time cost a rebuild most of its time).
        first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM lines").fetchone()[0]
        db.executemany(
            "INSERT INTO lines (id, article, version, part, side) VALUES (?, ?, ?, ?, ?)",
            [(first + n, ids[article], version, PARTS.index(part), side) for n, (article, version, part, side, _) in enumerate(fold.lines)],
        )
        db.executemany("INSERT INTO lines_fts (rowid, text) VALUES (?, ?)", [(first + n, line[4]) for n, line in enumerate(fold.lines)])
        db.executemany("INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?)", fold.versions.values())
        db.executemany("INSERT OR IGNORE INTO texts VALUES (?, ?, ?, ?)", fold.texts)
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT), ("position", fold.position), ("hash", fold.hash)],
        )
        fold.lines.clear()
        fold.versions.clear()
        fold.texts.clear()

    # --- queries -----------------------------------------------------------------------------

    def changes(self, query: str, article: str | None) -> list[tuple[str, int, str, int]]:
        """For each (article, version, part) whose changed lines hold the FTS5 `query`: how many
        more lines of that part hold it after the version than before (which may be 0), in
        article and version order."""
        return self._guarded(lambda db: self._changes(self._refresh(db), query, article))

    def _changes(self, db: sqlite3.Connection, query: str, article: str | None) -> list[tuple[str, int, str, int]]:
        sql = (
            "SELECT a.article, l.version, l.part, sum(l.side) FROM lines_fts f JOIN lines l ON l.id = f.rowid"
            " JOIN articles a ON a.id = l.article WHERE lines_fts MATCH ?"
        )
        arguments: list[Any] = [query]
        if article is not None:
            sql += " AND a.article = ?"
            arguments.append(article)
        rows = db.execute(sql + " GROUP BY a.article, l.version, l.part ORDER BY a.article, l.version", arguments).fetchall()
        return [(name, version, PARTS[part], delta) for name, version, part, delta in rows]

    def version_info(self, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
        """(occurred_at, actor, reason) of each (article, version) wanted."""
        pairs = sorted(set(wanted))

        def read(db: sqlite3.Connection) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
            self._refresh(db)
            found: dict[tuple[str, int], tuple[str, str | None, str | None]] = {}
            for start in range(0, len(pairs), 5000):
                chunk = pairs[start : start + 5000]
                # A join, so that each pair is looked up by the primary key (`IN (VALUES ...)`
                # scanned the whole table).
                rows = db.execute(
                    "SELECT v.article, v.version, v.occurred_at, v.actor, v.reason"
                    f" FROM (VALUES {', '.join(['(?, ?)'] * len(chunk))}) AS w"
                    " JOIN versions v ON v.article = w.column1 AND v.version = w.column2",
                    [value for pair in chunk for value in pair],
                ).fetchall()
                found.update(((article, version), (when, actor, reason)) for article, version, when, actor, reason in rows)
            return found

        return self._guarded(read) if pairs else {}

    # --- blame -------------------------------------------------------------------------------

    def attribution(self, article: str, version: int) -> Attribution:
        """The runs of the article at `version` (which it must have)."""
        return self._guarded(lambda db: self._attribution(self._refresh(db), article, version))

    def _attribution(self, db: sqlite3.Connection, article: str, version: int) -> Attribution:
        row = db.execute(
            "SELECT version, runs FROM blame WHERE article = ? AND version <= ? ORDER BY version DESC LIMIT 1",
            (article, version),
        ).fetchone()
        attribution = Attribution.from_list(codec.loads(row[1])) if row is not None else Attribution()
        if attribution.version == version:
            return attribution
        state = self._load(article, attribution.version) if attribution.version else None
        records = self.store.read_article(article, attribution.version + 1, version)
        for index, record in enumerate(records):
            apply_attribution(attribution, state, record)
            state = apply(state.copy() if state is not None else None, record)
            self._restored(db, attribution, state, record)
            ends_version = index + 1 == len(records) or records[index + 1]["version"] != record["version"]
            if ends_version:
                settle_frame(attribution, state)
            if ends_version and record["version"] % SNAPSHOT_EVERY == 0:
                self._keep(db, article, attribution)
        return attribution

    def _restored(self, db: sqlite3.Connection, attribution: Attribution, state: ArticleState, record: StoredRecord) -> None:
        """A text that `record` set back to what it was at an earlier version takes its runs then."""
        kind, data, version = record["type"], record["data"], record["version"]
        wanted: list[tuple[str, str, int | None]] = []
        if kind == "ArticleEdited":
            if data.get("title") is not None:
                wanted.append(("title", state.title, None))
            if data.get("patch"):
                wanted.append(("body", state.body, None))
        elif kind in ("UpdateBlockAdded", "UpdateBlockEdited"):
            index = data.get("index")
            index = len(state.blocks) - 1 if index is None else index
            heading, text = state.blocks[index][0], state.blocks[index][1]
            wanted.append(("block", _block_key(heading, text), index))
        for what, text, index in wanted:
            found = db.execute(
                "SELECT max(version) FROM texts WHERE article = ? AND kind = ? AND digest = ? AND version < ?",
                (record["article"], what, _digest(text), version),
            ).fetchone()
            if found is None or found[0] is None:
                continue
            earlier = self._attribution(db, record["article"], found[0])
            if what == "title":
                attribution.title = earlier.title
            elif what == "body":
                attribution.body = earlier.body
            else:
                then = self._load(record["article"], found[0])
                assert index is not None and then is not None
                for position, block in enumerate(then.blocks):
                    if _block_key(block[0], block[1]) == text:
                        attribution.blocks[index] = earlier.blocks[position]
                        break

    def _keep(self, db: sqlite3.Connection, article: str, attribution: Attribution) -> None:
        """Keep a snapshot; skipped when the file cannot be written now (snapshots only save time)."""
        try:
            db.execute(
                "INSERT OR REPLACE INTO blame (article, version, runs) VALUES (?, ?, ?)",
                (article, attribution.version, codec.dumps(attribution.to_list())),
            )
        except sqlite3.Error as exc:
            log.debug("blame snapshot of %s v%d not kept: %s", article, attribution.version, exc)


__all__ = ["PARTS", "TEXT_FILE", "Runs", "TextFold", "TextIndex", "check_phrase", "lines_holding"]
