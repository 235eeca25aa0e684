"""Rendering views back to drafts: exact for what drafts wrote, sound for what events wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import ledger
from ledger.drafts import ingest_draft, parse_draft
from ledger.rendering import categories_line, fingerprint, render, split_blocks
from ledger.times import parse_when


def create(led: ledger.Ledger, article: str, **data: object) -> None:
    led.append([{"type": "ArticleCreated", "article": article, "data": {"title": "T", **data}}])


def test_an_article_written_by_events_renders_as_plain_text(led: ledger.Ledger) -> None:
    create(led, "a", body="\nBody.\n\n", categories=["x", "y"])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nMore.\n"}}])
    text = render(led.article("a"))
    assert text == "T\n\nBody.\n\nUpdate:\nMore.\nCategories: x, y"
    again = parse_draft(text, "a.txt")
    view = led.article("a")
    assert (again.title, again.body, [(b.heading, b.text) for b in again.blocks], again.categories) == (
        view.title, view.body, [(b.heading, b.text) for b in view.blocks], view.categories)


def test_a_body_without_a_final_line_break_keeps_the_categories_line_apart(led: ledger.Ledger) -> None:
    create(led, "a", body="Body.", categories=["x"])
    assert render(led.article("a")) == "T\nBody.\nCategories: x"
    assert parse_draft(render(led.article("a")), "a.txt").categories == ["x"]


def test_the_categories_line_as_written_is_kept_while_it_says_the_same(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft("T\n\nBody\n\ncategories:x,y\n", "a.txt"))
    assert render(led.article("a")) == "T\n\nBody\n\ncategories:x,y\n"
    led.append([{"type": "CategoriesChanged", "article": "a", "data": {"added": ["z"]}}])
    assert render(led.article("a")) == "T\n\nBody\n\nCategories: x, y, z\n"
    led.append([{"type": "CategoriesChanged", "article": "a", "data": {"removed": ["z"]}}])
    assert render(led.article("a")) == "T\n\nBody\n\ncategories:x,y\n"


def test_every_version_and_time_of_a_revised_draft(led: ledger.Ledger, samples: Path) -> None:
    first = (samples / "deir-ez-zor-blockade.txt").read_text(encoding="utf-8")
    body_end = first.index("Update from Al Masdar News:")
    before_update = first[:body_end] + "Categories: conflict zones"
    versions = [before_update, first, first.replace("conflict zones, latest", "latest, conflict zones, syria")]
    times = ["2017-09-05T12:00:00Z", "2017-09-05T16:05:00Z", "2017-09-06T08:00:00Z"]
    for text, when in zip(versions, times):
        ingest_draft(led, parse_draft(text, "deir-ez-zor-blockade.txt"), at=parse_when(when))
    for number, (text, when) in enumerate(zip(versions, times), 1):
        assert render(led.article("deir-ez-zor-blockade", version=number)) == text
        assert render(led.article("deir-ez-zor-blockade", at=when)) == text
    assert render(led.article("deir-ez-zor-blockade", at="2017-09-05T16:04:59Z")) == versions[0]
    with pytest.raises(ledger.VersionNotFoundError):
        led.article("deir-ez-zor-blockade", at="2017-09-05T11:59:59Z")


def test_markdown_front_matter_values_survive_event_changes(led: ledger.Ledger) -> None:
    text = "---\ntitle: T\ncategory: Security\nauthor: Ana\ndate: 2020-01-02\n---\n\nBody\n"
    ingest_draft(led, parse_draft(text, "m.md"))
    assert render(led.article("m")) == text
    led.append([{"type": "ArticleEdited", "article": "m", "data": {"title": "New title"}}])
    fresh = render(led.article("m"))
    values = yaml.safe_load(fresh.split("---\n")[1])
    assert values["title"] == "New title" and values["category"] == "Security" and values["author"] == "Ana"
    assert fresh.endswith("---\n\nBody\n")
    assert parse_draft(fresh, "m.md").metadata["date"] == "2020-01-02"


def test_split_blocks_and_helpers() -> None:
    body, blocks = split_blocks("Intro\n\nUpdate 1:\na\n\n```\n\nUpdate 2:\n```\n\n(Update 3) b\n", markdown=True)
    assert body == "Intro\n\n"
    assert [h for h, _ in blocks] == ["Update 1:", "(Update 3) b"]  # never inside fenced code
    assert categories_line([]) == "" and categories_line(["a", "b"]) == "Categories: a, b"
    assert fingerprint("t", ["a"], {"k": 1}) != fingerprint("t", ["a"], {"k": True})
    assert fingerprint("t", ["a"], {"k": 1, "_draft": {}}) == fingerprint("t", ["a"], {"k": 1})
