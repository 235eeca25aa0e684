"""ledger: versions articles by event sourcing.

Every edit, update block and category change of an article is an immutable event in one log;
every view of an article, now or at any past version or time, is rebuilt from that log.

    >>> import ledger
    >>> with ledger.open("ledger-data", create=True) as led:       # doctest: +SKIP
    ...     led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "T"}}])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DRAFT_SIZE_LIMIT",
    "EVENT_TYPES",
    "AppendResult",
    "ArticleNotFoundError",
    "ArticleStateError",
    "ArticleSummary",
    "ArticleView",
    "Blame",
    "BlameLine",
    "BlameSpan",
    "CategoryCount",
    "CategoryListing",
    "CategoryMember",
    "CategoryMembership",
    "CategoryNotFoundError",
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
    "SearchHit",
    "Stats",
    "StoreConnectionError",
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
    "WordsChanged",
    "dumps",
    "event_schema",
    "format_time",
    "ingest",
    "init",
    "open",
    "parse_draft",
    "parse_when",
    "read_draft",
    "render",
    "serve",
    "store_exists",
    "store_path",
    "watch",
]

if TYPE_CHECKING:
    # Type checkers see every name; at run time __getattr__ loads each on first use.
    from ledger.application import Ledger, init, open, store_exists, store_path
    from ledger.codec import dumps
    from ledger.draft_format import Draft, parse_draft, read_draft
    from ledger.drafts import IngestResult, ingest
    from ledger.errors import (
        ArticleNotFoundError,
        ArticleStateError,
        CategoryNotFoundError,
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
        StoreConnectionError,
        StoreError,
        StoreLockedError,
        StoreNotFoundError,
        VersionConflictError,
        VersionNotFoundError,
    )
    from ledger.events import EVENT_TYPES, EventIn, RecordedEvent, event_schema, format_time
    from ledger.limits import DEFAULT_MAX_EVENT_BYTES, DRAFT_SIZE_LIMIT
    from ledger.projections import ArticleView, UpdateBlock
    from ledger.rendering import render
    from ledger.store import AppendResult, EventStore, FileEventStore, Head, Problem, VerifyReport
    from ledger.times import parse_when
    from ledger.transfer import ImportResult
    from ledger.views import (
        ArticleSummary,
        Blame,
        BlameLine,
        BlameSpan,
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
        SearchHit,
        Stats,
        TimelineEntry,
        WordChange,
        WordsChanged,
    )
    from ledger.watcher import Watcher, watch
    from ledger.web import serve

# Where each public name lives. `import ledger` loads none of them: the command line starts in a
# fraction of the time when a command loads only the modules it uses (pydantic's models,
# watchdog, YAML), and a module is loaded whole, so its models are built once, at its import.
_HOMES = {
    "AppendResult": "ledger.store",
    "ArticleNotFoundError": "ledger.errors",
    "ArticleStateError": "ledger.errors",
    "CategoryNotFoundError": "ledger.errors",
    "ArticleSummary": "ledger.views",
    "ArticleView": "ledger.projections",
    "Blame": "ledger.views",
    "BlameLine": "ledger.views",
    "BlameSpan": "ledger.views",
    "CategoryCount": "ledger.views",
    "CategoryListing": "ledger.views",
    "CategoryMember": "ledger.views",
    "CategoryMembership": "ledger.views",
    "ConflictError": "ledger.errors",
    "CorruptStoreError": "ledger.errors",
    "DEFAULT_MAX_EVENT_BYTES": "ledger.limits",
    "Diff": "ledger.views",
    "DiffLine": "ledger.views",
    "Draft": "ledger.draft_format",
    "DRAFT_SIZE_LIMIT": "ledger.limits",
    "DraftError": "ledger.errors",
    "dumps": "ledger.codec",
    "DuplicateEventError": "ledger.errors",
    "EVENT_TYPES": "ledger.events",
    "EventIn": "ledger.events",
    "event_schema": "ledger.events",
    "EventStore": "ledger.store",
    "FeedBlock": "ledger.views",
    "FeedEntry": "ledger.views",
    "FileEventStore": "ledger.store",
    "format_time": "ledger.events",
    "Head": "ledger.store",
    "HistoryEntry": "ledger.views",
    "Hunk": "ledger.views",
    "ImportResult": "ledger.transfer",
    "ingest": "ledger.drafts",
    "IngestResult": "ledger.drafts",
    "init": "ledger.application",
    "InvalidEventError": "ledger.errors",
    "InvalidInputError": "ledger.errors",
    "InvalidTimeError": "ledger.errors",
    "Ledger": "ledger.application",
    "LedgerError": "ledger.errors",
    "NotFoundError": "ledger.errors",
    "NothingToDoError": "ledger.errors",
    "open": "ledger.application",
    "parse_draft": "ledger.draft_format",
    "parse_when": "ledger.times",
    "Problem": "ledger.store",
    "read_draft": "ledger.draft_format",
    "RecordedEvent": "ledger.events",
    "render": "ledger.rendering",
    "ReplayStats": "ledger.views",
    "SearchHit": "ledger.views",
    "serve": "ledger.web",
    "Stats": "ledger.views",
    "store_exists": "ledger.application",
    "store_path": "ledger.application",
    "StoreConnectionError": "ledger.errors",
    "StoreError": "ledger.errors",
    "StoreLockedError": "ledger.errors",
    "StoreNotFoundError": "ledger.errors",
    "TimelineEntry": "ledger.views",
    "UpdateBlock": "ledger.projections",
    "VerifyReport": "ledger.store",
    "VersionConflictError": "ledger.errors",
    "VersionNotFoundError": "ledger.errors",
    "watch": "ledger.watcher",
    "Watcher": "ledger.watcher",
    "WordChange": "ledger.views",
    "WordsChanged": "ledger.views",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    # Keep it, so the next use is an ordinary attribute.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
