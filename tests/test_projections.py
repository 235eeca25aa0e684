"""The folds: the article fold, the all-articles fold, snapshots of states, and the property that
views folded incrementally equal views rebuilt from scratch."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from ledger.catalog import VIEWS_FILE
from ledger.projections import BLOCKS, ArticleView, CatalogFold, apply, fold, state_from_list, state_to_list


def record(pos: int, article: str, version: int, kind: str, data: dict[str, Any], when: str = "2017-09-05T10:00:00.000000Z") -> dict[str, Any]:
    return {
        "pos": pos, "id": f"e{pos}", "article": article, "version": version, "type": kind, "schema": 1,
        "recorded_at": when, "occurred_at": when, "data": data, "end": True, "hash": f"h{pos}",
    }


LOG = [
    record(1, "a", 1, "ArticleCreated", {"title": "A", "body": "x", "categories": ["p", "q"], "metadata": {}}),
    record(2, "b", 1, "ArticleCreated", {"title": "B", "body": "", "categories": ["q"], "metadata": {}}),
    record(3, "a", 2, "CategoriesChanged", {"added": ["r"], "removed": ["p"]}, "2017-09-05T11:00:00.000000Z"),
    record(4, "a", 3, "UpdateBlockAdded", {"heading": "Update:", "text": "\nu", "index": None}, "2017-09-05T12:00:00.000000Z"),
    record(5, "b", 2, "ArticleWithdrawn", {}, "2017-09-05T12:00:00.000000Z"),
    record(6, "a", 4, "ArticleEdited", {"title": "A2"}, "2017-09-05T13:00:00.000000Z"),
    record(7, "b", 3, "ArticleRestored", {}, "2017-09-05T14:00:00.000000Z"),
]


def test_catalog_fold_rows() -> None:
    catalog = CatalogFold()
    for r in LOG:
        catalog.fold(r)
    assert catalog.entries["a"][:4] == [4, "A2", ["q", "r"], False]
    assert catalog.entries["b"][:4] == [3, "B", ["q"], False]
    assert catalog.memberships == [
        ["a", "p", 1, LOG[0]["occurred_at"], 2, LOG[2]["occurred_at"]],
        ["a", "q", 1, LOG[0]["occurred_at"], None, None],
        ["b", "q", 1, LOG[1]["occurred_at"], None, None],
        ["a", "r", 2, LOG[2]["occurred_at"], None, None],
    ]
    assert catalog.withdrawals == [["b", 2, LOG[4]["occurred_at"], 3, LOG[6]["occurred_at"]]]
    assert catalog.feed == {4: [4, "a", 3, LOG[3]["occurred_at"], "Update:"]}
    assert catalog.entries["a"][BLOCKS] == [4]
    assert catalog.titles == [("a", 1, LOG[0]["occurred_at"], "A"), ("b", 1, LOG[1]["occurred_at"], "B"), ("a", 4, LOG[5]["occurred_at"], "A2")]
    assert [tuple(c[:3]) for c in catalog.changes] == [(1, "a", 1), (2, "b", 1), (3, "a", 2), (4, "a", 3), (5, "b", 2), (6, "a", 4), (7, "b", 3)]
    assert (catalog.events, catalog.position, catalog.hash) == (7, 7, "h7")


def test_catalog_fold_one_row_per_version() -> None:
    catalog = CatalogFold()
    first = record(1, "a", 1, "ArticleCreated", {"title": "A", "categories": []}) | {"end": None}
    del first["end"]
    second = record(2, "b", 1, "ArticleCreated", {"title": "B", "categories": []}) | {"end": None}
    del second["end"]
    for r in (first, second, record(3, "a", 1, "UpdateBlockAdded", {"heading": "U:"})):
        catalog.fold(r)
    assert catalog.changes == [[3, "a", 1, first["occurred_at"]], [2, "b", 1, first["occurred_at"]]]
    assert catalog.hash == "h3"


def test_catalog_fold_incremental_closes_rows_folded_before() -> None:
    first = CatalogFold()
    for r in LOG[:2]:
        first.fold(r)
    second = CatalogFold(lambda article: [list(v) if isinstance(v, list) else v for v in first.entries.get(article, [])] or None)
    for r in LOG[2:]:
        second.fold(r)
    assert second.closed_memberships == [(2, LOG[2]["occurred_at"], "a", "p")]
    assert second.memberships == [["a", "r", 2, LOG[2]["occurred_at"], None, None]]
    assert second.withdrawals == [["b", 2, LOG[4]["occurred_at"], 3, LOG[6]["occurred_at"]]]


def test_catalog_fold_feed_follows_block_edits_and_removals() -> None:
    first = CatalogFold()
    for r in LOG[:4]:
        first.fold(r)
    (row,) = first.take_rows()[1]
    assert row == [4, "a", 3, LOG[3]["occurred_at"], "Update:"]
    # Rows handed over before change by position; rows not handed over yet change in place.
    first.fold(record(8, "a", 4, "UpdateBlockAdded", {"heading": "Update 0:", "index": 0}))
    first.fold(record(9, "a", 5, "UpdateBlockEdited", {"index": 1, "heading": "Update 1:"}))
    first.fold(record(10, "a", 6, "UpdateBlockEdited", {"index": 0, "heading": "Update zero:"}))
    assert first.entries["a"][BLOCKS] == [8, 4]
    first.fold(record(11, "a", 7, "UpdateBlockRemoved", {"index": 1}))
    _, feed, headings, removed = first.take_rows()
    assert (feed, headings, removed) == ([[8, "a", 4, LOG[0]["occurred_at"], "Update zero:"]], [("Update 1:", 4)], [(4,)])
    first.fold(record(12, "a", 8, "UpdateBlockRemoved", {"index": 0}))
    assert first.take_rows()[1:] == ([], [], [(8,)])
    assert first.entries["a"][BLOCKS] == []


def test_catalog_fold_refuses_records_it_cannot_fold() -> None:
    catalog = CatalogFold()
    with pytest.raises(ledger.CorruptStoreError, match=r"^log position 1: ArticleEdited of article 'a', which no earlier record created"):
        catalog.fold(record(1, "a", 1, "ArticleEdited", {"title": "A"}))
    catalog.fold(LOG[0])
    with pytest.raises(ledger.CorruptStoreError, match=r"^log position 2: UpdateBlockRemoved of block 0, but the article has 0 blocks"):
        catalog.fold(record(2, "a", 2, "UpdateBlockRemoved", {"index": 0}))


def test_article_fold_and_snapshot_round_trip() -> None:
    state = fold(r for r in LOG if r["article"] == "a")
    assert state is not None
    assert (state.version, state.title, state.categories, state.blocks) == (4, "A2", ["q", "r"], [["Update:", "\nu", 3, LOG[3]["occurred_at"]]])
    again = state_from_list(state_to_list(state))
    assert again.view() == state.view()
    # apply() keeps its in-place semantics: a copy is independent.
    copy = state.copy()
    apply(state, record(8, "a", 5, "UpdateBlockRemoved", {"index": 0}))
    assert copy.blocks and not state.blocks



def test_view_is_the_model_validation_would_give() -> None:
    """`view()` builds its models without validation (the blocks without `model_construct`
    either): they must be the very models validating the same values gives, each block its own."""
    state = fold(r for r in LOG if r["article"] == "a")
    assert state is not None
    apply(state, record(8, "a", 5, "UpdateBlockAdded", {"heading": "Later:", "text": "v", "index": 0}, "2017-09-06T09:30:00.250000Z"))
    view = state.view()
    validated = ArticleView.model_validate(view.model_dump())
    assert view == validated
    assert view.model_dump_json() == validated.model_dump_json()
    assert [b.model_fields_set for b in view.blocks] == [b.model_fields_set for b in validated.blocks]
    assert [b.added_at for b in view.blocks] == [datetime(2017, 9, 6, 9, 30, 0, 250000, tzinfo=UTC), datetime(2017, 9, 5, 12, tzinfo=UTC)]
    assert all(b.added_at.tzinfo is UTC for b in view.blocks)
    # Each view its own blocks: changing one view leaves the next as the state is.
    view.blocks[0].heading = "changed"
    view.blocks[0].model_fields_set.discard("text")
    again = state.view()
    assert again.blocks[0].heading == "Later:" and again.blocks[0].model_fields_set == validated.blocks[0].model_fields_set


def test_the_states_appends_leave_in_memory_are_what_the_log_folds_to(tmp_path: Path) -> None:
    """Blocks added without a time take the store's time in the state an append leaves cached
    (found from the end, as many as were added): inserted first, added last, added and removed in
    one append, among older blocks of the same heading."""
    block = "UpdateBlockAdded"
    appends: list[list[dict[str, Any]]] = [
        [{"type": "ArticleCreated", "article": "live", "data": {"title": "Live"}}],
        [{"type": block, "article": "live", "data": {"heading": "Update:", "text": f"old {n}"}} for n in range(3)],
        [{"type": block, "article": "live", "data": {"heading": "Update:", "text": "first", "index": 0}},
         {"type": block, "article": "live", "data": {"heading": "Update:", "text": "last"}}],
        [{"type": block, "article": "live", "data": {"heading": "Update:", "text": "gone"}},
         {"type": "UpdateBlockRemoved", "article": "live", "data": {"index": 5}},
         {"type": block, "article": "live", "data": {"heading": "Update:", "text": "middle", "index": 2}}],
        [{"type": block, "article": "live", "data": {"heading": "Update:", "text": "second", "index": 1}},
         {"type": block, "article": "live", "data": {"heading": "Update:", "text": "untimed"}}],
    ]
    with ledger.open(tmp_path / "store", create=True) as led:
        for events in appends:
            led.append(events)
            cached = led.article("live")
        assert [b.text for b in cached.blocks] == ["first", "second", "old 0", "middle", "old 1", "old 2", "last", "untimed"]
    with ledger.open(tmp_path / "store") as fresh:
        assert fresh.article("live") == cached
        assert len({b.added_at for b in cached.blocks}) == 4


# --- rebuilding from scratch equals folding incrementally ------------------------------------------

ARTICLES = ["a", "b", "c"]
CATEGORIES = ["x", "y", "z"]

operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(ARTICLES), st.lists(st.sampled_from(CATEGORIES), max_size=2)),
    st.tuples(st.just("edit"), st.sampled_from(ARTICLES), st.text("ab\n", max_size=6)),
    st.tuples(st.just("block"), st.sampled_from(ARTICLES), st.sampled_from(["Update 1:", "Update 2:"])),
    st.tuples(st.just("first block"), st.sampled_from(ARTICLES), st.sampled_from(["Update 3:", "Update 4:"])),
    st.tuples(st.just("reblock"), st.sampled_from(ARTICLES), st.tuples(st.integers(0, 2), st.sampled_from(["Update 5:", "Update 6:"]))),
    st.tuples(st.just("unblock"), st.sampled_from(ARTICLES), st.integers(0, 2)),
    st.tuples(st.just("categories"), st.sampled_from(ARTICLES), st.lists(st.sampled_from(CATEGORIES), max_size=3, unique=True)),
    st.tuples(st.just("withdraw"), st.sampled_from(ARTICLES), st.none()),
    st.tuples(st.just("restore"), st.sampled_from(ARTICLES), st.none()),
    st.tuples(st.just("refresh"), st.none(), st.none()),
)


def _event(kind: str, article: str, arg: Any) -> dict[str, Any]:
    if kind == "create":
        return {"type": "ArticleCreated", "article": article, "data": {"title": article.upper(), "categories": arg}}
    if kind == "edit":
        return {"type": "ArticleEdited", "article": article, "data": {"body": arg}}
    if kind == "block":
        return {"type": "UpdateBlockAdded", "article": article, "data": {"heading": arg}}
    if kind == "first block":
        return {"type": "UpdateBlockAdded", "article": article, "data": {"heading": arg, "index": 0}}
    if kind == "reblock":
        return {"type": "UpdateBlockEdited", "article": article, "data": {"index": arg[0], "heading": arg[1]}}
    if kind == "unblock":
        return {"type": "UpdateBlockRemoved", "article": article, "data": {"index": arg}}
    if kind == "categories":
        return {"type": "CategoriesChanged", "article": article, "data": {"categories": arg}}
    if kind == "withdraw":
        return {"type": "ArticleWithdrawn", "article": article}
    return {"type": "ArticleRestored", "article": article}


def _dump(path: Path) -> dict[str, list[Any]]:
    db = sqlite3.connect(path / VIEWS_FILE)
    try:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("articles", "memberships", "withdrawals", "titles", "feed", "changes", "meta")
        }
    finally:
        db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=25))
def test_incremental_views_equal_a_rebuild(operations: list[tuple[str, Any, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = ledger.init(Path(tmp) / "store")
        with ledger.open(root) as led:
            led.categories()
            for kind, article, arg in operations:
                if kind == "refresh":
                    led.categories()
                    continue
                # Not allowed in the article's state: nothing appended.
                with contextlib.suppress(ledger.LedgerError):
                    led.append([_event(kind, article, arg)])
            led.categories()
            incremental = _dump(root)
            led.replay()
            assert _dump(root) == incremental
            # The feed lists exactly the blocks each (not withdrawn) article has now.
            feed = {e.article: sorted((b.heading, b.added_version) for b in e.blocks) for e in led.updated_since("2000-01-01")}
            expected_feed = {}
            for name in ARTICLES:
                try:
                    now = led.article(name)
                except ledger.NotFoundError:
                    continue
                if now.blocks and not now.withdrawn:
                    expected_feed[name] = sorted((b.heading, b.added_version) for b in now.blocks)
            assert feed == expected_feed
            # And answers at every past time agree with folding each article up to then.
            for entry in led.timeline():
                when = entry.occurred_at
                expected: dict[str, int] = {}
                for name in ARTICLES:
                    try:
                        view = led.article(name, at=when)
                    except ledger.NotFoundError:
                        continue
                    if not view.withdrawn:
                        for category in view.categories:
                            expected[category] = expected.get(category, 0) + 1
                assert {c.name: c.count for c in led.categories(at=when)} == expected
