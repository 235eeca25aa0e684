"""Blame and search: attribution folded from the events, and the text index behind search."""

from __future__ import annotations

import copy
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from ledger.rendering import paragraph_break, render
from tests.helpers import created, edited


@dataclass
class Model:
    """An article as words, each with the version that wrote it (the ground truth)."""

    title: list[tuple[str, int]]
    body: list[list[tuple[str, int]]]
    blocks: list[tuple[list[tuple[str, int]], list[list[tuple[str, int]]]]] = field(default_factory=list)

    def title_text(self) -> str:
        return " ".join(word for word, _ in self.title)

    def body_text(self) -> str:
        return "".join(" ".join(word for word, _ in line) + "\n" for line in self.body)

    def heading_text(self, index: int) -> str:
        return " ".join(word for word, _ in self.blocks[index][0]) + ":"

    def block_text(self, index: int) -> str:
        return "\n" + "".join(" ".join(word for word, _ in line) + "\n" for line in self.blocks[index][1])

    def expected(self) -> tuple[str, list[int | None]]:
        """The rendered text, and for each character the version that wrote it (None: a space,
        a line break or punctuation, which any version may be credited with)."""
        text: list[str] = []
        owners: list[int | None] = []

        def words(line: list[tuple[str, int]]) -> None:
            for index, (word, version) in enumerate(line):
                if index:
                    text.append(" ")
                    owners.append(None)
                text.append(word)
                owners.extend([version] * len(word))

        def lines(body: list[list[tuple[str, int]]]) -> None:
            for line in body:
                words(line)
                text.append("\n")
                owners.append(None)

        words(self.title)
        text.append("\n")
        owners.append(None)
        lines(self.body)
        previous, previous_heading = self.body_text(), ""
        for index, (heading, body) in enumerate(self.blocks):
            # Rendering makes each heading start a paragraph (`paragraph_break`).
            gap = paragraph_break(previous, previous_heading)
            text.append(gap)
            owners.extend([None] * len(gap))
            previous, previous_heading = self.block_text(index), self.heading_text(index)
            words(heading)
            text.append(":\n")
            owners.extend([None, None])
            lines(body)
        return "".join(text), owners


@st.composite
def steps(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    kinds = st.sampled_from(["insert", "insert", "delete", "replace", "newline", "title", "add block", "edit block", "remove block", "restore"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=40))


def _fresh(version: int, serial: list[int]) -> tuple[str, int]:
    serial[0] += 1
    return (f"w{version}n{serial[0]}", version)


def _edit_words(lines: list[list[tuple[str, int]]], kind: str, a: int, b: int, version: int, serial: list[int]) -> None:
    """Change the words `lines` hold in place: insert, delete or replace a word, or break a line."""
    if not lines or kind == "newline":
        lines.insert(a % (len(lines) + 1), [_fresh(version, serial)])
        return
    line = lines[a % len(lines)]
    if kind == "insert" or not line:
        line.insert(b % (len(line) + 1), _fresh(version, serial))
    elif kind == "delete":
        del line[b % len(line)]
        if not line:
            lines.remove(line)
    else:
        line[b % len(line)] = _fresh(version, serial)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps())
def test_every_character_is_credited_to_the_version_that_wrote_it(plan: list[tuple[str, int, int]]) -> None:
    serial = [0]
    model = Model(title=[_fresh(1, serial)], body=[[_fresh(1, serial), _fresh(1, serial)]])
    models = {1: copy.deepcopy(model)}
    with tempfile.TemporaryDirectory() as folder, ledger.open(Path(folder) / "store", create=True) as led:
        led.append([created("a", model.title_text(), model.body_text())])
        for kind, a, b in plan:
            version = len(models) + 1
            if kind == "restore":
                target = a % len(models) + 1
                if render(led.article("a", target)) == render(led.article("a")):
                    continue
                led.restore("a", target)
                model = copy.deepcopy(models[target])
            elif kind == "title":
                model.title[a % len(model.title)] = _fresh(version, serial)
                led.append([{"type": "ArticleEdited", "article": "a", "data": {"title": model.title_text()}}])
            elif kind == "add block":
                model.blocks.append(([_fresh(version, serial)], [[_fresh(version, serial)]]))
                index = len(model.blocks) - 1
                led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": model.heading_text(index), "text": model.block_text(index)}}])
            elif kind in ("edit block", "remove block"):
                if not model.blocks:
                    continue
                index = a % len(model.blocks)
                if kind == "remove block":
                    del model.blocks[index]
                    led.append([{"type": "UpdateBlockRemoved", "article": "a", "data": {"index": index}}])
                else:
                    _edit_words(model.blocks[index][1], "insert" if b % 2 else "replace", a, b, version, serial)
                    led.append([{"type": "UpdateBlockEdited", "article": "a", "data": {"index": index, "text": model.block_text(index)}}])
            else:
                _edit_words(model.body, kind, a, b, version, serial)
                led.append([edited("a", model.body_text())])
            assert led.current_version("a") == version
            models[version] = copy.deepcopy(model)
        # Newest first, so that older versions are also read after snapshots were kept.
        for version in sorted(models, reverse=True):
            blame = led.blame("a", version=version)
            text, owners = models[version].expected()
            assert blame.text == text == render(led.article("a", version))
            assert "".join(span.text for span in blame.spans) == blame.text
            assert [span.start for span in blame.spans[1:]] == [span.end for span in blame.spans[:-1]]
            credited = [span.version for span in blame.spans for _ in range(span.end - span.start)]
            for offset, owner in enumerate(owners):
                if owner is not None:
                    assert credited[offset] == owner, (version, offset, text[offset - 5 : offset + 5])


