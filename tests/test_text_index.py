"""The text index behind search: what it finds equals a scan of every version, however it was
built (caught up append by append, or rebuilt), including lines where a word repeats."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from ledger import textindex
from ledger.textindex import FORMAT
from tests.helpers import created, edited, phrase_stretches

# Few words, so that lines repeat words and phrases stand in several places at once.
WORDS = ["the", "The", "bridge", "is", "closed.", "storm,"]

Stretch = tuple[str, str, int, int | None]


def _brute_force(led: ledger.Ledger, phrase: str) -> list[Stretch]:
    """(article, part, version it came in, version it went out) from reading every version."""
    return sorted((article, *stretch) for article in led.store.articles() for stretch in phrase_stretches(led, article, phrase))


def _found(led: ledger.Ledger, phrase: str) -> list[Stretch]:
    return sorted((h.article, h.part, h.appeared_version, h.vanished_version) for h in led.search(phrase))


line = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
step = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 99), line),
    st.tuples(st.just("insert"), st.integers(0, 99), line),
    st.tuples(st.just("delete"), st.integers(0, 99), st.just("")),
    st.tuples(st.just("title"), st.integers(0, 99), line),
    st.tuples(st.just("add block"), st.integers(0, 99), line),
    st.tuples(st.just("edit block"), st.integers(0, 99), line),
    st.tuples(st.just("remove block"), st.integers(0, 99), st.just("")),
)
phrase = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)


# Rows of 3 stretches too, so that a few edits fill rows, and catching up adds to a row saved.
@pytest.mark.parametrize("block", [textindex._BLOCK, 3])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), step), min_size=1, max_size=25), st.lists(phrase, min_size=3, max_size=6))
def test_search_finds_what_a_scan_of_every_version_finds(block: int, plan: list[tuple[str, tuple[str, int, str]]], phrases: list[str]) -> None:
    with (
        mock.patch.object(textindex, "_BLOCK", block),
        tempfile.TemporaryDirectory() as folder,
        ledger.open(Path(folder) / "store", create=True) as led,
    ):
        bodies: dict[str, list[str]] = {}
        blocks: dict[str, int] = {}

        def append(event: dict[str, object]) -> None:
            # An edit that changes nothing (a line set to what it was) is refused: left out.
            with contextlib.suppress(ledger.NothingToDoError):
                led.append([event])

        for number, (article, (kind, at, words)) in enumerate(plan):
            if article not in bodies:
                bodies[article], blocks[article] = [words], 0
                append(created(article, "The storm", words + "\n"))
            elif kind in ("set", "insert", "delete"):
                body = bodies[article]
                if kind == "set" and body:
                    body[at % len(body)] = words
                elif kind == "insert" or not body:
                    body.insert(at % (len(body) + 1), words or "storm")
                else:
                    del body[at % len(body)]
                append(edited(article, "".join(text + "\n" for text in body)))
            elif kind == "title":
                append({"type": "ArticleEdited", "article": article, "data": {"title": words}})
            elif kind == "add block":
                blocks[article] += 1
                append({"type": "UpdateBlockAdded", "article": article, "data": {"heading": "Update:", "text": "\n" + words + "\n" + words + "\n"}})
            elif blocks[article]:
                index = at % blocks[article]
                if kind == "remove block":
                    blocks[article] -= 1
                    append({"type": "UpdateBlockRemoved", "article": article, "data": {"index": index}})
                else:
                    append({"type": "UpdateBlockEdited", "article": article, "data": {"index": index, "text": "\n" + words + "\n"}})
            if number % 4 == 0:
                # Searched now and then, so that the index is caught up in several steps.
                led.search(phrases[0])
        expected = {text: _brute_force(led, text) for text in phrases}
        for text in phrases:
            assert _found(led, text) == expected[text], text
        led.replay()
        for text in phrases:
            assert _found(led, text) == expected[text], text


def test_a_phrase_in_a_line_where_its_inner_word_repeats(led: ledger.Ledger) -> None:
    # "the" stands twice in each line: the pairs of the phrase alone do not tell.
    led.append([created("a", "T", "the cat saw the dog\nthe dog saw the cat and the bird\n")])
    led.append([edited("a", "the cat saw the dog\nthe dog saw a cat and the bird\n")])
    assert _found(led, "saw the cat") == [("a", "body", 1, 2)]
    assert _found(led, "dog saw the") == [("a", "body", 1, 2)]
    assert _found(led, "cat saw the dog") == [("a", "body", 1, None)]
    # Both pairs ("saw the", "the bird") are in the first line of version 1, never together.
    assert _found(led, "saw the bird") == []
    assert [entry.version for entry in led.history("a", contains="saw the cat")] == [1, 2]


def test_a_phrase_is_found_however_its_accents_are_composed(led: ledger.Ledger) -> None:
    # An archive holds both forms: "école" as one character or as "e" and a combining accent.
    led.append([created("nfd", "T", "The e\u0301cole closed.\n"), created("nfc", "T", "The \u00e9cole opened.\n")])
    for typed in ("the \u00e9cole", "the e\u0301cole"):
        assert [(h.article, h.part) for h in led.search(typed)] in ([("nfc", "body"), ("nfd", "body")], [("nfd", "body"), ("nfc", "body")])
    assert _found(led, "e\u0301cole closed") == [("nfd", "body", 1, None)]


def test_an_index_of_an_older_format_is_rebuilt(led: ledger.Ledger, caplog: pytest.LogCaptureFixture) -> None:
    led.append([created("a", "T", "alpha beta\n")])
    assert _found(led, "alpha beta") == [("a", "body", 1, None)]
    assert led.path is not None
    led.text_index.close()
    db = sqlite3.connect(led.path / "text.sqlite")
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT - 1,))
        db.execute("DELETE FROM stretches")
        db.execute("CREATE TABLE lines (id INTEGER PRIMARY KEY, article INTEGER)")
        # A table this format has and an older one had not.
        db.execute("DROP TABLE names")
    db.close()
    assert _found(led, "alpha beta") == [("a", "body", 1, None)]
    # Rebuilt as of another format, not called damaged.
    assert "another format" in caplog.text
    assert "damaged" not in caplog.text
    # The tables of the older format are gone with it.
    db = sqlite3.connect(led.path / "text.sqlite")
    assert db.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'lines'").fetchone() == (0,)
    db.close()


def test_article_numbers_follow_a_rebuild_by_another_process(store_dir: Path) -> None:
    # Numbered in order of appearance when caught up, by name when rebuilt: "b" and "a" trade.
    with ledger.open(store_dir) as first:
        first.append([created("b", "T", "beta words\n")])
        assert _found(first, "beta words") == [("b", "body", 1, None)]
        first.append([created("a", "T", "alpha words\n")])
        assert _found(first, "alpha words") == [("a", "body", 1, None)]
        with ledger.open(store_dir) as second:
            second.replay()
        first.append([edited("a", "alpha gone\n")])
        assert _found(first, "alpha words") == [("a", "body", 1, 2)]
        assert _found(first, "beta words") == [("b", "body", 1, None)]


def test_a_search_reads_one_state_though_another_process_rebuilds_the_index_meanwhile(store_dir: Path) -> None:
    # Caught up, the index numbers "b" 1 and "a" 2; a rebuild numbers them the other way. The
    # other process rebuilds it right after this search looked at the index, before its queries.
    with ledger.open(store_dir) as first, ledger.open(store_dir) as second:
        first.append([created("b", "T", "beta words\n")])
        assert _found(first, "beta words") == [("b", "body", 1, None)]
        first.append([created("a", "T", "alpha words\n")])
        assert _found(first, "alpha words") == [("a", "body", 1, None)]
        rebuilt: list[bool] = []
        changes = textindex.TextIndex._changes

        def rebuilt_meanwhile(index: textindex.TextIndex, db: sqlite3.Connection, query: str, article: str | None) -> Any:
            if index is first.text_index and not rebuilt:
                second.text_index.rebuild()
                rebuilt.append(True)
            return changes(index, db, query, article)

        with mock.patch.object(textindex.TextIndex, "_changes", rebuilt_meanwhile):
            hits = first.search("beta words", article="b")
        assert rebuilt and [(h.article, h.appeared_version) for h in hits] == [("b", 1)]
        assert _found(first, "alpha words") == [("a", "body", 1, None)]


def test_a_phrase_across_sentences(led: ledger.Ledger) -> None:
    # Sentences are indexed once each; a line is its sentences in turn, so that a phrase may run
    # from the end of one sentence across whole sentences into the start of a later one.
    led.append([created("a", "T", "The storm hit. Yes! The bridge closed. Cars wait.\nThe bridge held.\n")])
    led.append([created("b", "T", "Cars wait. The storm hit.\n")])
    assert _found(led, "hit the bridge") == []
    assert _found(led, "hit yes the bridge") == [("a", "body", 1, None)]
    assert _found(led, "yes") == [("a", "body", 1, None)]
    assert _found(led, "closed cars") == [("a", "body", 1, None)]
    assert _found(led, "wait the storm") == [("b", "body", 1, None)]
    # Both sentences stand in "a" too, in the other order.
    assert _found(led, "hit cars") == []
    led.append([edited("a", "The storm hit. The bridge closed. Cars wait.\nThe bridge held.\n")])
    assert _found(led, "hit yes the bridge") == [("a", "body", 1, 2)]
    assert _found(led, "hit the bridge") == [("a", "body", 2, None)]
    # "Cars wait." stands in both articles, the first sentence of one and the last of the other.
    assert _found(led, "cars wait") == [("a", "body", 1, None), ("b", "body", 1, None)]
    for phrase in ("hit the bridge", "the bridge", "wait", "closed cars wait", "storm hit yes"):
        assert _found(led, phrase) == _brute_force(led, phrase), phrase
    led.replay()
    assert _found(led, "hit the bridge") == [("a", "body", 2, None)]
    assert _found(led, "hit yes the bridge") == [("a", "body", 1, 2)]


def test_an_index_far_behind_the_log_is_rebuilt_and_answers_the_same(led: ledger.Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catching up numbers each new sentence by a look-up; far behind, folding the whole log again
    # is faster (and smaller). Either way the answers are a scan's.
    monkeypatch.setattr(textindex, "_REBUILD_BEHIND", 4)
    led.append([created("a", "T", "the bridge is open.\n")])
    assert _found(led, "bridge is open") == [("a", "body", 1, None)]
    assert led.path is not None

    def generation() -> str:
        db = sqlite3.connect(led.path / "text.sqlite")
        try:
            return str(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        finally:
            db.close()

    first = generation()
    led.append([edited("a", "the bridge is closed.\n")])
    assert _found(led, "bridge is closed") == [("a", "body", 2, None)]
    assert generation() == first  # one record behind: caught up
    for n in range(6):
        led.append([created(f"n{n}", "T", f"the storm hit bridge {n}.\n")])
    led.append([edited("a", "the bridge is open.\n")])
    assert _found(led, "bridge is open") == _brute_force(led, "bridge is open") == [("a", "body", 1, 2), ("a", "body", 3, None)]
    assert generation() != first  # seven behind of nine: rebuilt
    assert _found(led, "storm hit bridge") == _brute_force(led, "storm hit bridge")


entry = st.tuples(st.integers(1, 5000), st.integers(0, 3), st.integers(0, 300), st.lists(st.integers(1, 3_000_000), max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.lists(entry, min_size=1, max_size=70), st.sets(st.integers(1, 3_000_000), min_size=1, max_size=80), st.booleans())
def test_a_row_of_stretches_gives_back_what_it_keeps_and_finds_what_it_holds(
    drawn: list[tuple[int, int, int, list[int]]], wanted: set[int], by_bytes: bool
) -> None:
    entries = [[came, part, came + went - 1 if went else None, numbers] for came, part, went, numbers in drawn]
    # Sentences of the row are looked for too, so that some are found.
    wanted |= {number for _, _, _, numbers in entries[::3] for number in numbers[:1]}
    blob = textindex._pack_block(entries)
    assert textindex._unpack_block(blob) == entries
    codes = [textindex._pack_numbers([number]) for number in wanted]
    with mock.patch.object(textindex, "_FOUND_BY_BYTES", len(codes) if by_bytes else 0):
        found = textindex._stretches_holding(blob, wanted, codes)
    assert found == [(index, e) for index, e in enumerate(entries) if not wanted.isdisjoint(e[3])]


# Lines for the appends below: repeated words, sentence ends, words beyond ASCII, a line of no word.
LINE = st.lists(st.sampled_from(["the", "The", "storm", "closed.", "café", "Straße!", "7", "--"]), min_size=1, max_size=5).map(" ".join)
EDIT = st.tuples(st.sampled_from(["set", "insert", "repeat", "delete", "title", "add block", "edit block", "heading", "remove block"]), st.integers(0, 99), LINE)


def _event(article: str, planned: dict[str, Any], kind: str, at: int, text: str) -> dict[str, Any] | None:
    """The event that makes `kind` of change to `planned` (the article as the append leaves it so
    far: its body's lines and its blocks), or None when there is nothing to change."""
    body, blocks = planned["body"], planned["blocks"]
    if kind in ("set", "insert", "repeat", "delete"):
        if kind == "set" and body:
            body[at % len(body)] = text
        elif kind == "repeat" and body:
            body.insert(at % (len(body) + 1), body[at % len(body)])
        elif kind == "delete" and body:
            del body[at % len(body)]
        else:
            body.insert(at % (len(body) + 1), text)
        return {"type": "ArticleEdited", "article": article, "data": {"body": "\n".join(body)}}
    if kind == "title":
        return {"type": "ArticleEdited", "article": article, "data": {"title": text}}
    if kind == "add block":
        index = at % (len(blocks) + 1)
        blocks.insert(index, ["Update:", f"{text}\n{text}"])
        return {"type": "UpdateBlockAdded", "article": article, "data": {"heading": "Update:", "text": f"{text}\n{text}", "index": index}}
    if not blocks:
        return None
    index = at % len(blocks)
    if kind == "remove block":
        del blocks[index]
        return {"type": "UpdateBlockRemoved", "article": article, "data": {"index": index}}
    if kind == "heading":
        blocks[index][0] = text
        return {"type": "UpdateBlockEdited", "article": article, "data": {"index": index, "heading": text}}
    blocks[index][1] = text
    return {"type": "UpdateBlockEdited", "article": article, "data": {"index": index, "text": text}}


# Rows of 2 stretches, so that each append crosses rows; a search after every append, so that
# the index is caught up one append at a time, against the same store's index rebuilt.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(st.tuples(st.sampled_from(["a", "b"]), EDIT), min_size=1, max_size=3), min_size=1, max_size=12),
    st.lists(st.integers(0, 20), max_size=2),
)
def test_caught_up_after_every_append_of_several_events_as_rebuilt(appends: list[list[tuple[str, tuple[str, int, str]]]], restores: list[int]) -> None:
    phrases = ["the", "the storm", "closed the", "café", "straße the 7", "the the"]
    with (
        mock.patch.object(textindex, "_BLOCK", 2),
        tempfile.TemporaryDirectory() as folder,
        ledger.open(Path(folder) / "store", create=True) as led,
    ):
        for number, edits in enumerate(appends):
            events: list[dict[str, Any]] = []
            planned: dict[str, dict[str, Any]] = {}
            for article, (kind, at, text) in edits:
                if article not in led.store.articles():
                    if article not in planned:
                        planned[article] = {"body": [text], "blocks": []}
                        events.append(created(article, "The storm", text))
                    continue
                if article not in planned:
                    view = led.article(article)
                    planned[article] = {"body": view.body.split("\n"), "blocks": [[block.heading, block.text] for block in view.blocks]}
                event = _event(article, planned[article], kind, at, text)
                if event is not None:
                    events.append(event)
            with contextlib.suppress(ledger.NothingToDoError):
                led.append(events)
            if number < len(restores) and led.current_version("a") > 1:
                with contextlib.suppress(ledger.NothingToDoError):
                    led.restore("a", 1 + restores[number] % (led.current_version("a") - 1))
            led.search("the")
        expected = {text: _brute_force(led, text) for text in phrases}
        versions = [(article, version) for article in sorted(led.store.articles()) for version in range(1, led.current_version(article) + 1)]
        blames = {key: led.blame(*key).model_dump() for key in versions}
        histories = {article: [entry.version for entry in led.history(article, contains="the storm")] for article in led.store.articles()}
        for text in phrases:
            assert _found(led, text) == expected[text], text
        led.text_index.close()
        assert led.path is not None
        (led.path / "text.sqlite").unlink()
        for text in phrases:
            assert _found(led, text) == expected[text], text
        assert {key: led.blame(*key).model_dump() for key in versions} == blames
        assert {article: [entry.version for entry in led.history(article, contains="the storm")] for article in led.store.articles()} == histories


