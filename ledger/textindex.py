"""The text index: where phrases came in and went out, and who wrote each word, in `text.sqlite`.

This module is the one owner of `text.sqlite` (in memory for stores without a folder). Like the
catalog it is a projection of the log, caught up before each query by folding the records
appended since the position it last saw (one transaction), rebuilt from the log when that
position's hash no longer matches (another or a rewritten log), when its format is older than
this module's, and by `ledger replay`. Deleting the file is always safe.

Search. A phrase is its words (runs of letters and digits, in any case) in order, within one
line. Every line that holds a word is a stretch: the article, the part (title, body, update
block heading or text), the version that brought the line in and the one that took it out (none
while it stands). An edit closes the stretches of the whole lines it changed and opens stretches
for what they became (a line that comes out of the edit as it went in stays open); to find the
stretch of a line it takes out, each article's open stretches are kept with a 32-bit digest of
their line's text. So the number of an article part's lines holding a phrase changes, at each
version, by the stretches holding it that the version opened minus those it closed, with no
scan of the log.

Which stretches hold a phrase is found by an FTS5 index without positions (`detail=none`; the
lines' text is not kept either): positions were two thirds of a positional index. Its tokens are
each word with the word after it (`storm_hits`; `hits_` at the end of the line). Where a word
stands more than once in the line, the pair also says which time each of its words stands there
(`the_storm~2~0`: the second "the", a "storm" that stands once). A word alone is found as the
prefix `w_`, two words as their pair; a longer phrase as all its pairs, which must chain: the
pair ending on a word names the same time it stands as the pair starting from it (read from
`fts5vocab` for the pairs that name times), so the words stand one after the other.

Blame. `Attribution`s are kept as snapshots every `SNAPSHOT_EVERY` versions, written when a
blame folds past such a version, so a blame folds at most that many records onto a snapshot.
For restores, each text a version set (title, body, block) is noted by a hash of its content:
a version that sets a text to what it was at an earlier version takes that version's runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

from ledger import caches, codec
from ledger.attribution import Attribution, Runs, apply_attribution, settle_frame
from ledger.errors import InvalidInputError
from ledger.events import parse_time
from ledger.projections import SNAPSHOT_EVERY, ArticleState, apply
from ledger.store import EventStore, StoredRecord

log = logging.getLogger("ledger")

_T = TypeVar("_T")
_WORDS = re.compile(r"[^\W_]+")

TEXT_FILE = "text.sqlite"
FORMAT = 5
"""The layout of `text.sqlite`; an index of another format is rebuilt from the log when opened."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS articles (id INTEGER PRIMARY KEY, article TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS stretches (
    id INTEGER PRIMARY KEY, article INTEGER NOT NULL, part INTEGER NOT NULL, came INTEGER NOT NULL,
    went INTEGER);
