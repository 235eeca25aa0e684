"""The `Ledger` facade: the one object users open, append to and query.

It turns what users ask to record (`EventIn`) into stored records: it checks each event against
the article's current state (created once, not edited while withdrawn, block indexes that
exist...) and records only what changed (an edit becomes a patch). The store's optimistic
concurrency makes this safe across processes: the append states the version it was prepared
against, and is prepared again if another process got there first.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import stat
import tempfile
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from ledger import codec

from ledger.errors import (
    ArticleNotFoundError,
    ArticleStateError,
    CorruptStoreError,
    DuplicateEventError,
    InvalidEventError,
    InvalidInputError,
    InvalidTimeError,
    LedgerError,
    StoreError,
    NothingToDoError,
    VersionConflictError,
    VersionNotFoundError,
)
from ledger.events import (
    DEFAULT_MAX_EVENT_BYTES,
    EventIn,
    SCHEMA_VERSIONS,
    NewRecord,
    RecordedEvent,
    describe_validation_error,
    format_time,
    new_event_ids,
    parse_time,
    upcast,
    validate_data,
)
from ledger.changes import plan_changes, same_value
from ledger.patches import make_patch
from ledger.catalog import Catalog
from ledger.diffs import line_diff, word_diff
from ledger.projections import CHANGE_KIND, ArticleState, ArticleView, apply, fold
from ledger.rendering import LAYOUT_KEY, RESERVED_METADATA_KEYS, check_layout, render
from ledger.times import parse_when
from ledger.views import (
    CategoryCount,
    CategoryListing,
    CategoryMember,
    CategoryMembership,
    Diff,
    FeedBlock,
    FeedEntry,
    HistoryEntry,
    ReplayStats,
    TimelineEntry,
)
from ledger.store import AppendResult, EventStore, FileEventStore, Head, RecordOrder, VerifyReport, init_store

log = logging.getLogger("ledger")
# How far ahead of this machine's clock an imported record's recorded_at may be.
_CLOCK_SKEW = timedelta(days=1)

DEFAULT_STORE = "ledger-data"
ENV_STORE = "LEDGER_STORE"
_RETRIES = 8
# Optimistic attempts of an append that states no expected version, before it prepares and
# appends under the store's lock, where no other writer can move its articles on.
_OPTIMISTIC = 3
_CACHE_SIZE = 512


def store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: `path`, else `$LEDGER_STORE`, else `./ledger-data`."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(ENV_STORE) or DEFAULT_STORE)


def init(path: str | os.PathLike[str] | None = None) -> Path:
    """Create an empty store (harmless if it exists) and return its folder."""
    return init_store(store_path(path))


def open(  # noqa: A001
    path: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    lock_timeout: float = 10.0,
    recover: bool = True,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> "Ledger":
    """Open the store at `path` (see `store_path`) as a `Ledger`.

    `create` makes the store if it is missing. `recover` (the default) cuts off a torn tail left
    by a crash and brings the index up to date; `verify` opens without it, to report damage.
    `lock_timeout` is how long a write waits for another writer, in seconds (`math.inf`: for
    ever); `max_event_bytes` bounds the data of one event, as JSON (see `Ledger`).
    """
    if math.isnan(lock_timeout) or lock_timeout < 0:
        raise InvalidInputError(f"lock timeout {lock_timeout} is not a number of seconds (0 or more)")
    root = store_path(path)
    if create:
        init_store(root)
    store = FileEventStore(root, lock_timeout=lock_timeout)
    if recover:
        try:
            store.recover()
        except BaseException:
            store.close()
            raise
    return Ledger(store, max_event_bytes=max_event_bytes)


def _parse_head(text: str) -> tuple[str, int | None]:
    """`HASH` or `HASH@POSITION` (as `ledger head` prints it) as its hash and position."""
    digest, at, position = text.strip().partition("@")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or (at and not (position.isascii() and position.isdigit())):
        raise InvalidInputError(f"head {text!r}: expected HASH or HASH@POSITION as `ledger head` prints it (a 64-digit hex hash, a position from 0)")
    if at and int(position) == 0 and digest != codec.GENESIS_HASH:
        raise InvalidInputError(f"head {text!r}: position 0 is the empty log, whose hash is {codec.GENESIS_HASH}")
    return digest, int(position) if at else None


class Stats(BaseModel):
    """Counts of a store (`ledger stats`)."""

    events: int = Field(description="Events in the log.")
    articles: int = Field(description="Articles with at least one event.")
    versions: int = Field(description="Article versions, all articles together.")
    categories: int = Field(description="Categories holding at least one article now (withdrawn articles left theirs).")
    withdrawn: int = Field(description="Articles withdrawn now.")
    log_bytes: int = Field(description="Size of the log file.")
    head_position: int = Field(description="The last position in the log.")
    head_hash: str = Field(description="The hash that seals the log up to the head.")


class ImportResult(BaseModel):
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

    def __init__(self, ledger: "Ledger", head: Head) -> None:
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
            self.recorded = ledger._record_at(head.position)["recorded_at"]
        # A day of grace: an export from a machine whose clock ran ahead is not a forgery.
        self.now = format_time(datetime.now(timezone.utc) + _CLOCK_SKEW)
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
        # isinstance lets true and false pass for integers.
        for key in ("pos", "version"):
            if type(record[key]) is not int:
                raise InvalidEventError(f"{where}: record field {key!r} is not an integer")
        if record.get("end", True) is not True:
            raise InvalidEventError(f"{where}: record field 'end' is not true (it marks the last record of an append)")
        article = record["article"]
        if article not in self.order.versions and article not in self.states:
            self._load(article)
        self.order.check(record, where)
        kind = record["type"]
        schema = record.get("schema", 1)
        if type(schema) is not int or not 1 <= schema <= SCHEMA_VERSIONS[kind]:
            raise InvalidEventError(f"{where}: schema {schema!r} of {kind} is not one this ledger knows (1 to {SCHEMA_VERSIONS[kind]})")
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
        parsed = self.ledger._parse(event, where, allowed_keys=(LAYOUT_KEY,))
        self._check_id(record["id"], where)
        state = self.states[article]
        try:
            # The rules of the article's state; the data it returns (what an append would record
            # today) is not compared with the record's: only whether it could be recorded.
            self.ledger._record_data(parsed, state, where)
        except NothingToDoError as exc:
            # Not "nothing to do" for the import: `append` never records such an event.
            raise InvalidEventError(f"{exc}, and no append records such an event") from None
        self.ledger._check_size(kind, stored["data"], where)
        # Folding the data as stored is what every read will do: a patch must fit the text.
        self.states[article] = self.ledger._fold_checked(state, stored, where)
        if record.get("end"):
            self.append_recorded = None
            self.append_occurred.clear()

    def finish(self) -> None:
        """Look up the ids not yet looked up (raises `DuplicateEventError`)."""
        self._look_up()

    def _load(self, article: str) -> None:
        """Take `article`'s version, last occurred_at and state from this store (none if new)."""
        current = self.ledger._current(article) if self.head.position else None
        if current is not None:
            self.order.versions[article], self.order.occurred[article] = current.version, current.updated_at
        # A copy: folding changes a state in place, and the ledger caches this one.
        self.states[article] = current.copy() if current is not None else None

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


