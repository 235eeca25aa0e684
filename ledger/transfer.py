"""Transfer: export of the log's sealed records, and their import into a store.

An export is the log's lines as stored, checked against their hashes and chain as they are
read. An import is exact (the records appended as they are, same positions and hashes) or, when
asked, reappended (each append of the input appended anew through `Ledger.append`); either way
every record is checked before anything is written. Written over the `Ledger`'s public methods
(`Target`) and the store interface.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from pydantic import Field

from ledger import codec, decisions
from ledger.anchors import record_at
from ledger.errors import (
    CorruptStoreError,
    DuplicateEventError,
    InvalidEventError,
    InvalidTimeError,
    NothingToDoError,
    StoreError,
)
from ledger.events import EventFields, EventIn, format_time, parse_time, upcast
from ledger.model import Model
from ledger.projections import ArticleState, FoldedRecord
from ledger.rendering import LAYOUT_KEY, RESERVED_METADATA_KEYS
from ledger.store import LOG_FILE, AppendResult, EventStore, Head, RecordOrder, check_envelope

# How far ahead of this machine's clock an imported record's recorded_at may be.
_CLOCK_SKEW = timedelta(days=1)


class Target(Protocol):
    """What an import needs of the `Ledger` it imports into."""

    store: EventStore
    max_event_bytes: int

    def head(self) -> Head:
        """The last position in the log and its hash."""

    def bulk(self) -> AbstractContextManager[None]:
        """Batch durability: appends inside are synced once, at the end."""

    def latest_state(self, article: str) -> ArticleState | None:
        """A copy of the article's latest state (None if it has no events)."""

    def append(
        self, events: Iterable[EventIn | Mapping[str, Any]], *, labels: Sequence[str] | None = None, reserved_keys: bool = False
    ) -> AppendResult:
        """Record `events` as one atomic append."""


class ImportResult(Model):
    """What `Ledger.import_records` did."""

    mode: Literal["exact", "reappended"] = Field(
        description="exact: the sealed records were appended as they are (same positions and hashes); "
        "reappended (only when asked): each append was appended anew (same ids, versions, occurred_at, actors and reasons; new positions, "
        "recorded_at and hashes)."
    )
    read: int = Field(description="Records read from the input.")
    imported: int = Field(description="Events added to the store.")
    skipped: int = Field(description="Events already in the store (same ids, or an identical prefix of the log).")
    head: Head = Field(description="The head of the store after the import.")


_IMPORT_BATCH = 4 * 1024 * 1024
# Ends the error for an input line that is not a sealed record.
_IMPORT_HINT = " (import reads the sealed records `ledger export` writes)"
_RECORD_FIELDS: dict[str, type] = {
    "pos": int, "id": str, "article": str, "version": int, "type": str, "recorded_at": str, "occurred_at": str, "data": dict,
}


# Every top-level field a record written by this store may have (`FileEventStore.append`).
_KNOWN_FIELDS = frozenset({*_RECORD_FIELDS, "schema", "actor", "reason", "end", "prev", "hash"})
# How many event ids of an exact import are looked up in the store at once.
_ID_LOOKUP_BATCH = 2000


