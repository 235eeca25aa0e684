"""Projections: pure folds of the event stream into views of articles.

`apply(state, record)` folds one raw record into an `ArticleState`; folding an article's records
in order gives the article at any version. States are plain objects rather than pydantic models
because a full replay folds millions of records; `ArticleState.view()` turns one into the
public `ArticleView` model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, TypedDict

from pydantic import Field, PlainSerializer

from ledger.errors import CorruptStoreError
from ledger.events import UtcDatetime, format_time, parse_time
from ledger.model import Model
from ledger.patches import apply_patch
from ledger.store import StoredRecord

# Here, with the first model that has one, rather than in `ledger.views`: a read of one article
# (`ledger show`) then loads the article's models without every other result's (issue 14).
UtcTime = Annotated[UtcDatetime, PlainSerializer(format_time, return_type=str, when_used="json")]
"""A time that is written in JSON as the log's canonical UTC text (`2017-09-05T16:05:00.000000Z`:
fixed width, so sorting the text sorts by time)."""


class UpdateBlock(Model):
    """An update block as it stands in a version of an article."""

    heading: str = Field(description='The heading line, e.g. "Update from Al Masdar News:".')
    text: str = Field(description="Everything after the heading line up to the next block.")
    added_version: int = Field(description="The article version that added the block.")
    added_at: UtcTime = Field(description="When that version occurred (UTC).")


class ArticleView(Model):
    """An article as it stood at one version."""

    article: str = Field(description="The article's id (the same field name as in every other result).")
    version: int
    title: str
    body: str
    blocks: list[UpdateBlock] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    authors: list[str] = Field(
        default_factory=list,
        description="The authors the metadata names, however it names them (`author`, `authors`, in `extra`, `params` or `taxonomies`): see `authors_of`.",
    )
    withdrawn: bool = False
    created_at: UtcTime = Field(description="When version 1 occurred (UTC).")
    updated_at: UtcTime = Field(description="When this version occurred (UTC).")
    position: int = Field(description="Log position of the last event of this version.")

    @property
    def id(self) -> str:
        """The article's id (read-only alias of `article`; drafts and rendering call it `id`)."""
        return self.article


AUTHOR_KEYS = ("author", "authors")
"""Metadata keys that name authors, at the top level or inside one of `AUTHOR_TABLES`."""

AUTHOR_TABLES = ("extra", "params", "taxonomies")
"""Metadata mappings that may hold `AUTHOR_KEYS`: Zola's `[extra]` and `[taxonomies]`, Hugo's
`[params]`."""


def author_keys(metadata: dict[str, Any]) -> dict[str, Any]:
    """The part of `metadata` that `authors_of` reads: its `AUTHOR_KEYS`, and those inside its
    `AUTHOR_TABLES`, as written (the catalog keeps it to list articles by author)."""
    found: dict[str, Any] = {key: metadata[key] for key in AUTHOR_KEYS if key in metadata}
    for table in AUTHOR_TABLES:
        values = metadata.get(table)
        if isinstance(values, dict):
            inner = {key: values[key] for key in AUTHOR_KEYS if key in values}
            if inner:
                found[table] = inner
    return found


def authors_of(metadata: dict[str, Any]) -> list[str]:
    """The authors `metadata` names, in the order written, each once: `author` and `authors`
    (text, a list of texts, or a mapping with a `name`, as Jekyll writes them), then the same
    keys inside `extra`, `params` and `taxonomies`. Drafts keep whichever spelling they used;
    this is the one value a query sees. Text is stripped; anything else is left out."""
    names: list[str] = []
    keys = author_keys(metadata)
    for values in (keys, *(keys.get(table, {}) for table in AUTHOR_TABLES)):
        for key in AUTHOR_KEYS:
            value = values.get(key)
            for item in value if isinstance(value, list) else [value]:
                name = item.get("name") if isinstance(item, dict) else item
                if isinstance(name, str) and name.strip() and name.strip() not in names:
                    names.append(name.strip())
    return names