def _summary(group: list[dict[str, Any]]) -> dict[str, Any]:
    """What the records of one article version say about it (history and timeline fields)."""
    first, last = group[0], group[-1]
    changes: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    headings: list[str] = []
    for event in group:
        kind = CHANGE_KIND[event["type"]]
        if kind not in changes:
            changes.append(kind)
        data = event["data"]
        if event["type"] == "ArticleCreated":
            added.extend(data.get("categories", ()))
        elif event["type"] == "CategoriesChanged":
            added.extend(data.get("added", ()))
            removed.extend(data.get("removed", ()))
        elif event["type"] == "UpdateBlockAdded":
            headings.append(data["heading"])
    return {
        "version": last["version"],
        "position": last["pos"],
        "occurred_at": parse_time(first["occurred_at"]),
        "recorded_at": parse_time(first["recorded_at"]),
        "actor": first.get("actor"),
        "reason": first.get("reason"),
        "changes": changes,
        "categories_added": added,
        "categories_removed": removed,
        "headings": headings,
        "events": len(group),
    }


def _check_reserved_keys(event: EventIn, name: str, allowed: Collection[str]) -> None:
    """Refuse metadata keys ledger reserves (`RESERVED_METADATA_KEYS`) but those `allowed`; and
    a draft layout (`_draft`), where allowed, of another shape than the draft parser writes,
    which rendering could not use."""
    for field in ("metadata", "set", "unset"):
        values = event.data.get(field)
        if not isinstance(values, (dict, list)):
            continue  # not a mapping or list: the data's model says so
        for key in values:
            if not isinstance(key, str) or key not in RESERVED_METADATA_KEYS:
                continue
            if key not in allowed:
                why = "ledger keeps a draft's layout there" if key == LAYOUT_KEY else "a Markdown draft states the article's own title, id and categories under it"
                raise InvalidEventError(f"{name}: {event.type}: metadata key {key!r} is reserved ({why})")
            if key == LAYOUT_KEY and isinstance(values, dict):
                try:
                    check_layout(values[key])
                except ValueError as exc:
                    raise InvalidEventError(f"{name}: {event.type}: {field}.{key}: {exc}") from None


class _Frame:
    """An article without its body and blocks, save the last character of them: rendered, it
    gives exactly the bytes `render` puts around the body and blocks (title line and categories
    line, or front matter), because those depend on the text only through whether it ends in a
    line break."""

    __slots__ = ("id", "title", "body", "categories", "metadata", "blocks")

    def __init__(self, state: ArticleState, tail: str) -> None:
        self.id = state.id
        self.title = state.title
        self.body = tail
        self.categories = state.categories
        self.metadata = state.metadata
        self.blocks: tuple[()] = ()


class _RenderedSize:
    """The UTF-8 size of an article rendered at each version, kept up to date event by event: the
    body and each update block are measured again only when they change, and only the small frame
    around them is rendered for every version (rendering every version whole would cost versions
    x article size)."""

    def __init__(self) -> None:
        self.body = 0
        self.blocks: list[int] = []
        self.total_blocks = 0

    def apply(self, state: ArticleState, record: dict[str, Any]) -> None:
        """Account for `record`, already folded into `state`."""
        kind = record["type"]
        if kind == "ArticleCreated" or (kind == "ArticleEdited" and record["data"].get("patch")):
            self.body = len(state.body.encode("utf-8"))
        elif kind in ("UpdateBlockAdded", "UpdateBlockEdited"):
            index = record["data"].get("index")
            if index is None:
                index = len(state.blocks) - 1
            heading, text = state.blocks[index][0], state.blocks[index][1]
            size = len(heading.encode("utf-8")) + len(text.encode("utf-8"))
            if kind == "UpdateBlockAdded":
                self.blocks.insert(index, size)
            else:
                self.total_blocks -= self.blocks[index]
                self.blocks[index] = size
            self.total_blocks += size
        elif kind == "UpdateBlockRemoved":
            self.total_blocks -= self.blocks.pop(record["data"]["index"])

    def size(self, state: ArticleState) -> int:
        """Bytes of `render(state.view())`."""
        tail = ""
        for heading, text, *_ in reversed(state.blocks):
            tail = text[-1:] or heading[-1:]
            if tail:
                break
        if not tail:
            tail = state.body[-1:]
        frame = len(render(_Frame(state, tail)).encode("utf-8")) - len(tail.encode("utf-8"))
        return frame + self.body + self.total_blocks


