"""The query API against hand-built logs whose answers are known."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger.rendering import render
from tests.helpers import build_newsroom, t


@pytest.fixture
def news(led: ledger.Ledger) -> ledger.Ledger:
    build_newsroom(led)
    return led


# --- article now, at a version, at a time -----------------------------------------------------


def test_article_now_and_at_each_version(news: ledger.Ledger) -> None:
    now = news.article("bridge")
    assert now.article == now.id == "bridge"  # `id`: a read-only alias kept for Python callers
    assert (now.version, now.title, now.categories, now.metadata) == (7, "Bridge closed", ["local", "roads"], {"source": "Council", "author": "Ann"})
    assert [news.article("bridge", v).body for v in (1, 2)] == ["The bridge is closed.\n", "The bridge is closed until Friday.\n"]
    assert [b.heading for b in news.article("bridge", 3).blocks] == ["Update from Council:"]
    assert news.article("bridge", 3).categories == ["local", "traffic"]
    assert news.article("bridge", 5).withdrawn is True
    assert news.article("bridge", 6).withdrawn is False


@pytest.mark.parametrize(
    ("when", "version"),
    [
        ("10:00:00", 1),  # exactly version 1's time
        ("10:59:59.999999", 1),
        ("11:00:00", 2),
        ("12:00:00", 4),  # two versions at one time: the last of them
        ("11:59:59.999999", 2),
        ("15:00:00", 7),
        ("23:00:00", 7),  # after the last version
    ],
)
def test_article_at_time_boundaries(news: ledger.Ledger, when: str, version: int) -> None:
    assert news.article("bridge", at=t(when)).version == version
    assert news.article("bridge", at=f"2017-09-05T{when}Z").version == version


def test_article_before_first_version_is_not_found(news: ledger.Ledger) -> None:
    with pytest.raises(ledger.VersionNotFoundError, match="did not exist yet at 2017-09-05T09:59:59"):
        news.article("bridge", at=t("09:59:59"))


def test_article_errors(news: ledger.Ledger) -> None:
    with pytest.raises(ledger.ArticleNotFoundError):
        news.article("nope")
    with pytest.raises(ledger.VersionNotFoundError, match="versions 1 to 7, not 8"):
        news.article("bridge", 8)
    with pytest.raises(ledger.VersionNotFoundError):
        news.article("bridge", 0)
    with pytest.raises(ledger.InvalidInputError):
        news.article("bridge", 2, at=t("12:00"))
    with pytest.raises(ledger.InvalidTimeError):
        news.article("bridge", at="yesterday-ish")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda led: led.article("bridge", version="2"), r"version must be a whole number \(int\), not str '2'"),
        (lambda led: led.article("bridge", version=True), "version must be a whole number"),
        (lambda led: led.article("bridge", at=5), "at must be a datetime or text"),
        (lambda led: led.article(5), "article must be text"),
        (lambda led: led.history(None), "article must be text"),
        (lambda led: led.diff("bridge", "1"), "from_version must be a whole number"),
        (lambda led: led.timeline(limit=-1), "limit must be at least 0, not -1"),
        (lambda led: led.timeline(since=1.5), "since must be a datetime or text"),
        (lambda led: list(led.events(after="3")), "after must be a whole number"),
        (lambda led: led.updated_since(None), "since must be a datetime or text"),
        (lambda led: led.category(["roads"]), "name must be text"),
        (lambda led: led.restore("bridge", 1.0), "version must be a whole number"),
        (lambda led: led.replay(to="4"), "to must be a whole number"),
        (lambda led: led.withdraw("bridge", actor=7), "actor must be text"),
        (lambda led: led.articles(since=3), "since must be a datetime or text"),
        (lambda led: led.articles(category=["roads"]), "category must be text"),
    ],
)
def test_arguments_of_the_wrong_type_are_the_librarys_own_error(news: ledger.Ledger, call: Any, message: str) -> None:
    # Issue 14 point 9: `article(A, version="2")` raised a bare TypeError.
    with pytest.raises(ledger.InvalidInputError, match=message):
        call(news)


def test_every_time_in_a_result_is_in_timezone_utc(news: ledger.Ledger) -> None:
    # Issue 14 point 9: `blocks[].added_at` (and the views' times, and the events') held
    # pydantic's TzInfo(0), not `datetime.timezone.utc`.
    view = news.article("bridge", 3)
    times = [view.created_at, view.updated_at, *(block.added_at for block in view.blocks)]
    times += [e.occurred_at for e in news.history("bridge")] + [e.recorded_at for e in news.timeline()]
    times += [moment for event in news.events() for moment in (event.recorded_at, event.occurred_at)]
    assert times and all(moment.tzinfo is UTC for moment in times)  # UTC is datetime.timezone.utc


def test_an_as_of_minute_covers_the_whole_minute(news: ledger.Ledger) -> None:
    # docs/python-api.md: "2017-09-05T10:59Z" as an as-of time is the end of that minute.
    assert news.article("bridge", at="2017-09-05T10:59Z").version == 1
    assert news.article("bridge", at="2017-09-05T11:00Z").version == 2


def test_withdrawn_article_is_readable_but_listed_nowhere(news: ledger.Ledger) -> None:
    news.append([{"type": "ArticleWithdrawn", "article": "storm"}])
    assert news.article("storm").withdrawn is True
    assert "storm" not in [m.article for m in news.category("weather").articles]
    assert [c.name for c in news.categories()] == ["local", "roads"]
    assert [e.article for e in news.updated_since(t("00:00"))] == ["bridge"]
    assert news.history("storm")[-1].changes == ["withdrawn"]
    news.append([{"type": "ArticleRestored", "article": "storm"}])
    assert [m.article for m in news.category("weather").articles] == ["storm"]
    assert [e.article for e in news.updated_since(t("00:00"))] == ["storm", "bridge"]


# --- history and diff ------------------------------------------------------------------------


def test_history(news: ledger.Ledger) -> None:
    entries = news.history("bridge")
    assert [e.version for e in entries] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.changes for e in entries] == [
        ["created"], ["edited"], ["block added"], ["categories changed"], ["withdrawn"], ["restored"], ["metadata changed"],
    ]
    assert (entries[0].actor, entries[0].reason, entries[1].actor, entries[4].reason) == ("ann", "first report", "bob", "legal")
    assert entries[0].categories_added == ["local", "traffic"]
    assert (entries[3].categories_added, entries[3].categories_removed) == (["roads"], ["traffic"])
    assert entries[2].headings == ["Update from Council:"]
    assert [e.occurred_at for e in entries[:4]] == [t("10:00"), t("11:00"), t("12:00"), t("12:00")]
    assert [e.withdrawn for e in entries] == [False, False, False, False, True, False, False]
    for entry in entries:
        assert entry.size == len(render(news.article("bridge", entry.version)).encode())
        assert entry.events == 1
    with pytest.raises(ledger.ArticleNotFoundError):
        news.history("nope")


def test_history_of_a_version_of_several_events(led: ledger.Ledger) -> None:
    led.append([
        {"type": "ArticleCreated", "article": "a", "data": {"title": "A"}},
        {"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update 1:"}},
        {"type": "CategoriesChanged", "article": "a", "data": {"added": ["x"]}},
    ])
    (entry,) = led.history("a")
    assert (entry.version, entry.events, entry.changes) == (1, 3, ["created", "block added", "categories changed"])
    assert entry.categories_added == ["x"]


def test_diff_lines_default_previous_against_latest(news: ledger.Ledger) -> None:
    diff = news.diff("storm")
    assert (diff.from_version, diff.to_version, diff.words) == (2, 3, False)
    old, new = render(news.article("storm", 2)), render(news.article("storm", 3))
    assert [line.text for line in diff.hunks[0].lines if line.op == "-"] == [old.split("\n")[0]]
    assert [line.text for line in diff.hunks[0].lines if line.op == "+"] == [new.split("\n")[0]]
    assert diff.text.startswith("--- storm v2\n+++ storm v3\n@@ -1")
    assert "-Storm warning\n+Storm hits\n" in diff.text


def test_diff_words_rebuilds_both_sides(news: ledger.Ledger) -> None:
    diff = news.diff("bridge", 1, 2, words=True)
    assert diff.words and not diff.hunks
    assert [(c.op, c.text) for c in diff.changes if c.op != "equal"] == [("insert", " until Friday")]
    old = "".join(c.text for c in diff.changes if c.op != "insert")
    new = "".join(c.text for c in diff.changes if c.op != "delete")
    assert (old, new) == (render(news.article("bridge", 1)), render(news.article("bridge", 2)))
    assert "closed{+ until Friday+}." in diff.text


def test_diff_same_and_from_nothing(news: ledger.Ledger) -> None:
    assert news.diff("bridge", 5, 6).same  # withdrawn -> restored: the text is the same
    assert news.diff("bridge", 5, 6).text == ""
    first = news.diff("storm", 0, 1)
    assert all(line.op == "+" for hunk in first.hunks for line in hunk.lines)
    with pytest.raises(ledger.VersionNotFoundError):
        news.diff("storm", 1, 9)
    with pytest.raises(ledger.ArticleNotFoundError):
        news.diff("nope")


# --- categories ------------------------------------------------------------------------------


def test_categories_now(news: ledger.Ledger) -> None:
    assert [(c.name, c.count) for c in news.categories()] == [("local", 1), ("roads", 1), ("weather", 1)]
    listing = news.category("roads")
    assert listing.at is None
    assert [(m.article, m.title, m.entered_at, m.entered_version) for m in listing.articles] == [("bridge", "Bridge closed", t("12:00"), 4)]
    assert news.category("traffic").articles == []  # left empty: it lists nothing
    # One no article was ever in is a typo: it listed nothing too, and a script went on.
    for ask in (news.category, news.category_stints, lambda name: news.articles(category=name), lambda name: news.count_articles(category=name)):
        with pytest.raises(ledger.CategoryNotFoundError, match=r"^no article was ever in category 'traffik' \(did you mean 'traffic'\?\)$"):
            ask("traffik")
    with pytest.raises(ledger.CategoryNotFoundError, match=r"^no article was ever in category 'no such category'$"):
        news.category("no such category")
    assert news.articles(category="traffic") == [] and news.count_articles(category="traffic") == 0


@pytest.mark.parametrize(
    ("when", "counts"),
    [
        ("08:59:59", []),
        ("09:00:00", [("weather", 1)]),
        ("10:00:00", [("local", 1), ("traffic", 1), ("weather", 1)]),
        ("11:59:59", [("local", 1), ("traffic", 1), ("weather", 1)]),
        ("12:00:00", [("local", 1), ("roads", 1), ("weather", 1)]),
        ("13:00:00", [("weather", 1)]),  # bridge withdrawn
        ("13:59:59", [("weather", 1)]),
        ("14:00:00", [("local", 1), ("roads", 1), ("weather", 1)]),  # restored
    ],
)
def test_categories_at_time(news: ledger.Ledger, when: str, counts: list[tuple[str, int]]) -> None:
    assert [(c.name, c.count) for c in news.categories(at=t(when))] == counts


def test_category_at_time_has_the_title_of_then(news: ledger.Ledger) -> None:
    assert [m.title for m in news.category("weather", at=t("15:59")).articles] == ["Storm warning"]
    assert [m.title for m in news.category("weather", at=t("16:00")).articles] == ["Storm hits"]
    assert [m.article for m in news.category("traffic", at=t("11:00")).articles] == ["bridge"]
    assert news.category("traffic", at=t("12:00")).articles == []


def test_category_history(news: ledger.Ledger) -> None:
    stints = [(s.category, s.entered_version, s.entered_at, s.left_version, s.left_at) for s in news.category_history("bridge")]
    assert stints == [
        ("local", 1, t("10:00"), None, None),
        ("traffic", 1, t("10:00"), 4, t("12:00")),
        ("roads", 4, t("12:00"), None, None),
    ]
    news.append([{"type": "CategoriesChanged", "article": "bridge", "data": {"added": ["traffic"]}}])
    assert [(s.category, s.entered_version) for s in news.category_history("bridge")][-1] == ("traffic", 8)
    with pytest.raises(ledger.ArticleNotFoundError):
        news.category_history("nope")


def test_category_stints_list_every_article_ever_in_a_category(news: ledger.Ledger) -> None:
    # "Which stories were ever filed under traffic?": the bridge left it at version 4, so
    # `category("traffic")` is empty now; its stint is still there.
    assert news.category("traffic").articles == []
    stints = [(s.article, s.entered_version, s.entered_at, s.left_version, s.left_at) for s in news.category_stints("traffic")]
    assert stints == [("bridge", 1, t("10:00"), 4, t("12:00"))]
    news.append([{"type": "CategoriesChanged", "article": "bridge", "data": {"added": ["traffic"]}}])
    assert [(s.article, s.entered_version, s.left_version) for s in news.category_stints("traffic")] == [("bridge", 1, 4), ("bridge", 8, None)]
    for name in ("Traffic", "nosuch"):  # names match exactly
        with pytest.raises(ledger.CategoryNotFoundError):
            news.category_stints(name)


def test_a_withdrawn_articles_stints_say_it_is_withdrawn(news: ledger.Ledger) -> None:
    """Withdrawing leaves an article in its categories (restoring brings it back as it was) but
    out of their listings: its open stints say so, rather than read as an article listed there."""
    news.append([{"type": "ArticleWithdrawn", "article": "bridge"}])
    assert [a.article for a in news.category("roads").articles] == []
    assert [(s.category, s.left_version, s.withdrawn) for s in news.category_history("bridge")] == [
        ("local", None, True), ("traffic", 4, True), ("roads", None, True)]
    assert [(s.article, s.left_version, s.withdrawn) for s in news.category_stints("roads")] == [("bridge", None, True)]
    news.append([{"type": "ArticleRestored", "article": "bridge"}])
    assert [s.withdrawn for s in news.category_stints("roads")] == [False]


# --- the feed and the timeline -------------------------------------------------------------------


def test_updated_since(news: ledger.Ledger) -> None:
    feed = news.updated_since(t("12:00"))
    assert [(e.article, e.last_update_at) for e in feed] == [("storm", t("12:30")), ("bridge", t("12:00"))]
    assert [(b.heading, b.added_version, b.added_at) for b in feed[1].blocks] == [("Update from Council:", 3, t("12:00"))]
    assert feed[0].title == "Storm hits"
    assert [e.article for e in news.updated_since(t("12:00:00.000001"))] == ["storm"]
    assert news.updated_since(t("12:30:01")) == []
    assert news.updated_since("2017-09-05T12:15Z")[0].article == "storm"


def test_timeline(news: ledger.Ledger) -> None:
    everything = news.timeline()
    assert len(everything) == 10
    assert [(e.article, e.version) for e in everything[:3]] == [("storm", 3), ("bridge", 7), ("bridge", 6)]
    assert [e.occurred_at for e in everything] == sorted((e.occurred_at for e in everything), reverse=True)
    window = news.timeline(since=t("12:00"), until=t("13:00"))
    assert [(e.article, e.version) for e in window] == [("bridge", 5), ("storm", 2), ("bridge", 4), ("bridge", 3)]
    assert window[0].reason == "legal"
    assert [(e.article, e.version) for e in news.timeline(article="storm", limit=2)] == [("storm", 3), ("storm", 2)]
    with pytest.raises(ledger.ArticleNotFoundError, match="'nope' is not in the log"):
        news.timeline(article="nope")
    assert [e.changes for e in news.timeline(article="bridge", until=t("10:00"))] == [["created"]]


# --- restore --------------------------------------------------------------------------------


def test_restore_brings_back_an_old_version_as_a_new_one(news: ledger.Ledger) -> None:
    before = [render(news.article("bridge", v)) for v in range(1, 8)]
    result = news.restore("bridge", 2, actor="eve", reason="revert")
    assert result.versions == {"bridge": 8}
    restored = news.article("bridge")
    old = news.article("bridge", 2)
    assert (restored.title, restored.body, restored.blocks, restored.categories, restored.metadata) == (
        old.title, old.body, old.blocks, old.categories, old.metadata,
    )
    assert render(restored) == render(old)
    assert [render(news.article("bridge", v)) for v in range(1, 8)] == before  # nothing rewritten
    last = news.history("bridge")[-1]
    assert (last.actor, last.reason) == ("eve", "revert")
    assert last.changes == ["block removed", "categories changed", "metadata changed"]
    assert [c.name for c in news.categories()] == ["local", "traffic", "weather"]
    with pytest.raises(ledger.NothingToDoError):
        news.restore("bridge", 2)


def test_restore_a_withdrawn_article_and_reordered_categories(led: ledger.Ledger) -> None:
    led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x\n", "categories": ["one", "two", "three"]}}])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "U1:", "text": "\nfirst\n"}}])
    led.append([{"type": "CategoriesChanged", "article": "a", "data": {"categories": ["two", "four"]}}])
    led.append([{"type": "UpdateBlockEdited", "article": "a", "data": {"index": 0, "heading": "U0:", "text": "\nzero\n"}}])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "U2:", "text": "\nsecond\n"}}])
    led.append([{"type": "ArticleWithdrawn", "article": "a"}])
    led.restore("a", 2)
    now, then = led.article("a"), led.article("a", 2)
    assert now.withdrawn is False
    assert (now.categories, [(b.heading, b.text) for b in now.blocks]) == (["one", "two", "three"], [("U1:", "\nfirst\n")])
    assert render(now) == render(then)
    with pytest.raises(ledger.VersionNotFoundError):
        led.restore("a", 99)


# --- views of a store that other code appends to, and replay ------------------------------------


def test_views_follow_appends_through_the_same_ledger(news: ledger.Ledger) -> None:
    assert news.categories()  # views built
    news.append([{"type": "ArticleCreated", "article": "fire", "data": {"title": "Fire", "categories": ["local"]}}])
    assert next((c.name, c.count) for c in news.categories()) == ("local", 2)
    assert news.timeline(limit=1)[0].article == "fire"


def test_replay_rebuilds_the_same_answers(news: ledger.Ledger, store_dir: Path) -> None:
    answers = (news.categories(), news.category("roads", at=t("12:00")), news.updated_since(t("00:00")), news.timeline())
    stats = news.replay()
    assert (stats.events, stats.articles, stats.position) == (10, 2, 10)
    assert stats.events_per_second > 0
    assert (news.categories(), news.category("roads", at=t("12:00")), news.updated_since(t("00:00")), news.timeline()) == answers
    seen: list[tuple[int, int]] = []
    partial = news.replay(to=4, progress=lambda done, total: seen.append((done, total)))
    assert (partial.events, partial.position) == (4, 4)
    # Out of the head's records throughout, ending when the text index (rebuilt to the head) is.
    assert seen[-1] == (10, 10) and {total for _, total in seen} == {10}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    # The next query catches up from position 4 again.
    assert news.timeline() == answers[3]


def test_empty_store(led: ledger.Ledger) -> None:
    assert led.categories() == []
    assert led.timeline() == []
    assert led.updated_since(datetime(2000, 1, 1, tzinfo=UTC)) == []
    assert led.replay().events == 0


# --- the feed follows removed and edited blocks ----------------------------------------------------


def _feed(led: ledger.Ledger, since: str = "12:00") -> list[tuple[str, list[tuple[str, int]]]]:
    return [(e.article, [(b.heading, b.added_version) for b in e.blocks]) for e in led.updated_since(t(since))]


def test_feed_shows_blocks_as_they_stand_now(news: ledger.Ledger, store_dir: Path) -> None:
    assert _feed(news) == [("storm", [("Update from Met Office:", 2)]), ("bridge", [("Update from Council:", 3)])]
    # Folded onto the persisted views: the heading edit and the removal change rows written before.
    news.append([{"type": "UpdateBlockEdited", "article": "bridge", "data": {"index": 0, "heading": "Update from the Council:"}}])
    news.append([{"type": "UpdateBlockRemoved", "article": "storm", "data": {"index": 0}}])
    expected = [("bridge", [("Update from the Council:", 3)])]
    assert _feed(news) == expected
    # Folded in one go (rows not yet written when the block changes): the same answer.
    news.replay()
    assert _feed(news) == expected
    (store_dir / "views.sqlite").unlink()
    assert _feed(news) == expected


def test_feed_follows_blocks_by_identity_not_index(led: ledger.Ledger) -> None:
    led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A"}, "occurred_at": "2017-09-05T10:00Z"}])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update 1:"}, "occurred_at": "2017-09-05T11:00Z"}])
    assert _feed(led, "00:00") == [("a", [("Update 1:", 2)])]
    # A block inserted before it, in the same append as the removal of the old one (now index 1).
    led.append([
        {"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update 0:", "index": 0}, "occurred_at": "2017-09-05T12:00Z"},
        {"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 1}},
        {"type": "UpdateBlockEdited", "article": "a", "data": {"index": 0, "heading": "Update zero:"}},
    ])
    assert _feed(led, "00:00") == [("a", [("Update zero:", 3)])]
    assert led.updated_since(t("00:00"))[0].last_update_at == t("12:00")
    led.append([{"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 0}}])
    assert led.updated_since(t("00:00")) == []
    led.replay()
    assert led.updated_since(t("00:00")) == []


# --- history sizes and timeline reads ------------------------------------------------------------


def test_history_sizes_equal_the_rendered_article_in_every_case(led: ledger.Ledger) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples" / "drafts"
    ledger.ingest(led, [examples / "night-market-returns.md", examples / "library-late-opening.txt"])
    markdown = led.article("night-market-returns").article
    for article in (markdown, "library-late-opening"):
        led.append([{"type": "UpdateBlockAdded", "article": article, "data": {"heading": "Update: last", "text": "\nlast\n"}}])
        led.append([{"type": "UpdateBlockAdded", "article": article, "data": {"heading": "Update 0:", "text": "\nfirst é\n", "index": 0}}])
        led.append([{"type": "UpdateBlockEdited", "article": article, "data": {"index": 0, "text": "\nno final line break ü"}}])
        led.append([{"type": "CategoriesChanged", "article": article, "data": {"added": ["déjà vu"]}}])
        led.append([{"type": "UpdateBlockRemoved", "article": article, "data": {"index": 1}}])
        led.append([{"type": "MetadataChanged", "article": article, "data": {"set": {"desk": "city"}}}])
        led.append([{"type": "ArticleEdited", "article": article, "data": {"title": "Å new title", "body": "no line break"}}])
        led.append([{"type": "UpdateBlockRemoved", "article": article, "data": {"index": 0}}])
    led.append([{"type": "ArticleCreated", "article": "bare", "data": {"title": "Bare", "categories": ["x"]}}])
    led.append([{"type": "UpdateBlockAdded", "article": "bare", "data": {"heading": "Update:"}}])
    for article in (markdown, "library-late-opening", "bare"):
        entries = led.history(article)
        assert {e.article for e in entries} == {article}
        assert [e.size for e in entries] == [len(render(led.article(article, e.version)).encode()) for e in entries]


def _long_article(led: ledger.Ledger, versions: int) -> None:
    """An article of `versions` versions, past several snapshots: body edits, update blocks
    added, edited and removed, titles and categories."""
    led.append([{"type": "ArticleCreated", "article": "long", "data": {"title": "Long", "body": "The bridge is closed.\n\nFerries run."}}])
    for version in range(2, versions + 1):
        step = version % 5
        if step == 0:
            data: dict[str, Any] = {"heading": f"Update {version}:", "text": f"Ferries run every {version} minutes, the port says."}
            led.append([{"type": "UpdateBlockAdded", "article": "long", "data": data}])
        elif step == 1 and led.article("long").blocks:
            led.append([{"type": "UpdateBlockEdited", "article": "long", "data": {"index": 0, "text": f"Edited at {version}: the bridge, the bridge."}}])
        elif step == 2 and len(led.article("long").blocks) > 2:
            led.append([{"type": "UpdateBlockRemoved", "article": "long", "data": {"index": 1}}])
        elif step == 3:
            led.append([{"type": "CategoriesChanged", "article": "long", "data": {"added": [f"c{version}"]}}])
        else:
            body = f"The bridge is closed until day {version}.\n\nFerries run; {'more ' * (version % 7)}words."
            led.append([{"type": "ArticleEdited", "article": "long", "data": {"title": f"Long {version}", "body": body}}])


def test_history_pages_are_slices_of_the_whole(led: ledger.Ledger) -> None:
    _long_article(led, 100)
    whole = led.history("long")
    assert [e.version for e in whole] == list(range(1, 101))
    for first, last in ((1, 1), (2, 2), (31, 40), (33, 33), (64, 100), (65, 99), (90, None), (None, 10), (100, 100), (1, 100), (95, 200)):
        page = led.history("long", first=first, last=last)
        assert page == whole[(first or 1) - 1 : last], (first, last)
    assert led.history("long", first=101) == [] and led.history("long", first=150, last=160) == []
    touched = [e.version for e in led.history("long", contains="ferries")]
    assert [e.version for e in led.history("long", contains="ferries", first=40, last=70)] == [v for v in touched if 40 <= v <= 70]


def test_word_changes_count_the_body_and_blocks_against_the_version_before(led: ledger.Ledger) -> None:
    from collections import Counter

    from ledger.diffs import word_counts

    _long_article(led, 80)

    def bag(version: int) -> Counter[str]:
        if version == 0:
            return Counter()
        view = led.article("long", version)
        return word_counts("\n\n".join([view.body, *(f"{b.heading}\n{b.text}" for b in view.blocks)]))

    expected = [(v, sum((bag(v) - bag(v - 1)).values()), sum((bag(v - 1) - bag(v)).values())) for v in range(1, 81)]
    assert [(c.version, c.words_added, c.words_removed) for c in led.word_changes("long")] == expected
    for first, last in ((1, 5), (30, 40), (33, 64), (79, None)):
        page = led.word_changes("long", first=first, last=last)
        assert [(c.version, c.words_added, c.words_removed) for c in page] == expected[first - 1 : last], (first, last)
    assert led.word_changes("long", first=81) == []


@pytest.mark.parametrize("call", [
    lambda led: led.history("long", first=0),
    lambda led: led.history("long", last=-1),
    lambda led: led.history("long", first=True),
    lambda led: led.history("long", first="2"),
    lambda led: led.history("long", first=3, last=2),
    lambda led: led.word_changes("long", first=0),
    lambda led: led.word_changes("long", first=5, last=4),
])
def test_history_pages_are_checked(led: ledger.Ledger, call: Any) -> None:
    _long_article(led, 3)
    with pytest.raises(ledger.InvalidInputError):
        call(led)


def test_history_pages_of_an_unknown_article_are_not_found(led: ledger.Ledger) -> None:
    for call in (lambda: led.history("nope", first=2), lambda: led.word_changes("nope"), lambda: led.word_changes("nope", first=3)):
        with pytest.raises(ledger.ArticleNotFoundError):
            call()


def test_history_renders_no_version_whole(news: ledger.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies: list[str] = []

    def spy(view: object) -> str:
        bodies.append(view.body)
        return render(view)  # type: ignore[arg-type]

    monkeypatch.setattr("ledger.history.render", spy)
    news.history("bridge")
    # The frame's stand-in for the text: its last character, or one and the paragraph break.
    assert bodies and max(len(body) for body in bodies) <= 3


def test_timeline_reads_each_article_once(news: ledger.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read_article = news.store.read_article

    def counting(article: str, *args: object) -> list[dict]:
        reads.append(article)
        return read_article(article, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(news.store, "read_article", counting)
    assert len(news.timeline()) == 10
    assert sorted(reads) == ["bridge", "storm"]
    reads.clear()
    assert [e.version for e in news.timeline(article="bridge", since=t("11:00"), until=t("14:00"))] == [6, 5, 4, 3, 2]
    assert reads == ["bridge"]


# --- listing articles, withdrawing, close ids (issue 14, point 6) -----------------------------


def test_articles_lists_every_article_most_recently_changed_first(news: ledger.Ledger) -> None:
    listed = news.articles()
    assert [(a.article, a.title, a.version, a.categories, a.withdrawn) for a in listed] == [
        ("storm", "Storm hits", 3, ["weather"], False),
        ("bridge", "Bridge closed", 7, ["local", "roads"], False),
    ]
    assert [a.updated_at for a in listed] == [t("16:00"), t("15:00")]
    assert listed[0].model_dump(mode="json")["updated_at"] == "2017-09-05T16:00:00.000000Z"


def test_articles_filters_by_category_now_time_and_withdrawal(news: ledger.Ledger) -> None:
    assert [a.article for a in news.articles(category="roads")] == ["bridge"]
    assert news.articles(category="traffic") == []  # bridge left it
    with pytest.raises(ledger.CategoryNotFoundError):
        news.articles(category="nowhere")
    assert [a.article for a in news.articles(since="2017-09-05T15:30Z")] == ["storm"]
    assert [a.article for a in news.articles(since=datetime(2017, 9, 5, 15, tzinfo=UTC))] == ["storm", "bridge"]
    assert [a.article for a in news.articles(withdrawn=False)] == ["storm", "bridge"]
    assert news.articles(withdrawn=True) == []
    news.withdraw("bridge", actor="eve", reason="legal")
    assert [(a.article, a.withdrawn) for a in news.articles(withdrawn=True)] == [("bridge", True)]
    assert [a.article for a in news.articles(withdrawn=False)] == ["storm"]
    assert [a.article for a in news.articles(category="roads", withdrawn=False)] == []
    with pytest.raises(ledger.InvalidTimeError):
        news.articles(since="not a time")


def test_articles_are_answered_from_the_catalog_without_folding(news: ledger.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    news.articles()  # catch the catalog up first

    def no_fold(*args: object) -> None:
        raise AssertionError("articles() folded an article")

    monkeypatch.setattr(news.store, "read_article", no_fold)
    assert len(news.articles()) == 2


def test_withdraw_records_one_event_and_refuses_twice(news: ledger.Ledger) -> None:
    result = news.withdraw("bridge", actor="eve", reason="legal request")
    assert result.versions == {"bridge": 8}
    event = list(news.events(article="bridge"))[-1]
    assert (event.type, event.actor, event.reason, event.data) == ("ArticleWithdrawn", "eve", "legal request", {})
    assert news.article("bridge").withdrawn is True
    with pytest.raises(ledger.ArticleStateError, match="already withdrawn"):
        news.withdraw("bridge")
    with pytest.raises(ledger.ArticleNotFoundError, match="did you mean 'bridge'"):
        news.withdraw("bridgee")


def test_an_unknown_article_suggests_close_ids(news: ledger.Ledger) -> None:
    for call in (lambda: news.article("brigde"), lambda: news.history("brigde"), lambda: news.category_history("brigde")):
        with pytest.raises(ledger.ArticleNotFoundError) as caught:
            call()
        assert str(caught.value) == "article 'brigde' is not in the log (did you mean 'bridge'?)"
    with pytest.raises(ledger.ArticleNotFoundError) as caught:
        news.article("zzz")
    assert str(caught.value) == "article 'zzz' is not in the log"


# --- the JSON Schema of the append input (issue 14, point 8) ----------------------------------


def test_event_schema_of_one_type_spells_out_its_data() -> None:
    schema = ledger.event_schema("ArticleEdited")
    assert schema["properties"]["type"] == {"const": "ArticleEdited", "type": "string"}
    assert set(schema["properties"]) == {"type", "article", "data", "id", "actor", "reason", "occurred_at", "expected_version"}
    data = schema["properties"]["data"]
    assert set(data["properties"]) == {"title", "patch", "body"}  # body: the input form, recorded as a patch
    assert data["additionalProperties"] is False
    created = ledger.event_schema("ArticleCreated")
    assert created["properties"]["data"]["required"] == ["title"]
    assert created["required"] == ["type", "article", "data"]


def test_event_schema_of_every_type_and_of_an_unknown_one() -> None:
    schema = ledger.event_schema()
    assert [one["title"] for one in schema["oneOf"]] == list(ledger.EVENT_TYPES)
    with pytest.raises(ledger.InvalidInputError, match=r"unknown event type 'Nope' \(known: ArticleCreated, ArticleEdited"):
        ledger.event_schema("Nope")


# --- pages of the long listings (issue 16) ---------------------------------------------------------


@pytest.fixture
def crowd(led: ledger.Ledger) -> ledger.Ledger:
    """Seven articles, five created in one append at the same moment (ties on time), update
    blocks on four (two at the same moment), ana writing three, one withdrawn."""
    same = "2017-09-05T10:00:00Z"
    led.append([
        {"type": "ArticleCreated", "article": name, "occurred_at": same,
         "data": {"title": name.upper(), "categories": ["news"], "metadata": {"author": "Ana"} if name in ("b", "d", "f") else {}}}
        for name in ("a", "b", "c", "d", "e")
    ])
    led.append([{"type": "ArticleCreated", "article": name, "occurred_at": "2017-09-05T09:00:00Z", "data": {"title": name.upper(), "metadata": {"author": "ana"} if name == "f" else {}}}
                for name in ("f", "g")])
    led.append([{"type": "UpdateBlockAdded", "article": name, "occurred_at": "2017-09-05T11:00:00Z", "data": {"heading": f"Update on {name}:"}}
                for name in ("a", "c")])
    led.append([{"type": "UpdateBlockAdded", "article": "e", "occurred_at": "2017-09-05T12:00:00Z", "data": {"heading": "First:"}}])
    led.append([{"type": "UpdateBlockAdded", "article": "e", "occurred_at": "2017-09-05T13:00:00Z", "data": {"heading": "Second:"}}])
    led.append([{"type": "UpdateBlockAdded", "article": "g", "occurred_at": "2017-09-05T13:00:00Z", "data": {"heading": "On g:"}}])
    led.withdraw("g", reason="legal")
    return led


def test_articles_in_pages_give_the_whole_listing_once_with_ties_in_log_order(crowd: ledger.Ledger) -> None:
    everything = [a.article for a in crowd.articles()]
    # g was withdrawn last; e, then c before a (same time: the later in the log first); then the
    # five created together, the later in the log first; f and g were created earlier.
    assert everything == ["g", "e", "c", "a", "d", "b", "f"]
    for limit in range(1, 9):
        pages = [[a.article for a in crowd.articles(limit=limit, offset=offset)] for offset in range(0, 8, limit)]
        assert all(len(page) <= limit for page in pages)
        assert [name for page in pages for name in page] == everything
    assert [a.article for a in crowd.articles(limit=2, offset=3)] == ["a", "d"]
    assert crowd.articles(offset=7) == [] and crowd.articles(limit=3, offset=100) == []
    assert [a.article for a in crowd.articles(offset=5)] == ["b", "f"]
    assert crowd.count_articles() == 7


def test_article_pages_with_filters(crowd: ledger.Ledger) -> None:
    assert [a.article for a in crowd.articles(category="news", limit=2, offset=1)] == ["c", "a"]
    assert crowd.count_articles(category="news") == 5
    assert [a.article for a in crowd.articles(withdrawn=False, limit=2)] == ["e", "c"]
    assert (crowd.count_articles(withdrawn=False), crowd.count_articles(withdrawn=True)) == (6, 1)
    assert [a.article for a in crowd.articles(withdrawn=True, limit=5)] == ["g"]
    assert [a.article for a in crowd.articles(category="news", withdrawn=False, limit=2, offset=3)] == ["d", "b"]
    assert (crowd.count_articles(category="news", withdrawn=False), crowd.count_articles(category="news", withdrawn=True)) == (5, 0)
    assert crowd.count_articles(category="news", since="2017-09-05T11:00Z", withdrawn=False) == 3
    assert crowd.count_articles(since="2017-09-05T11:00Z") == 4
    # The author filter reads the metadata after SQL: the page is cut from what it keeps.
    assert [a.article for a in crowd.articles(author="ANA")] == ["d", "b", "f"]
    assert [a.article for a in crowd.articles(author="ana", limit=1, offset=1)] == ["b"]
    assert [a.article for a in crowd.articles(author="ana", offset=2)] == ["f"]
    assert crowd.articles(author="ana", limit=5, offset=3) == []
    assert (crowd.count_articles(author="Ana"), crowd.count_articles(author="Bo"), crowd.count_articles(category="news", author="ana")) == (3, 0, 2)
    with pytest.raises(ledger.CategoryNotFoundError):
        crowd.count_articles(category="nowhere")


def test_feed_in_pages_gives_each_article_once_with_all_its_blocks(crowd: ledger.Ledger) -> None:
    since = "2017-09-05T10:30Z"
    feed = [(e.article, [b.heading for b in e.blocks]) for e in crowd.updated_since(since)]
    # g is withdrawn; c and a were updated together (the later in the log first).
    assert feed == [("e", ["Second:", "First:"]), ("c", ["Update on c:"]), ("a", ["Update on a:"])]
    for limit in range(1, 5):
        pages = [[(e.article, [b.heading for b in e.blocks]) for e in crowd.updated_since(since, limit=limit, offset=offset)] for offset in range(0, 4, limit)]
        assert [entry for page in pages for entry in page] == feed
    assert crowd.updated_since(since, offset=3) == [] and crowd.updated_since(since, limit=1, offset=50) == []
    assert [e.article for e in crowd.updated_since(since, limit=1, offset=1)] == ["c"]
    assert (crowd.count_updated_since(since), crowd.count_updated_since("2017-09-05T12:30Z"), crowd.count_updated_since("2018-01-01")) == (3, 1, 0)


@pytest.mark.parametrize("page", [{"limit": 0}, {"limit": -1}, {"limit": True}, {"limit": 1.5}, {"limit": "3"}, {"offset": -1}, {"offset": None}, {"offset": 2.0}])
def test_a_bad_page_is_the_librarys_own_error_naming_the_argument(crowd: ledger.Ledger, page: dict[str, Any]) -> None:
    name = next(iter(page))
    with pytest.raises(ledger.InvalidInputError, match=f"^{name} must be"):
        crowd.articles(**page)
    with pytest.raises(ledger.InvalidInputError, match=f"^{name} must be"):
        crowd.updated_since("2017-09-05", **page)


def test_the_timeline_names_each_version_by_the_title_it_had(led: ledger.Ledger) -> None:
    # The viewer's feed linked every old version under the article's title now.
    led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "First", "body": "x\n"}}])
    led.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "y\n"}}])
    led.append([{"type": "ArticleEdited", "article": "a", "data": {"title": "Second"}}])
    assert [(e.version, e.title) for e in led.timeline()] == [(3, "Second"), (2, "First"), (1, "First")]
    assert [(e.version, e.title) for e in led.timeline(article="a", limit=2)] == [(3, "Second"), (2, "First")]
