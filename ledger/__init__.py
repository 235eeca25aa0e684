"""ledger: versions articles by event sourcing.

Every edit, update block and category change of an article is an immutable event in one log;
every view of an article, now or at any past version or time, is rebuilt from that log.

    >>> import ledger
    >>> with ledger.open("ledger-data", create=True) as led:       # doctest: +SKIP
    ...     led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "T"}}])
"""

from typing import TYPE_CHECKING

from ledger.application import Ledger, init, open, store_path
from ledger.codec import dumps
from ledger.draft_format import DRAFT_SIZE_LIMIT, Draft, parse_draft, read_draft
from ledger.drafts import IngestResult, ingest
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
from ledger.events import DEFAULT_MAX_EVENT_BYTES, EVENT_TYPES, EventIn, RecordedEvent, format_time
from ledger.projections import ArticleView, UpdateBlock
from ledger.rendering import render
from ledger.store import AppendResult, EventStore, FileEventStore, Head, Problem, VerifyReport
from ledger.times import parse_when
from ledger.transfer import ImportResult
from ledger.views import (
    CategoryCount,
    CategoryListing,
    CategoryMember,
    CategoryMembership,
    Diff,
    DiffLine,
    FeedBlock,
    FeedEntry,
    HistoryEntry,
    Hunk,
    ReplayStats,
    Stats,
    TimelineEntry,
    WordChange,
)

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DRAFT_SIZE_LIMIT",
    "EVENT_TYPES",
    "AppendResult",
    "ArticleNotFoundError",
    "ArticleStateError",
    "ArticleView",
    "CategoryCount",
    "CategoryListing",
    "CategoryMember",
    "CategoryMembership",
    "ConflictError",
    "CorruptStoreError",
    "Diff",
    "DiffLine",
    "Draft",
    "DraftError",
    "DuplicateEventError",
    "EventIn",
    "EventStore",
    "FeedBlock",
    "FeedEntry",
    "FileEventStore",
    "Head",
    "HistoryEntry",
    "Hunk",
    "ImportResult",
    "IngestResult",
    "InvalidEventError",
    "InvalidInputError",
    "InvalidTimeError",
    "Ledger",
    "LedgerError",
    "NotFoundError",
    "NothingToDoError",
    "Problem",
    "RecordedEvent",
    "ReplayStats",
    "Stats",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "TimelineEntry",
    "UpdateBlock",
    "VerifyReport",
    "VersionConflictError",
    "VersionNotFoundError",
    "Watcher",
    "WordChange",
    "dumps",
    "format_time",
    "ingest",
    "init",
    "open",
    "parse_draft",
    "parse_when",
    "read_draft",
    "render",
    "store_path",
    "watch",
]

if TYPE_CHECKING:
    # Type checkers see the two names; at run time __getattr__ loads them on first use.
    from ledger.watcher import Watcher, watch


def __getattr__(name: str) -> object:
    # `watch` and `Watcher` load watchdog, so only when first asked for.
    if name in ("watch", "Watcher"):
        from ledger import watcher

        return getattr(watcher, name)
    raise AttributeError(f"module 'ledger' has no attribute {name!r}")