class _ExactImport:
    """Checks the records of an exact import, in log order, as strictly as `Ledger.append` checked
    them when it wrote them: a sealed line proves only that its bytes are the ones hashed, and
    the import writes them into the log as they are, so anything `append` could never have
    written (bad ids, data that does not fit its type, a patch that does not fit the text, an edit
    of a withdrawn article, times going back or into the future...) must be refused here, before
    a line is written. Each article is checked from this store's state of it.

    Feed `check` every record after this store's head, then call `finish`.
    """

    def __init__(self, ledger: Target, head: Head) -> None:
        self.ledger = ledger
        self.head = head
        self.order = RecordOrder()
        self.states: dict[str, ArticleState | None] = {}
        # Event ids of the file, with the line that gave each (ids must be unique in the log).
        self.ids: dict[str, str] = {}
        self.unlooked: list[str] = []
        # recorded_at never goes back: it starts from the store's last record.
        self.recorded = ""
        if head.position:
            last = record_at(ledger.store, head.position)
            if last is None:
                raise CorruptStoreError(f"the log has no record at its head position {head.position}", position=head.position)
            self.recorded = last["recorded_at"]
        # A day of grace: an export from a machine whose clock ran ahead is not a forgery.
        self.now = format_time(datetime.now(UTC) + _CLOCK_SKEW)
        # What the records of the append being read share: one recorded_at, and one occurred_at
        # per article (the store writes them so).
        self.append_recorded: str | None = None
        self.append_occurred: dict[str, str] = {}
        # The last recorded_at and occurred_at found to be log times.
        self.last_times: dict[str, str] = {}

    def check(self, record: dict[str, Any], where: str) -> None:
        """Raise `InvalidEventError` (or a `ConflictError`), prefixed with `where`, if this store's
        `append` could not have written `record` next."""
        unknown = sorted(set(record) - _KNOWN_FIELDS)
        if unknown:
            raise InvalidEventError(f"{where}: unknown record field {unknown[0]!r} (a record of this store has no such field)")
        check_envelope(record, where)
        if record.get("end", True) is not True:
            raise InvalidEventError(f"{where}: record field 'end' is not true (it marks the last record of an append)")
        article = record["article"]
        if article not in self.order.versions and article not in self.states:
            self._load(article)
        self.order.check(record, where)
        kind = record["type"]
        self._check_times(record, where)
        stored = upcast(dict(record))
        event: dict[str, Any] = {"type": kind, "article": article, "data": stored["data"], "id": record["id"],
                                 "occurred_at": record["occurred_at"]}
        for optional in ("actor", "reason"):
            if optional in record:
                # The store leaves out an actor or reason it was not given: it never writes null.
                if record[optional] is None:
                    raise InvalidEventError(f"{where}: record field {optional!r} is null")
                event[optional] = record[optional]
        # Of the reserved metadata keys, the draft parser writes only the layout.
        parsed = decisions.parse_event(event, where, allowed_keys=(LAYOUT_KEY,))
        self._check_id(record["id"], where)
        state = self.states[article]
        try:
            # The rules of the article's state; the data it returns (what an append would record
            # today) is not compared with the record's: only whether it could be recorded.
            decisions.record_data(parsed, state, where)
        except NothingToDoError as exc:
            # Not "nothing to do" for the import: `append` never records such an event.
            raise InvalidEventError(f"{exc}, and no append records such an event") from None
        decisions.check_size(kind, stored["data"], where, self.ledger.max_event_bytes)
        # Folding the data as stored is what every read will do: a patch must fit the text.
        # Pass 1 checked the types of the fields folding reads (`_RECORD_FIELDS`) before `check`.
        self.states[article] = decisions.fold_checked(state, cast("FoldedRecord", stored), where)
        if record.get("end"):
            self.append_recorded = None
            self.append_occurred.clear()

    def finish(self) -> None:
        """Look up the ids not yet looked up (raises `DuplicateEventError`)."""
        self._look_up()

    def _load(self, article: str) -> None:
        """Take `article`'s version, last occurred_at and state from this store (none if new)."""
        current = self.ledger.latest_state(article) if self.head.position else None
        if current is not None:
            self.order.versions[article], self.order.occurred[article] = current.version, current.updated_at
        self.states[article] = current

    def _check_times(self, record: dict[str, Any], where: str) -> None:
        recorded = record["recorded_at"]
        for key in ("recorded_at", "occurred_at"):
            if record[key] == self.last_times.get(key):
                continue  # the records of an append share their times: each is checked once
            try:
                canonical = format_time(parse_time(record[key])) == record[key]
            except ValueError:
                canonical = False
            if not canonical:
                raise InvalidEventError(f"{where}: {key} {record[key]!r} is not a log time (e.g. 2017-09-05T16:05:00.000000Z)")
            self.last_times[key] = record[key]
        if recorded < self.recorded:
            raise InvalidEventError(f"{where}: recorded_at {recorded} is earlier than the record before it ({self.recorded})")
        if recorded > self.now:
            raise InvalidEventError(f"{where}: recorded_at {recorded} is in the future")
        if self.append_recorded is not None and recorded != self.append_recorded:
            raise InvalidEventError(f"{where}: recorded_at {recorded} differs from the other records of its append ({self.append_recorded})")
        occurred = self.append_occurred.setdefault(record["article"], record["occurred_at"])
        if record["occurred_at"] != occurred:
            raise InvalidEventError(f"{where}: occurred_at {record['occurred_at']} differs from the other records of its version ({occurred})")
        self.recorded = self.append_recorded = recorded

    def _check_id(self, eid: str, where: str) -> None:
        first = self.ids.setdefault(eid, where)
        if first != where:
            raise InvalidEventError(f"{where}: event id {eid!r} is given twice (first at {first})")
        if self.head.position:
            self.unlooked.append(eid)
            if len(self.unlooked) >= _ID_LOOKUP_BATCH:
                self._look_up()

    def _look_up(self) -> None:
        found = self.ledger.store.lookup_ids(self.unlooked) if self.unlooked else {}
        if found:
            eid = next(eid for eid in self.unlooked if eid in found)
            raise DuplicateEventError(f"{self.ids[eid]}: event id {eid!r} is already in this store (position {found[eid][0]})")
        self.unlooked.clear()


