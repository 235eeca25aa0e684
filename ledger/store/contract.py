"""The store's port: the `EventStore` interface every store implements, the models that cross
it, the stored record's keys, and the `occurred_at` ordering rules every store applies.

Nothing here is about files: positions are the only coordinates. A store kept in files may name
lines and bytes inside its messages, never in the shapes below.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from pydantic import Field

from ledger import codec
from ledger.errors import DuplicateEventError, InvalidEventError, InvalidTimeError
from ledger.events import SCHEMA_VERSIONS, NewRecord, parse_time, upcast, validate_data
from ledger.model import Model


class _StoredKeys(TypedDict):
    pos: int
    id: str
    article: str
    version: int
    type: str
    recorded_at: str
    occurred_at: str
    data: dict[str, Any]
    prev: str
    hash: str


class StoredRecord(_StoredKeys, total=False):
    """One record as a store hands it out (already upcast). Times are canonical UTC text
    (`ledger.events.format_time`), so text order is time order. `prev` is the hash of the record
    before, `hash` this record's own (every sealed record has both); `end` is true on the last
    record of an append (only records up to an `end` are committed). `actor` and `reason` are
    there when they were given. `schema` (the version of `data`'s schema, 1 when missing) is
    written by every append, but a record imported from elsewhere may lack it."""

    schema: int
    actor: str
    reason: str
    end: bool


class AppendResult(Model):
    """What one append recorded (or, for a re-sent append, what it had recorded the first time)."""

    versions: dict[str, int] = Field(description="The new version of each article appended to.")
    first_position: int = Field(description="Position of the first event recorded.")
    last_position: int = Field(description="Position of the last event recorded.")
    event_ids: list[str] = Field(description="Ids of the recorded events, in order.")
    duplicate: bool = Field(default=False, description="True when every event id was already in the log.")
    recorded_at: datetime | None = Field(default=None, description="When the store recorded the append (for a re-sent one: the first time).")
    occurred_at: dict[str, datetime] = Field(default_factory=dict, description="When each article's new version occurred.")


class Head(Model):
    """The end of the log: the last position and the hash that seals everything up to it."""

    position: int
    hash: str


class Problem(Model):
    """One defect `verify` found."""

    position: int | None = Field(description="The record's position, where it can be read.")
    message: str = Field(description="What is wrong; a store may say where in its own terms (a file store: line and byte).")


class VerifyReport(Model):
    """The result of `verify`: counts, the head hash to note down, and every problem found."""

    ok: bool
    events: int
    articles: int
    head_position: int
    head_hash: str
    log_bytes: int = Field(default=0, description="Size of the stored log, for stores that keep one in bytes (0 otherwise).")
    torn_tail_bytes: int = Field(default=0, description="Bytes after the last complete append (a crash mid-append); 0 for stores without.")
    problems: list[Problem]
    anchor: Head | None = Field(default=None, description="The head given to `Ledger.verify(head=...)`, which the log was proved to extend.")


def _check_occurred_at(
    label: str, article: str, when: str, in_append: str | None, previous: str | None, previous_version: int, now: str
) -> None:
    """The `occurred_at` rules of an append, applied by every store to each of its events: not
    in the future (after `now`, the append's `recorded_at`), the same for all of one article's
    events in the append (`in_append`: the time its first one took), and not earlier than the
    article's version before (`previous`, the time of `previous_version`). Raises
    `InvalidTimeError`, naming the event by `label` (its type)."""
    if when > now:
        raise InvalidTimeError(f"{label} for {article!r}: occurred_at {when} is in the future", article=article)
    if in_append is not None and when != in_append:
        raise InvalidTimeError(f"{label} for {article!r}: events of one version must share one occurred_at", article=article)
    if previous is not None and when < previous:
        raise InvalidTimeError(f"{label} for {article!r}: occurred_at {when} is earlier than version {previous_version} ({previous}): "
                               f"an article's versions never go back in time; give a time at or after {previous}", article=article)


def new_versions(
    records: Sequence[NewRecord], versions: Mapping[str, int], occurred: Mapping[str, str], now: str
) -> tuple[dict[str, int], dict[str, str]]:
    """The version each article of an append becomes, and when it occurred, for a store whose
    articles are at `versions` (occurred at `occurred`) and which records the append at `now`:
    one version per article per append; a record without `occurred_at` takes its article's
    first time in the append, else `now`. Every store decides an append's times by this, so the
    `occurred_at` rules are the same everywhere: not in the future, one time per version, never
    earlier than the version before (`InvalidTimeError`)."""
    new: dict[str, int] = {}
    times: dict[str, str] = {}
    for record in records:
        article = record.article
        if article not in new:
            new[article] = versions.get(article, 0) + 1
        when = record.occurred_at or times.get(article) or now
        _check_occurred_at(record.type, article, when, times.get(article), occurred.get(article), versions.get(article, 0), now)
        times[article] = when
    return new, times


_ENVELOPE_TYPES = (("pos", int), ("version", int), ("article", str), ("type", str), ("occurred_at", str), ("recorded_at", str))


def check_envelope(record: Mapping[str, Any], where: str) -> None:
    """Raise `InvalidEventError`, prefixed with `where`, unless each envelope field every sealed
    record has is there with the JSON type a store writes: `1.0` or `true` would pass for the
    number 1 in a comparison, and a store never writes them."""
    for key, kind in _ENVELOPE_TYPES:
        if key not in record:
            raise InvalidEventError(f"{where}: record field {key!r} is missing")
        if type(record[key]) is not kind:
            raise InvalidEventError(f"{where}: record field {key!r} is not {'a whole number' if kind is int else 'text'}")
    for key in ("actor", "reason"):
        # Optional, and text when given (an append takes nothing else).
        if record.get(key) is not None and type(record[key]) is not str:
            raise InvalidEventError(f"{where}: record field {key!r} is not text")


class RecordOrder:
    """Checks that sealed records taken from outside (an import) could have been written by a
    store: a known type whose data fits its schema, each article's versions without gaps (one
    version per append), `ArticleCreated` first and only first, `occurred_at` in order and not
    after `recorded_at`. Feed it the records in log order."""

    def __init__(self, versions: Mapping[str, int] | None = None, occurred: Mapping[str, str] | None = None) -> None:
        self.versions: dict[str, int] = dict(versions or {})
        self.occurred: dict[str, str] = dict(occurred or {})
        self._in_append: set[str] = set()

    def check(self, record: dict[str, Any], where: str) -> None:
        """Raise `InvalidEventError`, prefixed with `where`, if `record` cannot come next."""
        kind, schema = record.get("type", ""), record.get("schema", 1)
        newest = SCHEMA_VERSIONS.get(kind) if isinstance(kind, str) else None
        # Checked before the upcast, which counts up from the schema to the newest one.
        if newest is not None and (type(schema) is not int or not 1 <= schema <= newest):
            raise InvalidEventError(f"{where}: schema {codec.dumps(schema).decode()} of {kind} is not one this ledger knows (1 to {newest})")
        validate_data(kind, upcast(dict(record))["data"], f"{where}: ")
        article, version, when = record["article"], record["version"], record["occurred_at"]
        opening = article not in self._in_append
        expected = self.versions.get(article, 0) + (1 if opening else 0)
        if version != expected:
            raise InvalidEventError(f"{where}: version {version} of {article!r} where {expected} comes next")
        if (version == 1 and opening) != (record["type"] == "ArticleCreated"):
            raise InvalidEventError(
                f"{where}: {record['type']} at version {version} of {article!r} (an article opens with ArticleCreated, once)"
            )
        if when < self.occurred.get(article, "") or when > record["recorded_at"]:
            raise InvalidEventError(f"{where}: occurred_at {when} of {article!r} is out of order")
        self._in_append.add(article)
        if record.get("end"):
            self._in_append.clear()
        self.versions[article] = version
        self.occurred[article] = when


class EventStore(ABC):
    """What projections and the application need from a store; a server-backed store implements
    the same methods.

    Promises every implementation keeps (`tests/contract` checks them): an append is atomic
    across all the articles it names, or appends nothing; positions run from 1 without gaps in
    commit order; each record chains to the one before by hash; an append re-sent with the same
    event ids returns its first result, and one re-sent in part is refused. Records cross this
    interface as plain dicts holding the keys of `StoredRecord` (already upcast), because
    projections fold millions of them and validation already happened on the way in.
    """

    root: Path | None = None
    """The folder the store keeps its files in (caches such as `views.sqlite` go beside them),
    or None for a store without one."""

    lock_timeout: float = 10.0
    """How long a write waits for another writer, in seconds (then `StoreLockedError`)."""

    @abstractmethod
    def append(self, records: Sequence[NewRecord], expected_versions: Mapping[str, int] | None = None) -> AppendResult:
        """Append all `records` atomically, as the next version of each article they name.

        `expected_versions` maps articles to the version they must be at (0: must not exist);
        on a mismatch raises `VersionConflictError` and appends nothing. `occurred_at` follows
        `new_versions` (the rules every store applies).
        """

    @abstractmethod
    def read(self, after: int = 0, to: int | None = None, *, check: bool = True) -> Iterator[StoredRecord]:
        """Every committed record with `after < position <= to`, in order. `check=False` lets a
        store skip re-checking what it checked once already (replays); it never skips checking
        that positions and the hash chain follow on."""

    @abstractmethod
    def read_article(self, article: str, from_version: int = 1, to_version: int | None = None) -> list[StoredRecord]:
        """The records of one article's versions `from_version..to_version`, in order."""

    @abstractmethod
    def article_version(self, article: str) -> int:
        """The article's current version (0 when it has no events)."""

    def article_versions(self, articles: Iterable[str]) -> dict[str, int]:
        """The current version of each of `articles` (0 for those with no events), in one look at
        the store: what an append checks its events against (the store checks them again under
        its lock when it writes)."""
        return {article: self.article_version(article) for article in articles}

    @abstractmethod
    def articles(self) -> dict[str, int]:
        """Every article with its current version."""

    @abstractmethod
    def version_at(self, article: str, when: str) -> int:
        """The article's last version that occurred at or before `when` (0 if none)."""

    @abstractmethod
    def version_times(self, article: str) -> list[tuple[int, str, str]]:
        """`(version, occurred_at, recorded_at)` of each version of the article."""

    @abstractmethod
    def find_append(self, ids: Sequence[str]) -> AppendResult | None:
        """For re-sent event ids: the original result when all `ids` are in the log, None when
        none are; raises `DuplicateEventError` when some are."""

    @abstractmethod
    def lookup_ids(self, ids: Sequence[str]) -> dict[str, tuple[int, str, int]]:
        """`id -> (position, article, version)` for those of `ids` already recorded."""

    @abstractmethod
    def head(self) -> Head:
        """The last committed position and its hash; cheap enough to poll (followers do)."""

    @abstractmethod
    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Check every record: checksum, chain, gap-free positions and versions. A record
        changed, removed or moved after it was written is a problem, at its position."""

    @abstractmethod
    def raw_lines(self, article: str | None = None) -> Iterator[bytes]:
        """The sealed record lines exactly as stored, each ending in a newline (for `export`):
        every committed record, or one article's; damage raises `CorruptStoreError`."""

    @abstractmethod
    def append_raw(self, lines: Sequence[bytes], labels: Sequence[str] | None = None) -> Head:
        """Append already sealed record lines as they are (for `import`): they must continue the
        positions and the hash chain and pass `RecordOrder`; all is checked before anything is
        written. `labels` name each line in errors."""

    @property
    def location(self) -> str:
        """Where the store is, for messages: its folder, or a server's URL without its password."""
        return str(self.root) if self.root is not None else type(self).__name__

    @property
    def cache_dir(self) -> Path | None:
        """The folder the views (`views.sqlite`, `text.sqlite`) of this store are kept in: the
        store's own folder for a store with one; a local cache folder for a server store; None
        to keep them in memory."""
        return self.root

    def wait(self, position: int, timeout: float) -> int:
        """Wait until the head is past `position`, at most `timeout` seconds, and return the
        head's position. This default polls: it looks at `head()`, and if the head has not
        moved sleeps `timeout` once and looks again (a follower calls it in a loop with its
        polling interval). A store that can be woken by its appends (PostgreSQL's
        notifications) returns as soon as one commits."""
        head = self.head().position
        if head > position or timeout <= 0:
            return head
        time.sleep(timeout)
        return self.head().position

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Batch durability for imports: appends inside are synced once, at the end."""
        yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off every other writer for the block: what is read inside stays current until
        the block's own `append`. A store that cannot promise it (this default) gives nothing,
        and appends inside may still meet a version conflict."""
        yield

    def close(self) -> None:  # noqa: B027 - a store with nothing to release keeps this
        """Release files and connections."""


def original_result(
    ids: Sequence[str], found: Mapping[str, tuple[int, str, int]], times_between: Callable[[int, int], Sequence[tuple[Any, Any, Any]]]
) -> AppendResult | None:
    """What `EventStore.find_append` answers, for any store: `found` is `lookup_ids(ids)`, and
    `times_between(first, last)` gives `(article, occurred_at, recorded_at)` of the records at
    positions `first..last` (an append's positions are contiguous), so that a re-sent append gets
    the result the first one got."""
    if not found:
        return None
    missing = [eid for eid in ids if eid not in found]
    if missing:
        raise DuplicateEventError(
            f"{len(found)} of {len(ids)} event ids are already in the log (e.g. {next(iter(found))!r}) and "
            f"{len(missing)} are not (e.g. {missing[0]!r}); send the append again whole or with new ids"
        )
    positions = [found[eid][0] for eid in ids]
    times = times_between(min(positions), max(positions))
    return AppendResult(
        versions={found[eid][1]: found[eid][2] for eid in ids},
        first_position=min(positions),
        last_position=max(positions),
        event_ids=list(ids),
        duplicate=True,
        recorded_at=parse_time(max(str(recorded) for _, _, recorded in times)),
        occurred_at={str(article): parse_time(str(occurred)) for article, occurred, _ in times},
    )