def _stretch(drawn: tuple[int, int, int | None, list[int]]) -> list[Any]:
    came, part, later, sentences = drawn
    return [came, part, None if later is None else came + later, sentences]


ENTRY = st.tuples(
    st.sampled_from([1, 31, 32, 33, 127, 128, 2**14, 2**20 + 1]),
    st.integers(0, 3),
    st.sampled_from([None, 0, 1, 126, 127, 2**14]),
    st.lists(st.sampled_from([1, 2, 4, 5, 127, 128, 129, 130, 2**14, 2**14 + 1, 2**22 + 4]), max_size=4),
).map(_stretch)


# Sentence numbers that are also the bytes of versions and parts (128 + 1: 0x81 0x01), so that
# the bytes looked for stand in a stretch's head as well as among its sentences.
@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, min_size=1, max_size=8), st.sets(st.sampled_from([1, 2, 4, 5, 128, 129, 130, 2**14, 2**22 + 4, 2**20 * 4 + 1]), min_size=1))
def test_stretches_found_in_a_rows_bytes_are_those_its_numbers_hold(entries: list[Any], wanted: set[int]) -> None:
    blob = textindex._pack_block(entries)
    assert textindex._unpack_block(blob) == entries
    expected = [(index, entry) for index, entry in enumerate(entries) if not wanted.isdisjoint(entry[3])]
    codes = [textindex._pack_numbers([number]) for number in sorted(wanted)]
    assert textindex._stretches_holding(blob, wanted, codes) == expected
    assert textindex._stretches_holding(blob, wanted, None) == expected


def test_two_processes_catching_up_one_index_in_turn(store_dir: Path) -> None:
    # Each appends and searches in turn: each catches up what the other appended, on rows and
    # open lines the other saved (rows of 2 stretches, so that every catch-up adds to a row).
    with mock.patch.object(textindex, "_BLOCK", 2), ledger.open(store_dir) as first, ledger.open(store_dir) as second:
        first.append([created("a", "The storm", "the storm hit.\nthe storm hit.\n")])
        assert _found(second, "storm hit") == [("a", "body", 1, None)]
        second.append([edited("a", "the storm hit.\nthe bridge.\nthe storm hit.\n"), created("b", "T", "the storm hit. Café!\n")])
        assert _found(first, "hit café") == [("b", "body", 1, None)]
        first.append([edited("a", "the bridge.\n"), edited("b", "the storm.\n")])
        assert _found(second, "storm hit") == [("a", "body", 1, 3), ("b", "body", 1, 2)]
        second.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "the storm hit."}}])
        first.append([{"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 0}}])
        for led in (first, second):
            for phrase in ("storm hit", "the bridge", "the", "hit café"):
                assert _found(led, phrase) == _brute_force(led, phrase), phrase