class ArticleState:
    """The mutable fold state of one article (internal: `view()` gives the public model)."""

    __slots__ = ("blocks", "body", "categories", "created_at", "id", "metadata", "position", "title", "updated_at", "version", "withdrawn")

    def __init__(self, article: str) -> None:
        self.id = article
        self.version = 0
        self.title = ""
        self.body = ""
        self.blocks: list[list[Any]] = []
        self.categories: list[str] = []
        self.metadata: dict[str, Any] = {}
        self.withdrawn = False
        self.created_at = ""
        self.updated_at = ""
        self.position = 0

    def copy(self) -> ArticleState:
        """An independent copy: the block list, categories and metadata are copied; strings and
        each block's own list are shared, because `apply` replaces a block rather than change
        it (copy on write: a live article carries hundreds of blocks, copied on every append)."""
        other = ArticleState.__new__(ArticleState)
        other.id = self.id
        other.version = self.version
        other.title = self.title
        other.body = self.body
        other.blocks = list(self.blocks)
        other.categories = list(self.categories)
        other.metadata = dict(self.metadata)
        other.withdrawn = self.withdrawn
        other.created_at = self.created_at
        other.updated_at = self.updated_at
        other.position = self.position
        return other

    def view(self) -> ArticleView:
        """The public model of this state."""
        # Built without validation: every value is the fold's own, from the log's records. That
        # spares `ledger show` building the model's validator (and pydantic's plugin loader,
        # which imports importlib.metadata), about a tenth of its start-up (issue 14). The block
        # list, categories and metadata dict are copied, so changing the state later does not
        # change the view (nested metadata values are shared, as with validation).
        return ArticleView.model_construct(
            article=self.id,
            version=self.version,
            title=self.title,
            body=self.body,
            blocks=[_update_block(heading, text, version, _time(at)) for heading, text, version, at in self.blocks],
            categories=list(self.categories),
            metadata=dict(self.metadata),
            authors=authors_of(self.metadata),
            withdrawn=self.withdrawn,
            created_at=parse_time(self.created_at),
            updated_at=parse_time(self.updated_at),
            position=self.position,
        )


_BLOCK_FIELDS = frozenset(UpdateBlock.model_fields)
_new = object.__new__
_set = object.__setattr__


def _update_block(heading: str, text: str, version: int, added_at: datetime) -> UpdateBlock:
    """`UpdateBlock.model_construct(...)` with all four fields given: the same instance, made
    without its loop over the fields, aliases and defaults (0.9 instead of 3.8 µs; a live
    article's view holds hundreds of blocks, and this was half of reading one, issue 16)."""
    block = _new(UpdateBlock)
    _set(block, "__dict__", {"heading": heading, "text": text, "added_version": version, "added_at": added_at})
    _set(block, "__pydantic_fields_set__", set(_BLOCK_FIELDS))
    _set(block, "__pydantic_extra__", None)
    _set(block, "__pydantic_private__", None)
    return block


_TIMES: dict[str, datetime] = {}
_TIMES_KEPT = 8192


def _time(text: str) -> datetime:
    """`parse_time(text)`, remembered: the blocks of a live article are each added at their own
    time, and every view of it parses them all again. Datetimes are immutable, so views share
    them; the memory is emptied when full."""
    moment = _TIMES.get(text)
    if moment is None:
        if len(_TIMES) >= _TIMES_KEPT:
            _TIMES.clear()
        moment = _TIMES[text] = parse_time(text)
    return moment


class FoldedRecord(TypedDict):
    """The keys of a record that `apply` reads. Every `StoredRecord` has them; an append being
    checked folds its events before the store has given them a position (`pos` 0)."""

    pos: int
    article: str
    version: int
    type: str
    occurred_at: str
    data: dict[str, Any]


def apply(state: ArticleState | None, record: FoldedRecord) -> ArticleState:
    """Fold one record of the log into the article's state and return the state.

    For speed the state is updated in place (copy it first to keep the old one; a block is
    replaced, never changed in place, so copies may share blocks). The record must
    belong to the article and follow the state's version; the store guarantees both. A record
    that does not fit its type (a log forged or written around ledger, its hashes sealed again)
    raises `CorruptStoreError` naming its position, not the fold's own error.
    """
    try:
        return apply_new(state, record)
    except UNFOLDABLE as exc:
        raise unfoldable(record, exc) from None


UNFOLDABLE = (KeyError, TypeError, IndexError, ValueError, AttributeError)
"""What a fold raises on a record that does not fit its type (`unfoldable` names it)."""