CREATE TABLE IF NOT EXISTS open_lines (article INTEGER PRIMARY KEY, lines BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS lines_fts USING fts5(
    pairs, content='', columnsize=0, detail=none, tokenize="ascii tokenchars '_~'");
CREATE TABLE IF NOT EXISTS versions (
    article INTEGER NOT NULL, version INTEGER NOT NULL, occurred_at NOT NULL, actor TEXT,
    reason TEXT, PRIMARY KEY (article, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS texts (
    article INTEGER NOT NULL, kind INTEGER NOT NULL, digest INTEGER NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (article, kind, digest, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blame (
    article INTEGER NOT NULL, version INTEGER NOT NULL, runs BLOB NOT NULL,
    PRIMARY KEY (article, version)) WITHOUT ROWID;
"""

PARTS = ("title", "body", "heading", "block")
"""The parts a line is kept from (stored as their index here)."""

_KINDS = ("title", "body", "block")
"""The texts whose digests are kept for restores (stored as their index here)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True)


def _line_digest(line: str) -> int:
    """32 bits: enough to tell apart the few lines of one article part that stand at once."""
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big", signed=True)


def _block_key(heading: str, text: str) -> str:
    return heading + "\x00" + text


def _time_value(text: str) -> int | str:
    """A log time as microseconds since 1970 (8 bytes instead of 27) when `_time_text` gives it
    back as it was; other text as is."""
    try:
        moment = parse_time(text)
    except ValueError:
        return text
    value = (moment - _EPOCH) // timedelta(microseconds=1)
    return value if _time_text(value) == text else text


def _time_text(value: int | str) -> str:
    if isinstance(value, str):
        return value
    # A third of the time `format_time` takes (a blame names hundreds of versions).
    seconds, micros = divmod(value, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def words(text: str) -> list[str]:
    """The words of `text` as search compares them: runs of letters and digits, in lower case."""
    return _WORDS.findall(text.lower())


# ASCII letters and digits to themselves in lower case, every other byte to a space.
_ASCII_WORDS = bytes((code | 0x20 if chr(code).isalpha() else code) if chr(code).isalnum() else 32 for code in range(128)) + b" " * 128


def _tokens(line: str) -> str:
    """The FTS5 document of a line: each word with the next (the last with nothing), as `a_b`,
    or `a_b~i~j` when `a` or `b` stands more than once in the line (`i`, `j`: which time it
    stands there, counted from 1; 0 for a word that stands once)."""
    # ASCII translated and split: half the time of the pattern (a rebuild tokenizes every line
    # the log ever held).
    found = line.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split() if line.isascii() else words(line)
    pairs = list(map("_".join, zip(found, [*found[1:], ""], strict=True)))
    if len(set(found)) < len(found):
        counts = Counter(found)
        seen: dict[str, int] = {}
        tags = [0] * (len(found) + 1)
        tagged: set[int] = set()
        for at, word in enumerate(found):
            if counts[word] > 1:
                tags[at] = seen[word] = seen.get(word, 0) + 1
                tagged.update((at - 1, at) if at else (at,))
        for at in tagged:
            pairs[at] = f"{pairs[at]}~{tags[at]}~{tags[at + 1]}"
    return " ".join(pairs)


def _lines(text: str) -> list[str]:
    """The lines of `text` that hold a word (a line without one holds no phrase)."""
    return [line for line in text.split("\n") if _WORDS.search(line)]


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


Stretch = list[Any]
"""A stretch being folded: [id, article, part, came, went or None, FTS5 document]."""

OpenLines = dict[tuple[int, int], list[int]]
"""The ids of an article's open stretches by (part, digest of the line's text)."""


def _pack_open(lines: OpenLines) -> bytes:
    """An article's open stretches as the `open_lines` table keeps them: 9 bytes each, ids below
    2**32 (an index of open stretches took 13 bytes each, and a digest column 4 more for every
    stretch, open or not)."""
    rows = sorted((stretch, part, digest) for (part, digest), ids in lines.items() for stretch in ids)
    return (
        struct.pack(f"<{len(rows)}I", *(row[0] for row in rows))
        + bytes(row[1] for row in rows)
        + struct.pack(f"<{len(rows)}i", *(row[2] for row in rows))
    )


def _unpack_open(blob: bytes) -> OpenLines:
    """The open stretches that `_pack_open` packed."""
    count = len(blob) // 9
    ids = struct.unpack_from(f"<{count}I", blob)
    digests = struct.unpack_from(f"<{count}i", blob, 5 * count)
    lines: OpenLines = {}
    for stretch, part, digest in zip(ids, blob[4 * count : 5 * count], digests, strict=True):
        lines.setdefault((part, digest), []).append(stretch)
    return lines


class TextFold:
    """Folds records into stretches, version rows and text digests. `load(article, version)`
    gives an article's state at a version and `opened(article)` its stretches still open in the
    index (incremental catch-up); None folds from nothing. New stretches are numbered from
    `first`."""

    def __init__(
        self,
        load: Callable[[str, int], ArticleState | None] | None = None,
        opened: Callable[[str], OpenLines] | None = None,
        first: int = 1,
    ) -> None:
        self.states: dict[str, ArticleState] = {}
        self._load = load
        self._opened = opened
        self.next_id = first
        self.stretches: dict[int, Stretch] = {}
        """The stretches opened by this fold and not yet saved, by id."""
        self.closed: list[tuple[int, int]] = []
        """(version, id) of stretches saved earlier that this fold closed."""
        self.open: dict[str, OpenLines] = {}
        """The open stretches of each article the fold has seen."""
        self.finished: dict[str, OpenLines] = {}
        """Those of articles whose records are all folded, not yet saved."""
        self.versions: dict[tuple[str, int], tuple[str, int, str, str | None, str | None]] = {}
        self.texts: list[tuple[str, int, int, int]] = []
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
        if article not in self.open:
            self.open[article] = self._opened(article) if version > 1 and self._opened is not None else {}
        key = (article, version)
        if key not in self.versions:
            self.versions[key] = (article, version, record["occurred_at"], record.get("actor"), record.get("reason"))
        change = self.change
        if kind == "ArticleCreated":
            change(article, version, "title", "", data["title"])
            change(article, version, "body", "", data.get("body", ""))
            self.texts.append((article, 0, _digest(data["title"]), version))
            self.texts.append((article, 1, _digest(data.get("body", "")), version))
        elif before is not None and kind in ("ArticleEdited", "UpdateBlockEdited", "UpdateBlockRemoved"):
            old_title, old_body, old_blocks = before.title, before.body, list(before.blocks)
            after = apply(before, record)
            if kind == "ArticleEdited":
                if data.get("title") is not None:
                    change(article, version, "title", old_title, after.title)
                    self.texts.append((article, 0, _digest(after.title), version))
                if data.get("patch"):
                    self._patch(article, version, "body", old_body, after.body, data["patch"])
                    self.texts.append((article, 1, _digest(after.body), version))
            elif kind == "UpdateBlockEdited":
                index = data["index"]
                old_heading, old_text = old_blocks[index][0], old_blocks[index][1]
                heading, text = after.blocks[index][0], after.blocks[index][1]
                if data.get("heading") is not None:
                    change(article, version, "heading", old_heading, heading)
                if data.get("patch"):
                    self._patch(article, version, "block", old_text, text, data["patch"])
                self.texts.append((article, 2, _digest(_block_key(heading, text)), version))
            else:
                heading, text = old_blocks[data["index"]][0], old_blocks[data["index"]][1]
                change(article, version, "heading", heading, "")
                change(article, version, "block", text, "")
            self.states[article] = after
            self._done(record)
            return
        elif kind == "UpdateBlockAdded":
            change(article, version, "heading", "", data["heading"])
            change(article, version, "block", "", data.get("text", ""))
            self.texts.append((article, 2, _digest(_block_key(data["heading"], data.get("text", ""))), version))
        self.states[article] = apply(before, record)
        self._done(record)

    def _patch(self, article: str, version: int, part: str, old: str, new: str, patch: Any) -> None:
        before, after = _changed_lines(old, new, patch)
        self.change(article, version, part, "\n".join(before), "\n".join(after))

    def change(self, article: str, version: int, part: str, old: str, new: str) -> None:
        """The lines `old` of an article part became `new` at `version`: close the stretches of
        the lines that went, open stretches for those that came (a line in both stays open)."""
        went, came = Counter(_lines(old)), Counter(_lines(new))
        kept = went & came
        went -= kept
        came -= kept
        code = PARTS.index(part)
        opened = self.open[article]
        for line, count in went.items():
            ids = opened.get((code, _line_digest(line)))
            for _ in range(count):
                if not ids:
                    # The index lost track of this line (a 32-bit digest shared by two lines of
                    # the part, or an index older than the log): it can only be left open.
                    log.debug("no open stretch for a line of %s %s v%d", article, part, version)
                    break
                stretch = ids.pop()
                if stretch in self.stretches:
                    self.stretches[stretch][4] = version
                else:
                    self.closed.append((version, stretch))
        for line, count in came.items():
            digest = _line_digest(line)
            document = _tokens(line)
            for _ in range(count):
                self.stretches[self.next_id] = [self.next_id, article, code, version, None, document]
                opened.setdefault((code, digest), []).append(self.next_id)
                self.next_id += 1

    def forget(self, article: str) -> None:
        """Done with an article whose records are all folded: its state is dropped, its open
        stretches wait in `finished` to be saved."""
        self.states.pop(article, None)
        if article in self.open:
            self.finished[article] = self.open.pop(article)

    def _done(self, record: StoredRecord) -> None:
        self.position = record["pos"]
        self.hash = record["hash"]


def lines_holding(phrase: str, text: str) -> int:
    """How many lines of `text` hold `phrase` exactly as typed (case and punctuation; any run of
    spaces matches any run of spaces or tabs), not inside a longer word."""
    phrase_words = phrase.split()
    body = r"[^\S\n]+".join(re.escape(word) for word in phrase_words)
    if re.match(r"\w", phrase_words[0]):
        body = r"(?<!\w)" + body
    if re.search(r"\w$", phrase_words[-1]):
        body += r"(?!\w)"
    pattern = re.compile(body)
    return sum(1 for line in text.split("\n") if pattern.search(line))


def check_phrase(phrase: str) -> str:
    """The query of a phrase for `TextIndex.changes` (its words, in lower case, one space apart);
    raises `InvalidInputError` when it has no letter or digit."""
    if not isinstance(phrase, str) or not phrase.strip():
        raise InvalidInputError("the phrase to search for is empty")
    if "\n" in phrase or "\r" in phrase:
        raise InvalidInputError("the phrase to search for must be on one line")
    found = words(phrase)
    if not found:
        raise InvalidInputError(f"the phrase {phrase!r} has no letter or digit to search for")
    return " ".join(found)


def _match(wanted: list[str]) -> str:
    """The FTS5 query of the lines that hold each pair of consecutive words `wanted` (a word alone:
    that word followed by anything)."""
    if len(wanted) == 1:
        return f'"{wanted[0]}_"*'
    return " AND ".join(dict.fromkeys(f'("{word}_{after}" OR "{word}_{after}~"*)' for word, after in pairwise(wanted)))


def _chained(pairs: list[set[tuple[int, int]]]) -> bool:
    """Whether the pairs of a phrase's words, each given as the (i, j) of the times its words
    stand in a line (0: once), chain: the word ending one pair is the same time it stands as
    the word starting the next, so the words stand one after the other."""
    reached = {after for _, after in pairs[0]}
    for pair in pairs[1:]:
        reached = {after for before, after in pair if before in reached}
        if not reached:
            return False
    return True


class TextIndex:
    """The text index of one store (`text.sqlite` in its folder, in memory without one)."""

    def __init__(self, store: EventStore, load: Callable[[str, int], ArticleState | None]) -> None:
        self.store = store
        self.path = cache / TEXT_FILE if (cache := store.cache_dir) is not None else None
        self._load = load
        self._db: sqlite3.Connection | None = None
        self._mutex = threading.RLock()
        self._in_memory = False
        self._ids: dict[str, int] = {}
        self._generation: object = None
        """Article numbers already looked up (forgotten with the tables or a rolled-back write)."""

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path is not None and caches.writable(self.path):
                db = caches.open_file(self.path)
                self._create(db)
            else:
                db = self._memory()
            self._db = db
            self._ids.clear()
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
                self._ids.clear()
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
            self._ids.clear()
            raise
        db.execute("COMMIT")

    def _checkpoint(self, db: sqlite3.Connection) -> tuple[int, str]:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("generation") != self._generation:
            # Another process rebuilt the index: its article numbers are new.
            self._ids.clear()
            self._generation = meta.get("generation")
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
        another log or is of another format."""
        return self._guarded(self._refresh)

    def _refresh(self, db: sqlite3.Connection) -> sqlite3.Connection:
        with self._mutex:
            position, digest = self._checkpoint(db)
            if position == self.store.head().position and self._matches(position, digest):
                return db
            with self._write(db):
                position, digest = self._checkpoint(db)
                if position < 0:
                    log.warning("text index is of another format, rebuilding it")
                    position = 0
                elif not self._matches(position, digest):
                    log.warning("text index does not match the log, rebuilding it")
                    position = 0
                if position == 0:
                    self._fill(db)
                    return db
                fold = TextFold(self._load, lambda article: self._opened(db, article), self._next_id(db))
                fold.position, fold.hash = position, digest
                for record in self.store.read(position):
                    fold.fold(record)
                self._save(db, fold)
            return db

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Throw the index away and fold the whole log again (`ledger replay`);
        `progress(records_folded, head_position)` is called as it goes."""
        self._guarded(lambda db: self._rebuild(db, progress))

    def _rebuild(self, db: sqlite3.Connection, progress: Callable[[int, int], None] | None) -> None:
        with self._mutex, self._write(db):
            self._fill(db, progress)

    def _fill(self, db: sqlite3.Connection, progress: Callable[[int, int], None] | None = None) -> None:
        """Clear the index and fold the log into it, inside the caller's transaction."""
        self._clear(db)
        # Terms gathered in memory up to 64 MB before they are written: a third of the time.
        db.execute("INSERT INTO lines_fts (lines_fts, rank) VALUES ('hashsize', 67108864)")
        # Article by article, so that one article's state is in memory at a time (folding the
        # log in order kept every article's, over a gigabyte for a million events). The head is
        # read first: each article is read up to it, and no further, so that the index stands
        # exactly at the head, whatever is appended meanwhile.
        head = self.store.head()
        fold = TextFold()
        folded = 0
        for article, version in sorted(self.store.articles().items()):
            for record in self.store.read_article(article, 1, version):
                if record["pos"] <= head.position:
                    fold.fold(record)
                    folded += 1
            fold.forget(article)
            if len(fold.stretches) > 50_000:
                self._save(db, fold)
                if progress is not None:
                    progress(folded, head.position)
        fold.position, fold.hash = head.position, head.hash
        self._save(db, fold)
        # One b-tree per token instead of one per batch saved: a fifth smaller.
        db.execute("INSERT INTO lines_fts (lines_fts) VALUES ('optimize')")
        if progress is not None:
            progress(head.position, head.position)

    def _clear(self, db: sqlite3.Connection) -> None:
        self._ids.clear()
        # Every table, those of older formats too (format 4's `lines`); virtual tables first,
        # which drop their own shadow tables.
        for virtual in (True, False):
            for (table,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND (sql LIKE 'CREATE VIRTUAL%') = ?",
                (virtual,),
            ).fetchall():
                db.execute(f'DROP TABLE IF EXISTS "{table}"')
        self._create(db)
        self._generation = os.urandom(8).hex()
        db.execute("INSERT INTO meta (key, value) VALUES ('generation', ?)", (self._generation,))

    def _article_id(self, db: sqlite3.Connection, article: str, create: bool = False) -> int | None:
        """The number of an article in this index (None if it has none and `create` is false)."""
        number = self._ids.get(article)
        if number is None:
            if create:
                db.execute("INSERT OR IGNORE INTO articles (article) VALUES (?)", (article,))
            row = db.execute("SELECT id FROM articles WHERE article = ?", (article,)).fetchone()
            if row is None:
                return None
            number = self._ids[article] = int(row[0])
        return number

    def _article_names(self, db: sqlite3.Connection, numbers: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(numbers))
        names: dict[int, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            names.update(db.execute(f"SELECT id, article FROM articles WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
        return names

    def _next_id(self, db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM stretches").fetchone()[0])

    def _opened(self, db: sqlite3.Connection, article: str) -> OpenLines:
        """The article's open stretches."""
        row = db.execute("SELECT lines FROM open_lines WHERE article = ?", (self._article_id(db, article),)).fetchone()
        return _unpack_open(row[0]) if row is not None else {}

    def _save(self, db: sqlite3.Connection, fold: TextFold) -> None:
        ids = {
            article: self._article_id(db, article, create=True)
            for article in dict.fromkeys([s[1] for s in fold.stretches.values()] + [v[0] for v in fold.versions.values()] + [t[0] for t in fold.texts])
        }
        stretches = fold.stretches.values()
        db.executemany(
            "INSERT INTO stretches (id, article, part, came, went) VALUES (?, ?, ?, ?, ?)",
            [(s[0], ids[s[1]], s[2], s[3], s[4]) for s in stretches],
        )
        db.executemany("INSERT INTO lines_fts (rowid, pairs) VALUES (?, ?)", [(s[0], s[5]) for s in stretches])
        db.executemany(
            "INSERT OR REPLACE INTO open_lines (article, lines) VALUES (?, ?)",
            [(self._article_id(db, article, create=True), _pack_open(lines)) for article, lines in (*fold.finished.items(), *fold.open.items())],
        )
        db.executemany("UPDATE stretches SET went = ? WHERE id = ?", fold.closed)
        db.executemany(
            "INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?)",
            [(ids[article], version, _time_value(when), actor, reason) for article, version, when, actor, reason in fold.versions.values()],
        )
        db.executemany("INSERT OR IGNORE INTO texts VALUES (?, ?, ?, ?)", [(ids[article], kind, digest, version) for article, kind, digest, version in fold.texts])
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT), ("position", fold.position), ("hash", fold.hash)],
        )
        fold.stretches.clear()
        fold.finished.clear()
        fold.closed.clear()
        fold.versions.clear()
        fold.texts.clear()

    # --- queries -----------------------------------------------------------------------------

    def changes(self, query: str, article: str | None) -> list[tuple[str, int, str, int]]:
        """For each (article, version, part) whose changed lines hold `query` (from
        `check_phrase`): how many more lines of that part hold it after the version than before
        (which may be 0), in article and version order."""
        return self._guarded(lambda db: self._changes(self._refresh(db), query, article))

    def _changes(self, db: sqlite3.Connection, query: str, article: str | None) -> list[tuple[str, int, str, int]]:
        wanted = query.split()
        sql = "SELECT s.id, s.article, s.part, s.came, s.went FROM lines_fts JOIN stretches s ON s.id = lines_fts.rowid WHERE lines_fts MATCH ?"
        arguments: list[Any] = [_match(wanted)]
        if article is not None:
            number = self._article_id(db, article)
            if number is None:
                return []
            sql += " AND s.article = ?"
            arguments.append(number)
        rows = db.execute(sql, arguments).fetchall()
        if len(wanted) > 2 and rows:
            rows = self._chains(db, wanted, rows)
        names = self._article_names(db, (row[1] for row in rows))
        deltas: dict[tuple[str, int, int], int] = {}
        for _, number, part, came, went in rows:
            key = (names[number], came, part)
            deltas[key] = deltas.get(key, 0) + 1
            if went is not None:
                key = (names[number], went, part)
                deltas[key] = deltas.get(key, 0) - 1
        return [(name, version, PARTS[part], delta) for (name, version, part), delta in sorted(deltas.items())]

    def _chains(self, db: sqlite3.Connection, wanted: list[str], rows: list[Any]) -> list[Any]:
        """The `rows` whose lines hold the words `wanted` one after the other (they hold every
        pair of them): where a word repeats in a line, its pairs must chain through the same
        time it stands there."""
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.lines_terms USING fts5vocab(main, lines_fts, instance)")
        # The rows' lines, so that the others are left out inside SQLite (a pair names times in
        # ten times as many lines as hold the whole phrase).
        db.execute("CREATE TABLE IF NOT EXISTS temp.chained_lines (id INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM temp.chained_lines")
        db.executemany("INSERT OR IGNORE INTO temp.chained_lines (id) VALUES (?)", ((row[0],) for row in rows))
        tagged: list[dict[int, set[tuple[int, int]]]] = []
        for word, after in pairwise(wanted):
            low = f"{word}_{after}~"
            found: dict[int, set[tuple[int, int]]] = {}
            # The pair's terms in lines where one of its words repeats: one range of terms.
            for term, document in db.execute(
                "SELECT term, doc FROM temp.lines_terms WHERE term >= ? AND term < ? AND doc IN (SELECT id FROM temp.chained_lines)",
                (low, low[:-1] + "\x7f"),
            ):
                first, second = term[len(low) :].split("~")
                found.setdefault(document, set()).add((int(first), int(second)))
            tagged.append(found)
        once = {(0, 0)}
        return [row for row in rows if _chained([found.get(row[0], once) for found in tagged])]

    def version_info(self, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
        """(occurred_at, actor, reason) of each (article, version) wanted."""
        pairs = sorted(set(wanted))

        def read(db: sqlite3.Connection) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
            self._refresh(db)
            found: dict[tuple[str, int], tuple[str, str | None, str | None]] = {}
            for start in range(0, len(pairs), 5000):
                chunk = pairs[start : start + 5000]
                # A join, so that each pair is looked up by the primary keys (`IN (VALUES ...)`
                # scanned the whole table).
                rows = db.execute(
                    "SELECT w.column1, v.version, v.occurred_at, v.actor, v.reason"
                    f" FROM (VALUES {', '.join(['(?, ?)'] * len(chunk))}) AS w JOIN articles a ON a.article = w.column1"
                    " JOIN versions v ON v.article = a.id AND v.version = w.column2",
                    [value for pair in chunk for value in pair],
                ).fetchall()
                found.update(((article, version), (_time_text(when), actor, reason)) for article, version, when, actor, reason in rows)
            return found

        return self._guarded(read) if pairs else {}

    # --- blame -------------------------------------------------------------------------------

    def attribution(self, article: str, version: int) -> Attribution:
        """The runs of the article at `version` (which it must have)."""
        return self._guarded(lambda db: self._attribution(self._refresh(db), article, version))

    def _attribution(self, db: sqlite3.Connection, article: str, version: int) -> Attribution:
        number = self._article_id(db, article)
        row = db.execute(
            "SELECT version, runs FROM blame WHERE article = ? AND version <= ? ORDER BY version DESC LIMIT 1",
            (number, version),
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
                (self._article_id(db, record["article"]), _KINDS.index(what), _digest(text), version),
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
                (self._article_id(db, article), attribution.version, codec.dumps(attribution.to_list())),
            )
        except sqlite3.Error as exc:
            log.debug("blame snapshot of %s v%d not kept: %s", article, attribution.version, exc)


__all__ = ["FORMAT", "PARTS", "TEXT_FILE", "Runs", "TextFold", "TextIndex", "check_phrase", "lines_holding", "words"]
