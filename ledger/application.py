"""The `Ledger` facade: the one object users open, append to and query.

It turns what users ask to record (`EventIn`) into stored records: it checks each event against
the article's current state (created once, not edited while withdrawn, block indexes that
exist...) and records only what changed (an edit becomes a patch). The store's optimistic
concurrency makes this safe across processes: the append states the version it was prepared
against, and is prepared again if another process got there first.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

from pydantic import ValidationError

from ledger.errors import (
    ArticleNotFoundError,
    ArticleStateError,
    DuplicateEventError,
    InvalidEventError,
    LedgerError,
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
    validate_data,
)
from ledger.patches import apply_patch, make_patch
from ledger.projections import ArticleState, ArticleView, apply, fold
from ledger.store import AppendResult, EventStore, FileEventStore, Head, VerifyReport, init_store

DEFAULT_STORE = "ledger-data"
ENV_STORE = "LEDGER_STORE"
_RETRIES = 8
_CACHE_SIZE = 512


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


class Ledger:
    """A versioned archive of articles, backed by an `EventStore`. Use as a context manager."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._states: OrderedDict[str, ArticleState] = OrderedDict()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the store."""
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
            records, expected, states = self._prepare(parsed, names, expected_by_user)
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
            record = NewRecord(
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
            out["set"] = {k: v for k, v in out["set"].items() if k not in state.metadata or state.metadata[k] != v}
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
        """The article's state at `version`, folded from its records."""
        return fold(self.store.read_article(article, 1, version))

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

    def article(self, article: str, version: int | None = None) -> ArticleView:
        """The article now, or at `version`. Raises `ArticleNotFoundError`/`VersionNotFoundError`."""
        current = self.store.article_version(article)
        if current == 0:
            raise ArticleNotFoundError(f"article {article!r} is not in the log")
        if version is None or version == current:
            state = self._current(article)
        elif 1 <= version < current:
            state = self._state_at(article, version)
        else:
            raise VersionNotFoundError(f"article {article!r} has versions 1 to {current}, not {version}")
        assert state is not None
        return state.view()

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


