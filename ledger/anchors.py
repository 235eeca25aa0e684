"""Anchors: heads noted down or published earlier (`HASH@POSITION`), and whether a log extends them.

The hash chain alone cannot tell a log from one rewritten and sealed again from the changed
record on; a head kept elsewhere can (`Ledger.verify`).
"""

from __future__ import annotations

from ledger import codec
from ledger.errors import CorruptStoreError, InvalidInputError
from ledger.store import EventStore, Head, StoredRecord


def parse_head(text: str) -> tuple[str, int | None]:
    """`HASH` or `HASH@POSITION` (as `ledger head` prints it) as its hash and position."""
    digest, at, position = text.strip().partition("@")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or (at and not (position.isascii() and position.isdigit())):
        raise InvalidInputError(f"head {text!r}: expected HASH or HASH@POSITION as `ledger head` prints it (a 64-digit hex hash, a position from 0)")
    if at and int(position) == 0 and digest != codec.GENESIS_HASH:
        raise InvalidInputError(f"head {text!r}: position 0 is the empty log, whose hash is {codec.GENESIS_HASH}")
    return digest, int(position) if at else None


def anchor(store: EventStore, digest: str, position: int | None, end: int) -> Head:
    """The head `digest@position` if `store`'s log (checked up to position `end`) extends it,
    found by position or by search; else `CorruptStoreError`."""
    shown = f"{digest}@{position}" if position is not None else digest
    if digest == codec.GENESIS_HASH and not position:
        return Head(position=0, hash=digest)
    if position is None:
        for record in store.read(0, end):
            if record["hash"] == digest:
                return Head(position=record["pos"], hash=digest)
        raise CorruptStoreError(f"the log no longer extends head {shown}: no record has that hash (history rewritten, or a head of another log)")
    if position > end:
        raise CorruptStoreError(f"the log no longer extends head {shown}: it ends at position {end} (records removed)")
    there = record_at(store, position)
    found = there["hash"] if there is not None else None
    if found != digest:
        raise CorruptStoreError(f"the log no longer extends head {shown}: the record at position {position} has hash {found} (history rewritten)")
    return Head(position=position, hash=digest)


def record_at(store: EventStore, position: int) -> StoredRecord | None:
    """The log's record at `position` (None when the log has no such position)."""
    return next(iter(store.read(position - 1, position)), None)