def unfoldable(record: Mapping[str, Any], exc: Exception) -> CorruptStoreError:
    """The error for a record of the log that a fold could not take (`exc`: the fold's own)."""
    if isinstance(exc, KeyError) and exc.args:
        what = f"it has no {exc.args[0]!r}"
    elif isinstance(exc, IndexError):
        what = "it names an update block the article does not have"
    elif isinstance(exc, ValueError):
        what = str(exc)
    else:
        what = "its data is not of its type's shape"
    pos = record.get("pos")
    return CorruptStoreError(
        f"log position {pos}: this {record.get('type', 'record')} does not fit its type ({what}), yet matches its hash"
        " (it was changed and sealed again: no append writes it)",
        position=pos if isinstance(pos, int) else None,
    )


def apply_new(state: ArticleState | None, record: FoldedRecord) -> ArticleState:
    """`apply` for an event being checked for appending: a patch that does not fit the text
    raises `ValueError` (the caller names the event)."""
    kind = record["type"]
    data = record["data"]
    if state is None:
        state = ArticleState(record["article"])
    if kind == "ArticleCreated":
        state.title = data["title"]
        state.body = data.get("body", "")
        state.categories = list(data.get("categories", ()))
        state.metadata = dict(data.get("metadata") or {})
        state.created_at = record["occurred_at"]
    elif kind == "ArticleEdited":
        if data.get("title") is not None:
            state.title = data["title"]
        if data.get("patch"):
            state.body = apply_patch(state.body, data["patch"])
    elif kind == "UpdateBlockAdded":
        block = [data["heading"], data.get("text", ""), record["version"], record["occurred_at"]]
        index = data.get("index")
        if index is None:
            state.blocks.append(block)
        else:
            state.blocks.insert(index, block)
    elif kind == "UpdateBlockEdited":
        # A new list, not the old one changed: copies of the state share block lists.
        index = data["index"]
        heading, text, added_version, added_at = state.blocks[index]
        if data.get("heading") is not None:
            heading = data["heading"]
        if data.get("patch"):
            text = apply_patch(text, data["patch"])
        state.blocks[index] = [heading, text, added_version, added_at]
    elif kind == "UpdateBlockRemoved":
        del state.blocks[data["index"]]
    elif kind == "CategoriesChanged":
        removed = set(data.get("removed", ()))
        kept = [c for c in state.categories if c not in removed]
        kept.extend(c for c in data.get("added", ()) if c not in kept)
        state.categories = kept
    elif kind == "MetadataChanged":
        for key in data.get("unset", ()):
            state.metadata.pop(key, None)
        state.metadata.update(data.get("set", {}))
    elif kind == "ArticleWithdrawn":
        state.withdrawn = True
    elif kind == "ArticleRestored":
        state.withdrawn = False
    state.version = record["version"]
    state.updated_at = record["occurred_at"]
    state.position = record["pos"]
    return state


def fold(records: Iterable[StoredRecord], state: ArticleState | None = None) -> ArticleState | None:
    """Fold an article's records, in order, onto `state` (None: from nothing)."""
    for record in records:
        state = apply(state, record)
    return state


# --- snapshots of one article's state -----------------------------------------------------

SNAPSHOT_EVERY = 32
"""An article's state is kept as a snapshot every this many versions (see `ledger.catalog`)."""


def state_to_list(state: ArticleState) -> list[Any]:
    """The state as a plain JSON-able list (the snapshot form)."""
    return [
        state.id, state.version, state.title, state.body, state.blocks, state.categories, state.metadata,
        state.withdrawn, state.created_at, state.updated_at, state.position,
    ]


def state_from_list(values: list[Any]) -> ArticleState:
    """The state back from `state_to_list`'s form."""
    state = ArticleState(values[0])
    (_, state.version, state.title, state.body, state.blocks, state.categories, state.metadata,
     state.withdrawn, state.created_at, state.updated_at, state.position) = values
    return state


# --- the all-articles projection ------------------------------------------------------------

# Index of each field in a catalog entry (a list, not an object: a full replay keeps one per
# article and updates them millions of times).
VERSION, TITLE, CATEGORIES, WITHDRAWN, CREATED_AT, UPDATED_AT, POSITION, LAST_BLOCK_AT, CHANGE, BLOCKS, AUTHORS = range(11)
# BLOCKS: the log position of the UpdateBlockAdded of each update block the article has now, in
# block order, so that removing or editing block i finds that block's feed row. AUTHORS: the
# article's `author_keys` (the metadata that names its authors), kept up to date by its events.

