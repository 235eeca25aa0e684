"""`Ledger.replay` with the text index rebuilt by a process of its own (`ledger.replays`): the
same answers as a rebuild in the replaying process, progress that follows both folds, the old
index kept when the replay is interrupted, and the child's errors raised as the library's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import ledger
import ledger.application
from ledger.replays import TextRebuild
from ledger.textindex import TextIndex
from tests.helpers import created, edited


def _fill(led: ledger.Ledger) -> None:
    led.append([created("a", "Storm", "the storm hit the coast\nroads closed\n"), created("b", "Bridge", "the bridge opened\n")])
    led.append([edited("a", "the storm left the coast\nroads closed\n", actor="ed")])
    led.append([{"type": "UpdateBlockAdded", "article": "b", "data": {"heading": "Update:", "text": "\nthe storm hit the bridge"}}])
    led.append([edited("b", "the bridge closed again\n")])


def _answers(led: ledger.Ledger) -> tuple[object, ...]:
    return (
        [(h.article, h.part, h.appeared_version, h.vanished_version) for h in led.search("the storm hit")],
        [(h.article, h.appeared_version) for h in led.search("bridge")],
        [(s.part, s.version, s.actor) for s in led.blame("a").spans],
        led.categories(),
        led.timeline(),
    )


@pytest.fixture
def in_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every replay rebuilds the text index in a child process; this process never does."""
    monkeypatch.setattr(ledger.application, "TEXT_CHILD_EVENTS", 0)

    def refused(self: TextIndex, progress: object = None) -> None:
        raise AssertionError("the text index was rebuilt in the replaying process")

    monkeypatch.setattr(TextIndex, "rebuild", refused)


def test_a_replay_with_the_text_index_in_a_child_gives_the_same_answers(led: ledger.Ledger, in_child: None) -> None:
    _fill(led)
    before = _answers(led)
    assert led.path is not None
    generation = _generation(led.path)
    seen: list[tuple[int, int]] = []
    stats = led.replay(progress=lambda done, total: seen.append((done, total)))
    assert (stats.events, stats.articles, stats.position) == (5, 2, 5)
    assert _generation(led.path) != generation  # rebuilt, by the child
    assert _answers(led) == before
    # Progress is the slower fold's: it never goes back, and ends when both are done.
    assert seen and seen[-1] == (5, 5)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_partial_replay_stops_the_catalog_and_still_rebuilds_the_whole_text_index(led: ledger.Ledger, in_child: None) -> None:
    _fill(led)
    before = _answers(led)
    seen: list[tuple[int, int]] = []
    stats = led.replay(to=2, progress=lambda done, total: seen.append((done, total)))
    assert (stats.events, stats.position) == (2, 2)
    # Out of the head's records throughout (the text index's rebuild goes on to the head), and
    # never going back.
    assert seen[-1] == (5, 5) and {total for _, total in seen} == {5}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert _answers(led) == before  # the catalog catches up again from position 2


@pytest.mark.parametrize("to", [None, 2])
def test_progress_never_counts_past_its_total_when_the_log_grows_as_the_replay_starts(
    led: ledger.Ledger, in_child: None, monkeypatch: pytest.MonkeyPatch, to: int | None
) -> None:
    _fill(led)
    real = led.store.head

    def head_then_an_append() -> ledger.Head:
        # Another writer appends after the replay read the head: the child, started after it,
        # folds one record more than the total the progress counts out of.
        found = real()
        monkeypatch.setattr(led.store, "head", real)
        led.append([edited("b", "the bridge opened once more\n")])
        return found

    monkeypatch.setattr(led.store, "head", head_then_an_append)
    seen: list[tuple[int, int]] = []
    led.replay(to=to, progress=lambda done, total: seen.append((done, total)))
    assert seen and {total for _, total in seen} == {5} and all(done <= total for done, total in seen), seen
    assert seen[-1] == (5, 5) and [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_an_interrupted_replay_leaves_views_that_answer_as_before(led: ledger.Ledger, in_child: None) -> None:
    _fill(led)
    before = _answers(led)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        led.replay(progress=interrupt)
    # The child was stopped (or had finished): each index is the old one or a whole new one.
    assert _answers(led) == before


def test_the_childs_error_is_raised_as_the_same_error(tmp_path: Path) -> None:
    child = TextRebuild(str(tmp_path / "no-store-here"))
    try:
        with pytest.raises(ledger.StoreNotFoundError, match="no-store-here"):
            child.finish()
    finally:
        child.stop()


def test_the_childs_corrupt_store_error_keeps_the_position_it_names(tmp_path: Path) -> None:
    # The error came back as its message alone: the position a caller reads was lost.
    store = tmp_path / "store"
    with ledger.open(store, create=True) as led:
        _fill(led)
    lines = (store / "events.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"article":"a"', b'"article":"b"', 1)
    (store / "events.jsonl").write_bytes(b"".join(lines))
    child = TextRebuild(str(store))
    try:
        with pytest.raises(ledger.CorruptStoreError, match="position 3") as caught:
            child.finish()
    finally:
        child.stop()
    assert caught.value.position == 3


def test_a_small_log_is_replayed_in_one_process(led: ledger.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(led)
    before = _answers(led)

    def refused(self: TextRebuild, location: str) -> None:
        raise AssertionError("a child process was started for a small log")

    monkeypatch.setattr(TextRebuild, "__init__", refused)
    led.replay()
    assert _answers(led) == before


def _generation(store: Path) -> object:
    db = sqlite3.connect(store / "text.sqlite")
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    finally:
        db.close()


def test_a_child_that_dies_is_reported_without_the_servers_password() -> None:
    # Killed before it could say why: the message names the store, never its password.
    child = TextRebuild("postgresql://editor:s3cret@127.0.0.1:1/news")
    try:
        child._process.kill()
        with pytest.raises(ledger.LedgerError) as caught:
            child.finish()
    finally:
        child.stop()
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1/news" in str(caught.value)