def export(store: EventStore, article: str | None = None) -> Iterator[bytes]:
    """The log's sealed record lines exactly as stored, each ending in a newline: the whole
    log, or only `article`'s events, each checked against its hash and the chain as it goes
    (see `Ledger.export`)."""
    return _chained(store.raw_lines(article), whole=article is None, source=_log_name(store))


def _log_name(store: EventStore) -> str:
    """How messages name the log: its file, for a store kept in a folder."""
    return str(store.root / LOG_FILE) if store.root is not None else store.location


def _chained(lines: Iterable[bytes], *, whole: bool, source: str) -> Iterator[bytes]:
    """`lines` (sealed, checksums checked), checked to chain as they go: each record's `prev`
    is the hash of the record before it wherever both are exported, so a record changed and
    sealed again in the log is reported (`CorruptStoreError`), never exported with exit 0.
    A whole-log export must also hold every position from 1."""
    last_pos, last_hash = 0, codec.GENESIS_HASH
    for line in lines:
        record = codec.decode(line.rstrip(b"\n"))
        pos = record.get("pos")
        if not isinstance(pos, int) or pos <= last_pos or (whole and pos != last_pos + 1):
            raise CorruptStoreError(f"{source}: position {pos!r} follows position {last_pos}")
        if pos == last_pos + 1 and record.get("prev") != last_hash:
            raise CorruptStoreError(f"{source}: position {pos} does not chain to the record before it (hash chain broken)")
        last_pos, last_hash = pos, record["hash"]
        yield line

def export_to(path: str | os.PathLike[str], lines: Iterable[bytes]) -> int:
    """Write the exported `lines` to the file `path` and return their number. The file is
    written beside its final name, synced and renamed, so a failed export never leaves half a
    file behind."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with tmp.open("wb") as handle:
            for line in lines:
                handle.write(line)
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise StoreError(f"{target}: cannot write the export ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return count


def import_file(
    ledger: Target,
    store: EventStore,
    source: str | os.PathLike[str] | Any,
    *,
    reappend: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import an export file into `store`: see `Ledger.import_file`."""
    # A binary file is known only by its methods (stdin, an open file, a spool...).
    reader: Any = source
    if hasattr(reader, "read") and not (hasattr(reader, "seekable") and reader.seekable()):
        with tempfile.TemporaryFile(prefix="ledger-import-") as spool:
            shutil.copyfileobj(reader, spool)
            return import_file(ledger, store, spool, reappend=reappend, progress=progress)
    if hasattr(reader, "read"):
        stream = reader
        name = str(getattr(reader, "name", "<input>"))
        stream.seek(0, os.SEEK_END)
        total = stream.tell()

        def lines() -> Iterator[bytes]:
            stream.seek(0)
            yield from stream
    else:
        path = Path(source)
        name = str(path)
        try:
            info = path.stat()
        except OSError as exc:
            raise InvalidEventError(f"{path}: cannot read the import file ({exc.strerror})") from None
        if not stat.S_ISREG(info.st_mode):
            # A FIFO with no writer would block forever; a pipe is read as stdin (`-`).
            raise InvalidEventError(f"{path}: not a regular file; to import from a pipe, give - and redirect it to stdin")
        total = info.st_size

        def lines() -> Iterator[bytes]:
            with path.open("rb") as handle:
                yield from handle
    return _import(ledger, store, lines, total, name, progress, reappend)

def import_records(ledger: Target, store: EventStore, lines: Sequence[bytes], *, name: str = "<records>", reappend: bool = False) -> ImportResult:
    """Load sealed record lines written by `export` into `store`: see `Ledger.import_records`."""
    return _import(ledger, store, lambda: lines, sum(len(line) for line in lines), name, None, reappend)

