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
stretch of a line it takes out, each article's open stretches are kept in the order their lines
stand in its text (which the article's state gives back). Stretches are kept 64 to a row, each
article's numbered in runs. So the number of an article part's lines holding a phrase changes,
at each version, by the stretches holding it that the version opened minus those it closed,
with no scan of the log.

A line of prose is a paragraph, and an edit of one word in it opens a stretch for the whole
paragraph again; so the text is indexed by sentence (ending at `.`, `!` or `?` before a space),
each sentence once however many lines, versions and articles hold it, and a stretch keeps the
numbers of its line's sentences in turn (`lines_fts` finds the lines that hold a sentence).
Sentences are found by an FTS5 index without positions (`detail=none`; no text is kept): its
tokens are each word with the word after it (`storm_hits`), the first word after nothing
(`_storm`) and the last before nothing (`hits_`). Where a word stands more than once in the
sentence, its pairs also say which time each word stands there (`the_storm~2~0`: the second
"the", a "storm" that stands once). A word alone is found as the prefix `w_`, two words as their
pair; a longer phrase as all its pairs, which must chain: the pair ending on a word names the
same time it stands as the pair starting from it (read from `fts5vocab` for the pairs that name
times), so the words stand one after the other. A phrase across sentences is, in turn, the end of
a sentence (its pairs and `w_`), whole sentences and the start of a sentence (`_w` and its
pairs): the lines whose sentences hold those parts one right after the other hold it. Each
sentence is numbered once: a fold knows the numbers of the sentences it has met (by a digest of
their words, in memory), catching up also those of the lines each edit takes out; a sentence it
has not met is looked for in the FTS5 index by all its tokens (only that sentence holds them all).

Blame. `Attribution`s are kept as snapshots every `SNAPSHOT_EVERY` versions, written when a
blame folds past such a version, so a blame folds at most that many records onto a snapshot.
For restores, each version notes a 4-byte digest of each text it set (the title and body as the
version ends them, every block it added or changed): a version that sets a text to what it was
at an earlier version (compared whole) takes that version's runs. Version rows (time, actor,
reason, digests) are kept 64 versions of an article to a row, packed.
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
import unicodedata
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

from ledger import caches, codec
from ledger.attribution import Attribution, Runs, apply_attribution, settle_frame
from ledger.errors import InvalidInputError, LedgerError
from ledger.events import parse_time
from ledger.projections import SNAPSHOT_EVERY, UNFOLDABLE, ArticleState, apply, unfoldable
from ledger.store import EventStore, StoredRecord

log = logging.getLogger("ledger")

_T = TypeVar("_T")
_WORDS = re.compile(r"[^\W_]+")

TEXT_FILE = "text.sqlite"
FORMAT = 9
"""The layout of `text.sqlite`; an index of another format is rebuilt from the log when opened."""

# Fewer records behind than this are always caught up (small stores keep the catch-up path).
_REBUILD_BEHIND = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS articles (id INTEGER PRIMARY KEY, article TEXT NOT NULL UNIQUE);
CREATE VIRTUAL TABLE IF NOT EXISTS sentences_fts USING fts5(
    pairs, content='', columnsize=0, detail=none, tokenize="ascii tokenchars '_~'");
