"""The event store: the `EventStore` port (`ledger.store.contract`) and its embedded,
file-backed implementation (`ledger.store.file`, with its log in `logfile`, its index in
`index`, its writers' lock in `locking` and its `verify` in `verify`)."""

from ledger.store.contract import (
    AppendResult,
    EventStore,
    Head,
    Problem,
    RecordOrder,
    StoredRecord,
    VerifyReport,
    check_envelope,
    new_versions,
)
from ledger.store.file import FileEventStore
from ledger.store.index import INDEX_FILE
from ledger.store.logfile import FORMAT_VERSION, LOG_FILE, MARKER_FILE, init_store

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
    "check_envelope",
    "init_store",
    "new_versions",
]