CHANGE_KIND = {
    "ArticleCreated": "created",
    "ArticleEdited": "edited",
    "UpdateBlockAdded": "block added",
    "UpdateBlockEdited": "block edited",
    "UpdateBlockRemoved": "block removed",
    "CategoriesChanged": "categories changed",
    "MetadataChanged": "metadata changed",
    "ArticleWithdrawn": "withdrawn",
    "ArticleRestored": "restored",
}
"""The history/timeline kind of change of each event type."""


class CatalogFold:
    """The fold behind the catalog of all articles (`ledger.catalog`): per article only small metadata
    (version, title, categories, withdrawn, times), plus the rows that the category index, the
    update feed, the title history and the timeline gain from the records folded.

    It is a pure fold of raw records: `fold(record)` for each record in log order.
    `load(article)` gives the entry of an article folded before (incremental catch-up: entries
    come from the catalog); None means the fold started from an empty log.
    """

    def __init__(self, load: Callable[[str], list[Any] | None] | None = None) -> None:
        self.entries: dict[str, list[Any]] = {}
        self._load = load
        self.memberships: list[list[Any]] = []
        """New stints: [article, category, entered_version, entered_at, left_version, left_at]."""
        self.closed_memberships: list[tuple[int, str, str, str]] = []
        """Stints persisted earlier that closed: (left_version, left_at, article, category)."""
        self.withdrawals: list[list[Any]] = []
        """New withdrawals: [article, withdrawn_version, withdrawn_at, restored_version, restored_at]."""
        self.closed_withdrawals: list[tuple[int, str, str]] = []
        """Withdrawals persisted earlier that ended: (restored_version, restored_at, article)."""
        self.feed: dict[int, list[Any]] = {}
        """New feed rows of update blocks still in their article, by the position of the event that
        added them: [position, article, version, occurred_at, heading (as it stands now)]."""
        self.feed_headings: list[tuple[str, int]] = []
        """Feed rows handed over earlier whose block got a new heading: (heading, position)."""
        self.feed_removed: list[tuple[int]] = []
        """Feed rows handed over earlier whose block was removed: (position,)."""
        self.titles: list[tuple[str, int, str, str]] = []
        """Titles set: (article, version, occurred_at, title)."""
        self.changes: list[list[Any]] = []
        """One row per article version: [position of its last event, article, version, occurred_at]."""
        self._open_memberships: dict[tuple[str, str], list[Any]] = {}
        self._open_withdrawals: dict[str, list[Any]] = {}
        self.events = 0
        self.position = 0
        self.hash = ""

    def fold(self, record: StoredRecord) -> None:
        """Fold one raw record (upcast, in log order)."""
        article = record["article"]
        kind = record["type"]
        version = record["version"]
        when = record["occurred_at"]
        pos = record["pos"]
        entry = self.entries.get(article)
        if entry is None and self._load is not None:
            entry = self._load(article)
            if entry is not None:
                self.entries[article] = entry
        # The entry keeps the timeline row of the article's latest version: a version of several
        # events is one row, which ends at the position of its last event.
        change = entry[CHANGE] if entry is not None else None
        if change is not None and change[2] == version:
            change[0] = pos
        else:
            change = [pos, article, version, when]
            self.changes.append(change)
        if kind == "ArticleCreated":
            data = record["data"]
            categories = list(data.get("categories", ()))
            entry = [version, data["title"], categories, False, when, when, pos, None, change, [], author_keys(data.get("metadata") or {})]
            self.entries[article] = entry
            self.titles.append((article, version, when, data["title"]))
            for category in categories:
                self._enter(article, category, version, when)
        elif entry is None:
            # Appends through a Ledger create an article first; a record that does not is a damaged
            # log (or, when folding onto persisted views, views that lost the article). Either
            # way the views cannot go on: say where, and leave them as they are (rebuilding them
            # from this log would stop at the same record).
            raise CorruptStoreError(
                f"log position {pos}: {kind} of article {article!r}, which no earlier record created"
                " (if `ledger verify` passes, `ledger replay` rebuilds the views)"
            )
        elif kind == "UpdateBlockAdded":
            entry[LAST_BLOCK_AT] = when
            index = record["data"].get("index")
            if index is None:
                entry[BLOCKS].append(pos)
            else:
                entry[BLOCKS].insert(self._block(entry, index, pos, kind, insert=True), pos)
            self.feed[pos] = [pos, article, version, when, record["data"]["heading"]]
        elif kind == "UpdateBlockEdited":
            heading = record["data"].get("heading")
            added = entry[BLOCKS][self._block(entry, record["data"]["index"], pos, kind)]
            if heading is not None:
                row = self.feed.get(added)
                if row is not None:
                    row[4] = heading
                else:
                    self.feed_headings.append((heading, added))
        elif kind == "UpdateBlockRemoved":
            added = entry[BLOCKS].pop(self._block(entry, record["data"]["index"], pos, kind))
            if self.feed.pop(added, None) is None:
                self.feed_removed.append((added,))
        elif kind == "CategoriesChanged":
            data = record["data"]
            categories = entry[CATEGORIES]
            # A category removed and added again by one event only moved in the list (a draft
            # put a new one before it): it stays, and its stint goes on.
            moved = {c for c in data.get("removed", ()) if c in categories}.intersection(data.get("added", ()))
            for category in data.get("removed", ()):
                if category in categories:
                    categories.remove(category)
                    if category not in moved:
                        self._leave(article, category, version, when)
            for category in data.get("added", ()):
                if category not in categories:
                    categories.append(category)
                    if category not in moved:
                        self._enter(article, category, version, when)
        elif kind == "ArticleEdited":
            title = record["data"].get("title")
            if title is not None:
                entry[TITLE] = title
                self.titles.append((article, version, when, title))
        elif kind == "MetadataChanged":
            data = record["data"]
            named = (*AUTHOR_KEYS, *AUTHOR_TABLES)
            changed = [key for key in (*data.get("unset", ()), *data.get("set", {})) if key in named]
            if changed:
                keys = dict(entry[AUTHORS])
                for key in data.get("unset", ()):
                    keys.pop(key, None)
                keys.update((key, value) for key, value in data.get("set", {}).items() if key in named)
                entry[AUTHORS] = author_keys(keys)
        elif kind == "ArticleWithdrawn":
            entry[WITHDRAWN] = True
            row = [article, version, when, None, None]
            self.withdrawals.append(row)
            self._open_withdrawals[article] = row
        elif kind == "ArticleRestored":
            entry[WITHDRAWN] = False
            row = self._open_withdrawals.pop(article, None)
            if row is not None:
                row[3], row[4] = version, when
            else:
                self.closed_withdrawals.append((version, when, article))
        entry[VERSION] = version
        entry[UPDATED_AT] = when
        entry[POSITION] = pos
        entry[CHANGE] = change
        self.events += 1
        self.position = pos
        if "end" in record:
            self.hash = record.get("hash", "")

    @staticmethod
    def _block(entry: list[Any], index: Any, pos: int, kind: str, *, insert: bool = False) -> int:
        """`index` checked against the article's blocks (one past the end is fine to insert at)."""
        count = len(entry[BLOCKS])
        if not isinstance(index, int) or not 0 <= index < count + insert:
            raise CorruptStoreError(f"log position {pos}: {kind} of block {index!r}, but the article has {count} blocks")
        return index

    def _enter(self, article: str, category: str, version: int, when: str) -> None:
        row = [article, category, version, when, None, None]
        self.memberships.append(row)
        self._open_memberships[(article, category)] = row

    def _leave(self, article: str, category: str, version: int, when: str) -> None:
        row = self._open_memberships.pop((article, category), None)
        if row is not None:
            row[4], row[5] = version, when
        else:
            self.closed_memberships.append((version, when, article, category))

    def take_rows(self) -> tuple[list[list[Any]], list[list[Any]], list[tuple[str, int]], list[tuple[int]]]:
        """Hand over (and forget) the timeline rows, new feed rows, feed heading changes and feed
        removals so far, so that a long replay writes them out in batches instead of holding them
        all. Call it between appends only (after a record with `end`): a version's row changes
        until its last event. Write them in this order (headings before removals)."""
        taken = (self.changes, list(self.feed.values()), self.feed_headings, self.feed_removed)
        self.changes, self.feed, self.feed_headings, self.feed_removed = [], {}, [], []
        return taken

