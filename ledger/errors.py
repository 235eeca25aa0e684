"""Every error ledger raises, under one root.

Hierarchy (the CLI exit code of each is in brackets; see docs/cli.md "Exit codes")::

    LedgerError                      [1]  anything ledger reports on purpose
    ├── InvalidInputError            [3]  input that cannot become an event
    │   ├── InvalidEventError        [3]  malformed JSON, unknown type, bad field, bad id
    │   ├── InvalidTimeError         [3]  a time that cannot be parsed or is out of order
    │   └── DraftError               [3]  a draft file that cannot be parsed
    ├── NotFoundError                [4]
    │   ├── ArticleNotFoundError     [4]  unknown article
    │   ├── VersionNotFoundError     [4]  unknown version, or no version at that time
    │   └── CategoryNotFoundError    [4]  a category no article was ever in
    ├── ConflictError                [5]
    │   ├── VersionConflictError     [5]  expected version does not match
    │   ├── DuplicateEventError      [5]  some, not all, event ids of an append already exist
    │   └── ArticleStateError        [5]  event not allowed in the article's state
    ├── StoreError                   [6]
    │   ├── StoreNotFoundError       [6]  no store at that path
    │   ├── StoreLockedError         [7]  lock not acquired within the timeout
    │   ├── StoreConnectionError    [10]  a store's server cannot be reached or used (PostgreSQL)
    │   ├── IndexMismatchError       [6]  a cache disagrees with the log (rebuilt and retried)
    │   └── CorruptStoreError        [8]  a record fails its checksum, chain or order
    └── NothingToDoError             [9]  e.g. an edit that changes nothing

Every message is one line and names what is wrong and where.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Root of every error ledger raises on purpose."""

    exit_code: int = 1


class InvalidInputError(LedgerError):
    """Input that cannot be turned into events."""

    exit_code = 3


class InvalidEventError(InvalidInputError):
    """An event given to `append` is malformed (JSON, type, fields, ids)."""


class InvalidTimeError(InvalidInputError):
    """A time that cannot be parsed, or that breaks the article's order of time (`article`: the
    article whose order it breaks, when it is an event's)."""

    def __init__(self, message: str, *, article: str | None = None) -> None:
        super().__init__(message)
        self.article = article


class DraftError(InvalidInputError):
    """A draft file that cannot be parsed (encoding, missing title, front matter)."""


class NotFoundError(LedgerError):
    """Something asked for is not in the log."""

    exit_code = 4


class ArticleNotFoundError(NotFoundError):
    """The article has no events in the log."""


class VersionNotFoundError(NotFoundError):
    """The article exists but not at that version or time."""


class CategoryNotFoundError(NotFoundError):
    """No article was ever in the category (a category left empty is not one: it lists nothing)."""


class ConflictError(LedgerError):
    """The append does not fit the log as it is now; nothing was appended."""

    exit_code = 5


class VersionConflictError(ConflictError):
    """An article is not at the version the append expected: `article`, the `expected` version
    and the `actual` one, for a caller that reads the article again and retries."""

    def __init__(self, message: str, *, article: str, expected: int, actual: int) -> None:
        super().__init__(message)
        self.article = article
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies (one per waiting thread of a group commit) and pickles keep the fields, which
        # the default (the message alone) cannot pass back.
        return (_version_conflict, (str(self), self.article, self.expected, self.actual))


def _version_conflict(message: str, article: str, expected: int, actual: int) -> VersionConflictError:
    return VersionConflictError(message, article=article, expected=expected, actual=actual)


class DuplicateEventError(ConflictError):
    """Some event ids of an append are already in the log and others are not."""


class ArticleStateError(ConflictError):
    """The event is not allowed in the article's current state (e.g. created twice)."""


class StoreError(LedgerError):
    """The store itself cannot be used."""

    exit_code = 6


class StoreNotFoundError(StoreError):
    """No store at the given path (run `ledger init`)."""


class StoreLockedError(StoreError):
    """Another process held the write lock for longer than the timeout."""

    exit_code = 7


class StoreConnectionError(StoreError):
    """The store's server cannot be used: unreachable, login refused, no such database, or the
    connection was lost (an append it interrupted was recorded whole or not at all)."""

    exit_code = 10


class CorruptStoreError(StoreError):
    """A record fails its checksum, the hash chain, or the order of positions."""

    exit_code = 8

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class IndexMismatchError(StoreError):
    """A cache beside the log (the index) disagrees with the log. The store rebuilds the cache
    from the log and tries again; this reaches users only if the disagreement persists."""


class NothingToDoError(LedgerError):
    """The request would record nothing (for example an edit that changes nothing)."""

    exit_code = 9