CREATE TABLE IF NOT EXISTS stretches (block INTEGER PRIMARY KEY, entries BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (first INTEGER PRIMARY KEY, article INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS lines_fts USING fts5(
    sentences, content='', columnsize=0, detail=none, tokenize="ascii");
CREATE TABLE IF NOT EXISTS open_lines (article INTEGER PRIMARY KEY, lines BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS versions (
    article INTEGER NOT NULL, chunk INTEGER NOT NULL, rows BLOB NOT NULL,
    PRIMARY KEY (article, chunk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blame (
    article INTEGER NOT NULL, version INTEGER NOT NULL, runs BLOB NOT NULL,
    PRIMARY KEY (article, version)) WITHOUT ROWID;
"""

_BLOCK = 64
"""Stretches kept together in one row of `stretches` (numbered one after the other from a
multiple of it), and one document of `lines_fts`."""

_CHUNK = 64
"""Versions kept together in one row of `versions` (a row is rewritten whole when a version is
added to it, and read whole for one of its versions)."""

# Above every stretch's number: the run of a stretch is the last run starting at or before it.
_LAST = 2**63 - 1


class _DamagedRow(Exception):
    """A row of the index, read while records are folded, is not as this module wrote it (an
    error of its own: the errors of a record that does not fit its type name the log)."""


# What reading a row of the index raises when its bytes are not as this module wrote them.
_UNREADABLE = (_DamagedRow, ValueError, IndexError, KeyError, TypeError, struct.error)

_GROUP = 4
"""Sentences whose rows of stretches a search asks `lines_fts` for in one query, so that each row
found is searched for those few (a phrase in ~700 sentences on the 1M store: 47 ms in groups of
4, 54 of 8 or 16, 69 of 64, 80 one at a time)."""

_FOUND_BY_BYTES = 64
"""Sentences up to which a search looks for them in the bytes of a row of stretches, and, times
`_GROUP`, in all (a common word's thousands hold many stretches of each row: reading the row's
numbers is then faster)."""

PARTS = ("title", "body", "heading", "block")
"""The parts a line is kept from (stored as their index here)."""

_KINDS = ("title", "body", "block")
"""The texts whose digests are kept for restores (stored as their index here)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stored_format(db: sqlite3.Connection) -> object:
    """The format a file's `meta` table names (None if none)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    return row[0] if row is not None else None


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big", signed=True)


def _text_digest(text: str) -> int:
    """32 bits, from 0: a version whose text has the digest of an earlier version's is compared
    with it before it is taken for a restore."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big")


def _note(texts: list[list[int]], kind: int, digest: int) -> None:
    """Note that a version set a text (`_KINDS`) to the text of `digest`: a title or body only as
    it ends the version (a restore takes the runs a version ends with), every block."""
    if kind < 2:
        texts[:] = [text for text in texts if text[0] != kind]
    texts.append([kind, digest])


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
    """The words of `text` as search compares them: runs of letters and digits, in lower case,
    composed (NFC: an `é` typed as `e` and a combining accent is the `é` of other texts)."""
    return _WORDS.findall(unicodedata.normalize("NFC", text).lower())


# ASCII letters and digits to themselves in lower case, every other byte to a space.
_ASCII_WORDS = bytes((code | 0x20 if chr(code).isalpha() else code) if chr(code).isalnum() else 32 for code in range(128)) + b" " * 128


def _split(text: str) -> list[str]:
    """`words(text)`; ASCII text translated and split, half the time of the pattern (a rebuild
    splits every line the log ever held)."""
    return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split() if text.isascii() else words(text)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences(line: str) -> list[list[str]]:
    """The words of each sentence of `line` that holds a word (a sentence ends at `.`, `!` or `?`
    before a space): together, in order, the words of the line."""
    return [found for piece in _SENTENCE_END.split(line) if (found := _split(piece))]


def _tokens(found: list[str]) -> str:
    """The FTS5 document of a sentence, given its words: each word with the next as `a_b`, the
    first after nothing (`_a`) and the last before nothing (`b_`); `a_b~i~j` when `a` or `b`
    stands more than once in the sentence (`i`, `j`: which time it stands there, counted from 1;
    0 for a word that stands once, and for nothing)."""
    sequence = ["", *found, ""]
    pairs = list(map("_".join, pairwise(sequence)))
    if len(set(found)) < len(found):
        counts = Counter(found)
        seen: dict[str, int] = {}
        tags = [0] * len(sequence)
        for at, word in enumerate(found, 1):
            if counts[word] > 1:
                tags[at] = seen[word] = seen.get(word, 0) + 1
        for at in range(len(pairs)):
            if tags[at] or tags[at + 1]:
                pairs[at] = f"{pairs[at]}~{tags[at]}~{tags[at + 1]}"
    return " ".join(pairs)


def _fold_logged(fold: TextFold, record: StoredRecord) -> None:
    """`fold.fold(record)`, a record that does not fit its type named as `apply` names it."""
    try:
        fold.fold(record)
    except UNFOLDABLE as exc:
        raise unfoldable(record, exc) from None


def _pack_numbers(numbers: Iterable[int]) -> bytes:
    """Whole numbers from 0 as LEB128 varints (a line's sentences: 2-3 bytes each, not 8)."""
    out = bytearray()
    for number in numbers:
        left = number
        while left > 0x7F:
            out.append(left & 0x7F | 0x80)
            left >>= 7
        out.append(left)
    return bytes(out)


def _unpack_numbers(blob: bytes) -> list[int]:
    """The numbers `_pack_numbers` packed."""
    numbers: list[int] = []
    number = shift = 0
    for byte in blob:
        number |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            numbers.append(number)
            number = shift = 0
    return numbers


Entry = list[Any]
"""A stretch as a row of `stretches` keeps it: [version it came in, part, version it went out or
None, its sentences' numbers]."""


def _pack_block(entries: Iterable[Entry]) -> bytes:
    """A row of `stretches`: for each stretch, as varints, the version it came in times 4 plus its
    part, 1 while it stands or else how many versions after it came it went out plus 2, its
    sentences' numbers (from 1), then a 0. (A table row per stretch took 10 bytes more than its
    numbers.) A varint of a number above 0 holds no zero byte, so zero bytes end stretches, and a
    search finds the stretches that hold a sentence with `bytes.find` and `bytes.count`, without
    reading the row number by number (`_stretches_holding`)."""
    numbers: list[int] = []
    for came, part, went, sentences in entries:
        numbers += (came * 4 + part, 1 if went is None else went - came + 2, *sentences, 0)
    return _pack_numbers(numbers)


def _entry(numbers: list[int]) -> Entry:
    """A stretch, given its numbers in a row of `stretches`."""
    came, went = numbers[0] >> 2, numbers[1]
    return [came, numbers[0] & 3, came + went - 2 if went > 1 else None, numbers[2:]]


def _packed_stretches(blob: bytes) -> Iterator[tuple[int, list[int]]]:
    """Each stretch of a row of `stretches` as its index in the row and its numbers (its zero
    left out)."""
    numbers = _unpack_numbers(blob)
    start = 0
    for index in range(blob.count(0)):
        end = numbers.index(0, start)
        yield index, numbers[start:end]
        start = end + 1


def _unpack_block(blob: bytes) -> list[Entry]:
    """The stretches `_pack_block` packed."""
    return [_entry(numbers) for _, numbers in _packed_stretches(blob)]


def _stretches_holding(blob: bytes, wanted: set[int], codes: list[bytes] | None) -> list[tuple[int, Entry]]:
    """(index, stretch) of the stretches of a row of `stretches` that hold one of the sentences
    `wanted`, whose numbers are packed in `codes` (None: too many to look for). Up to
    `_FOUND_BY_BYTES` of them, each is found in the row's bytes where it starts a number (the
    byte before it ends one), its stretch counted by the zero bytes before it; more, in the row's
    numbers, read."""
    if codes is None or len(codes) > _FOUND_BY_BYTES:
        # Only the stretches that hold one are made entries (a common word's rows hold many).
        return [(index, _entry(numbers)) for index, numbers in _packed_stretches(blob) if not wanted.isdisjoint(numbers[2:])]
    found: dict[int, Entry] = {}
    for code in codes:
        at = blob.find(code)
        while at >= 0:
            if at == 0 or blob[at - 1] < 0x80:
                index = blob.count(0, 0, at)
                if index not in found:
                    entry = _entry(_unpack_numbers(blob[blob.rfind(0, 0, at) + 1 : blob.find(0, at)]))
                    # Not where the stretch's versions stand.
                    if not wanted.isdisjoint(entry[3]):
                        found[index] = entry
            at = blob.find(code, at + 1)
    return sorted(found.items())


def _document(entries: Iterable[Entry]) -> str:
    """The `lines_fts` document of a row of stretches: the numbers of the sentences they hold."""
    return " ".join(map(str, sorted({number for entry in entries for number in entry[3]})))


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
"""A stretch being folded: [id, article, part, came, went or None, its sentences' numbers]."""

OpenLines = dict[tuple[int, int], list[int]]
"""The ids of an article's open stretches by (part, digest of the line's text)."""


def _text_lines(state: ArticleState | None) -> list[tuple[int, str]]:
    """(part, line) of each line of an article that holds a word, in the order `open_lines` keeps
    their stretches: the title's, the body's, each update block's heading's, each block's."""
    if state is None:
        return []
    lines = [(0, line) for line in _lines(state.title)] + [(1, line) for line in _lines(state.body)]
    lines += [(2, line) for block in state.blocks for line in _lines(block[0])]
    return lines + [(3, line) for block in state.blocks for line in _lines(block[1])]


def _in_order(lines: OpenLines, state: ArticleState | None) -> list[int]:
    """The ids of an article's open stretches in the order their lines stand in `state`, its
    text as they were saved (-1 for a line whose stretch the index lost track of)."""
    left = {key: list(ids) for key, ids in lines.items()}
    return [ids.pop() if (ids := left.get((part, _line_digest(line)))) else -1 for part, line in _text_lines(state)]


def _pack_open(ids: list[int]) -> bytes:
    """An article's open stretches as `open_lines` keeps them: each id (from `_in_order`) as its
    step from the one before, zigzag, in a varint (1-2 bytes a stretch; with each line's digest
    and part beside its id, 5-6). The lines they stand for are the article's, read again."""
    numbers: list[int] = []
    before = 0
    for stretch in ids:
        step = stretch + 1 - before
        numbers.append(step * 2 if step >= 0 else -step * 2 - 1)
        before = stretch + 1
    return _pack_numbers(numbers)


def _unpack_open(blob: bytes, state: ArticleState | None) -> OpenLines:
    """The open stretches that `_pack_open` packed, given the article's text as it was then."""
    lines = _text_lines(state)
    steps = _unpack_numbers(blob)
    if len(steps) != len(lines):
        # Saved with one stretch (or -1) for each line of that text.
        raise _DamagedRow(f"{len(steps)} open lines saved for {len(lines)} lines")
    opened: OpenLines = {}
    stretch = -1
    for step, (part, line) in zip(steps, lines, strict=True):
        stretch += step >> 1 if not step & 1 else -((step + 1) >> 1)
        if stretch >= 0:
            opened.setdefault((part, _line_digest(line)), []).append(stretch)
    return opened


class TextFold:
    """Folds records into stretches, sentences, version rows and text digests.
    `load(article, version)` gives an article's state at a version, `opened(article, state)` its
    stretches still open in the index (given its state as the index last saw it),
    `saved(stretch)` the numbers of the sentences of a stretch saved in it and
    `sentence(document)` the number of a sentence in it, given its FTS5 document (incremental
    catch-up); None folds from nothing. New stretches are numbered from `first`, new sentences
    from `first_sentence`."""

    def __init__(
        self,
        load: Callable[[str, int], ArticleState | None] | None = None,
        opened: Callable[[str, ArticleState | None], OpenLines] | None = None,
        first: int = 0,
        saved: Callable[[int], list[int]] | None = None,
        sentence: Callable[[str], int | None] | None = None,
        first_sentence: int = 1,
    ) -> None:
        self.states: dict[str, ArticleState] = {}
        self._load = load
        self._opened = opened
        self._saved = saved
        self._sentence = sentence
        self.next_id = first
        self.next_sentence = first_sentence
        self.stretches: dict[int, Stretch] = {}
        """The stretches opened by this fold and not yet saved, by id."""
        self.closed: list[tuple[int, int]] = []
        """(version, id) of stretches saved earlier that this fold closed."""
        self.open: dict[str, OpenLines] = {}
        """The open stretches of each article the fold has seen."""
        self.finished: dict[str, list[int]] = {}
        """Those of articles whose records are all folded, not yet saved."""
        self.known: dict[int, int] = {}
        """The numbers of the sentences this fold has met, by digest of their words (kept in
        memory only: a table of them was a twelfth of the index). A rebuild meets every
        sentence; catching up, those of the lines each edit takes out, so that what the edit
        left of them keeps its number."""
        self.sentences: list[tuple[int, str]] = []
        """(number, FTS5 document) of the sentences new to the index, not yet saved."""
        self.versions: dict[tuple[str, int], list[Any]] = {}
        """[occurred_at, actor, reason, [[kind, digest of the text], ...]] by (article, version)."""
        self.position = 0
        self.hash = ""

    def _number(self, found: list[str]) -> int:
        """The number of the sentence of words `found`, new if the index has none."""
        digest = _digest(" ".join(found))
        number = self.known.get(digest)
        if number is None:
            document = _tokens(found)
            number = self._sentence(document) if self._sentence is not None else None
            if number is None:
                number = self.next_sentence
                self.next_sentence += 1
                self.sentences.append((number, document))
            self.known[digest] = number
        return number

    def fold(self, record: StoredRecord) -> None:
        """Fold one record (upcast, in log order)."""
        article, version, kind, data = record["article"], record["version"], record["type"], record["data"]
        before = self.states.get(article)
        if before is None and version > 1 and self._load is not None:
            loaded = self._load(article, version - 1)
            # A copy: the fold changes states in place, and the loader may hand out a cached one.
            before = loaded.copy() if loaded is not None else None
        if article not in self.open:
            self.open[article] = self._opened(article, before) if version > 1 and self._opened is not None else {}
        key = (article, version)
        if key not in self.versions:
            actor, reason = record.get("actor"), record.get("reason")
            if not isinstance(actor, str | None) or not isinstance(reason, str | None):
                # No append writes one (imports refuse it): a log changed and sealed again.
                raise ValueError("its actor or reason is not text")
            self.versions[key] = [_time_value(record["occurred_at"]), actor, reason, []]
        texts = self.versions[key][3]
        change = self.change
        if kind == "ArticleCreated":
            change(article, version, "title", "", data["title"])
            change(article, version, "body", "", data.get("body", ""))
            _note(texts, 0, _text_digest(data["title"]))
            _note(texts, 1, _text_digest(data.get("body", "")))
        elif before is not None and kind in ("ArticleEdited", "UpdateBlockEdited", "UpdateBlockRemoved"):
            old_title, old_body, old_blocks = before.title, before.body, list(before.blocks)
            after = apply(before, record)
            if kind == "ArticleEdited":
                if data.get("title") is not None:
                    change(article, version, "title", old_title, after.title)
                    _note(texts, 0, _text_digest(after.title))
                if data.get("patch"):
                    self._patch(article, version, "body", old_body, after.body, data["patch"])
                    _note(texts, 1, _text_digest(after.body))
            elif kind == "UpdateBlockEdited":
                index = data["index"]
                old_heading, old_text = old_blocks[index][0], old_blocks[index][1]
                heading, text = after.blocks[index][0], after.blocks[index][1]
                if data.get("heading") is not None:
                    change(article, version, "heading", old_heading, heading)
                if data.get("patch"):
                    self._patch(article, version, "block", old_text, text, data["patch"])
                _note(texts, 2, _text_digest(_block_key(heading, text)))
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
            _note(texts, 2, _text_digest(_block_key(data["heading"], data.get("text", ""))))
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
                    numbers = self.stretches[stretch][5]
                else:
                    self.closed.append((version, stretch))
                    numbers = self._saved(stretch) if self._saved is not None else []
                sentences = _sentences(line)
                if len(numbers) == len(sentences):
                    # The numbers of the sentences going out, for those of them the edit keeps.
                    self.known.update((_digest(" ".join(found)), number) for found, number in zip(sentences, numbers, strict=True))
        for line, count in came.items():
            digest = _line_digest(line)
            numbers = [self._number(found) for found in _sentences(line)]
            for _ in range(count):
                self.stretches[self.next_id] = [self.next_id, article, code, version, None, numbers]
                opened.setdefault((code, digest), []).append(self.next_id)
                self.next_id += 1

    def regroup(self) -> None:
        """Number the stretches opened since the last save article by article (in the order the
        articles first opened one), so that each article's stand in one run of `runs`: a
        catch-up folds records of many articles in turn, and each stretch took a run of its own."""
        first: dict[str, int] = {}
        for s in sorted(self.stretches.values(), key=lambda s: int(s[0])):
            first.setdefault(s[1], len(first))
        ordered = sorted(self.stretches.values(), key=lambda s: (first[s[1]], int(s[0])))
        start = min(self.stretches, default=0)
        renumbered = {int(s[0]): start + at for at, s in enumerate(ordered)}
        if all(old == new for old, new in renumbered.items()):
            return
        self.stretches = {start + at: [start + at, *s[1:]] for at, s in enumerate(ordered)}
        for lines in self.open.values():
            for key, ids in lines.items():
                lines[key] = [renumbered.get(stretch, stretch) for stretch in ids]
        for article, ids in self.finished.items():
            self.finished[article] = [renumbered.get(stretch, stretch) for stretch in ids]

    def forget(self, article: str) -> None:
        """Done with an article whose records are all folded: its state is dropped, its open
        stretches wait in `finished` to be saved."""
        state = self.states.pop(article, None)
        if article in self.open:
            self.finished[article] = _in_order(self.open.pop(article), state)

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


def _pairs(wanted: list[str], start: bool, end: bool) -> list[tuple[str, str]]:
    """The pairs of words a sentence holds where it holds the words `wanted` one after the other;
    with `start` as its first words (after nothing: `("", first)`), with `end` as its last."""
    return [*([("", wanted[0])] if start else []), *pairwise(wanted), *([(wanted[-1], "")] if end else [])]


def _match(pairs: list[tuple[str, str]], word: str) -> str:
    """The FTS5 query of the sentences that hold each of `pairs` (none: that hold `word`, as the
    first word of a pair)."""
    if not pairs:
        return f'"{word}_"*'
    return " AND ".join(dict.fromkeys(f'("{first}_{after}" OR "{first}_{after}~"*)' for first, after in pairs))


def _in_turn(sentences: list[int], way: list[set[int]]) -> bool:
    """Whether `sentences` (a line's) hold, one right after the other, a sentence of each set of
    `way` in turn."""
    last = len(sentences) - len(way)
    return any(all(sentences[at + step] in held for step, held in enumerate(way)) for at in range(last + 1))


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


def _pack_versions(rows: dict[int, list[Any]]) -> bytes:
    """Version rows as one row of `versions` keeps them (actors, reasons, and times that are not
    kept as microseconds, given as their numbers in `names`, from 1; 0 for none): the length of a head
    of varints (how many rows; 1 if every time is a whole second, then counted in seconds, not
    microseconds; how many bytes the numbers below take; how many digests follow them); then, as
    varints, for each version in order, its step from the version before, its time's step from
    the time before (zigzag), its actor's number times 2, plus 1 when its time is a name (whose
    number follows), its reason's number, how many blocks it set times 4 plus 2 if it set the
    title and 1 if the body; last the digests of those texts (4 bytes each; title, body,
    blocks). A table of one row per version and one per text was a seventh of the index; each
    row's own list of the names it used, a third of these rows."""
    ordered = sorted(rows.items())
    moments = [row[0] for _, row in ordered if not isinstance(row[0], str)]
    unit = 1_000_000 if all(moment % 1_000_000 == 0 for moment in moments) else 1
    numbers: list[int] = []
    digests: list[list[int]] = []
    version = when = 0
    for number, (moment, actor, reason, texts) in ordered:
        named = isinstance(moment, str)
        step = 0 if named else (moment - when) // unit
        numbers += (number - version, step * 2 if step >= 0 else -step * 2 - 1, actor * 2 + named)
        if named:
            numbers.append(int(moment[1:]))
        numbers.append(reason)
        version, when = number, when if named else moment
        title = [digest for kind, digest in texts if kind == 0][-1:]
        body = [digest for kind, digest in texts if kind == 1][-1:]
        blocks = [digest for kind, digest in texts if kind == 2]
        numbers.append(len(blocks) * 4 + bool(title) * 2 + bool(body))
        digests.append([*title, *body, *blocks])
    packed = _pack_numbers(numbers)
    flat = [digest for texts in digests for digest in texts]
    head = _pack_numbers([len(ordered), unit > 1, len(packed), len(flat)])
    return bytes([len(head)]) + head + packed + struct.pack(f"<{len(flat)}I", *flat)


def _unpack_versions(blob: bytes, texts: bool = True) -> dict[int, list[Any]]:
    """The version rows `_pack_versions` packed, with the numbers of their names (a time that
    is a name as `"#"` and its number); without `texts`, with no digests (None for them: what a
    search and a blame name of each version, read in half the time)."""
    start = blob[0] + 1
    count, seconds, length, digested = _unpack_numbers(blob[1:start])
    numbers = _unpack_numbers(blob[start : start + length])
    digests = struct.unpack_from(f"<{digested}I", blob, start + length) if texts else ()
    unit = 1_000_000 if seconds else 1
    rows: dict[int, list[Any]] = {}
    version = when = at = taken = 0
    for _ in range(count):
        version += numbers[at]
        step = numbers[at + 1]
        when += (step >> 1 if not step & 1 else -((step + 1) >> 1)) * unit
        actor = numbers[at + 2]
        if actor & 1:
            moment: int | str = f"#{numbers[at + 3]}"
            at += 1
        else:
            moment = when
        reason, kinds = numbers[at + 3], numbers[at + 4]
        at += 5
        if not texts:
            rows[version] = [moment, actor >> 1, reason, None]
            continue
        if kinds == 1:
            # The body alone: most versions.
            named = [[1, digests[taken]]]
        else:
            which = [0] * (kinds >> 1 & 1) + [1] * (kinds & 1) + [2] * (kinds >> 2)
            named = [[kind, digests[taken + index]] for index, kind in enumerate(which)]
        taken += len(named)
        rows[version] = [moment, actor >> 1, reason, named]
    return rows


def _rebuild_is_faster(position: int, head: int) -> bool:
    """Whether folding the whole log again beats catching up from `position` to `head`.

    A catch-up looks each new sentence up by its digest (about 600 records/s on the generated
    newsroom store) where a rebuild numbers them as it goes (about 3,000/s), and a rebuilt index
    is smaller: past a fifth of the log behind, and thousands of records, rebuilding wins."""
    behind = head - position
    return behind >= _REBUILD_BEHIND and behind * 5 > head


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
        """Article numbers already looked up (forgotten with the tables or a rolled-back write)."""
        self._generation: object = None
        self._names: dict[int, str] = {}
        """Actors, reasons and times of `names` already read, by number (forgotten as `_ids` is)."""
        self._chunks: dict[tuple[int, int], dict[int, list[Any]]] = {}
        """Rows of `versions` already read (forgotten with every write, as `_ids` is)."""
        self._digests: dict[tuple[str, int], dict[tuple[int, int], list[int]]] = {}
        """The versions that set each text, by article and last chunk read (`_texts`)."""
        self._position = -1
        """The position the index stood at when last looked at (the rows read are forgotten when
        it moves: another process may have caught the index up)."""

    @property
    def in_memory(self) -> bool:
        """Whether the index lives in this process's memory only (its file cannot be written)."""
        return self._in_memory or self.path is None

    def _forget(self) -> None:
        self._ids.clear()
        self._names.clear()
        self._chunks.clear()
        self._digests.clear()

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path is not None and caches.writable(self.path):
                db = caches.open_file(self.path)
                try:
                    caches.check_tables(db, _SCHEMA, lambda: _stored_format(db), FORMAT)
                except sqlite3.DatabaseError as exc:
                    log.warning("%s: damaged text index (%s), rebuilding it from the log", self.path, exc)
                    db.close()
                    caches.remove(self.path)
                    db = caches.open_file(self.path)
                self._create(db)
            else:
                db = self._memory()
            self._db = db
            self._forget()
        return self._db

    def _memory(self) -> sqlite3.Connection:
        self._in_memory = True
        db = caches.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._create(db)
        return db

    def _guarded(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """`work(db)`; when the file fails (a full disk, a read-only or damaged file), again on an
        index in memory, built afresh from the log, for the rest of this process."""
        with self._mutex:
            try:
                return work(self._open())
            except LedgerError:
                raise
            except _UNREADABLE as exc:
                # A row that does not read as this module wrote it (changed by hand, or by a
                # bug): the index is rebuilt from the log, and the work done again on it once.
                log.warning("%s: a row of the text index does not read as it was written; rebuilding it from the log", self.path or TEXT_FILE)
                log.debug("the row's error: %r", exc)
                try:
                    db = self._open()
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    self._forget()
                    self._rebuild(db, None)
                    return work(db)
                except sqlite3.Error as failed:
                    raise caches.store_error(self.path or Path(TEXT_FILE), failed) from None
            except sqlite3.Error as exc:
                if self._in_memory:
                    raise caches.store_error(self.path or Path(TEXT_FILE), exc) from None
                if self._db is not None:
                    caches.leave_file(self._db, self.path, "text index", exc)
                    self._db.close()
                else:
                    caches.to_memory(self.path, "text index", exc)
                self._db = self._memory()
                self._forget()
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
            self._forget()
            raise
        db.execute("COMMIT")

    def _checkpoint(self, db: sqlite3.Connection) -> tuple[int, str]:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("generation") != self._generation:
            # Another process rebuilt the index: its article numbers are new.
            self._forget()
            self._generation = meta.get("generation")
        if meta.get("format", FORMAT) != FORMAT:
            return -1, ""
        position = int(meta.get("position", 0))
        if position != self._position:
            # Caught up, here or by another process: chunks of versions read may have grown.
            self._chunks.clear()
            self._digests.clear()
            self._position = position
        return position, str(meta.get("hash", ""))

    def _matches(self, position: int, digest: str) -> bool:
        if position == 0:
            return True
        for record in self.store.read(position - 1, position):
            return bool(record.get("hash") == digest)
        return False

    def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """`work(db)` on the index caught up, inside one read transaction: its queries see one
        state of the file even if another process catches the index up or rebuilds it meanwhile
        (a rebuild numbers the articles anew: numbers read before it would name other articles)."""

        def snapshot(db: sqlite3.Connection) -> _T:
            self._refresh(db)
            db.execute("BEGIN")
            try:
                # The snapshot starts here: the numbers this process holds are checked against it.
                self._checkpoint(db)
                return work(db)
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")

        return self._guarded(snapshot)

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
                if position == 0 or _rebuild_is_faster(position, self.store.head().position):
                    self._fill(db)
                    return db
                fold = TextFold(
                    self._load,
                    lambda article, state: self._opened(db, article, state),
                    self._next_id(db),
                    saved=lambda stretch: self._saved(db, stretch),
                    sentence=lambda document: self._sentence_number(db, document),
                    first_sentence=self._next_sentence(db),
                )
                fold.position, fold.hash = position, digest
                for record in self.store.read(position):
                    _fold_logged(fold, record)
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
        for table in ("sentences_fts", "lines_fts"):
            db.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('hashsize', 67108864)")
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
                    _fold_logged(fold, record)
                    folded += 1
            fold.forget(article)
            if len(fold.stretches) > 50_000:
                self._save(db, fold)
                if progress is not None:
                    progress(folded, head.position)
        fold.position, fold.hash = head.position, head.hash
        self._save(db, fold)
        # One b-tree per token instead of one per batch saved: a fifth smaller.
        for table in ("sentences_fts", "lines_fts"):
            db.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")
        if progress is not None:
            progress(head.position, head.position)

    def _clear(self, db: sqlite3.Connection) -> None:
        self._forget()
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
        # Segments merged two at a time, not four: an index kept up by catch-ups holds fewer
        # copies of each term (100k events caught up 2,000 at a time: 45% of the views, not 48%).
        for table in ("sentences_fts", "lines_fts"):
            db.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('automerge', 2)")

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

    def _created(self, db: sqlite3.Connection, article: str) -> int:
        """The number of an article in this index, given to it if it has none."""
        number = self._article_id(db, article, create=True)
        assert number is not None
        return number

    def _article_names(self, db: sqlite3.Connection, numbers: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(numbers))
        names: dict[int, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            names.update(db.execute(f"SELECT id, article FROM articles WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
        # Known both ways now (the versions of the articles found are looked up next).
        self._ids.update((name, number) for number, name in names.items())
        return names

    @staticmethod
    def _numbered(db: sqlite3.Connection, texts: set[str]) -> dict[str | None, int]:
        """The numbers of actors, reasons and times (kept once in `names`, not in every row of
        versions that names them), given to those that have none."""
        ordered = sorted(texts)
        db.executemany("INSERT OR IGNORE INTO names (name) VALUES (?)", ((text,) for text in ordered))
        numbers: dict[str | None, int] = {}
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            numbers.update((name, number) for number, name in db.execute(f"SELECT id, name FROM names WHERE name IN ({', '.join('?' * len(chunk))})", chunk))
        return numbers

    def _named(self, db: sqlite3.Connection, numbers: set[int]) -> dict[int, str]:
        """The actors, reasons and times of `names` by number."""
        missing = sorted(numbers - self._names.keys() - {0})
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            self._names.update(db.execute(f"SELECT id, name FROM names WHERE id IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
        return self._names

    @staticmethod
    def _next_id(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT block, entries FROM stretches ORDER BY block DESC LIMIT 1").fetchone()
        return int(row[0]) * _BLOCK + len(_unpack_block(row[1])) if row is not None else 0

    def _next_sentence(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'sentences'").fetchone()
        return int(row[0]) + 1 if row is not None else 1

    @staticmethod
    def _sentence_number(db: sqlite3.Connection, document: str) -> int | None:
        """The number of the sentence of FTS5 document `document` in the index, if it has it: the
        sentence that holds all its tokens. They chain from nothing to nothing through each word
        and each time it stands (`_tokens`), so a sentence holding them all holds no other: it is
        that sentence. (A table of 4-byte digests to find it by was a sixteenth of the index.)"""
        query = " AND ".join(f'"{token}"' for token in document.split())
        row = db.execute("SELECT min(rowid) FROM sentences_fts WHERE sentences_fts MATCH ?", (query,)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else None

    @staticmethod
    def _saved(db: sqlite3.Connection, stretch: int) -> list[int]:
        """The numbers of the sentences of a stretch in the index (none if it is not there)."""
        row = db.execute("SELECT entries FROM stretches WHERE block = ?", (stretch // _BLOCK,)).fetchone()
        try:
            entries = _unpack_block(row[0]) if row is not None else []
        except _UNREADABLE as exc:
            raise _DamagedRow(f"row {stretch // _BLOCK} of stretches: {exc!r}") from None
        at = stretch % _BLOCK
        return list(entries[at][3]) if at < len(entries) else []

    def _opened(self, db: sqlite3.Connection, article: str, state: ArticleState | None) -> OpenLines:
        """The article's open stretches."""
        row = db.execute("SELECT lines FROM open_lines WHERE article = ?", (self._article_id(db, article),)).fetchone()
        try:
            return _unpack_open(row[0], state) if row is not None else {}
        except _UNREADABLE as exc:
            raise _DamagedRow(f"the open lines of {article}: {exc!r}") from None

    def _save(self, db: sqlite3.Connection, fold: TextFold) -> None:
        ids = {article: self._created(db, article) for article in dict.fromkeys([s[1] for s in fold.stretches.values()] + [key[0] for key in fold.versions])}
        db.executemany("INSERT INTO sentences_fts (rowid, pairs) VALUES (?, ?)", fold.sentences)
        fold.regroup()
        stretches = sorted(fold.stretches.values(), key=lambda s: int(s[0]))
        self._save_stretches(db, stretches, fold.closed)
        # The article of each run of stretches numbered one after the other (an article column
        # took 3 bytes a stretch; a rebuild numbers each article's stretches in one run).
        runs: list[tuple[int, int]] = []
        for s in stretches:
            if not runs or runs[-1][1] != ids[s[1]]:
                runs.append((s[0], ids[s[1]]))
        db.executemany("INSERT INTO runs (first, article) VALUES (?, ?)", runs)
        db.executemany(
            "INSERT OR REPLACE INTO open_lines (article, lines) VALUES (?, ?)",
            [(self._created(db, article), _pack_open(ids)) for article, ids in fold.finished.items()]
            + [(self._created(db, article), _pack_open(_in_order(lines, fold.states.get(article)))) for article, lines in fold.open.items()],
        )
        numbers = self._numbered(db, {text for row in fold.versions.values() for text in (*row[1:3], row[0] if isinstance(row[0], str) else None) if text is not None})
        chunks: dict[tuple[int, int], dict[int, list[Any]]] = {}
        for (article, version), (moment, actor, reason, texts) in fold.versions.items():
            named = f"#{numbers[moment]}" if isinstance(moment, str) else moment
            chunks.setdefault((ids[article], version // _CHUNK), {})[version] = [named, numbers.get(actor, 0), numbers.get(reason, 0), texts]
        for (number, chunk), rows in chunks.items():
            kept = db.execute("SELECT rows FROM versions WHERE article = ? AND chunk = ?", (number, chunk)).fetchone()
            merged = _unpack_versions(kept[0]) if kept is not None else {}
            # A version saved already keeps its row (as `INSERT OR IGNORE` would).
            merged = {**rows, **merged}
            db.execute("INSERT OR REPLACE INTO versions (article, chunk, rows) VALUES (?, ?, ?)", (number, chunk, _pack_versions(merged)))
        self._chunks.clear()
        self._digests.clear()
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT), ("position", fold.position), ("hash", fold.hash), ("sentences", fold.next_sentence - 1)],
        )
        fold.stretches.clear()
        fold.finished.clear()
        fold.closed.clear()
        fold.versions.clear()
        fold.sentences.clear()

    @staticmethod
    def _save_stretches(db: sqlite3.Connection, stretches: list[Stretch], closed: list[tuple[int, int]]) -> None:
        """Add the new `stretches` (numbered on from the last saved) to their rows, and the
        versions that closed stretches saved before (`closed`); each row changed is written
        whole, and its `lines_fts` document replaced when its sentences changed."""
        grown = {s[0] // _BLOCK for s in stretches}
        touched = sorted(grown | {stretch // _BLOCK for _, stretch in closed})
        rows: dict[int, list[Entry]] = {}
        for start in range(0, len(touched), 500):
            chunk = touched[start : start + 500]
            rows.update((block, _unpack_block(blob)) for block, blob in db.execute(f"SELECT block, entries FROM stretches WHERE block IN ({', '.join('?' * len(chunk))})", chunk))
        # Only rows that take new stretches can come to hold other sentences (a closing changes
        # a version, not a sentence): their documents as they were.
        before = {block: _document(rows[block]) for block in grown if block in rows}
        for s in stretches:
            rows.setdefault(s[0] // _BLOCK, []).append([s[3], s[2], s[4], s[5]])
        for version, stretch in closed:
            entries = rows.get(stretch // _BLOCK, [])
            at = stretch % _BLOCK
            if at < len(entries):
                entries[at][2] = version
        db.executemany("INSERT OR REPLACE INTO stretches (block, entries) VALUES (?, ?)", [(block, _pack_block(entries)) for block, entries in rows.items()])
        for block in grown:
            document = _document(rows[block])
            if before.get(block) != document:
                if block in before:
                    # A contentless FTS5 table forgets a document given what it held.
                    db.execute("INSERT INTO lines_fts (lines_fts, rowid, sentences) VALUES ('delete', ?, ?)", (block, before[block]))
                db.execute("INSERT INTO lines_fts (rowid, sentences) VALUES (?, ?)", (block, document))

    # --- queries -----------------------------------------------------------------------------

    def changes(self, query: str, article: str | None) -> list[tuple[str, int, str, int]]:
        """For each (article, version, part) whose changed lines hold `query` (from
        `check_phrase`): how many more lines of that part hold it after the version than before
        (which may be 0), in article and version order."""
        return self._read(lambda db: self._changes(db, query, article))

    def _changes(self, db: sqlite3.Connection, query: str, article: str | None) -> list[tuple[str, int, str, int]]:
        number = None
        if article is not None:
            number = self._article_id(db, article)
            if number is None:
                return []
        rows = self._holding(db, query.split(), number)
        names = self._article_names(db, (row[1] for row in rows))
        deltas: dict[tuple[str, int, int], int] = {}
        for _, number, came, part, went, _ in rows:
            key = (names[number], came, part)
            deltas[key] = deltas.get(key, 0) + 1
            if went is not None:
                key = (names[number], went, part)
                deltas[key] = deltas.get(key, 0) - 1
        return [(name, version, PARTS[part], delta) for (name, version, part), delta in sorted(deltas.items())]

    def _holding(self, db: sqlite3.Connection, wanted: list[str], article: int | None) -> list[Any]:
        """The stretches (id, article, came, part, went, its sentences' numbers) of the lines that
        hold the words `wanted` one after the other: within one sentence, or from the end of one
        across whole sentences to the start of a later one (of the article numbered `article`
        only, unless None)."""
        within = self._sentences_holding(db, wanted, start=False, end=False)
        rows = self._stretch_rows(db, within, article)
        for chain in self._across(db, wanted) if len(wanted) > 1 else []:
            # The lines holding a sentence of the part held by fewest, then those where a
            # sentence of each part stands right after one of the part before.
            for number, row in self._stretch_rows(db, min(chain, key=len), article).items():
                if number not in rows and _in_turn(row[5], chain):
                    rows[number] = row
        return list(rows.values())

    def _across(self, db: sqlite3.Connection, wanted: list[str]) -> list[list[set[int]]]:
        """Each way the words `wanted` may stand across sentences, as the sentences that can hold
        each part: the first part ending a sentence, then parts that are whole sentences, the
        last part starting one (only ways in which every part is held by some sentence)."""
        count = len(wanted)
        held: dict[tuple[int, int], set[int]] = {}

        def holding(low: int, high: int) -> set[int]:
            if (low, high) not in held:
                held[low, high] = self._sentences_holding(db, wanted[low:high], start=low > 0, end=high < count)
            return held[low, high]

        ways: list[list[set[int]]] = []

        def extend(way: list[set[int]], low: int) -> None:
            if holding(low, count):
                ways.append([*way, holding(low, count)])
            for high in range(low + 1, count):
                if holding(low, high):
                    extend([*way, holding(low, high)], high)

        for high in range(1, count):
            if holding(0, high):
                extend([holding(0, high)], high)
        return ways

    def _sentences_holding(self, db: sqlite3.Connection, wanted: list[str], start: bool, end: bool) -> set[int]:
        """The sentences that hold the words `wanted` one after the other; with `start` as their
        first words, with `end` as their last."""
        pairs = _pairs(wanted, start, end)
        found = [row[0] for row in db.execute("SELECT rowid FROM sentences_fts WHERE sentences_fts MATCH ?", (_match(pairs, wanted[0]),))]
        return set(self._chains(db, pairs, found) if len(pairs) > 1 and found else found)

    def _stretch_rows(self, db: sqlite3.Connection, sentences: set[int], article: int | None) -> dict[int, Any]:
        """The stretches whose lines hold one of `sentences` (of article `article` only, unless
        None) by id, as (id, article, came, part, went, its sentences' numbers)."""
        numbers = sorted(sentences)
        # The rows holding each few sentences, so that each row is searched for those only; of
        # many sentences, the rows holding any (each row is then read whole).
        few = len(numbers) <= _FOUND_BY_BYTES * _GROUP
        wanted: dict[int, list[bytes] | None] = {}
        size = _GROUP if few else 64
        for start in range(0, len(numbers), size):
            group = numbers[start : start + size]
            codes = [_pack_numbers([number]) for number in group] if few else []
            for (block,) in db.execute("SELECT rowid FROM lines_fts WHERE lines_fts MATCH ?", (" OR ".join(map(str, group)),)):
                kept = wanted.setdefault(block, [] if few else None)
                if kept is not None:
                    kept.extend(codes)
        rows: dict[int, Any] = {}
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            for block, blob in db.execute(f"SELECT block, entries FROM stretches WHERE block IN ({', '.join('?' * len(chunk))})", chunk):
                first = block * _BLOCK
                owners = self._owners(db, first)
                for at, (came, part, went, held) in _stretches_holding(blob, sentences, wanted[block]):
                    number = first + at
                    owner = owners[bisect_right(owners, (number, _LAST)) - 1][1]
                    if article is None or owner == article:
                        rows[number] = (number, owner, came, part, went, held)
        return rows

    @staticmethod
    def _owners(db: sqlite3.Connection, first: int) -> list[tuple[int, int]]:
        """(first stretch, article) of the runs of stretches that hold those of the row from
        stretch `first`."""
        return db.execute(
            "SELECT first, article FROM runs WHERE first < ? AND first >= (SELECT max(first) FROM runs WHERE first <= ?) ORDER BY first",
            (first + _BLOCK, first),
        ).fetchall()

    def _chains(self, db: sqlite3.Connection, pairs: list[tuple[str, str]], found: list[int]) -> list[int]:
        """The sentences of `found` (which hold every one of `pairs`) in which the pairs chain:
        where a word repeats in a sentence, the pair ending on it and the pair starting from it
        name the same time it stands there."""
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.sentence_terms USING fts5vocab(main, sentences_fts, instance)")
        # The sentences found, so that the others are left out inside SQLite (a pair names
        # times in far more sentences than hold the whole phrase).
        db.execute("CREATE TABLE IF NOT EXISTS temp.chained (id INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM temp.chained")
        db.executemany("INSERT OR IGNORE INTO temp.chained (id) VALUES (?)", ((number,) for number in found))
        tagged: list[dict[int, set[tuple[int, int]]]] = []
        for word, after in pairs:
            low = f"{word}_{after}~"
            times: dict[int, set[tuple[int, int]]] = {}
            # The pair's terms in sentences where one of its words repeats: one range of terms.
            for term, document in db.execute(
                "SELECT term, doc FROM temp.sentence_terms WHERE term >= ? AND term < ? AND doc IN (SELECT id FROM temp.chained)",
                (low, low[:-1] + "\x7f"),
            ):
                first, second = term[len(low) :].split("~")
                times.setdefault(document, set()).add((int(first), int(second)))
            tagged.append(times)
        once = {(0, 0)}
        return [number for number in found if _chained([times.get(number, once) for times in tagged])]

    def version_info(self, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
        """(occurred_at, actor, reason) of each (article, version) wanted."""
        pairs = sorted(set(wanted))

        def read(db: sqlite3.Connection) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
            numbers = {article: self._article_id(db, article) for article in dict.fromkeys(article for article, _ in pairs)}
            chunks = self._version_rows(db, {(number, version // _CHUNK) for article, version in pairs if (number := numbers[article]) is not None})
            rows = {(article, version): row for article, version in pairs if (row := chunks.get((numbers[article] or 0, version // _CHUNK), {}).get(version)) is not None}
            names = self._named(db, {number for row in rows.values() if row[3] is None for number in (*row[1:3], int(row[0][1:]) if isinstance(row[0], str) else 0)})
            for row in rows.values():
                if row[3] is None:
                    # Named once, in the rows read (a blame names hundreds of versions).
                    moment, actor, reason = row[:3]
                    row[3] = (names[int(moment[1:])] if isinstance(moment, str) else _time_text(moment), names.get(actor), names.get(reason))
            return {key: row[3] for key, row in rows.items()}

        return self._read(read) if pairs else {}

    def _version_rows(self, db: sqlite3.Connection, keys: set[tuple[int, int]]) -> dict[tuple[int, int], dict[int, list[Any]]]:
        """The rows of chunks of versions, by (article number, chunk), without their texts'
        digests: [occurred_at, actor, reason, None] by version, with the numbers of their names
        (`version_info` puts the row as it gives it in place of None)."""
        found = {key: self._chunks[key] for key in keys if key in self._chunks}
        missing = sorted(keys - found.keys())
        for start in range(0, len(missing), 400):
            batch = missing[start : start + 400]
            # A join, so that each row is looked up by its primary key (`IN` over pairs scanned
            # the table), and one query for hundreds of articles instead of one each.
            for number, chunk, blob in db.execute(
                f"SELECT v.article, v.chunk, v.rows FROM (VALUES {', '.join(['(?, ?)'] * len(batch))}) AS w"
                " JOIN versions v ON v.article = w.column1 AND v.chunk = w.column2",
                [value for key in batch for value in key],
            ):
                found[number, chunk] = _unpack_versions(blob, texts=False)
        if len(self._chunks) + len(missing) > 4096:
            self._chunks.clear()
        self._chunks.update((key, found[key]) for key in missing if key in found)
        return found

    # --- blame -------------------------------------------------------------------------------

    def attribution(self, article: str, version: int) -> Attribution:
        """The runs of the article at `version` (which it must have)."""
        return self._read(lambda db: self._attribution(db, article, version))

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
            digest = _text_digest(text)
            versions = self._texts(db, record["article"], version).get((_KINDS.index(what), digest), [])
            # The latest earlier version whose text is this one (a digest is only 4 bytes).
            for found in reversed(versions[: bisect_left(versions, version)]):
                then = self._load(record["article"], found)
                assert then is not None
                if what == "title" and then.title == text:
                    attribution.title = self._attribution(db, record["article"], found).title
                elif what == "body" and then.body == text:
                    attribution.body = self._attribution(db, record["article"], found).body
                elif what == "block" and (keys := [_block_key(block[0], block[1]) for block in then.blocks]).count(text):
                    assert index is not None
                    attribution.blocks[index] = self._attribution(db, record["article"], found).blocks[keys.index(text)]
                else:
                    continue
                break

    def _texts(self, db: sqlite3.Connection, article: str, version: int) -> dict[tuple[int, int], list[int]]:
        """The versions up to the chunk of `version` that set each text, by (kind, digest), in
        order: read once per chunk of versions, not once per record folded."""
        last = version // _CHUNK
        key = (article, last)
        texts = self._digests.get(key)
        if texts is None:
            texts = {}
            rows = db.execute("SELECT rows FROM versions WHERE article = ? AND chunk <= ? ORDER BY chunk", (self._article_id(db, article), last)).fetchall()
            for (blob,) in rows:
                for number, row in sorted(_unpack_versions(blob).items()):
                    for kind, digest in row[3]:
                        texts.setdefault((kind, digest), []).append(number)
            if len(self._digests) >= 256:
                self._digests.clear()
            self._digests[key] = texts
        return texts

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
