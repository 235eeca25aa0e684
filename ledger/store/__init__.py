"""The event store: the `EventStore` port (`ledger.store.contract`) and its embedded,
file-backed implementation (`ledger.store.file`, with its index in `ledger.store.index`)."""

from ledger.store.contract import (
    AppendResult,
    EventStore,
    Head,
    Problem,
    RecordOrder,
    StoredRecord,
    VerifyReport,
    check_occurred_at,
)
from ledger.store.file import (
    FORMAT_VERSION,
    LOG_FILE,
    MARKER_FILE,
    FileEventStore,
    init_store,
)
from ledger.store.index import INDEX_FILE

__all__ = [
    "FORMAT_VERSION",
    "INDEX_FILE",
    "LOG_FILE",
    "MARKER_FILE",
    "AppendResult",
    "EventStore",
    "FileEventStore",
    "Head",
    "Problem",
    "RecordOrder",
    "StoredRecord",
    "VerifyReport",
    "check_occurred_at",
    "init_store",
]