class Ledger:
    """A versioned archive of articles, backed by an `EventStore`. Use as a context manager.

    `max_event_bytes` bounds the data of one event as recorded, as JSON (an edit records only
    its patch): an append with a larger event is refused (`InvalidEventError`).
    """

    def __init__(self, store: EventStore, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise InvalidInputError(f"max_event_bytes must be at least 1, not {max_event_bytes}")
        self.store = store
        self.max_event_bytes = max_event_bytes
        self._states: OrderedDict[str, ArticleState] = OrderedDict()
        # Articles whose cached state was folded from the log alone (or left by our own appends),
        # never from a snapshot: only such a state prepares an append (see `_current`).
        self._from_log: set[str] = set()
        self._catalog: Catalog | None = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the store."""
        if self._catalog is not None:
            self._catalog.close()
        self.store.close()

    @property
    def path(self) -> Path | None:
        """The store folder, for file-backed stores."""
        return getattr(self.store, "root", None)

    # --- writing ---------------------------------------------------------------------------

    def append_json_lines(self, lines: Iterable[bytes | str], *, name: str = "<input>") -> AppendResult:
        """Append events given as JSON objects, one per line (blank lines skipped), as one
        atomic append: what `ledger append FILE` does. Errors name `name:line`.

        The JSON is read strictly: a key given twice, an integer beyond 64 bits, NaN or
        Infinity is refused rather than kept otherwise than written."""
        events: list[Any] = []
        labels: list[str] = []
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            label = f"{name}:{number}"
            try:
                value = codec.loads_input(raw)
            except codec.InputJsonError as exc:
                raise InvalidEventError(f"{label}: {exc}") from None
            if not isinstance(value, dict):
                raise InvalidEventError(f"{label}: expected a JSON object, got {type(value).__name__}")
            events.append(value)
            labels.append(label)
        return self.append(events, labels=labels)

    def append(
        self,
        events: Iterable[EventIn | Mapping[str, Any]],
        *,
        labels: Sequence[str] | None = None,
        reserved_keys: bool = False,
    ) -> AppendResult:
        """Record `events` as one atomic append: all of them or none.

        Each is an `EventIn` or a dict of its fields. Events of one article become its next
        version. `labels` name where each event came from (e.g. `events.jsonl:3`) in error
        messages; by default `event 1`, `event 2`, ... Raises an `InvalidInputError`,
        `ArticleNotFoundError`, `ConflictError` or `NothingToDoError` and records nothing when
        any event does not fit.

        Metadata keys ledger reserves (`ledger.rendering.RESERVED_METADATA_KEYS`: the draft
        layout `_draft` and the front-matter keys of title, id and categories) are refused unless
        `reserved_keys` is set, as ingest, restore and import do to carry a draft's layout over;
        a layout is checked against the shape the draft parser writes either way.

        An append that states no `expected_version` never fails with a version conflict: when
        other writers keep moving its articles on, it is prepared and appended under the
        store's lock (`EventStore.exclusive`). An event id already in the log makes the append a
        re-send, which records nothing and returns the first append's result, if its events say
        what was recorded under those ids; otherwise it is refused (`DuplicateEventError`).
        """
        given = list(events)
        names = list(labels) if labels is not None else [f"event {i}" for i in range(1, len(given) + 1)]
        if len(names) != len(given):
            raise InvalidInputError(f"{len(given)} events but {len(names)} labels")
        allowed = RESERVED_METADATA_KEYS if reserved_keys else frozenset()
        parsed = [self._parse(event, names[i], allowed) for i, event in enumerate(given)]
        if not parsed:
            raise NothingToDoError("nothing to append: no events given")
        expected_by_user: dict[str, int] = {}
        for event, name in zip(parsed, names):
            if event.expected_version is not None:
                if expected_by_user.setdefault(event.article, event.expected_version) != event.expected_version:
                    raise InvalidEventError(f"{name}: expected_version differs from an earlier event of {event.article!r}")
        explicit = [event.id for event in parsed if event.id is not None]
        # A re-sent append (every id given) is recognised by the store, under its lock, when it
        # would write it, or below when its events no longer fit the articles: one look for its
        # ids on the common path, not two.
        if explicit and len(explicit) != len(parsed) and self.store.find_append(explicit) is not None:
            raise DuplicateEventError(f"{names[0]}: some events of this append are already in the log and others have no id")
        for attempt in range(_RETRIES):
            lock: AbstractContextManager[Any] = self.store.exclusive() if attempt >= _OPTIMISTIC else nullcontext()
            with lock:
                try:
                    records, expected, states = self._prepare(parsed, names, expected_by_user)
                except LedgerError:
                    # A re-sent append (by us or, meanwhile, by another process) is refused by the
                    # articles' new state (created twice, changes nothing, version moved on), but
                    # must get its original result.
                    original = self.store.find_append(explicit) if explicit and len(explicit) == len(parsed) else None
                    if original is not None:
                        return self._resent(parsed, names, original)
                    raise
                try:
                    result = self.store.append(records, expected)
                except VersionConflictError:
                    # Only a version the user stated may fail the append: a conflict on any other
                    # article of it means prepare again (under the lock after a few tries).
                    if attempt == _RETRIES - 1 or (
                        expected_by_user and self.store.article_versions(expected_by_user) != expected_by_user
                    ):
                        raise
                    continue
            if result.duplicate:
                return self._resent(parsed, names, result)
            self._remember(records, result, states)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # Types whose recorded data is their data as given, validated: a re-send of one can be
    # compared with the record (the others record a change against the article's state).
    _AS_GIVEN = frozenset({"ArticleCreated", "UpdateBlockAdded", "UpdateBlockRemoved", "ArticleWithdrawn", "ArticleRestored"})

    def _resent(self, events: list[EventIn], names: list[str], original: AppendResult) -> AppendResult:
        """`original`, the result of the append that recorded `events`' ids first, if `events`
        say what it recorded (article, type, actor, reason, time and data where comparable);
        else `DuplicateEventError`: reusing an id for other content must not pass for a re-send."""
        recorded = {record["id"]: record for record in self.store.read(original.first_position - 1, original.last_position)}
        for event, name in zip(events, names):
            record = recorded.get(event.id or "")
            if record is None:
                raise DuplicateEventError(f"{name}: event id {event.id!r} is in the log, but not in the append it seems to repeat")
            where = f"{name}: event id {event.id!r} is already recorded (position {record['pos']})"
            if (record["article"], record["type"]) != (event.article, event.type):
                raise DuplicateEventError(
                    f"{where} as {record['type']} of {record['article']!r}, not {event.type} of {event.article!r}; nothing appended"
                )
            differs = [field for field in ("actor", "reason") if getattr(event, field) != record.get(field)]
            if event.occurred_at is not None and format_time(event.occurred_at) != record["occurred_at"]:
                differs.append("occurred_at")
            if event.type in self._AS_GIVEN:
                try:
                    same = same_value(validate_data(event.type, dict(event.data)), record["data"])
                except InvalidEventError:
                    same = False
                if not same:
                    differs.append("data")
            if differs:
                raise DuplicateEventError(f"{where} with another {' and '.join(differs)}; nothing appended")
        return original

    @staticmethod
    def _parse(event: EventIn | Mapping[str, Any], name: str, allowed_keys: Collection[str] = ()) -> EventIn:
        if isinstance(event, EventIn):
            parsed = event
        else:
            try:
                parsed = EventIn.model_validate(event)
            except ValidationError as exc:
                raise InvalidEventError(f"{name}: {describe_validation_error(exc)}") from None
        if parsed.type in ("ArticleCreated", "MetadataChanged"):
            _check_reserved_keys(parsed, name, allowed_keys)
        return parsed

    def _prepare(
        self, events: list[EventIn], names: list[str], expected_by_user: dict[str, int]
    ) -> tuple[list[NewRecord], dict[str, int], dict[str, ArticleState | None]]:
        states: dict[str, ArticleState | None] = {}
        expected: dict[str, int] = {}
        records: list[NewRecord] = []
        # The events of an append mostly share one time: format each distinct time once.
        times: dict[datetime, str] = {}
        fresh_ids = iter(new_event_ids(sum(1 for event in events if event.id is None)))
        # One look at the log for all the articles: each look checks whether it grew.
        versions = self.store.article_versions(dict.fromkeys(event.article for event in events))
        for event, name in zip(events, names):
            article = event.article
            occurred_at = None
            if event.occurred_at is not None:
                occurred_at = times.get(event.occurred_at)
                if occurred_at is None:
                    occurred_at = times[event.occurred_at] = format_time(event.occurred_at)
            if article not in states:
                current = self._current(article, versions[article], from_log=True)
                version = current.version if current is not None else 0
                if article in expected_by_user and expected_by_user[article] != version:
                    raise VersionConflictError(
                        f"{name}: article {article!r} is at version {version}, not the expected {expected_by_user[article]}; nothing appended"
                    )
                expected[article] = version
                states[article] = current.copy() if current is not None else None
            data = self._record_data(event, states[article], name)
            self._check_size(event.type, data, name)
            # Validating these already valid fields again is cheaper than model_construct
            # (pydantic 2.13: about 4 µs against 6).
            record = NewRecord(
                id=event.id if event.id is not None else next(fresh_ids),
                article=article,
                type=event.type,
                data=data,
                occurred_at=occurred_at,
                actor=event.actor,
                reason=event.reason,
                explicit_id=event.id is not None,
            )
            # Fold as we go so that the next event of the same append is checked against it.
            states[article] = self._fold_checked(
                states[article],
                {"type": record.type, "data": data, "article": article, "version": expected[article] + 1,
                 "occurred_at": record.occurred_at or "", "pos": 0},
                name,
            )
            records.append(record)
        return records, expected, states

    def _check_size(self, kind: str, data: dict[str, Any], name: str) -> None:
        """Refuse data that cannot be written as JSON, or is larger than `max_event_bytes`."""
        try:
            size = len(codec.dumps(data))
        except TypeError as exc:  # orjson's JSONEncodeError: e.g. an unpaired surrogate in a body
            raise InvalidEventError(f"{name}: {kind}: data cannot be written as JSON ({exc})") from None
        if size > self.max_event_bytes:
            raise InvalidEventError(
                f"{name}: {kind} is {size:,} bytes of data, over the limit of {self.max_event_bytes:,}"
                " (ledger --max-event-bytes raises it)"
            )

    @staticmethod
    def _fold_checked(state: ArticleState | None, record: dict[str, Any], name: str) -> ArticleState:
        """Fold an event that is being checked for appending. Folding applies its patch, so this is
        where a patch that does not fit the text is refused (once, not applied twice)."""
        try:
            return apply(state, record)
        except ValueError as exc:
            raise InvalidEventError(f"{name}: patch: {exc}") from None

    def _record_data(self, event: EventIn, state: ArticleState | None, name: str) -> dict[str, Any]:
        """Check `event` against the article's state; return the data to record (only what changes)."""
        kind, data, article = event.type, dict(event.data), event.article
        where = f"{name}: "
        if kind == "ArticleCreated":
            if state is not None:
                raise ArticleStateError(f"{where}article {article!r} already exists (version {state.version})")
            return validate_data(kind, data, where)
        if state is None:
            raise ArticleNotFoundError(f"{where}article {article!r} does not exist; create it with ArticleCreated first")
        if state.withdrawn and kind not in ("ArticleRestored", "ArticleWithdrawn"):
            raise ArticleStateError(f"{where}article {article!r} is withdrawn; restore it first (ArticleRestored)")
        if kind == "ArticleWithdrawn":
            if state.withdrawn:
                raise ArticleStateError(f"{where}article {article!r} is already withdrawn")
            return validate_data(kind, data, where)
        if kind == "ArticleRestored":
            if not state.withdrawn:
                raise ArticleStateError(f"{where}article {article!r} is not withdrawn")
            return validate_data(kind, data, where)
        if kind == "ArticleEdited":
            return self._edit_data(data, state, where)
        if kind == "UpdateBlockAdded":
            out = validate_data(kind, data, where)
            if out["index"] is not None and out["index"] > len(state.blocks):
                raise InvalidEventError(f"{where}UpdateBlockAdded: index {out['index']} is past the {len(state.blocks)} blocks of {article!r}")
            return out
        if kind in ("UpdateBlockEdited", "UpdateBlockRemoved"):
            index = data.get("index")
            if isinstance(index, int) and not 0 <= index < len(state.blocks):
                raise InvalidEventError(f"{where}{kind}: {article!r} has no update block {index} (it has {len(state.blocks)})")
            if kind == "UpdateBlockRemoved":
                return validate_data(kind, data, where)
            if "text" in data:
                text = data.pop("text")
                if not isinstance(text, str):
                    raise InvalidEventError(f"{where}UpdateBlockEdited: text: must be a string")
                data["patch"] = make_patch(state.blocks[index][1], text) if isinstance(index, int) else None
            out = validate_data(kind, data, where)
            block = state.blocks[out["index"]]
            if out["heading"] == block[0]:
                out["heading"] = None
            if out["heading"] is None and not out["patch"]:
                raise NothingToDoError(f"{where}UpdateBlockEdited changes nothing in block {out['index']} of {article!r}")
            return {k: v for k, v in out.items() if v is not None}
        if kind == "CategoriesChanged":
            if "categories" in data:
                wanted = data.pop("categories")
                if not isinstance(wanted, list):
                    raise InvalidEventError(f"{where}CategoriesChanged: categories: must be a list")
                data.setdefault("added", [c for c in wanted if c not in state.categories])
                data.setdefault("removed", [c for c in state.categories if c not in wanted])
            out = validate_data(kind, data, where)
            out["added"] = [c for c in out["added"] if c not in state.categories or c in out["removed"]]
            out["removed"] = [c for c in out["removed"] if c in state.categories]
            if not out["added"] and not out["removed"]:
                raise NothingToDoError(f"{where}CategoriesChanged changes nothing for {article!r}")
            return out
        if kind == "MetadataChanged":
            out = validate_data(kind, data, where)
            # Compare by JSON form: in Python 1 == 1.0 == True, in front matter they differ.
            out["set"] = {k: v for k, v in out["set"].items() if k not in state.metadata or not same_value(state.metadata[k], v)}
            out["unset"] = [k for k in out["unset"] if k in state.metadata and k not in out["set"]]
            if not out["set"] and not out["unset"]:
                raise NothingToDoError(f"{where}MetadataChanged changes nothing for {article!r}")
            return out
        raise InvalidEventError(f"{where}unknown event type {kind!r}")

    def _edit_data(self, data: dict[str, Any], state: ArticleState, where: str) -> dict[str, Any]:
        if "body" in data:
            body = data.pop("body")
            if not isinstance(body, str):
                raise InvalidEventError(f"{where}ArticleEdited: body: must be a string")
            if "patch" in data:
                raise InvalidEventError(f"{where}ArticleEdited: give body or patch, not both")
            data["patch"] = make_patch(state.body, body)
        out = validate_data("ArticleEdited", data, where)
        if out["title"] == state.title:
            out["title"] = None
        if out["patch"] is not None:
            out["patch"] = [list(op) for op in out["patch"]]
        if out["title"] is None and not out["patch"]:
            raise NothingToDoError(f"{where}ArticleEdited changes nothing in {state.id!r}")
        return {k: v for k, v in out.items() if v}

    def _remember(self, records: list[NewRecord], result: AppendResult, states: dict[str, ArticleState | None]) -> None:
        # Keep the states we just folded, stamped with what the store assigned, so the next
        # append to the same article needs no read.
        position = result.first_position
        last_position: dict[str, int] = {}
        for record in records:
            last_position[record.article] = position
            position += 1
        # Only blocks added by this append can carry a time other than the one the store chose.
        added_blocks = {record.article for record in records if record.type == "UpdateBlockAdded"}
        # A time given with an article's events is the time the store recorded for all of them
        # (it refuses an append whose events of one article disagree): no need to format it.
        given: dict[str, str] = {}
        for record in records:
            if record.occurred_at is not None:
                given.setdefault(record.article, record.occurred_at)
        for article, state in states.items():
            if state is None:
                continue
            when = given.get(article) or format_time(result.occurred_at[article])
            state.version = result.versions[article]
            state.position = last_position[article]
            state.updated_at = when
            if state.version == 1:
                state.created_at = when
            if article in added_blocks:
                blocks = state.blocks
                for index, block in enumerate(blocks):
                    if block[2] == state.version and block[3] != when:
                        # A new list: block lists may be shared with copies of the state.
                        blocks[index] = [block[0], block[1], block[2], when]
            self._cache(state, from_log=True)

    def _cache(self, state: ArticleState, *, from_log: bool) -> None:
        self._states[state.id] = state
        self._states.move_to_end(state.id)
        if from_log:
            self._from_log.add(state.id)
        else:
            self._from_log.discard(state.id)
        while len(self._states) > _CACHE_SIZE:
            evicted, _ = self._states.popitem(last=False)
            self._from_log.discard(evicted)

    def _current(self, article: str, version: int | None = None, *, from_log: bool = False) -> ArticleState | None:
        """The article's state at its latest version (None if it has no events); `version` is
        that latest version when the caller has just asked the store for it.

        `from_log`: folded from the log alone, never from a snapshot. An append is prepared
        from such a state, so that a snapshot edited in `views.sqlite` (even with its digest
        recomputed) can never become a patch in the log; reads may start from snapshots."""
        if version is None:
            version = self.store.article_version(article)
        if version == 0:
            return None
        cached = self._states.get(article)
        if cached is not None and from_log and article not in self._from_log:
            cached = None
        trusted = from_log or article in self._from_log
        if cached is not None and cached.version == version:
            return cached
        if cached is not None and cached.version < version:
            state = fold(self.store.read_article(article, cached.version + 1, version), cached.copy())
        else:
            state = self._state_at(article, version, snapshots=not from_log)
        assert state is not None
        self._cache(state, from_log=trusted)
        return state

    def _state_at(self, article: str, version: int, *, snapshots: bool = True) -> ArticleState | None:
        """The article's state at `version`, folded from its nearest snapshot (see `Catalog`),
        or from its first version without `snapshots`."""
        return self.catalog.state_at(article, version, snapshots=snapshots)

    # --- reading ---------------------------------------------------------------------------

    def events(
        self,
        *,
        after: int = 0,
        article: str | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """Recorded events in log order: those after position `after`, of `article` and of
        `types` when given, at most `limit` of them. Raises `ArticleNotFoundError` at once for an
        article that is not in the log."""
        if article is not None:
            self._version_of(article)
        return self._events(after, article, types, limit)

    def _events(self, after: int, article: str | None, types: Iterable[str] | None, limit: int | None) -> Iterator[RecordedEvent]:
        wanted = set(types) if types else None
        if article is not None:
            records: Iterable[dict[str, Any]] = (r for r in self.store.read_article(article) if r["pos"] > after)
        else:
            records = self.store.read(after)
        count = 0
        for record in records:
            if wanted is not None and record["type"] not in wanted:
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield RecordedEvent.from_record(record)

    def article(self, article: str, version: int | None = None, at: datetime | str | None = None) -> ArticleView:
        """The article now, at `version`, or as it stood at time `at` (a datetime, or text such as
        `2017-09-05T16:05Z` or `2h`): the last version that occurred at or before then.

        A withdrawn article is still readable here (its view says `withdrawn=True`); it is only
        left out of listings. Raises `ArticleNotFoundError`, or `VersionNotFoundError` for a
        version it does not have or a time before its first version.
        """
        current = self._version_of(article)
        if at is not None:
            if version is not None:
                raise InvalidInputError("give a version or a time, not both")
            when = format_time(parse_when(at, end=True))
            version = self.store.version_at(article, when)
            if version == 0:
                first = self.store.version_times(article)[0][1]
                raise VersionNotFoundError(f"article {article!r} did not exist yet at {when} (version 1 is from {first})")
        return self._state(article, current if version is None else version, current).view()

    def _version_of(self, article: str) -> int:
        """The article's latest version; raises `ArticleNotFoundError` when it has none."""
        current = self.store.article_version(article)
        if current == 0:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        return current

    def _state(self, article: str, version: int, current: int) -> ArticleState:
        """The article's state at `version`, given its `current` (latest) version."""
        if version == current:
            state = self._current(article, current)
        elif 1 <= version < current:
            state = self._state_at(article, version)
        else:
            raise VersionNotFoundError(f"article {article!r} has versions 1 to {current}, not {version}")
        assert state is not None
        return state

    @property
    def catalog(self) -> Catalog:
        """The persisted read model of all articles (`views.sqlite` in the store folder)."""
        if self._catalog is None:
            self._catalog = Catalog(self.store)
        return self._catalog

    def history(self, article: str) -> list[HistoryEntry]:
        """Every version of the article, oldest first: when, who, why, what kind of change, and
        the size of the article rendered at that version. Raises `ArticleNotFoundError`.

        One fold over the article's records; sizes are kept up to date as it goes, so the cost
        grows with the size of the changes, not with versions x article size."""
        records = self.store.read_article(article)
        if not records:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        entries: list[HistoryEntry] = []
        state: ArticleState | None = None
        sizes = _RenderedSize()
        start = 0
        for index, record in enumerate(records):
            state = apply(state, record)
            sizes.apply(state, record)
            if index + 1 < len(records) and records[index + 1]["version"] == record["version"]:
                continue
            group, start = records[start : index + 1], index + 1
            entries.append(HistoryEntry(article=article, **_summary(group), size=sizes.size(state), withdrawn=state.withdrawn))
        return entries

    def diff(self, article: str, from_version: int | None = None, to_version: int | None = None, words: bool = False) -> Diff:
        """What changed in the rendered article from `from_version` to `to_version` (defaults:
        the previous version against the latest; version 0 is the empty text before the
        article existed), line by line or, with `words`, word by word."""
        current = self._version_of(article)
        to_version = current if to_version is None else to_version
        from_version = max(to_version - 1, 0) if from_version is None else from_version
        # Version 0 is the empty text before the article existed.
        texts = ["" if version == 0 else render(self._state(article, version, current).view()) for version in (from_version, to_version)]
        make = word_diff if words else line_diff
        return make(article, texts[0], texts[1], from_version, to_version)

    def category(self, name: str, at: datetime | str | None = None) -> CategoryListing:
        """The articles in category `name` now, or at time `at`, by article id; withdrawn
        articles are left out. An unknown category is simply empty."""
        moment = parse_when(at, end=True) if at is not None else None
        rows = self.catalog.category_members(name, format_time(moment) if moment is not None else None)
        members = [CategoryMember(article=a, title=t, entered_at=parse_time(s), entered_version=v) for a, t, s, v in rows]
        return CategoryListing(name=name, at=moment, articles=members)

    def categories(self, at: datetime | str | None = None) -> list[CategoryCount]:
        """Every category with its number of (not withdrawn) articles, now or at time `at`,
        by name."""
        rows = self.catalog.category_counts(format_time(parse_when(at, end=True)) if at is not None else None)
        return [CategoryCount(name=name, count=count) for name, count in rows]

    def category_history(self, article: str) -> list[CategoryMembership]:
        """When the article entered and left each category, in order of entry (stints of a
        withdrawn article are not cut: see `history` for withdrawals)."""
        rows = self.catalog.memberships(article)
        if rows is None:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        return [
            CategoryMembership(
                article=article, category=c, entered_version=ev, entered_at=parse_time(ea), left_version=lv,
                left_at=parse_time(la) if la is not None else None,
            )
            for c, ev, ea, lv, la in rows
        ]

    def updated_since(self, since: datetime | str) -> list[FeedEntry]:
        """The "updated stories" feed: articles (not withdrawn) that received update blocks
        whose version occurred at or after `since`, the most recently updated first.

        The blocks are as they stand now: a block added since then and removed again is not
        listed (nor is its article, unless it has other such blocks), and an edited heading is
        shown as it reads now."""
        rows = self.catalog.feed_since(format_time(parse_when(since)))
        entries: dict[str, FeedEntry] = {}
        for article, title, version, occurred, heading in rows:
            block = FeedBlock(heading=heading, added_version=version, added_at=parse_time(occurred))
            entry = entries.get(article)
            if entry is None:
                entries[article] = FeedEntry(article=article, title=title, last_update_at=block.added_at, blocks=[block])
            else:
                entry.blocks.append(block)
        return list(entries.values())

    def timeline(
        self,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        article: str | None = None,
        limit: int | None = None,
    ) -> list[TimelineEntry]:
        """Every version of every article (or of `article`) that occurred between `since` and
        `until` (both included), newest first, at most `limit` of them. Raises
        `ArticleNotFoundError` for an `article` that is not in the log."""
        low = format_time(parse_when(since)) if since is not None else None
        high = format_time(parse_when(until, end=True)) if until is not None else None
        return self._timeline(low, high, article, limit)

    def _timeline(self, low: str | None, high: str | None, article: str | None, limit: int | None, *, retried: bool = False) -> list[TimelineEntry]:
        if article is not None:
            self._version_of(article)
            # One article's versions come from the store's index, newest first (an article's
            # versions never go back in time).
            versions = [
                (article, version)
                for version, occurred, _ in reversed(self.store.version_times(article))
                if (low is None or occurred >= low) and (high is None or occurred <= high)
            ][:limit]
        else:
            versions = self.catalog.versions_between(low, high, limit)
        # One read per article: the versions listed of one article follow each other (its versions
        # never go back in time), so the range from the first to the last is what is needed.
        wanted: dict[str, tuple[int, int]] = {}
        for name, version in versions:
            first, last = wanted.get(name, (version, version))
            wanted[name] = (min(first, version), max(last, version))
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for name, (first, last) in wanted.items():
            for record in self.store.read_article(name, first, last):
                groups.setdefault((name, record["version"]), []).append(record)
        missing = [pair for pair in versions if pair not in groups]
        if missing:
            # A row of the views names a version the log does not have: the views are wrong.
            if article is None and not retried:
                log.warning("%s: the views list %s v%d, which is not in the log; rebuilding them", self.catalog.path, *missing[0])
                self.catalog.rebuild()
                return self._timeline(low, high, article, limit, retried=True)
            raise CorruptStoreError(f"the views list {missing[0][0]!r} v{missing[0][1]}, which is not in the log")
        entries = []
        for name, version in versions:
            summary = _summary(groups[(name, version)])
            del summary["version"]
            entries.append(TimelineEntry(article=name, version=version, **summary))
        return entries

    def restore(self, article: str, version: int, actor: str | None = None, reason: str | None = None) -> AppendResult:
        """Bring the article back to what it said at `version`, as a new version: one append of
        the events that turn the current article into that one (title and body, update blocks,
        categories, metadata; and `ArticleRestored` first if it is withdrawn now). Nothing is
        rewritten. Raises `NothingToDoError` when the article already says exactly that."""
        target = self.article(article, version)
        current = self.article(article)
        planned = plan_changes(current, target, restore=True)
        if not planned:
            raise NothingToDoError(f"article {article!r} already says what version {version} said")
        envelope: dict[str, Any] = {"article": article, "expected_version": current.version}
        if actor is not None:
            envelope["actor"] = actor
        if reason is not None:
            envelope["reason"] = reason
        events = [{**event, **envelope} for event in planned]
        return self.append(events, reserved_keys=True)

    def replay(self, to: int | None = None, progress: Callable[[int, int], None] | None = None) -> ReplayStats:
        """Rebuild every view from the log (up to position `to`), replacing the persisted ones;
        `progress(position, head_position)` is called as it goes. Returns counts and events/s."""
        return self.catalog.rebuild(to, progress)

    def head(self) -> Head:
        """The last position in the log and its hash."""
        return self.store.head()

    def verify(self, progress: Callable[[int, int], None] | None = None, *, head: str | None = None) -> VerifyReport:
        """Check every record of the log (checksums, hash chain, positions, versions).

        The chain alone cannot tell a log from one rewritten and sealed again from the changed
        record on. `head`, a head noted down or published earlier (`HASH@POSITION` as `ledger
        head` prints it, or only `HASH`), anchors it: when the log is otherwise sound, the
        record at POSITION (without one: some record) must have that hash, so that the checked
        chain proves every record up to it is unchanged; the report's `anchor` is then that
        head. Raises `CorruptStoreError` when the log no longer extends it, `InvalidInputError`
        when `head` is not a head.
        """
        wanted = _parse_head(head) if head is not None else None
        report = self.store.verify(progress)
        if wanted is None or not report.ok:
            return report
        return report.model_copy(update={"anchor": self._anchor(*wanted, report.head_position)})

    def _anchor(self, digest: str, position: int | None, end: int) -> Head:
        """The head `digest@position` if the log extends it, found by position or by search."""
        shown = f"{digest}@{position}" if position is not None else digest
        if digest == codec.GENESIS_HASH and not position:
            return Head(position=0, hash=digest)
        if position is None:
            for record in self.store.read(0, end):
                if record["hash"] == digest:
                    return Head(position=record["pos"], hash=digest)
            raise CorruptStoreError(f"the log no longer extends head {shown}: no record has that hash (history rewritten, or a head of another log)")
        if position > end:
            raise CorruptStoreError(f"the log no longer extends head {shown}: it ends at position {end} (records removed)")
        found = self._record_at(position).get("hash")
        if found != digest:
            raise CorruptStoreError(f"the log no longer extends head {shown}: the record at position {position} has hash {found} (history rewritten)")
        return Head(position=position, hash=digest)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Batch durability for large imports: appends inside are synced once, at the end."""
        with self.store.bulk():
            yield

    # --- following, export, import, stats ----------------------------------------------------

    def current_version(self, article: str) -> int:
        """The article's latest version, 0 when it is not in the log (cheap: no fold)."""
        return self.store.article_version(article)

    def follow(
        self,
        after: int | None = None,
        *,
        poll: float = 0.2,
        article: str | None = None,
        types: Iterable[str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Yield events after position `after` (default: the head now, so only new ones) as any
        process appends them, like `tail -f`; it never ends by itself: stop iterating (or close
        the generator) to stop. Only `article`'s events, and only `types`, when given.

        Between appends it costs one `stat` of the log every `poll` seconds; an append is read
        once it is complete, never half. Raises `ArticleNotFoundError` at once for an `article`
        that is not in the log.
        """
        if article is not None:
            self._version_of(article)
        start = self.head().position if after is None else after
        return self._follow(start, poll, article, set(types) if types else None)

    def _follow(self, position: int, poll: float, article: str | None, wanted: set[str] | None) -> Iterator[RecordedEvent]:
        seen = -1
        while True:
            size = self.store.size()
            if size == seen:
                time.sleep(poll)
                continue
            # Any append that completes after this grows the file again, so nothing is missed
            # when an append still being written is left for the next round.
            seen = size
            for record in self.store.read(position):
                position = record["pos"]
                if (article is None or record["article"] == article) and (wanted is None or record["type"] in wanted):
                    yield RecordedEvent.from_record(record)

    def _file_store(self, what: str) -> FileEventStore:
        if not isinstance(self.store, FileEventStore):
            raise StoreError(f"{what} needs a file store, not {type(self.store).__name__}")
        return self.store

    def export(self, article: str | None = None) -> Iterator[bytes]:
        """The log's sealed record lines exactly as stored, each ending in a newline: the whole
        log, or only `article`'s events, each checked against its hash and the chain as it goes. `import_records` turns a whole-log export into an
        identical store (same positions, hashes and head hash)."""
        store = self._file_store("export")
        if article is not None:
            self._version_of(article)
        return self._chained(store.raw_lines(article), whole=article is None, source=str(store.log_path))

    @staticmethod
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

    def export_to(self, path: str | os.PathLike[str], article: str | None = None) -> int:
        """Write `export(article)` to the file `path` and return the number of events. The file
        is written beside its final name, synced and renamed, so a failed export never leaves
        half a file behind."""
        target = Path(path)
        lines = self.export(article)
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
        self,
        source: str | os.PathLike[str] | Any,
        *,
        reappend: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportResult:
        """Import an export file (a path, or a binary file such as stdin): see `import_records`.
        `progress(done_bytes, total_bytes)` is called as the input is read (it is read two or
        three times: checked, then appended, so a stream that cannot seek is first kept in a
        temporary file)."""
        if hasattr(source, "read") and not (hasattr(source, "seekable") and source.seekable()):
            with tempfile.TemporaryFile(prefix="ledger-import-") as spool:
                shutil.copyfileobj(source, spool)
                return self.import_file(spool, reappend=reappend, progress=progress)
        if hasattr(source, "read"):
            stream = source
            name = str(getattr(source, "name", "<input>"))
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
        return self._import(lines, total, name, progress, reappend)

    def import_records(self, lines: Sequence[bytes], *, name: str = "<records>", reappend: bool = False) -> ImportResult:
        """Load sealed record lines written by `export` (JSON lines) into this store.

        An import is **exact** or refused: the records must be one unbroken piece of a log
        (positions without gaps, each record's `prev` the hash of the one before it), end where
        an append ends (the last record carries `"end":true`), and either start the log
        (position 1) with this store's log a prefix of it, or continue this store's head. They
        are then appended as they are: same positions, ids, versions, times, actors, reasons and
        hashes, so `verify` gives the source's head hash.

        With `reappend=True`, anything else (an `--article` export, or an export of another
        store into one with events of its own) is **reappended**: each append of the input
        becomes a new append through the normal checks, keeping ids, versions, occurred_at,
        actors and reasons; positions, recorded_at and hashes are new (a hash chain cannot be
        carried into a different log). Every append of the input must still be whole (the
        input ends with an `end` record), records with consecutive positions must still chain,
        and each article's versions must continue this store's. Events whose ids are already
        in the store are skipped, so an import can be run again.

        Every record is checked (checksum, fields, chain, and when reappending the article's
        state) before anything is appended: bad input appends nothing. Raises
        `InvalidEventError` for bad or refused records, `NothingToDoError` when everything is
        already in the store.
        """
        return self._import(lambda: lines, sum(len(line) for line in lines), name, None, reappend)

    def _import(
        self,
        lines: Callable[[], Iterable[bytes]],
        total: int,
        name: str,
        progress: Callable[[int, int], None] | None,
        reappend: bool,
    ) -> ImportResult:
        store = self._file_store("import")
        head = self.head()
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
        exact = _ExactImport(self, head)
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
                    raise InvalidEventError(f"{where}: record field {key!r} is missing or not a {kind.__name__}")
            try:
                parse_time(record["occurred_at"])
            except ValueError:
                raise InvalidEventError(f"{where}: occurred_at {record['occurred_at']!r} is not a log time") from None
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
        if gap is None and last_pos <= head.position and (reaches_head or self._holds(last_pos, last_hash)):
            raise NothingToDoError(f"{name}: the store already holds all {read} records")

        if gap is None and reaches_head:
            exact.finish()
            imported = 0
            new_head = head
            with self.bulk():
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
            if progress is not None:
                progress(total * 2, total * 2)
            # The head from the appends themselves: the index catches up on the next read.
            return ImportResult(mode="exact", read=read, imported=imported, skipped=read - imported, head=new_head)

        if not reappend:
            why = gap or f"{name}: does not continue this store's log (head position {head.position}): the store has other events"
            raise InvalidEventError(f"{why}; only a whole piece of this log is imported as it is (--reappend appends anything else anew)")

        # Pass 2: check every append against the articles' states as they will be; pass 3: append.
        skip = self._check_reappend(self._appends(records(3)))
        imported = 0
        with self.bulk():
            for index, (labels, events, _) in enumerate(self._appends(records(3))):
                if index in skip:
                    continue
                result = self.append(events, labels=labels, reserved_keys=True)
                if not result.duplicate:
                    imported += len(events)
        if not imported:
            raise NothingToDoError(f"{name}: all {read} events are already in the store")
        if progress is not None:
            progress(total * 3, total * 3)
        return ImportResult(mode="reappended", read=read, imported=imported, skipped=read - imported, head=self.head())

    def _holds(self, position: int, digest: str) -> bool:
        """Whether this store's record at `position` has the hash `digest` (so, by the chain,
        its log up to there is the one that hash seals)."""
        return self._record_at(position).get("hash") == digest

    def _record_at(self, position: int) -> dict[str, Any]:
        """The log's record at `position` (empty when the log has no such position)."""
        return next(iter(self.store.read(position - 1, position)), {})

    def _appends(self, records: Iterable[tuple[str, bytes, dict[str, Any]]]) -> Iterator[tuple[list[str], list[EventIn], dict[str, int]]]:
        """Group imported records into the appends to make: the records up to each `end`, split
        where an article comes back at another version (an `--article` export keeps only one
        article's records of each append, and its `end` may have been on another article's).
        Yields labels, events, and the version each article had in the input."""
        labels: list[str] = []
        events: list[EventIn] = []
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
            events.append(self._parse(event, label, RESERVED_METADATA_KEYS))
            if record.get("end"):
                yield labels, events, versions
                labels, events, versions = [], [], {}
        if events:
            yield labels, events, versions

    def _check_reappend(self, appends: Iterable[tuple[list[str], list[EventIn], dict[str, int]]]) -> set[int]:
        """Check imported appends in order against the articles' states as the import will
        leave them, without appending; return the indexes of appends already in the store."""
        states: dict[str, ArticleState | None] = {}
        skip: set[int] = set()
        for index, (labels, events, versions) in enumerate(appends):
            if self.store.find_append([event.id for event in events if event.id]) is not None:
                skip.add(index)
                continue
            # Each article's version and time before this append.
            before: dict[str, tuple[int, str]] = {}
            for label, event in zip(labels, events):
                article = event.article
                if article not in states:
                    current = self._current(article)
                    states[article] = current.copy() if current is not None else None
                state = states[article]
                if article not in before:
                    before[article] = (state.version, state.updated_at) if state is not None else (0, "")
                data = self._record_data(event, state, label)
                version, previous = before[article]
                if versions[article] != version + 1:
                    # Its patches were made against the file's text of that article, not this store's.
                    raise InvalidEventError(
                        f"{label}: version {versions[article]} of {article!r} would be version {version + 1} here: "
                        f"this store's history of {article!r} differs from the file's"
                    )
                when = format_time(event.occurred_at) if event.occurred_at else ""
                if when < previous:
                    raise InvalidTimeError(f"{label}: occurred_at {when} of {article!r} is earlier than its version {version} ({previous})")
                states[article] = self._fold_checked(
                    state, {"type": event.type, "data": data, "article": article, "version": version + 1, "occurred_at": when, "pos": 0}, label
                )
        return skip

    def stats(self) -> Stats:
        """Counts of the store: events, articles, versions, categories, log size and head."""
        head = self.head()
        articles = self.store.articles()
        # The catalog answers both without folding any article.
        categories = len(self.categories())
        withdrawn = self.catalog.withdrawn_count()
        return Stats(
            events=head.position,
            articles=len(articles),
            versions=sum(articles.values()),
            categories=categories,
            withdrawn=withdrawn,
            log_bytes=self.store.size(),
            head_position=head.position,
            head_hash=head.hash,
        )


