"""ledger: versions articles by event sourcing.

Every edit, update block and category change of an article is an immutable event in one log;
every view of an article, now or at any past version or time, is rebuilt from that log.

    >>> import ledger
    >>> with ledger.open("ledger-data", create=True) as led:       # doctest: +SKIP
    ...     led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "T"}}])
"""

from ledger.application import Ledger, init, open, store_path
from ledger.errors import (
    ArticleNotFoundError,
    ArticleStateError,
    ConflictError,
    CorruptStoreError,
    DraftError,
    DuplicateEventError,
    InvalidEventError,
    InvalidInputError,
    InvalidTimeError,
    LedgerError,
    NotFoundError,
    NothingToDoError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
)
from ledger.events import EVENT_TYPES, EventIn, RecordedEvent
from ledger.projections import ArticleView, UpdateBlock
from ledger.store import AppendResult, EventStore, FileEventStore, Head, Problem, VerifyReport

__all__ = [
    "AppendResult",
    "ArticleNotFoundError",
    "ArticleStateError",
    "ArticleView",
    "ConflictError",
    "CorruptStoreError",
    "DraftError",
    "DuplicateEventError",
    "EVENT_TYPES",
    "EventIn",
    "EventStore",
    "FileEventStore",
    "Head",
    "InvalidEventError",
    "InvalidInputError",
    "InvalidTimeError",
    "Ledger",
    "LedgerError",
    "NotFoundError",
    "NothingToDoError",
    "Problem",
    "RecordedEvent",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "UpdateBlock",
    "VerifyReport",
    "VersionConflictError",
    "VersionNotFoundError",
    "init",
    "open",
    "store_path",
]