def test_a_word_changed_in_a_sentence_leaves_the_others_to_their_versions(led: ledger.Ledger) -> None:
    led.append([created("a", "Bridge closed", "The cat sat on the mat today.\nSecond line.\n", actor="ann")])
    led.append([edited("a", "The dog sat on the rug today.\nSecond line.\n", actor="bob", reason="fix")])
    blame = led.blame("a")
    assert [(span.version, span.text) for span in blame.spans if span.part == "body"] == [
        (1, "The "), (2, "dog"), (1, " sat on the "), (2, "rug"), (1, " today.\nSecond line.\n"),
    ]
    assert {span.actor for span in blame.spans} == {"ann", "bob"}
    assert blame.spans[0].part == "title" and blame.spans[0].text == "Bridge closed"


def test_a_restore_keeps_the_versions_that_first_wrote_the_text(led: ledger.Ledger) -> None:
    led.append([created("a", "Title", "One two three.\n", actor="ann")])
    led.append([edited("a", "One four three.\n", actor="bob")])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nMore.\n"}}])
    led.append([{"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 0}}])
    led.restore("a", 3, actor="cy")
    blame = led.blame("a")
    assert blame.version == 5
    assert {span.text: span.version for span in blame.spans if span.part in ("body", "heading", "block")} == {
        "One ": 1, "four": 2, " three.\n": 1, "Update:": 3, "\nMore.\n": 3,
    }


def test_blame_at_a_time_and_bad_input(led: ledger.Ledger) -> None:
    led.append([created("a", "T", "x\n", occurred_at="2024-03-01T09:00:00Z")])
    led.append([edited("a", "y\n", occurred_at="2024-03-02T09:00:00Z")])
    assert led.blame("a", at="2024-03-01T12:00Z").version == 1
    with pytest.raises(ledger.ArticleNotFoundError):
        led.blame("nope")
    with pytest.raises(ledger.VersionNotFoundError):
        led.blame("a", version=3)
    with pytest.raises(ledger.VersionNotFoundError):
        led.blame("a", at="2024-01-01")


def test_markdown_front_matter_and_categories_are_attributed(led: ledger.Ledger, tmp_path: Path) -> None:
    draft = tmp_path / "story.md"
    draft.write_text("---\ntitle: Harbour news\ncategories: [local]\n---\nFirst words here.\n")
    ledger.ingest(led, [str(draft)], article="h")
    draft.write_text("---\ntitle: Harbour news\ncategories: [local, weather]\n---\nFirst words there.\n")
    ledger.ingest(led, [str(draft)], article="h")
    blame = led.blame("h")
    assert blame.text == draft.read_text()
    assert "".join(span.text for span in blame.spans) == blame.text
    assert [span.text for span in blame.spans if span.part == "title"] == ["Harbour news"]
    assert {span.text: span.version for span in blame.spans if span.part == "body"} == {"First words ": 1, "there": 2, ".\n": 1}
    # The front matter is compared word by word too: only the category added is version 2's.
    frame = [(span.text, span.version) for span in blame.spans if span.part == "frame"]
    assert [text for text, version in frame if version == 2] == [", weather"]


def test_search_finds_where_a_phrase_came_in_and_went_out(led: ledger.Ledger) -> None:
    led.append([created("a", "Storm hits harbour", "The bridge is closed.\nFerries run.\n", occurred_at="2024-03-01T09:00:00Z", actor="ann")])
    led.append([edited("a", "The bridge is open.\nFerries run.\n", occurred_at="2024-03-02T09:00:00Z", actor="bob", reason="reopened")])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nThe Bridge is  CLOSED again.\n"}, "occurred_at": "2024-03-03T09:00:00Z"}])
    led.append([created("b", "Other", "Nothing about bridges.\n", occurred_at="2024-03-04T09:00:00Z")])
    hits = led.search("bridge is closed")
    assert [(h.article, h.part, h.appeared_version, h.vanished_version, h.current) for h in hits] == [
        ("a", "body", 1, 2, False), ("a", "blocks", 3, None, True),
    ]
    assert hits[0].appeared_actor == "ann" and hits[0].vanished_actor == "bob" and hits[0].vanished_reason == "reopened"
    assert [h.part for h in led.search("bridge is closed", exact=True)] == ["body"]
    assert led.search("bridge is closed", since="2024-03-02T12:00Z")[0].part == "blocks"
    assert led.search("bridge", article="b") == []
    assert [h.part for h in led.search("storm")] == ["title"]
    assert [entry.version for entry in led.history("a", contains="closed")] == [1, 2, 3]
    assert [entry.version for entry in led.history("a", contains="open")] == [2]
    for bad in ("", "   ", "--"):
        with pytest.raises(ledger.InvalidInputError):
            led.search(bad)
    with pytest.raises(ledger.ArticleNotFoundError):
        led.search("x", article="nope")


def test_the_index_is_rebuilt_by_replay_and_caught_up(led: ledger.Ledger) -> None:
    led.append([created("a", "T", "alpha beta\n")])
    assert [h.appeared_version for h in led.search("alpha beta")] == [1]
    assert led.path is not None
    (led.path / "text.sqlite").unlink()
    led.text_index.close()
    led.append([edited("a", "alpha gamma\n")])
    assert [(h.appeared_version, h.vanished_version) for h in led.search("alpha beta")] == [(1, 2)]
    led.replay()
    assert [(h.appeared_version, h.vanished_version) for h in led.search("alpha beta")] == [(1, 2)]
    assert [span.version for span in led.blame("a").spans if span.part == "body"] == [1, 2, 1]


def test_a_store_without_a_folder_keeps_the_index_in_memory(store_dir: Path) -> None:
    # Only the EventStore contract is used: a store with no folder (as a database-backed store
    # has) gets its text index in memory.
    store = ledger.FileEventStore(store_dir)
    store.root = None
    with ledger.Ledger(store) as led:
        led.append([created("a", "T", "alpha beta\n")])
        led.append([edited("a", "alpha gamma\n")])
        assert [(h.appeared_version, h.vanished_version) for h in led.search("alpha beta")] == [(1, 2)]
        assert [span.version for span in led.blame("a").spans if span.part == "body"] == [1, 2, 1]
    assert not (store_dir / "text.sqlite").exists()


def test_text_moved_from_the_body_into_a_new_update_block_keeps_its_version(led: ledger.Ledger, tmp_path: Path) -> None:
    # Security notices put an update above the original post: the post's text leaves the body
    # and becomes the new block's text in the same version. Its words are still version 1's.
    draft = tmp_path / "notice.md"
    draft.write_text("---\ntitle: Security releases\n---\n\nReleases are planned for Tuesday.\n\nAll lines are affected.\n")
    ledger.ingest(led, [str(draft)], article="n", actor="ann")
    draft.write_text(
        "---\ntitle: Security releases\n---\n\n## _(Update 11-July)_ Releases available\n\nUpgrade now.\n\n"
        "Releases are planned for Tuesday.\n\nAll lines are affected.\n"
    )
    ledger.ingest(led, [str(draft)], article="n", actor="bob")
    assert [block.heading for block in led.article("n").blocks] == ["## _(Update 11-July)_ Releases available"]
    blame = led.blame("n")
    assert blame.text == draft.read_text()
    words = [(word, span.version) for span in blame.spans if span.part == "block" for word in re.findall(r"\w+", span.text)]
    moved = re.findall(r"\w+", "Releases are planned for Tuesday. All lines are affected.")
    assert words == [("Upgrade", 2), ("now", 2), *((word, 1) for word in moved)]


@pytest.mark.parametrize("paragraphs", [90, 91, 1500])
def test_a_long_post_moved_under_a_new_update_block_keeps_its_version(led: ledger.Ledger, tmp_path: Path, paragraphs: int) -> None:
    # The same as above for a post of any length: from about 190 lines on, the post's words were
    # too many to compare pair by pair, and all of it was credited to the version that put the
    # update above it. Their common end is kept without comparing; a change inside a long text
    # is compared line by line first.
    post = "".join(f"Original paragraph {i} about topic {i}, written on day one.\n\n" for i in range(paragraphs))
    draft = tmp_path / "notice.md"
    draft.write_text(f"---\ntitle: Notice\n---\n\n{post}")
    ledger.ingest(led, [str(draft)], article="n", actor="rod")
    # The post's last line changed too: the texts share no end, and what is between them is long.
    moved = post[: -len("day one.\n\n")] + "day two.\n\n"
    draft.write_text(f"---\ntitle: Notice\n---\n\n## _(Update 27-Sep-2016)_ Releases available\n\nThe releases are out.\n\n{moved}")
    ledger.ingest(led, [str(draft)], article="n", actor="ann")
    edited_post = moved.replace("paragraph 7 about", "paragraph seven about").replace(f"topic {paragraphs - 3},", "the last topics,")
    draft.write_text(f"---\ntitle: Notice\n---\n\n## _(Update 27-Sep-2016)_ Releases available\n\nThe releases are out.\n\nA new first line.\n\n{edited_post}")
    ledger.ingest(led, [str(draft)], article="n", actor="bob")
    blame = led.blame("n")
    assert blame.text == draft.read_text()
    changed = {word: span.version for span in blame.spans if span.part == "block" for word in re.findall(r"\w+", span.text)
               if word in ("releases", "new", "first", "seven", "last", "Original", "day", "two", "one")}
    assert changed == {"releases": 2, "new": 3, "first": 3, "seven": 3, "last": 3, "Original": 1, "day": 1, "two": 2, "one": 1}
