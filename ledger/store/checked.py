"""Reads of the file store that go through its index, each checked against the log: the index
is a cache, so what it says (position, article, version, kept hash) is proved on the log's own
lines, and a disagreement is told apart from damage: `IndexMismatchError` when the index is
wrong (the store rebuilds it and reads again), `CorruptStoreError` when the log was changed."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ledger import codec
from ledger.errors import CorruptStoreError, IndexMismatchError
from ledger.events import upcast
from ledger.store.index import HASH_KEPT, LogIndex, read_line, sealed


class CheckedReads:
    """Checked reads of the log open as `fd` (at `log_path`) through `idx`; `mutex` is the
    store's, held around each use of the index."""

    def __init__(self, idx: LogIndex, fd: int, log_path: Path, mutex: threading.RLock) -> None:
        self.idx = idx
        self.fd = fd
        self.log_path = log_path
        self.mutex = mutex

    def article_records(self, rows: list[tuple[int, int, int, int, str]], article: str, from_version: int, top: int) -> list[dict[str, Any]]:
        """The records the index lists in `rows` (`LogIndex.article_rows` of `article`'s versions
        `from_version..top`), read from the log: every line hash-checked, each what the index
        says it is, the versions without gaps, none of the article's left out inside an append."""
        out: list[dict[str, Any]] = []
        expected = max(from_version, 1)
        # Where each listed record starts, and the records to look at after which the append goes
        # on with one the index does not list (one query for all of them, after the loop).
        starts = {row[0]: row[2] for row in rows}
        unlisted: list[tuple[int, int]] = []
        for pos, version, offset, length, kept in rows:
            try:
                digest, record = sealed(read_line(self.fd, offset, length))
            except codec.RecordError as exc:
                if not self.is_line(offset, length):
                    raise IndexMismatchError(f"{self.idx.path}: its entry for position {pos} is not a line of the log") from None
                raise CorruptStoreError(f"{self.log_path}: position {pos} (byte {offset}): {exc}", position=pos) from None
            if (record.get("pos"), record.get("article"), record.get("version")) != (pos, article, version) or version not in (
                expected - 1,
                expected,
            ):
                raise IndexMismatchError(f"{self.idx.path}: its entry for position {pos} does not match the log")
            if digest[:HASH_KEPT] != kept:
                self.check_link(pos, digest)
            if not record.get("end"):
                # The append goes on at the next position: where the index says, and if that
                # record is this article's too, listed (a row deleted inside a version hides an
                # event). A listed one is read and checked in this loop itself.
                if pos + 1 in starts:
                    if starts[pos + 1] != offset + length:
                        raise IndexMismatchError(f"{self.idx.path}: its entry for position {pos + 1} does not match the log")
                else:
                    unlisted.append((pos + 1, offset + length))
            expected = version + 1
            out.append(upcast(record))
        if unlisted:
            self.check_unlisted(unlisted, article, top)
        return out

    def check_unlisted(self, followers: list[tuple[int, int]], article: str, top: int) -> None:
        """`IndexMismatchError` unless each `(position, byte)` of `followers` (a record that goes
        on an append of `article`'s, not listed with it) is where the index says, and is not a
        record of `article` up to version `top`."""
        with self.mutex:
            found = self.idx.at_many([pos for pos, _ in followers])
        for pos, at in followers:
            row = found.get(pos)
            if row is None or row[0] != at:
                raise IndexMismatchError(f"{self.idx.path}: its entry for position {pos} does not match the log")
            try:
                _, record = sealed(read_line(self.fd, row[0], row[1]))
            except codec.RecordError:
                raise IndexMismatchError(f"{self.idx.path}: its entry for position {pos} is not a line of the log") from None
            if record.get("article") == article and record.get("version", 0) <= top:
                raise IndexMismatchError(f"{self.idx.path}: an event of {article!r} at position {pos} is missing from it")

    def is_line(self, offset: int, length: int) -> bool:
        """Whether `offset..offset+length` is one whole line of the log (whatever it holds)."""
        if offset < 0 or length <= 0:
            return False
        before = os.pread(self.fd, 1, offset - 1) if offset > 0 else b"\n"
        line = os.pread(self.fd, length, offset)
        return before == b"\n" and len(line) == length and line.find(b"\n") == length - 1

    def check_link(self, pos: int, digest: str) -> None:
        """A record whose hash is not the one the index kept: if the next record still chains to
        it, the index is wrong (`IndexMismatchError`); if not, the record was changed after it
        was written (`CorruptStoreError`)."""
        with self.mutex:
            row = self.idx.at(pos + 1)
        following = codec.decode(os.pread(self.fd, row[1], row[0])) if row is not None else None
        if following is not None and following.get("prev") == digest:
            raise IndexMismatchError(f"{self.idx.path}: its hash of position {pos} does not match the log")
        raise CorruptStoreError(
            f"{self.log_path}: position {pos} was changed after it was written (it no longer chains to the record after it)",
            position=pos,
        )

    def latest(self, article: str) -> dict[str, Any] | None:
        """The article's latest record by the index (None if it has none), read from the log and
        checked to be what the index says it is: `IndexMismatchError` if it is not."""
        row = self.idx.latest(article)
        # The table of latest versions must agree: rows lost from `events` (or an article
        # column changed there) leave an older record, or none, that the log would confirm.
        listed = self.idx.listed_version(article)
        if row is None:
            if listed is not None:
                raise IndexMismatchError(f"{self.idx.path}: it lists {article!r} at version {listed} but holds none of its records")
            return None
        pos, version, offset, length, kept = row
        if listed != version:
            raise IndexMismatchError(f"{self.idx.path}: its latest record of {article!r} is not the version it lists")
        try:
            digest, record = sealed(read_line(self.fd, offset, length))
        except codec.RecordError:
            record, digest = {}, ""
        if (record.get("pos"), record.get("article"), record.get("version")) != (pos, article, version) or digest[:HASH_KEPT] != kept:
            raise IndexMismatchError(f"{self.idx.path}: its latest record of {article!r} does not match the log")
        return record
