"""The `Ledger` facade: the one object users open, append to and query.

It appends: it reads each article's state once and lets `ledger.decisions` turn what users ask to
record (`EventIn`) into stored records. The store's optimistic concurrency makes this safe across
processes: the append states the version it was prepared against, and is prepared again if
another process got there first. Everything else it hands on: queries of all articles to the
catalog (`views.sqlite`), states to the states cache, export and import to `ledger.transfer`.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ledger import codec
from ledger.errors import (
    ArticleNotFoundError,
    ArticleStateError,
    CategoryNotFoundError,
    CorruptStoreError,
    DuplicateEventError,
    InvalidEventError,
    InvalidInputError,
    InvalidTimeError,
    LedgerError,
    NothingToDoError,
    VersionConflictError,
    VersionNotFoundError,
)
from ledger.events import (
    EventFields,
    EventIn,
    RecordedEvent,
    check_event_type,
    format_time,
    json_kind,
    parse_time,
)
from ledger.history import RenderedSize, WordChanges, summary, version_records
from ledger.limits import DEFAULT_MAX_EVENT_BYTES
from ledger.projections import ArticleState, ArticleView, apply, authors_of
from ledger.rendering import RESERVED_METADATA_KEYS, render
from ledger.states import StateCache
from ledger.store import (
    LOG_FILE,
    MARKER_FILE,
    AppendResult,
    EventStore,
    FileEventStore,
    Head,
    StoredRecord,
    VerifyReport,
    init_store,
)
from ledger.times import parse_when

if TYPE_CHECKING:
    # Each command is a new process, and what it does not use is start-up it need not pay (issue
    # 14): a module that only some methods use is imported in them. `ledger.transfer` (and the
    # shutil and tempfile it needs) loads for an export or import, `ledger.decisions` for an
    # append, the catalog for a read of all articles or a snapshot, the text index (and
    # attribution) for search and blame, the diffs for diff, the result models of `ledger.views`
    # for the methods that return them.
    from ledger.catalog import Catalog
    from ledger.textindex import TextIndex
    from ledger.transfer import ImportResult
    from ledger.views import (
        ArticleSummary,
        Blame,
        CategoryCount,
        CategoryListing,
        CategoryMembership,
        Diff,
        FeedEntry,
        HistoryEntry,
        ReplayStats,
        SearchHit,
        Stats,
        TimelineEntry,
        WordsChanged,
    )

log = logging.getLogger("ledger")
_T = TypeVar("_T")

DEFAULT_STORE = "ledger-data"
ENV_STORE = "LEDGER_STORE"
_RETRIES = 8
# Optimistic attempts of an append that states no expected version, before it prepares and
# appends under the store's lock, where no other writer can move its articles on.
_OPTIMISTIC = 3
TEXT_CHILD_EVENTS = 20_000
"""From this many records on, `Ledger.replay` rebuilds the text index in a process of its own
beside the catalog (below it, starting the process would cost more than it saves)."""


def _location(path: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """`path`, else `$LEDGER_STORE`, else `./ledger-data` (a folder or a server's URL). Raises
    `InvalidInputError` for an empty one (it would be the current folder) and for a URL that
    names no PostgreSQL server (it would be taken for folders named `http:` and so on)."""
    location = path if path is not None else os.environ.get(ENV_STORE) or DEFAULT_STORE
    text = os.fspath(location)
    if isinstance(text, str) and not text.strip():
        raise InvalidInputError("the store location is empty: give a folder or a postgresql:// URL")
    if isinstance(text, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text) and not text.startswith(_SERVER_SCHEMES):
        raise InvalidInputError(f"{text.split('://')[0]}:// names no store: a store is a folder or a postgresql:// URL")
    return location


# A store location starting so is a PostgreSQL server's URL (told apart here, so that a folder
# store never loads psycopg).
_SERVER_SCHEMES = ("postgresql://", "postgres://")


def _server_url(location: str | os.PathLike[str]) -> str | None:
    """The URL when `location` names a PostgreSQL server (`postgresql://...`), else None."""
    return location if isinstance(location, str) and location.startswith(_SERVER_SCHEMES) else None


def store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: `path`, else `$LEDGER_STORE`, else `./ledger-data`. Raises
    `InvalidInputError` when that names a store on a server (a URL is no folder: see `open`)."""
    location = _location(path)
    url = _server_url(location)
    if url is not None:
        from ledger.store.postgres import redact

        raise InvalidInputError(f"{redact(url)} names a store on a PostgreSQL server, not a folder")
    return Path(location)


def store_exists(path: str | os.PathLike[str] | None = None) -> bool:
    """Whether the store named by `path` (as for `open`) exists already (`init` would leave it
    as it is)."""
    location = _location(path)
    url = _server_url(location)
    if url is not None:
        from ledger.store.postgres import schema_exists

        return schema_exists(url)
    try:
        return (Path(location) / MARKER_FILE).exists()
    except OSError:
        # A name too long for the system, say: no store is there, and `init` says why not.
        return False


def init(path: str | os.PathLike[str] | None = None) -> Path | str:
    """Create an empty store (harmless if it exists) and return its folder, or for a server's
    URL create the ledger's tables there (or migrate them to this ledger's schema) and return
    the URL without its password."""
    location = _location(path)
    url = _server_url(location)
    if url is not None:
        from ledger.store.postgres import init_schema, redact

        init_schema(url)
        return redact(url)
    return init_store(Path(location))


def open(
    path: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    lock_timeout: float = 10.0,
    recover: bool = True,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Ledger:
    """Open the store at `path` as a `Ledger`: a folder, or a PostgreSQL server's URL
    (`postgresql://user:password@host/db`, see docs/postgresql.md); without `path`,
    `$LEDGER_STORE`, else the folder `./ledger-data`.

    `create` makes the store if it is missing. `recover` (the default) cuts off a torn tail left
    by a crash and brings the index up to date; `verify` opens without it, to report damage.
    `lock_timeout` is how long a write waits for another writer, in seconds (`math.inf`: for
    ever); `max_event_bytes` bounds the data of one event, as JSON (see `Ledger`).
    """
    if math.isnan(lock_timeout) or lock_timeout < 0:
        raise InvalidInputError(f"lock timeout {lock_timeout} is not a number of seconds (0 or more)")
    location = _location(path)
    url = _server_url(location)
    if url is not None:
        from ledger.store.postgres import PostgresEventStore, init_schema

        if create:
            init_schema(url)
        return Ledger(PostgresEventStore(url, lock_timeout=lock_timeout), max_event_bytes=max_event_bytes)
    root = Path(location)
    if create:
        init_store(root)

    def seen() -> tuple[int, str]:
        # Imported only when there is a torn tail to judge (issue 14: start-up).
        from ledger.catalog import VIEWS_FILE, seen_position

        return seen_position(root), VIEWS_FILE

    store = FileEventStore(root, lock_timeout=lock_timeout, witness=seen)
    if recover:
        try:
            store.recover()
        except BaseException:
            store.close()
            raise
    return Ledger(store, max_event_bytes=max_event_bytes)


# --- the arguments of public methods ---------------------------------------------------------
# Checked where a caller hands them in, so that a wrong type is the library's own error naming
# the argument, not a TypeError from deep inside (issue 14).


def _whole(name: str, value: object, minimum: int | None = None) -> None:
    """`value` must be an int (not a bool), at least `minimum` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number (int), not {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum}, not {value}")


def _whole_from_1(name: str, value: object) -> None:
    """`value` must be an int of 1 or more (a version number)."""
    _whole(name, value, 1)


def _count(name: str, value: object) -> None:
    """`value` must be an int of 0 or more."""
    _whole(name, value, 0)


def _page(limit: object, offset: object) -> None:
    """A page of a listing: `limit` None or an int of 1 or more, `offset` an int of 0 or more."""
    if limit is not None:
        _whole("limit", limit, 1)
    _count("offset", offset)


def _text(name: str, value: object) -> None:
    """`value` must be a str."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be text (str), not {type(value).__name__} {value!r}")


def _time(name: str, value: object) -> None:
    """`value` must be a datetime or text such as `2017-09-05T16:05Z` or `2h`."""
    if not isinstance(value, (datetime, str)):
        raise InvalidInputError(f"{name} must be a datetime or text such as 2017-09-05T16:05Z or 2h, not {type(value).__name__} {value!r}")


def _envelope(actor: str | None, reason: str | None) -> dict[str, str]:
    """The `actor` and `reason` fields of the events the `Ledger` writes itself, where given."""
    return {key: value for key, value in (("actor", actor), ("reason", reason)) if value is not None}


def _event_types(types: Iterable[str] | None) -> list[str] | None:
    """`types` as a list, each checked to be a type ledger has (`InvalidInputError` if not)."""
    if types is None:
        return None
    kinds = list(types)
    for kind in kinds:
        check_event_type(kind)
    return kinds


def _check(**arguments: tuple[Callable[..., None], object]) -> None:
    """Check each optional argument that is given: `name=(checker, value)`."""
    for name, (checker, value) in arguments.items():
        if value is not None:
            checker(name, value)


class _ExactCount:
    """Lines holding a phrase exactly as typed, counted in the article's text at the versions the
    text index names (which match the phrase in any case)."""

    def __init__(self, state_at: Callable[[str, int], ArticleState | None], phrase: str) -> None:
        self._state_at = state_at
        self._phrase = phrase
        self._counts: dict[tuple[str, int], dict[str, int]] = {}

    def _count(self, article: str, version: int) -> dict[str, int]:
        key = (article, version)
        if key not in self._counts:
            from ledger.textindex import lines_holding

            state = self._state_at(article, version) if version else None
            counted = {"title": 0, "body": 0, "heading": 0, "block": 0}
            if state is not None:
                counted["title"] = lines_holding(self._phrase, state.title)
                counted["body"] = lines_holding(self._phrase, state.body)
                counted["heading"] = sum(lines_holding(self._phrase, block[0]) for block in state.blocks)
                counted["block"] = sum(lines_holding(self._phrase, block[1]) for block in state.blocks)
            self._counts[key] = counted
        return self._counts[key]

    def delta(self, article: str, version: int, part: str) -> int:
        """How many more lines of `part` hold the phrase at `version` than before it."""
        return self._count(article, version)[part] - self._count(article, version - 1)[part]


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
        self._states = StateCache(store, lambda: self.catalog)
        self._catalog: Catalog | None = None
        self._text_index: TextIndex | None = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the store (its lock and files), also when a view fails to close."""
        # Run last to first, each whatever the ones before raised: the views, then the store.
        with ExitStack() as closing:
            closing.callback(self.store.close)
            for view in (self._text_index, self._catalog):
                if view is not None:
                    closing.callback(view.close)

    @property
    def path(self) -> Path | None:
        """The store folder, for file-backed stores."""
        return self.store.root

    @property
    def location(self) -> str:
        """Where the store is, for messages: its folder, or its server's URL without the password."""
        return self.store.location

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
                raise InvalidEventError(f"{label}: expected a JSON object, got {json_kind(value)}")
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
        from ledger import decisions

        allowed = RESERVED_METADATA_KEYS if reserved_keys else frozenset()
        parsed = [decisions.parse_event(event, names[i], allowed) for i, event in enumerate(given)]
        if not parsed:
            raise NothingToDoError("nothing to append: no events given")
        expected_by_user: dict[str, int] = {}
        for event, name in zip(parsed, names, strict=False):
            wanted = event.get("expected_version")
            if wanted is not None and expected_by_user.setdefault(event["article"], wanted) != wanted:
                raise InvalidEventError(f"{name}: expected_version differs from an earlier event of {event['article']!r}")
        explicit = [eid for event in parsed if (eid := event.get("id")) is not None]
        if len(set(explicit)) != len(explicit):
            first: dict[str, str] = {}
            for event, name in zip(parsed, names, strict=False):
                eid = event.get("id")
                if eid is not None and first.setdefault(eid, name) != name:
                    raise InvalidEventError(f"{name}: event id {eid!r} is also given to {first[eid]}; nothing appended")
        # A re-sent append (every id given) is recognised by the store, under its lock, when it
        # would write it, or below when its events no longer fit the articles: one look for its
        # ids on the common path, not two.
        if explicit and len(explicit) != len(parsed) and self.store.find_append(explicit) is not None:
            raise DuplicateEventError(f"{names[0]}: some events of this append are already in the log and others have no id")
        for attempt in range(_RETRIES):
            lock: AbstractContextManager[Any] = self.store.exclusive() if attempt >= _OPTIMISTIC else nullcontext()
            with lock:
                try:
                    # One look at the log for all the articles: each look checks whether it grew.
                    versions = self.store.article_versions(dict.fromkeys(event["article"] for event in parsed))
                    current = {article: self._states.current(article, version, from_log=True) for article, version in versions.items()}
                    records, expected, states = decisions.prepare(parsed, names, expected_by_user, current, self.max_event_bytes)
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
                except InvalidTimeError as exc:
                    # The store judges times (under its lock) by article: name where the
                    # article's first event came from, as every other refusal does.
                    label = next((names[i] for i, event in enumerate(parsed) if event["article"] == exc.article), None)
                    if label is None:
                        raise
                    raise InvalidTimeError(f"{label}: {exc}", article=exc.article) from None
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
            self._states.remember(records, result, states)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _resent(self, events: list[EventFields], names: list[str], original: AppendResult) -> AppendResult:
        """`original`, the result of the append that recorded `events`' ids first, if `events`
        say what it recorded; else `DuplicateEventError` (see `decisions.check_resent`)."""
        from ledger import decisions

        recorded = {record["id"]: record for record in self.store.read(original.first_position - 1, original.last_position)}
        decisions.check_resent(events, names, recorded)
        # A change (a body or text made a patch, categories or metadata against the article's
        # own) is compared as prepared: against each article as it stood before that append, a
        # true re-send prepares the very data recorded; other content under the same ids does not.
        before = {article: self._states.state_at(article, version - 1) if version > 1 else None for article, version in original.versions.items()}
        try:
            records, _, _ = decisions.prepare(events, names, {}, before, self.max_event_bytes)
        except LedgerError as exc:
            raise DuplicateEventError(f"{names[0]}: the event ids of this append are already recorded, for other content ({exc}); nothing appended") from None
        decisions.check_prepared_again(records, names, recorded)
        return original

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
        article that is not in the log, and `InvalidInputError` for a type ledger does not have."""
        _check(after=(_count, after), article=(_text, article), limit=(_count, limit))
        types = _event_types(types)
        if article is not None:
            self._version_of(article)
        return self._events(after, article, types, limit)

    def _events(self, after: int, article: str | None, types: Iterable[str] | None, limit: int | None) -> Iterator[RecordedEvent]:
        wanted = set(types) if types else None
        if article is not None:
            records: Iterable[StoredRecord] = (r for r in self.store.read_article(article) if r["pos"] > after)
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
        _check(article=(_text, article), version=(_whole, version), at=(_time, at))
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
            raise self._not_found(article)
        return current

    def _from_views(self, read: Callable[[], _T]) -> _T:
        """`read()`, which turns rows of the views into answers; asked once more from views
        rebuilt from the log when a row cannot be read back (a value of the wrong kind, JSON
        that does not parse: views.sqlite changed by hand or damaged, where SQLite sees no fault)."""
        try:
            return read()
        except (ValueError, TypeError):
            log.warning("%s: the views hold a row that cannot be read; rebuilding them from the log", self.catalog.path)
            self.catalog.rebuild()
        return read()

    def _not_found(self, article: str) -> ArticleNotFoundError:
        """The error for an article the log does not have, suggesting ids close to it (a typo)."""
        message = f"article {article!r} is not in the log"
        close = [repr(name) for name in difflib.get_close_matches(article, self.store.articles(), n=3)]
        if close:
            message += f" (did you mean {' or '.join(close)}?)"
        return ArticleNotFoundError(message)

    def _check_category(self, name: str) -> None:
        """Raise `CategoryNotFoundError` for a category no article was ever in, suggesting names
        close to it (a typo would list nothing, as a category left empty does)."""
        if self._from_views(lambda: self.catalog.category_known(name)):
            return
        message = f"no article was ever in category {name!r}"
        close = [repr(other) for other in difflib.get_close_matches(name, self._from_views(self.catalog.category_names), n=3)]
        if close:
            message += f" (did you mean {' or '.join(close)}?)"
        raise CategoryNotFoundError(message)

    def _state(self, article: str, version: int, current: int) -> ArticleState:
        """The article's state at `version`, given its `current` (latest) version."""
        if version == current:
            state = self._states.current(article, current)
        elif 1 <= version < current:
            state = self._states.state_at(article, version)
        else:
            raise VersionNotFoundError(f"article {article!r} has versions 1 to {current}, not {version}")
        assert state is not None
        return state

    def latest_state(self, article: str) -> ArticleState | None:
        """A copy of the article's state at its latest version (None if it has no events), free
        to fold onto: folding changes a state in place, and the ledger caches its own."""
        current = self._states.current(article)
        return current.copy() if current is not None else None

    @property
    def catalog(self) -> Catalog:
        """The persisted read model of all articles (`views.sqlite` in the store folder)."""
        if self._catalog is None:
            from ledger.catalog import Catalog

            self._catalog = Catalog(self.store)
        return self._catalog

    @property
    def text_index(self) -> TextIndex:
        """The persisted index of texts, for search and blame (`text.sqlite` in the store folder)."""
        if self._text_index is None:
            from ledger.textindex import TextIndex

            self._text_index = TextIndex(self.store, self._states.state_at)
        return self._text_index

    def history(self, article: str, contains: str | None = None, *, first: int | None = None, last: int | None = None) -> list[HistoryEntry]:
        """Every version of the article, oldest first: when, who, why, what kind of change, and
        the size of the article rendered at that version. Raises `ArticleNotFoundError`.

        `contains`: only the versions whose change touched that phrase (matched as `search`
        matches it): it stood in a line the version added, changed or removed.

        `first` and `last` (whole numbers from 1; defaults: 1 and the latest version) page a long
        history: only versions `first..last` are listed (versions past the latest are not there,
        as with a slice); `first` after `last` is an `InvalidInputError`. A page starts from the
        article's nearest snapshot before `first`, so its cost grows with the page, not with the
        versions before it.

        One fold over the records listed; sizes are kept up to date as it goes, so the cost
        grows with the size of the changes, not with versions x article size."""
        _text("article", article)
        _check(contains=(_text, contains))
        from ledger.views import HistoryEntry

        touched: set[int] | None = None
        if contains is not None:
            from ledger.textindex import check_phrase

            query = check_phrase(contains)
            touched = {version for _, version, _, _ in self.text_index.changes(query, article)}
        entries: list[HistoryEntry] = []
        before, records = self._page_records(article, first, last)
        state = before
        sizes = RenderedSize.of(before)
        start = 0
        for index, record in enumerate(records):
            state = apply(state, record)
            sizes.apply(state, record)
            if index + 1 < len(records) and records[index + 1]["version"] == record["version"]:
                continue
            group, start = records[start : index + 1], index + 1
            if touched is None or record["version"] in touched:
                # Built without validation: every value comes from the log's own records, as
                # `summary` reads them (a history of thousands of versions, or `ledger history`'s
                # start-up, need not check them again).
                entries.append(HistoryEntry.model_construct(article=article, **summary(group), size=sizes.size(state), withdrawn=state.withdrawn))
        return entries

    def _page_records(self, article: str, first: int | None, last: int | None) -> tuple[ArticleState | None, list[StoredRecord]]:
        """The article's state before version `first` (None before version 1) and the records of
        versions `first..last`, for `history` and `word_changes` (whose arguments they check)."""
        _check(first=(_whole_from_1, first), last=(_whole_from_1, last))
        if first is not None and last is not None and first > last:
            raise InvalidInputError(f"first ({first}) must not be after last ({last})")
        low = first or 1
        records = self.store.read_article(article, low, last)
        if not records and not (low > 1 and self.store.article_version(article)):
            raise self._not_found(article)
        return (self._states.state_at(article, low - 1) if low > 1 and records else None), records

    def word_changes(self, article: str, *, first: int | None = None, last: int | None = None) -> list[WordsChanged]:
        """How many words each version added and removed, oldest first (versions `first..last`
        as `history` pages them): the words and punctuation marks of the body and the update
        blocks (headings and texts), counted as a bag (`ledger.diffs.word_counts`), against the
        version before. Cheaper than a diff (no alignment): the figures of a history listing.
        Raises `ArticleNotFoundError`.

        One fold over the versions listed, from the nearest snapshot before `first`; only the
        lines each version added or took out are counted."""
        _text("article", article)
        state, records = self._page_records(article, first, last)
        from ledger.views import WordsChanged

        counted = WordChanges(state)
        changes: list[WordsChanged] = []
        for index, record in enumerate(records):
            state = apply(state, record)
            if index + 1 < len(records) and records[index + 1]["version"] == record["version"]:
                continue
            added, removed = counted.step(state)
            changes.append(WordsChanged(version=record["version"], words_added=added, words_removed=removed))
        return changes

    def blame(self, article: str, version: int | None = None, at: datetime | str | None = None) -> Blame:
        """The article rendered now, at `version` or at time `at` (as `article` picks it), with
        every character attributed to the version that wrote it: consecutive spans with their
        version, time, actor and reason. Unchanged words keep their version through later edits
        of the same sentence, and what a restore brings back keeps the version that first wrote
        it. Raises `ArticleNotFoundError` or `VersionNotFoundError` as `article` does."""
        from ledger.attribution import rendered_runs
        from ledger.views import Blame, BlameSpan

        view = self.article(article, version, at)
        attribution = self.text_index.attribution(article, view.version)
        text, runs = rendered_runs(view, attribution)
        info = self.text_index.version_info((article, wrote) for _, _, wrote, _ in runs)
        # Built without validation from values the fold and the log made (a long article has
        # thousands of spans; validating each one's time cost half of a blame), each version's
        # time parsed once.
        times = {wrote: parse_time(when) for (_, wrote), (when, _, _) in info.items()}
        spans = []
        for start, end, wrote, part in runs:
            _, actor, reason = info[article, wrote]
            spans.append(BlameSpan.assemble({"start": start, "end": end, "text": text[start:end], "part": part, "version": wrote, "occurred_at": times[wrote], "actor": actor, "reason": reason}))
        return Blame.model_construct(article=article, version=view.version, occurred_at=view.updated_at, text=text, spans=spans)

    def search(self, phrase: str, article: str | None = None, since: datetime | str | None = None, exact: bool = False) -> list[SearchHit]:
        """Every stretch of versions in which `phrase` stood in an article's title, body or update
        blocks: the version (time, actor, reason) that brought it in, the one that took its last
        occurrence out (if any), and whether it is there now. Ordered by article, then by when it
        appeared.

        The phrase is its words, in order, within one line: whole words in any case, whatever
        punctuation or spaces stand between them. With `exact`, the phrase as typed: case and
        punctuation too (any run of spaces still matches any run of spaces or tabs). `article`
        limits the search to one article; `since` to stretches that stood at that time or later
        (still standing, or ended at or after it). Found through the text index, no scan of the log (`exact` also reads the
        article at the versions the index names). Raises `InvalidInputError` for an empty phrase
        or one without a letter or digit."""
        _text("phrase", phrase)
        _check(article=(_text, article), since=(_time, since))
        from ledger.textindex import check_phrase
        from ledger.views import SearchHit

        query = check_phrase(phrase)
        low = format_time(parse_when(since)) if since is not None else None
        if article is not None:
            self._version_of(article)
        # Per (article, part): how the number of lines holding the phrase changes at each version.
        changes: dict[tuple[str, str], dict[int, int]] = {}
        exactly = _ExactCount(self._states.state_at, phrase) if exact else None
        for name, version, part, delta in self.text_index.changes(query, article):
            where = "blocks" if part in ("heading", "block") else part
            by_version = changes.setdefault((name, where), {})
            by_version[version] = by_version.get(version, 0) + (delta if exactly is None else exactly.delta(name, version, part))
        # (article, part, version it came in, version it went out or 0, most lines at once)
        found: list[tuple[str, str, int, int, int]] = []
        for (name, part), by_version in changes.items():
            count = 0
            for version in sorted(by_version):
                was, count = count, count + by_version[version]
                if was <= 0 < count:
                    found.append((name, part, version, 0, count))
                elif found and found[-1][:2] == (name, part) and not found[-1][3]:
                    if count <= 0 < was:
                        found[-1] = (*found[-1][:3], version, found[-1][4])
                    elif count > found[-1][4]:
                        found[-1] = (*found[-1][:4], count)
        info = self.text_index.version_info((name, version) for name, _, appeared, vanished, _ in found for version in (appeared, vanished) if version)
        hits: list[SearchHit] = []
        for name, part, appeared, vanished, most in found:
            came, went = info[name, appeared], info.get((name, vanished))
            if low is not None and came[0] < low and went is not None and went[0] < low:
                continue
            hits.append(
                SearchHit.model_validate(
                    {
                        "article": name, "part": part, "appeared_version": appeared, "appeared_at": came[0],
                        "appeared_actor": came[1], "appeared_reason": came[2],
                        "vanished_version": vanished or None, "vanished_at": went[0] if went else None,
                        "vanished_actor": went[1] if went else None, "vanished_reason": went[2] if went else None,
                        "current": not vanished, "lines": most,
                    }
                )
            )
        hits.sort(key=lambda hit: (hit.article, hit.appeared_version, hit.part))
        return hits

    def diff(self, article: str, from_version: int | None = None, to_version: int | None = None, words: bool = False) -> Diff:
        """What changed in the rendered article from `from_version` to `to_version` (defaults:
        the previous version against the latest; version 0 is the empty text before the
        article existed), line by line or, with `words`, word by word."""
        _check(article=(_text, article), from_version=(_count, from_version), to_version=(_count, to_version))
        current = self._version_of(article)
        to_version = current if to_version is None else to_version
        from_version = max(to_version - 1, 0) if from_version is None else from_version
        # Version 0 is the empty text before the article existed.
        texts = ["" if version == 0 else render(self._state(article, version, current).view()) for version in (from_version, to_version)]
        from ledger.diffs import line_diff, word_diff

        make = word_diff if words else line_diff
        return make(article, texts[0], texts[1], from_version, to_version)

    def articles(
        self,
        category: str | None = None,
        since: datetime | str | None = None,
        withdrawn: bool | None = None,
        author: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ArticleSummary]:
        """Every article as it stands now, the most recently changed first: only those in
        `category` now, whose latest version occurred at or after `since` (a datetime, or text
        such as `2017-09-05` or `2h`), withdrawn (True) or live (False) when `withdrawn` is
        given, and among whose `authors` now is `author` (the whole name, in any case), however
        the metadata names them (see `ArticleView.authors`). A page of them: at most `limit`
        (1 or more; all when None) after skipping the first `offset`; articles changed at the
        same time keep one order (by log position), so pages neither overlap nor skip one.
        `count_articles` says how many there are in all. Answered from the catalog: no article
        is folded. Raises `CategoryNotFoundError` for a `category` no article was ever in (a
        typo would list nothing)."""
        _check(category=(_text, category), since=(_time, since), author=(_text, author))
        _page(limit, offset)
        from ledger.catalog import gc_paused
        from ledger.views import ArticleSummary

        low = format_time(parse_when(since)) if since is not None else None
        wanted = author.strip().casefold() if author is not None else None

        def read() -> list[ArticleSummary]:
            listed = []
            with gc_paused():
                # Authors are read from the metadata here, not in SQL: their page is cut after them.
                rows = (
                    self.catalog.article_rows(category, low, withdrawn, limit, offset) if wanted is None
                    else self._by_author(self.catalog.article_rows(category, low, withdrawn), wanted, None if limit is None else offset + limit)[offset:]
                )
                for article, title, version, updated, categories, gone, keys in rows:
                    listed.append(
                        ArticleSummary(
                            article=article, title=title, version=version, updated_at=parse_time(updated),
                            categories=codec.loads(categories), authors=authors_of(codec.loads(keys)), withdrawn=bool(gone),
                        )
                    )
            return listed

        listed = self._from_views(read)
        if not listed and category is not None:
            self._check_category(category)
        return listed

    def count_articles(
        self,
        category: str | None = None,
        since: datetime | str | None = None,
        withdrawn: bool | None = None,
        author: str | None = None,
    ) -> int:
        """How many articles `articles` lists with these filters, on all pages together (it
        raises as `articles` does)."""
        _check(category=(_text, category), since=(_time, since), author=(_text, author))
        low = format_time(parse_when(since)) if since is not None else None
        if author is None:
            found = self.catalog.article_count(category, low, withdrawn)
        else:
            from ledger.catalog import gc_paused

            def read() -> int:
                with gc_paused():
                    return len(self._by_author(self.catalog.article_rows(category, low, withdrawn), author.strip().casefold()))

            found = self._from_views(read)
        if found == 0 and category is not None:
            self._check_category(category)
        return found

    @staticmethod
    def _by_author(
        rows: list[tuple[str, str, int, str, str, int, str]], wanted: str, enough: int | None = None
    ) -> list[tuple[str, str, int, str, str, int, str]]:
        """The `rows` of articles by author `wanted` (casefolded), only the first `enough` when given
        (reading each row's authors costs more than fetching it: a page stops early)."""
        kept = []
        for row in rows:
            if any(name.casefold() == wanted for name in authors_of(codec.loads(row[6]))):
                kept.append(row)
                if len(kept) == enough:
                    break
        return kept

    def category(self, name: str, at: datetime | str | None = None) -> CategoryListing:
        """The articles in category `name` now, or at time `at`, by article id; withdrawn
        articles are left out. A category left empty lists nothing; one no article was ever in
        raises `CategoryNotFoundError`, naming close ones."""
        _check(name=(_text, name), at=(_time, at))
        from ledger.views import CategoryListing, CategoryMember

        moment = parse_when(at, end=True) if at is not None else None

        def read() -> list[CategoryMember]:
            rows = self.catalog.category_members(name, format_time(moment) if moment is not None else None)
            return [CategoryMember(article=a, title=t, entered_at=parse_time(s), entered_version=v) for a, t, s, v in rows]

        members = self._from_views(read)
        if not members:
            self._check_category(name)
        return CategoryListing(name=name, at=moment, articles=members)

    def categories(self, at: datetime | str | None = None) -> list[CategoryCount]:
        """Every category with its number of (not withdrawn) articles, now or at time `at`,
        by name."""
        _check(at=(_time, at))
        from ledger.views import CategoryCount

        moment = format_time(parse_when(at, end=True)) if at is not None else None
        return self._from_views(lambda: [CategoryCount(name=name, count=count) for name, count in self.catalog.category_counts(moment)])

    def category_history(self, article: str) -> list[CategoryMembership]:
        """When the article entered and left each category, in order of entry (stints of a
        withdrawn article are not cut, but say `withdrawn`: see `history` for when)."""
        _text("article", article)
        from ledger.views import CategoryMembership

        def read() -> list[CategoryMembership]:
            found = self.catalog.memberships(article)
            if found is None:
                raise self._not_found(article)
            rows, withdrawn = found
            return [
                CategoryMembership(
                    article=article, category=c, entered_version=ev, entered_at=parse_time(ea), left_version=lv,
                    left_at=parse_time(la) if la is not None else None, withdrawn=withdrawn,
                )
                for c, ev, ea, lv, la in rows
            ]

        return self._from_views(read)

    def category_stints(self, name: str) -> list[CategoryMembership]:
        """Every stint any article had in category `name`, over the whole log: when it entered
        and (unless still in) left, in order of entry (time, then article). Names match exactly,
        as in `category`, which raises as this does. Withdrawn articles' stints are not cut, but
        say `withdrawn` (see `history` for when)."""
        _text("name", name)
        from ledger.views import CategoryMembership

        def read() -> list[CategoryMembership]:
            return [
                CategoryMembership(
                    article=a, category=name, entered_version=ev, entered_at=parse_time(ea), left_version=lv,
                    left_at=parse_time(la) if la is not None else None, withdrawn=bool(withdrawn),
                )
                for a, ev, ea, lv, la, withdrawn in self.catalog.category_memberships(name)
            ]

        stints = self._from_views(read)
        if not stints:
            self._check_category(name)
        return stints

    def updated_since(self, since: datetime | str, *, limit: int | None = None, offset: int = 0) -> list[FeedEntry]:
        """The "updated stories" feed: articles (not withdrawn) that received update blocks
        whose version occurred at or after `since`, the most recently updated first. A page of
        them: at most `limit` articles (1 or more; all when None) after skipping the first
        `offset`, each with all its blocks; `count_updated_since` says how many there are.

        The blocks are as they stand now: a block added since then and removed again is not
        listed (nor is its article, unless it has other such blocks), and an edited heading is
        shown as it reads now."""
        _time("since", since)
        _page(limit, offset)
        from ledger.catalog import gc_paused
        from ledger.views import FeedBlock, FeedEntry

        low = format_time(parse_when(since))

        def read() -> list[FeedEntry]:
            entries: dict[str, FeedEntry] = {}
            with gc_paused():
                for article, title, version, occurred, heading in self.catalog.feed_since(low, limit, offset):
                    block = FeedBlock(heading=heading, added_version=version, added_at=parse_time(occurred))
                    entry = entries.get(article)
                    if entry is None:
                        entries[article] = FeedEntry(article=article, title=title, last_update_at=block.added_at, blocks=[block])
                    else:
                        entry.blocks.append(block)
            return list(entries.values())

        return self._from_views(read)

    def count_updated_since(self, since: datetime | str) -> int:
        """How many articles `updated_since(since)` lists, on all pages together."""
        _time("since", since)
        return self.catalog.feed_count(format_time(parse_when(since)))

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
        _check(since=(_time, since), until=(_time, until), article=(_text, article), limit=(_count, limit))
        low = format_time(parse_when(since)) if since is not None else None
        high = format_time(parse_when(until, end=True)) if until is not None else None
        return self._timeline(low, high, article, limit)

    def _timeline(self, low: str | None, high: str | None, article: str | None, limit: int | None, *, retried: bool = False) -> list[TimelineEntry]:
        from ledger.views import TimelineEntry

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
        groups = version_records(self.store, versions)
        missing = [pair for pair in versions if pair not in groups]
        if missing:
            # A row of the catalog names a version the log does not have: the catalog is wrong.
            if article is None and not retried:
                log.warning("%s: the views list %s v%d, which is not in the log; rebuilding them", self.catalog.path, *missing[0])
                self.catalog.rebuild()
                return self._timeline(low, high, article, limit, retried=True)
            raise CorruptStoreError(f"the views list {missing[0][0]!r} v{missing[0][1]}, which is not in the log")
        titles = self.catalog.titles_at(versions)
        entries = []
        for name, version in versions:
            fields = summary(groups[(name, version)])
            del fields["version"]
            # Unvalidated, as `history`'s entries: the values are the log's own.
            entries.append(TimelineEntry.model_construct(article=name, version=version, title=titles.get((name, version)), **fields))
        return entries

    def restore(self, article: str, version: int, actor: str | None = None, reason: str | None = None) -> AppendResult:
        """Bring the article back to what it said at `version`, as a new version: one append of
        the events that turn the current article into that one (title and body, update blocks,
        categories, metadata; and `ArticleRestored` first if it is withdrawn now). Nothing is
        rewritten. Raises `NothingToDoError` when the article already says exactly that, and
        `VersionConflictError` when another writer changed the article while this one planned
        (read it again and retry)."""
        _check(article=(_text, article), version=(_whole, version), actor=(_text, actor), reason=(_text, reason))
        target = self.article(article, version)
        current = self.article(article)
        from ledger.plans import plan_changes

        planned = plan_changes(current, target, restore=True)
        if not planned:
            raise NothingToDoError(f"article {article!r} already says what version {version} said")
        envelope = {"article": article, "expected_version": current.version, **_envelope(actor, reason)}
        events = [{**event, **envelope} for event in planned]
        return self.append(events, reserved_keys=True)

    def withdraw(self, article: str, actor: str | None = None, reason: str | None = None) -> AppendResult:
        """Withdraw the article: it leaves current views and listings but keeps its history, and
        `restore` (or an `ArticleRestored` event) brings it back. One `ArticleWithdrawn` event,
        with no expected version: a write to the article in between cannot make it a conflict.
        Raises `ArticleNotFoundError`, or `ArticleStateError` when it is withdrawn already."""
        _check(article=(_text, article), actor=(_text, actor), reason=(_text, reason))
        state = self._states.current(article, self._version_of(article))
        if state is not None and state.withdrawn:
            raise ArticleStateError(f"article {article!r} is already withdrawn")
        return self.append([{"type": "ArticleWithdrawn", "article": article, **_envelope(actor, reason)}])

    def replay(self, to: int | None = None, progress: Callable[[int, int], None] | None = None) -> ReplayStats:
        """Rebuild every view from the log (up to position `to`), replacing the persisted ones;
        `progress(position, head_position)` is called as it goes. Returns counts and events/s.

        The catalog is rebuilt up to `to`, the text index (search and blame) up to the head. On
        a log of `TEXT_CHILD_EVENTS` records or more the text index is rebuilt by a process of
        its own meanwhile (see `ledger.replays`); `progress` then follows the slower of the two."""
        _check(to=(_count, to))
        started = time.perf_counter()
        # Also brings the store's index up to date, so that a second process only reads it.
        head = self.store.head()
        location = self._text_child_location() if head.position >= TEXT_CHILD_EVENTS else None
        if location is None:
            # Out of the head's records, as below: the text index goes on to the head after
            # the catalog stops at `to`.
            stats = self.catalog.rebuild(to, None if progress is None else lambda position, _: progress(min(position, head.position), head.position))
            self.text_index.rebuild()
            if progress is not None:
                progress(head.position, head.position)
        else:
            from ledger.replays import TextRebuild

            child = TextRebuild(location)
            try:
                # The views' progress is the slower fold's: a record counts once both folded it
                # (the catalog stops at `to`, the text index goes on to the head: out of the
                # head's records throughout, so that the total does not move under the user; a
                # log that grew since the head was read is folded further, counted as the head).
                both = None if progress is None else lambda position, _: progress(min(position, child.poll(), head.position), head.position)
                stats = self.catalog.rebuild(to, both)
                child.finish(None if progress is None else lambda folded: progress(min(folded, head.position), head.position))
            finally:
                child.stop()
        seconds = time.perf_counter() - started
        # The child, when there was one, wrote the text index to its file.
        saved = not self.catalog.in_memory and (location is not None or not self.text_index.in_memory)
        return stats.model_copy(update={"seconds": seconds, "events_per_second": stats.events / seconds if seconds > 0 else 0.0, "saved": saved})

    def _text_child_location(self) -> str | None:
        """Where a child process finds this store to rebuild its text index in a file of its own:
        the folder, or the server's URL (with its password); None when the index is not a file
        this process could write (a store without a cache folder, a read-only one)."""
        from ledger.caches import writable
        from ledger.textindex import TEXT_FILE

        cache = self.store.cache_dir
        if cache is None or not writable(cache / TEXT_FILE):
            return None
        if self.store.root is not None:
            return str(self.store.root)
        url = getattr(self.store, "url", None)
        return url if isinstance(url, str) else None

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
        from ledger import anchors

        wanted = anchors.parse_head(head) if head is not None else None
        report = self.store.verify(progress)
        if wanted is None or not report.ok:
            return report
        return report.model_copy(update={"anchor": anchors.anchor(self.store, *wanted, report.head_position)})

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Batch durability for large imports: appends inside are synced once, at the end."""
        with self.store.bulk():
            yield

    # --- following, export, import, stats ----------------------------------------------------

    def current_version(self, article: str) -> int:
        """The article's latest version, 0 when it is not in the log (cheap: no fold)."""
        _text("article", article)
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

        Between appends it costs one `stat` of the log every `poll` seconds (a PostgreSQL
        store is woken by each commit instead, and looks at its head at least every `poll`
        seconds besides); an append is read once it is complete, never half. Raises
        `ArticleNotFoundError` at once for an `article` that is not in the log, and
        `InvalidInputError` for a type ledger does not have (it would never be yielded).
        """
        _check(after=(_count, after), article=(_text, article))
        types = _event_types(types)
        if article is not None:
            self._version_of(article)
        start = self.head().position if after is None else after
        return self._follow(start, poll, article, set(types) if types else None)

    def _follow(self, position: int, poll: float, article: str | None, wanted: set[str] | None) -> Iterator[RecordedEvent]:
        while True:
            # Polled by position: an append still being written is not committed yet, so it is
            # left for a later round and nothing is missed.
            if self.store.wait(position, poll) <= position:
                continue
            for record in self.store.read(position):
                position = record["pos"]
                if (article is None or record["article"] == article) and (wanted is None or record["type"] in wanted):
                    yield RecordedEvent.from_record(record)

    def export(self, article: str | None = None) -> Iterator[bytes]:
        """The log's sealed record lines exactly as stored, each ending in a newline: the whole
        log, or only `article`'s events, each checked against its hash and the chain as it goes. `import_records` turns a whole-log export into an
        identical store (same positions, hashes and head hash)."""
        _check(article=(_text, article))
        if article is not None:
            self._version_of(article)
        from ledger import transfer

        return transfer.export(self.store, article)

    def export_to(self, path: str | os.PathLike[str], article: str | None = None) -> int:
        """Write `export(article)` to the file `path` and return the number of events. The file
        is written beside its final name, synced and renamed, so a failed export never leaves
        half a file behind."""
        from ledger import transfer

        return transfer.export_to(path, self.export(article))

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
        from ledger import transfer

        return transfer.import_file(self, self.store, source, reappend=reappend, progress=progress)

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
        `InvalidEventError` for bad or refused records, `NothingToDoError` when the input holds
        no records; an input already in the store is no error (`imported` is 0).
        """
        from ledger import transfer

        return transfer.import_records(self, self.store, lines, name=name, reappend=reappend)

    def stats(self) -> Stats:
        """Counts of the store: events, articles, versions, categories, log size and head."""
        from ledger.views import Stats

        head = self.head()
        # The catalog answers from its indexes and running totals, without folding any article.

        def read() -> Stats:
            articles, versions, withdrawn, categories = self.catalog.totals()
            return Stats(
                events=head.position,
                articles=articles,
                versions=versions,
                categories=categories,
                withdrawn=withdrawn,
                log_bytes=(self.store.root / LOG_FILE).stat().st_size if self.store.root is not None else 0,
                head_position=head.position,
                head_hash=head.hash,
            )

        return self._from_views(read)


