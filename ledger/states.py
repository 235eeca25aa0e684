"""The states cache: articles' latest states, kept between reads and appends.

A state folded from the log alone (or left by our own appends) is marked so: only such a state
prepares an append, so that a snapshot edited in `views.sqlite` can never become a patch in the
log. Reads may start from snapshots (the catalog's `state_at`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from ledger.events import NewRecord, format_time
from ledger.projections import ArticleState, fold
from ledger.store import AppendResult, EventStore

if TYPE_CHECKING:
    # The catalog is loaded by the Ledger when a read or an append first asks it for a state.
    from ledger.catalog import Catalog

_CACHE_SIZE = 512


class StateCache:
    """The latest states of the articles read or appended to last (at most `_CACHE_SIZE`)."""

    def __init__(self, store: EventStore, catalog: Callable[[], Catalog]) -> None:
        self.store = store
        self._catalog = catalog
        self._states: OrderedDict[str, ArticleState] = OrderedDict()
        # Articles whose cached state was folded from the log alone (or left by our own appends),
        # never from a snapshot: only such a state prepares an append (see `current`).
        self._from_log: set[str] = set()

    def remember(self, records: list[NewRecord], result: AppendResult, states: dict[str, ArticleState | None]) -> None:
        """Keep the `states` an append of `records` left, stamped with what the store assigned,
        so that the next append to the same article needs no read."""
        position = result.first_position
        last_position: dict[str, int] = {}
        for record in records:
            last_position[record.article] = position
            position += 1
        # Only blocks added by this append without a time of their own can carry another time
        # than the one the store chose (`prepare` folds such a block with none). A block's
        # event that gave its time gave the store's: a live article's hundreds of blocks are
        # not searched for it.
        added_blocks: dict[str, int] = {}
        for record in records:
            if record.type == "UpdateBlockAdded" and record.occurred_at is None:
                added_blocks[record.article] = added_blocks.get(record.article, 0) + 1
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
                # Blocks of this version are the ones this append added (one version per
                # append), most often last: searched from the end, until all are found, so that
                # an append to a live article of thousands of blocks does not walk them all.
                blocks, left = state.blocks, added_blocks[article]
                for index in range(len(blocks) - 1, -1, -1):
                    block = blocks[index]
                    if block[2] == state.version:
                        if block[3] != when:
                            # A new list: block lists may be shared with copies of the state.
                            blocks[index] = [block[0], block[1], block[2], when]
                        left -= 1
                        if not left:
                            break
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

    def current(self, article: str, version: int | None = None, *, from_log: bool = False) -> ArticleState | None:
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
        state = fold(self.store.read_article(article, cached.version + 1, version), cached.copy()) if cached is not None and cached.version < version else self.state_at(article, version, snapshots=not from_log)
        assert state is not None
        self._cache(state, from_log=trusted)
        return state

    def state_at(self, article: str, version: int, *, snapshots: bool = True) -> ArticleState | None:
        """The article's state at `version`, folded from its nearest snapshot (see `Catalog`),
        or from its first version without `snapshots`."""
        return self._catalog().state_at(article, version, snapshots=snapshots)