def _import(
    ledger: Target,
    store: EventStore,
    lines: Callable[[], Iterable[bytes]],
    total: int,
    name: str,
    progress: Callable[[int, int], None] | None,
    reappend: bool,
) -> ImportResult:
    head = ledger.head()
    done = 0

    def records(passes: int, strict: bool = True) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
        """The input's records with their `file:line` labels; `strict`: parsed by the rules
        for user input (only the exact import's second pass, which appends the lines
        already checked, needs no more than their positions)."""
        nonlocal done
        for number, raw in enumerate(lines(), 1):
            done += len(raw)
            if progress is not None and number % 2000 == 0:
                progress(done, total * passes)
            line = raw.rstrip(b"\r\n")
            if line.strip():
                where = f"{name}:{number}"
                try:
                    record = codec.decode(line)
                    if strict:
                        # Read again by the rules for user input: orjson would turn an
                        # integer beyond 64 bits into a rounded float, and keep the last of
                        # two equal keys. orjson's read must pass too: it is what reads the log.
                        record = codec.loads_input(line)
                except codec.RecordError as exc:
                    raise InvalidEventError(f"{where}: {exc}{_IMPORT_HINT}") from None
                except codec.InputJsonError as exc:
                    raise InvalidEventError(f"{where}: {exc}") from None
                yield where, line, record

    # Pass 1: every line is a sealed record, chained to the one before wherever their
    # positions say they were neighbours in their log. Is the input one unbroken piece of
    # a log that starts this store's log or continues it?
    read = 0
    exact = _ExactImport(ledger, head)
    gap: str | None = None
    # Whether the input holds this store's head record, or starts right after it.
    reaches_head = False
    last_pos, last_hash, last_end, last_where = 0, codec.GENESIS_HASH, False, name
    for where, line, record in records(2):
        try:
            digest = codec.check(line)
        except codec.RecordError as exc:
            raise InvalidEventError(f"{where}: {exc}{_IMPORT_HINT}") from None
        for key, kind in _RECORD_FIELDS.items():
            if not isinstance(record.get(key), kind):
                what = {int: "a whole number", str: "text", dict: "an object"}[kind]
                raise InvalidEventError(f"{where}: record field {key!r} is missing or not {what}")
        try:
            parse_time(record["occurred_at"])
        except ValueError:
            raise InvalidEventError(f"{where}: occurred_at {record['occurred_at']!r} is not a log time (e.g. 2017-09-05T16:05:00.000000Z)") from None
        pos, prev = record["pos"], record.get("prev")
        if pos < 1 or isinstance(pos, bool):
            raise InvalidEventError(f"{where}: record field 'pos' is not a position (1, 2, 3 ...)")
        if pos == last_pos + 1 and (read or pos == 1):
            # Neighbours in their log (or the log's first record): the chain must hold, in
            # every mode; a break means lines were edited and resealed, dropped or moved.
            if prev != last_hash:
                raise InvalidEventError(f"{where}: hash chain broken: its prev is not the hash of the record before it in the log")
        elif read == 0:
            if pos == head.position + 1 and prev == head.hash:
                reaches_head = True
            elif pos > head.position:
                gap = f"{where}: starts at position {pos} without continuing this store's log (head position {head.position})"
        elif gap is None:
            gap = (f"{where}: position {pos} comes after position {last_pos} (records out of order)" if pos <= last_pos
                   else f"{where}: position {pos} follows position {last_pos} (records missing, as in an --article export)")
        if pos == head.position and digest == head.hash and gap is None:
            reaches_head = True
        if head.position == 0 and pos == 1 and read == 0:
            reaches_head = True
        if gap is None and reaches_head and pos > head.position:
            # An exact import is appended in batches: check all of it before any of it,
            # each article from where this store has it.
            exact.check(record, where)
        read += 1
        last_pos, last_hash, last_end, last_where = pos, digest, bool(record.get("end")), where
    if not read:
        raise NothingToDoError(f"{name}: no records to import")
    if not last_end:
        raise InvalidEventError(
            f'{last_where}: the file ends inside an append (its last record has no "end"): it was cut short, '
            "or it is an --article export of a version appended together with other articles"
        )
    if gap is None and last_pos <= head.position and (reaches_head or _holds(store, last_pos, last_hash)):
        # Already recorded: an import run again succeeds and imports nothing (docs/cli.md, exit codes).
        if progress is not None:
            progress(total * 2, total * 2)
        return ImportResult(mode="exact", read=read, imported=0, skipped=read, head=head)

    moved: Head | None = None
    if gap is None and reaches_head:
        exact.finish()
        imported = 0
        new_head = head
        # Other writers are held off from the head read again to the last batch: what was
        # checked against the head must still be the log it continues.
        with store.exclusive():
            now = store.head()
            if now != head:
                moved = now
            else:
                with ledger.bulk():
                    batch: list[bytes] = []
                    labels: list[str] = []
                    size = 0
                    for label, line, record in records(2, strict=False):
                        if record["pos"] <= head.position:
                            continue
                        batch.append(line + b"\n")
                        labels.append(label)
                        size += len(line) + 1
                        if size >= _IMPORT_BATCH and record.get("end"):
                            new_head = store.append_raw(batch, labels)
                            imported += len(batch)
                            batch, labels, size = [], [], 0
                    if batch:
                        new_head = store.append_raw(batch, labels)
                        imported += len(batch)
        if moved is None:
            if progress is not None:
                progress(total * 2, total * 2)
            # The head from the appends themselves: the index catches up on the next read.
            return ImportResult(mode="exact", read=read, imported=imported, skipped=read - imported, head=new_head)

    if moved is not None and not reappend:
        raise InvalidEventError(
            f"{name}: another writer appended while the file was read (head position {head.position}, now {moved.position}): "
            "it no longer continues this store's log as it is; run the import again (--reappend appends it anew)"
        )
    if not reappend:
        why = gap or f"{name}: does not continue this store's log (head position {head.position}): the store has other events"
        raise InvalidEventError(f"{why}; only a whole piece of this log is imported as it is (--reappend appends anything else anew)")

    # Pass 2: check every append against the articles' states as they will be; pass 3: append.
    skip = _check_reappend(ledger, _appends(records(3)))
    imported = 0
    with ledger.bulk():
        for index, (labels, events, _) in enumerate(_appends(records(3))):
            if index in skip:
                continue
            result = ledger.append(events, labels=labels, reserved_keys=True)
            if not result.duplicate:
                imported += len(events)
    if progress is not None:
        progress(total * 3, total * 3)
    return ImportResult(mode="reappended", read=read, imported=imported, skipped=read - imported, head=ledger.head())

