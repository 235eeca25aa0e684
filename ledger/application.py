"""The `Ledger` facade: the one object users open, append to and query.

It turns what users ask to record (`EventIn`) into stored records: it checks each event against
the article's current state (created once, not edited while withdrawn, block indexes that
exist...) and records only what changed (an edit becomes a patch). The store's optimistic
concurrency makes this safe across processes: the append states the version it was prepared
against, and is prepared again if another process got there first.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError

from ledger import codec

from ledger.errors import (
    ArticleNotFoundError,
    ArticleStateError,
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
    EventIn,
    NewRecord,
    RecordedEvent,
    describe_validation_error,
    format_time,
    new_event_id,
    parse_time,
    upcast,
    validate_data,
)
from ledger.patches import apply_patch, make_patch
from ledger.checkpoints import ViewStore
from ledger.diffs import line_diff, word_diff
from ledger.projections import CHANGE_KIND, ArticleState, ArticleView, apply, fold
from ledger.rendering import render
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
from ledger.store import AppendResult, EventStore, FileEventStore, Head, VerifyReport, init_store

DEFAULT_STORE = "ledger-data"
ENV_STORE = "LEDGER_STORE"
_RETRIES = 8
_CACHE_SIZE = 512
_MISSING = object()
# An article is not in a listing at time :t while a withdrawal covers :t.
_NOT_WITHDRAWN_AT = (
    "NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.article = m.article AND w.withdrawn_at <= :t"
    " AND (w.restored_at IS NULL OR w.restored_at > :t))"
)


def store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: `path`, else `$LEDGER_STORE`, else `./ledger-data`."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(ENV_STORE) or DEFAULT_STORE)


def init(path: str | os.PathLike[str] | None = None) -> Path:
    """Create an empty store (harmless if it exists) and return its folder."""
    return init_store(store_path(path))


def open(path: str | os.PathLike[str] | None = None, *, create: bool = False, lock_timeout: float = 10.0, recover: bool = True) -> "Ledger":  # noqa: A001
    """Open the store at `path` (see `store_path`) as a `Ledger`.

    `create` makes the store if it is missing. `recover` (the default) cuts off a torn tail left
    by a crash and brings the index up to date; `verify` opens without it, to report damage.
    """
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
    return Ledger(store)


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
        "reappended: each version was appended anew (same ids, versions, occurred_at, actors and reasons; new positions, "
        "recorded_at and hashes)."
    )
    read: int = Field(description="Records read from the input.")
    imported: int = Field(description="Events added to the store.")
    skipped: int = Field(description="Events already in the store (same ids, or an identical prefix of the log).")
    head: Head = Field(description="The head of the store after the import.")


_IMPORT_BATCH = 4 * 1024 * 1024
_RECORD_FIELDS: dict[str, type] = {
    "pos": int, "id": str, "article": str, "version": int, "type": str, "recorded_at": str, "occurred_at": str, "data": dict,
}


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


class Ledger:
    """A versioned archive of articles, backed by an `EventStore`. Use as a context manager."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._states: OrderedDict[str, ArticleState] = OrderedDict()
        self._views: ViewStore | None = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the store."""
        if self._views is not None:
            self._views.close()
        self.store.close()

    @property
    def path(self) -> Path | None:
        """The store folder, for file-backed stores."""
        return getattr(self.store, "root", None)

    # --- writing ---------------------------------------------------------------------------

    def append(
        self,
        events: Iterable[EventIn | Mapping[str, Any]],
        *,
        labels: Sequence[str] | None = None,
    ) -> AppendResult:
        """Record `events` as one atomic append: all of them or none.

        Each is an `EventIn` or a dict of its fields. Events of one article become its next
        version. `labels` name where each event came from (e.g. `events.jsonl:3`) in error
        messages; by default `event 1`, `event 2`, ... Raises an `InvalidInputError`,
        `ArticleNotFoundError`, `ConflictError` or `NothingToDoError` and records nothing when
        any event does not fit.
        """
        given = list(events)
        names = list(labels) if labels is not None else [f"event {i}" for i in range(1, len(given) + 1)]
        parsed = [self._parse(event, names[i]) for i, event in enumerate(given)]
        if not parsed:
            raise NothingToDoError("nothing to append: no events given")
        expected_by_user: dict[str, int] = {}
        for event, name in zip(parsed, names):
            if event.expected_version is not None:
                if expected_by_user.setdefault(event.article, event.expected_version) != event.expected_version:
                    raise InvalidEventError(f"{name}: expected_version differs from an earlier event of {event.article!r}")
        explicit = [event.id for event in parsed if event.id is not None]
        if explicit:
            if len(explicit) == len(parsed):
                original = self.store.find_append(explicit)
                if original is not None:
                    return original
            elif self.store.find_append(explicit) is not None:
                raise DuplicateEventError(f"{names[0]}: some events of this append are already in the log and others have no id")
        for attempt in range(_RETRIES):
            try:
                records, expected, states = self._prepare(parsed, names, expected_by_user)
            except LedgerError:
                # Another process may have recorded this very append since the check above; the
                # article's new state then refuses it (created twice, changes nothing, version
                # moved on), but a re-sent append must get its original result.
                original = self.store.find_append(explicit) if explicit and len(explicit) == len(parsed) else None
                if original is not None:
                    return original
                raise
            try:
                result = self.store.append(records, expected)
            except VersionConflictError:
                if expected_by_user or attempt == _RETRIES - 1:
                    raise
                continue
            if not result.duplicate:
                self._remember(records, result, states)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _parse(event: EventIn | Mapping[str, Any], name: str) -> EventIn:
        if isinstance(event, EventIn):
            return event
        try:
            return EventIn.model_validate(event)
        except ValidationError as exc:
            raise InvalidEventError(f"{name}: {describe_validation_error(exc)}") from None

    def _prepare(
        self, events: list[EventIn], names: list[str], expected_by_user: dict[str, int]
    ) -> tuple[list[NewRecord], dict[str, int], dict[str, ArticleState | None]]:
        states: dict[str, ArticleState | None] = {}
        expected: dict[str, int] = {}
        records: list[NewRecord] = []
        for event, name in zip(events, names):
            article = event.article
            if article not in states:
                current = self._current(article)
                version = current.version if current is not None else 0
                if article in expected_by_user and expected_by_user[article] != version:
                    raise VersionConflictError(
                        f"{name}: article {article!r} is at version {version}, not the expected {expected_by_user[article]}; nothing appended"
                    )
                expected[article] = version
                states[article] = current.copy() if current is not None else None
            data = self._record_data(event, states[article], name)
            # Every field is already validated (EventIn, the type's data model): construct
            # without validating a third time.
            record = NewRecord.model_construct(
                id=event.id or new_event_id(),
                article=article,
                type=event.type,
                data=data,
                occurred_at=format_time(event.occurred_at) if event.occurred_at else None,
                actor=event.actor,
                reason=event.reason,
                explicit_id=event.id is not None,
            )
            # Fold as we go so that the next event of the same append is checked against it.
            states[article] = apply(
                states[article],
                {"type": record.type, "data": data, "article": article, "version": expected[article] + 1,
                 "occurred_at": record.occurred_at or "", "pos": 0},
            )
            records.append(record)
        return records, expected, states

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
            self._check_patch(out["patch"], block[1], where)
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
            out["set"] = {k: v for k, v in out["set"].items() if k not in state.metadata or codec.dumps(state.metadata[k]) != codec.dumps(v)}
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
            self._check_patch(out["patch"], state.body, where)
        if out["title"] is None and not out["patch"]:
            raise NothingToDoError(f"{where}ArticleEdited changes nothing in {state.id!r}")
        return {k: v for k, v in out.items() if v}

    @staticmethod
    def _check_patch(patch: list[Any] | None, text: str, where: str) -> None:
        if patch:
            try:
                apply_patch(text, patch)
            except ValueError as exc:
                raise InvalidEventError(f"{where}patch: {exc}") from None

    def _remember(self, records: list[NewRecord], result: AppendResult, states: dict[str, ArticleState | None]) -> None:
        # Keep the states we just folded, stamped with what the store assigned, so the next
        # append to the same article needs no read.
        position = result.first_position
        last_position: dict[str, int] = {}
        for record in records:
            last_position[record.article] = position
            position += 1
        for article, state in states.items():
            if state is None:
                continue
            when = format_time(result.occurred_at[article])
            state.version = result.versions[article]
            state.position = last_position[article]
            state.updated_at = when
            if state.version == 1:
                state.created_at = when
            for block in state.blocks:
                if block[2] == state.version:
                    block[3] = when
            self._cache(state)

    def _cache(self, state: ArticleState) -> None:
        self._states[state.id] = state
        self._states.move_to_end(state.id)
        while len(self._states) > _CACHE_SIZE:
            self._states.popitem(last=False)

    def _current(self, article: str) -> ArticleState | None:
        """The article's state at its latest version (None if it has no events)."""
        version = self.store.article_version(article)
        if version == 0:
            return None
        cached = self._states.get(article)
        if cached is not None and cached.version == version:
            return cached
        if cached is not None and cached.version < version:
            state = fold(self.store.read_article(article, cached.version + 1, version), cached.copy())
        else:
            state = self._state_at(article, version)
        assert state is not None
        self._cache(state)
        return state

    def _state_at(self, article: str, version: int) -> ArticleState | None:
        """The article's state at `version`, folded from its nearest snapshot (see `ViewStore`)."""
        return self.views.state_at(article, version)

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
        `types` when given, at most `limit` of them."""
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
        current = self.store.article_version(article)
        if current == 0:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        if at is not None:
            if version is not None:
                raise InvalidInputError("give a version or a time, not both")
            when = format_time(parse_when(at))
            version = self.store.version_at(article, when)
            if version == 0:
                first = self.store.version_times(article)[0][1]
                raise VersionNotFoundError(f"article {article!r} did not exist yet at {when} (version 1 is from {first})")
        if version is None or version == current:
            state = self._current(article)
        elif 1 <= version < current:
            state = self._state_at(article, version)
        else:
            raise VersionNotFoundError(f"article {article!r} has versions 1 to {current}, not {version}")
        assert state is not None
        return state.view()

    @property
    def views(self) -> ViewStore:
        """The persisted views of all articles (`views.sqlite` in the store folder)."""
        if self._views is None:
            self._views = ViewStore(self.store)
        return self._views

    def history(self, article: str) -> list[HistoryEntry]:
        """Every version of the article, oldest first: when, who, why, what kind of change, and
        the size of the article rendered at that version. Raises `ArticleNotFoundError`."""
        records = self.store.read_article(article)
        if not records:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        entries: list[HistoryEntry] = []
        state: ArticleState | None = None
        start = 0
        for index, record in enumerate(records):
            state = apply(state, record)
            if index + 1 < len(records) and records[index + 1]["version"] == record["version"]:
                continue
            group, start = records[start : index + 1], index + 1
            entries.append(
                HistoryEntry(
                    **_summary(group),
                    size=len(render(state.view()).encode("utf-8")),
                    withdrawn=state.withdrawn,
                )
            )
        return entries

    def diff(self, article: str, from_version: int | None = None, to_version: int | None = None, words: bool = False) -> Diff:
        """What changed in the rendered article from `from_version` to `to_version` (defaults:
        the previous version against the latest; version 0 is the empty text before the
        article existed), line by line or, with `words`, word by word."""
        current = self.store.article_version(article)
        if current == 0:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        to_version = current if to_version is None else to_version
        from_version = max(to_version - 1, 0) if from_version is None else from_version
        texts = []
        for version in (from_version, to_version):
            if version == 0:
                texts.append("")
            elif not 1 <= version <= current:
                raise VersionNotFoundError(f"article {article!r} has versions 1 to {current}, not {version}")
            else:
                texts.append(render(self.article(article, version)))
        make = word_diff if words else line_diff
        return make(article, texts[0], texts[1], from_version, to_version)

    def category(self, name: str, at: datetime | str | None = None) -> CategoryListing:
        """The articles in category `name` now, or at time `at`, by article id; withdrawn
        articles are left out. An unknown category is simply empty."""
        db = self.views.refresh()
        if at is None:
            rows = db.execute(
                "SELECT m.article, a.title, m.entered_at, m.entered_version FROM memberships m"
                " JOIN articles a ON a.article = m.article"
                " WHERE m.category = ? AND m.left_version IS NULL AND a.withdrawn = 0 ORDER BY m.article",
                (name,),
            ).fetchall()
            moment = None
        else:
            moment = parse_when(at)
            when = format_time(moment)
            rows = db.execute(
                "SELECT m.article, (SELECT title FROM titles t WHERE t.article = m.article AND t.occurred_at <= :t"
                " ORDER BY t.version DESC LIMIT 1), m.entered_at, m.entered_version FROM memberships m"
                " WHERE m.category = :c AND m.entered_at <= :t AND (m.left_at IS NULL OR m.left_at > :t)"
                f" AND {_NOT_WITHDRAWN_AT} ORDER BY m.article",
                {"c": name, "t": when},
            ).fetchall()
        members = [CategoryMember(article=a, title=t, since=parse_time(s), since_version=v) for a, t, s, v in rows]
        return CategoryListing(name=name, at=moment, articles=members)

    def categories(self, at: datetime | str | None = None) -> list[CategoryCount]:
        """Every category with its number of (not withdrawn) articles, now or at time `at`,
        by name."""
        db = self.views.refresh()
        if at is None:
            rows = db.execute(
                "SELECT m.category, COUNT(*) FROM memberships m JOIN articles a ON a.article = m.article"
                " WHERE m.left_version IS NULL AND a.withdrawn = 0 GROUP BY m.category ORDER BY m.category"
            ).fetchall()
        else:
            rows = db.execute(
                "SELECT m.category, COUNT(*) FROM memberships m"
                " WHERE m.entered_at <= :t AND (m.left_at IS NULL OR m.left_at > :t)"
                f" AND {_NOT_WITHDRAWN_AT} GROUP BY m.category ORDER BY m.category",
                {"t": format_time(parse_when(at))},
            ).fetchall()
        return [CategoryCount(name=name, count=count) for name, count in rows]

    def category_history(self, article: str) -> list[CategoryMembership]:
        """When the article entered and left each category, in order of entry (stints of a
        withdrawn article are not cut: see `history` for withdrawals)."""
        db = self.views.refresh()
        if db.execute("SELECT 1 FROM articles WHERE article = ?", (article,)).fetchone() is None:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        rows = db.execute(
            "SELECT category, entered_version, entered_at, left_version, left_at FROM memberships"
            " WHERE article = ? ORDER BY entered_version, rowid",
            (article,),
        ).fetchall()
        return [
            CategoryMembership(
                category=c, entered_version=ev, entered_at=parse_time(ea), left_version=lv,
                left_at=parse_time(la) if la is not None else None,
            )
            for c, ev, ea, lv, la in rows
        ]

    def updated_since(self, since: datetime | str) -> list[FeedEntry]:
        """The "updated stories" feed: articles (not withdrawn) that received update blocks
        whose version occurred at or after `since`, the most recently updated first."""
        db = self.views.refresh()
        rows = db.execute(
            "SELECT f.article, a.title, f.version, f.occurred_at, f.heading FROM feed f"
            " JOIN articles a ON a.article = f.article"
            " WHERE f.occurred_at >= ? AND a.withdrawn = 0 ORDER BY f.occurred_at DESC, f.position DESC",
            (format_time(parse_when(since)),),
        ).fetchall()
        entries: dict[str, FeedEntry] = {}
        for article, title, version, occurred, heading in rows:
            block = FeedBlock(heading=heading, version=version, occurred_at=parse_time(occurred))
            entry = entries.get(article)
            if entry is None:
                entries[article] = FeedEntry(article=article, title=title, last_update_at=block.occurred_at, blocks=[block])
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
        `until` (both included), newest first, at most `limit` of them."""
        low = format_time(parse_when(since)) if since is not None else None
        high = format_time(parse_when(until)) if until is not None else None
        if article is not None:
            # One article's versions come from the store's index, newest first (an article's
            # versions never go back in time).
            versions = [
                (article, version)
                for version, occurred, _ in reversed(self.store.version_times(article))
                if (low is None or occurred >= low) and (high is None or occurred <= high)
            ][:limit]
        else:
            where: list[str] = []
            params: list[Any] = []
            if low is not None:
                where.append("occurred_at >= ?")
                params.append(low)
            if high is not None:
                where.append("occurred_at <= ?")
                params.append(high)
            sql = "SELECT article, version FROM changes" + (" WHERE " + " AND ".join(where) if where else "")
            sql += " ORDER BY occurred_at DESC, position DESC"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            versions = self.views.refresh().execute(sql, params).fetchall()
        entries = []
        for name, version in versions:
            summary = _summary(self.store.read_article(name, version, version))
            del summary["version"]
            entries.append(TimelineEntry(article=name, version=version, **summary))
        return entries

    def restore(self, article: str, version: int, actor: str | None = None, reason: str | None = None) -> AppendResult:
        """Bring the article back to what it said at `version`, as a new version: one append of
        the events that turn the current article into that one (title and body, update blocks,
        categories, metadata; and `ArticleRestored` first if it is withdrawn now). Nothing is
        rewritten. Raises `NothingToDoError` when the article already says exactly that."""
        target = self.article(article, version)
        current = self._current(article)
        assert current is not None
        events: list[dict[str, Any]] = []

        def add(kind: str, data: dict[str, Any]) -> None:
            events.append({"type": kind, "article": article, "data": data, "actor": actor, "reason": reason})

        if current.withdrawn:
            add("ArticleRestored", {})
        edit: dict[str, Any] = {}
        if target.title != current.title:
            edit["title"] = target.title
        if target.body != current.body:
            edit["body"] = target.body
        if edit:
            add("ArticleEdited", edit)
        have = [(block[0], block[1]) for block in current.blocks]
        want = [(block.heading, block.text) for block in target.blocks]
        for index in range(min(len(have), len(want))):
            if have[index] != want[index]:
                change: dict[str, Any] = {"index": index}
                if have[index][0] != want[index][0]:
                    change["heading"] = want[index][0]
                if have[index][1] != want[index][1]:
                    change["text"] = want[index][1]
                add("UpdateBlockEdited", change)
        for index in range(len(have) - 1, len(want) - 1, -1):
            add("UpdateBlockRemoved", {"index": index})
        for heading, text in want[len(have) :]:
            add("UpdateBlockAdded", {"heading": heading, "text": text})
        if current.categories != target.categories:
            # Added categories go last: keep the longest start of the wanted order that the
            # current list already has in that order, and re-add the rest.
            kept = 0
            for category in current.categories:
                if kept < len(target.categories) and category == target.categories[kept]:
                    kept += 1
            keep = set(target.categories[:kept])
            add("CategoriesChanged", {
                "removed": [c for c in current.categories if c not in keep],
                "added": target.categories[kept:],
            })
        unset = [key for key in current.metadata if key not in target.metadata]
        changed = {key: value for key, value in target.metadata.items() if current.metadata.get(key, _MISSING) != value}
        if unset or changed:
            add("MetadataChanged", {"set": changed, "unset": unset})
        if not events:
            raise NothingToDoError(f"article {article!r} already says what version {version} said")
        for event in events:
            if event["actor"] is None:
                del event["actor"]
            if event["reason"] is None:
                del event["reason"]
        events[0]["expected_version"] = current.version
        return self.append(events)

    def replay(self, to: int | None = None, progress: Callable[[int, int], None] | None = None) -> ReplayStats:
        """Rebuild every view from the log (up to position `to`), replacing the persisted ones;
        `progress(position, head_position)` is called as it goes. Returns counts and events/s."""
        return self.views.rebuild(to, progress)

    def head(self) -> Head:
        """The last position in the log and its hash."""
        return self.store.head()

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Check every record of the log (checksums, hash chain, positions, versions)."""
        return self.store.verify(progress)

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
        once it is complete, never half.
        """
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
        log, or only `article`'s events. `import_records` turns a whole-log export into an
        identical store (same positions, hashes and head hash)."""
        store = self._file_store("export")
        if article is not None and store.article_version(article) == 0:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        return store.raw_lines(article)

    def import_file(self, source: str | os.PathLike[str] | Any, *, progress: Callable[[int, int], None] | None = None) -> ImportResult:
        """Import an export file (a path, or a seekable binary file): see `import_records`.
        `progress(done_bytes, total_bytes)` is called as the input is read (it is read two or
        three times: checked, then appended)."""
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
                total = path.stat().st_size
            except OSError as exc:
                raise InvalidEventError(f"{path}: cannot read the import file ({exc.strerror})") from None

            def lines() -> Iterator[bytes]:
                with path.open("rb") as handle:
                    yield from handle
        return self._import(lines, total, name, progress)

    def import_records(self, lines: Sequence[bytes], *, name: str = "<records>") -> ImportResult:
        """Load sealed record lines written by `export` (JSON lines) into this store.

        * A whole-log export into an empty store (or into a store whose log is an identical
          prefix of it, such as an older copy) is appended **exactly**: same positions, ids,
          versions, times, actors, reasons and hashes, so `verify` gives the source's head hash.
        * Anything else (an `--article` export, or a store with other events) is **reappended**:
          each version becomes a new append through the normal checks, keeping ids, versions,
          occurred_at, actors and reasons; positions, recorded_at and hashes are new (a hash
          chain cannot be carried into a different log). Events whose ids are already in the
          store are skipped, so an import can be run again.

        Every record is checked (checksum, fields, and in the second mode the article's state)
        before anything is appended: bad input appends nothing. Raises `InvalidEventError` for
        bad records, `NothingToDoError` when everything is already in the store.
        """
        return self._import(lambda: lines, sum(len(line) for line in lines), name, None)

    def _import(
        self, lines: Callable[[], Iterable[bytes]], total: int, name: str, progress: Callable[[int, int], None] | None
    ) -> ImportResult:
        store = self._file_store("import")
        head = self.head()
        done = 0

        def records(passes: int) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
            nonlocal done
            for number, raw in enumerate(lines(), 1):
                done += len(raw)
                if progress is not None and number % 2000 == 0:
                    progress(done, total * passes)
                line = raw.rstrip(b"\r\n")
                if line.strip():
                    yield f"{name}:{number}", line, codec.decode(line)

        # Pass 1: every line is a sealed record; is the input one chain from position 1 that
        # this store's log is a prefix of?
        read = 0
        chained = True
        reaches_head = head.position == 0
        last_pos, last_hash, last_end = 0, codec.GENESIS_HASH, False
        for number, raw in enumerate(lines(), 1):
            done += len(raw)
            if progress is not None and number % 2000 == 0:
                progress(done, total * 2)
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                record = codec.decode(line)
                digest = codec.check(line)
            except codec.RecordError as exc:
                raise InvalidEventError(f"{where}: {exc} (import reads the sealed records `ledger export` writes)") from None
            for key, kind in _RECORD_FIELDS.items():
                if not isinstance(record.get(key), kind):
                    raise InvalidEventError(f"{where}: record field {key!r} is missing or not a {kind.__name__}")
            try:
                parse_time(record["occurred_at"])
            except ValueError:
                raise InvalidEventError(f"{where}: occurred_at {record['occurred_at']!r} is not a log time") from None
            chained = chained and record["pos"] == last_pos + 1 and record.get("prev") == last_hash
            if chained and record["pos"] == head.position and digest == head.hash:
                reaches_head = True
            read += 1
            last_pos, last_hash, last_end = record["pos"], digest, bool(record.get("end"))
        if not read:
            raise NothingToDoError(f"{name}: no records to import")

        if chained and last_end and reaches_head:
            imported = 0
            new_head = head
            with self.bulk():
                batch: list[bytes] = []
                size = 0
                for _, line, record in records(2):
                    if record["pos"] <= head.position:
                        continue
                    batch.append(line + b"\n")
                    size += len(line) + 1
                    if size >= _IMPORT_BATCH and record.get("end"):
                        new_head = store.append_raw(batch)
                        imported += len(batch)
                        batch, size = [], 0
                if batch:
                    new_head = store.append_raw(batch)
                    imported += len(batch)
            if not imported:
                raise NothingToDoError(f"{name}: the store already holds all {read} records")
            if progress is not None:
                progress(total * 2, total * 2)
            # The head from the appends themselves: the index catches up on the next read.
            return ImportResult(mode="exact", read=read, imported=imported, skipped=read - imported, head=new_head)

        # Pass 2: check every version against the article's state as it will be; pass 3: append.
        skip = self._check_reappend(self._versions(records(3)))
        imported = 0
        with self.bulk():
            for index, (labels, events) in enumerate(self._versions(records(3))):
                if index in skip:
                    continue
                result = self.append(events, labels=labels)
                if not result.duplicate:
                    imported += len(events)
        if not imported:
            raise NothingToDoError(f"{name}: all {read} events are already in the store")
        if progress is not None:
            progress(total * 3, total * 3)
        return ImportResult(mode="reappended", read=read, imported=imported, skipped=read - imported, head=self.head())

    def _versions(self, records: Iterable[tuple[str, bytes, dict[str, Any]]]) -> Iterator[tuple[list[str], list[EventIn]]]:
        """Group imported records into versions (consecutive records of one article and version)."""
        labels: list[str] = []
        events: list[EventIn] = []
        key: tuple[str, int] | None = None
        for label, _, record in records:
            upcast(record)
            if key is not None and key != (record["article"], record["version"]):
                yield labels, events
                labels, events = [], []
            key = (record["article"], record["version"])
            event = {"type": record["type"], "article": record["article"], "data": record["data"], "id": record["id"],
                     "occurred_at": parse_time(record["occurred_at"])}
            for optional in ("actor", "reason"):
                if record.get(optional) is not None:
                    event[optional] = record[optional]
            labels.append(label)
            events.append(self._parse(event, label))
        if events:
            yield labels, events

    def _check_reappend(self, versions: Iterable[tuple[list[str], list[EventIn]]]) -> set[int]:
        """Check imported versions in order against the articles' states as the import will
        leave them, without appending; return the indexes of versions already in the store."""
        states: dict[str, ArticleState | None] = {}
        skip: set[int] = set()
        for index, (labels, events) in enumerate(versions):
            if self.store.find_append([event.id for event in events if event.id]) is not None:
                skip.add(index)
                continue
            article = events[0].article
            if article not in states:
                current = self._current(article)
                states[article] = current.copy() if current is not None else None
            state = states[article]
            when = format_time(events[0].occurred_at) if events[0].occurred_at else ""
            previous = (state.version, state.updated_at) if state is not None else (0, "")
            for label, event in zip(labels, events):
                data = self._record_data(event, state, label)
                state = apply(state, {"type": event.type, "data": data, "article": article, "version": previous[0] + 1, "occurred_at": when, "pos": 0})
            if when < previous[1]:
                raise InvalidTimeError(f"{labels[0]}: occurred_at {when} of {article!r} is earlier than its version {previous[0]} ({previous[1]})")
            states[article] = state
        return skip

    def stats(self) -> Stats:
        """Counts of the store: events, articles, versions, categories, log size and head."""
        head = self.head()
        articles = self.store.articles()
        # The persisted views answer both without folding any article.
        categories = len(self.categories())
        withdrawn = self.views.refresh().execute("SELECT COUNT(*) FROM articles WHERE withdrawn = 1").fetchone()[0]
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