def _holds(store: EventStore, position: int, digest: str) -> bool:
    """Whether this store's record at `position` has the hash `digest` (so, by the chain,
    its log up to there is the one that hash seals)."""
    record = record_at(store, position)
    return record is not None and record["hash"] == digest

def _appends(records: Iterable[tuple[str, bytes, dict[str, Any]]]) -> Iterator[tuple[list[str], list[EventFields], dict[str, int]]]:
    """Group imported records into the appends to make: the records up to each `end`, split
    where an article comes back at another version (an `--article` export keeps only one
    article's records of each append, and its `end` may have been on another article's).
    Yields labels, events, and the version each article had in the input."""
    labels: list[str] = []
    events: list[EventFields] = []
    versions: dict[str, int] = {}
    for label, _, record in records:
        upcast(record)
        article, version = record["article"], record["version"]
        if versions.get(article, version) != version:
            yield labels, events, versions
            labels, events, versions = [], [], {}
        versions[article] = version
        event = {"type": record["type"], "article": article, "data": record["data"], "id": record["id"],
                 "occurred_at": parse_time(record["occurred_at"])}
        for optional in ("actor", "reason"):
            if record.get(optional) is not None:
                event[optional] = record[optional]
        labels.append(label)
        events.append(decisions.parse_event(event, label, RESERVED_METADATA_KEYS))
        if record.get("end"):
            yield labels, events, versions
            labels, events, versions = [], [], {}
    if events:
        yield labels, events, versions

def _check_reappend(ledger: Target, appends: Iterable[tuple[list[str], list[EventFields], dict[str, int]]]) -> set[int]:
    """Check imported appends in order against the articles' states as the import will
    leave them, without appending; return the indexes of appends already in the store."""
    states: dict[str, ArticleState | None] = {}
    skip: set[int] = set()
    for index, (labels, events, versions) in enumerate(appends):
        if ledger.store.find_append([eid for event in events if (eid := event.get("id"))]) is not None:
            skip.add(index)
            continue
        # Each article's version and time before this append.
        before: dict[str, tuple[int, str]] = {}
        for label, event in zip(labels, events, strict=False):
            article = event["article"]
            if article not in states:
                states[article] = ledger.latest_state(article)
            state = states[article]
            if article not in before:
                before[article] = (state.version, state.updated_at) if state is not None else (0, "")
            data = decisions.record_data(event, state, label)
            version, previous = before[article]
            if versions[article] != version + 1:
                # Its patches were made against the file's text of that article, not this store's.
                raise InvalidEventError(
                    f"{label}: version {versions[article]} of {article!r} would be version {version + 1} here: "
                    f"this store's history of {article!r} differs from the file's"
                )
            moment = event.get("occurred_at")
            when = format_time(moment) if moment else ""
            if when < previous:
                raise InvalidTimeError(f"{label}: occurred_at {when} of {article!r} is earlier than its version {version} ({previous})")
            states[article] = decisions.fold_checked(
                state, {"type": event["type"], "data": data, "article": article, "version": version + 1, "occurred_at": when, "pos": 0}, label
            )
    return skip
