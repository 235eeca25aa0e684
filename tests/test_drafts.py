"""Parsing drafts and turning them into events: the format rules, the events each change gives,
and bad drafts (one-line errors naming file and line, nothing appended)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger
from ledger.draft_format import Draft, parse_draft, read_draft
from ledger.drafts import describe, ingest, ingest_draft, plan
from ledger.rendering import inner_text, is_update_heading, render
from ledger.times import parse_when

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REVISIONS = EXAMPLES / "revisions" / "harbour-bridge-closure"


def types_of(led: ledger.Ledger, article: str, version: int) -> list[str]:
    return [e.type for e in led.events(article=article) if e.version == version]


# --- the plain-text format, on the shared sample ----------------------------------------------


def test_sample_parses_by_the_rules(samples: Path) -> None:
    path = samples / "deir-ez-zor-blockade.txt"
    draft = read_draft(path)
    assert draft.id == "deir-ez-zor-blockade"
    assert draft.format == "text"
    assert draft.title.startswith("Video: In Syria, Deir ez-Zor civilians celebrate")
    assert draft.body.startswith("\n\nRT reports:\n\nEncouraged")
    assert draft.body.endswith("in The Duran\n\n")
    assert [b.heading for b in draft.blocks] == ["Update from Al Masdar News:"]
    assert draft.blocks[0].text.startswith("\n\nBEIRUT, LEBANON (4:05 P.M.)")
    assert draft.blocks[0].text.endswith("click HERE.\n\n")
    assert draft.categories == ["conflict zones", "latest"]
    # Everything about its layout is the default but one: the blank line before its
    # `Categories:` line is rendering's (so adding or removing that line edits no text).
    assert draft.metadata == {"_draft": {"categories_break": True}}
    assert render(draft).encode() == path.read_bytes()


def test_sample_ingests_as_one_version(led: ledger.Ledger, samples: Path) -> None:
    path = samples / "deir-ez-zor-blockade.txt"
    [result] = ingest(led, [path], at="2017-09-05T16:05:00Z", actor="OffG", reason="first draft")
    assert (result.status, result.version) == ("created", 1)
    assert result.changes == ["ArticleCreated", "UpdateBlockAdded"]
    view = led.article("deir-ez-zor-blockade")
    assert render(view).encode() == path.read_bytes()
    assert view.blocks[0].added_version == 1
    [again] = ingest(led, [path])
    assert (again.status, again.version, again.changes) == ("unchanged", 1, [])
    assert led.head().position == 2


@pytest.mark.parametrize(
    "line",
    [
        "Update from Al Masdar News:",
        "UPDATE (4:05 P.M.):",
        "Update 2:",
        "Update:",
        "UPDATE: The army reached the base at dawn.",
        "Updated, 6 p.m.:",
        "Update - 10:30:",
        "## _(Update 16-Mar-2022)_ Security releases available",
        "## (Update 04-Jul-2022) OpenSSL Security Release",
        "_(Update 12-June-2018)_ Security releases available",
        "**Update (29-Mar-2012):** Fix styles somewhat for RSS readers.",
        "**UPDATE 2026-02-19**: New researchers need signal.",
    ],
)
def test_update_headings(line: str) -> None:
    assert is_update_heading(line)


@pytest.mark.parametrize(
    "line",
    [
        "Updates are now available for all active Node.js release lines.",
        "## Update root certificates",
        "### Update",
        "Update your installation with:",
        "**_(Updates to this post, including a schedule change are included below)_**",
        "RT reports:",
        "An update on DHE man-in-the-middle protection",
    ],
)
def test_not_update_headings(line: str) -> None:
    assert not is_update_heading(line)


def test_a_heading_must_start_a_paragraph(led: ledger.Ledger) -> None:
    text = "Title\n\nThe report ends with\nUpdate: the figures below are new.\n\nUpdate 2:\nMore.\n"
    draft = parse_draft(text, "story.txt")
    assert [b.heading for b in draft.blocks] == ["Update 2:"]
    assert draft.body == "\nThe report ends with\nUpdate: the figures below are new.\n\n"


@pytest.mark.parametrize(
    "text",
    [
        "Title",
        "Title\n",
        "\n\n  Title  \r\nBody\r\n\r\nUpdate:\r\nmore\r\nCategories: a, b\r\n",
        "Title\nCategories: a",
        "Title\n\nBody\n\ncategories:a ,b,, c \n\n",
        "Title\n\nBody\n\nCategories:",
        "Title\n\nBody\nCategories: b, a, b",
        "\ufeffTitle\n\nBody",
        "Title\n\nUpdate 1:\none\nUpdate 2:\n\nUpdate 3:\nthree",
        # Line boundaries other than \n (str.splitlines's) end a line before a heading too.
        "Title\nx\u2028\nUpdate 1:\ny\n",
        "Title\nx\r\r\nUpdate 1:\ny\n",
        "Title\nx\x0c\nUpdate 1:\n\nUpdate 2:\nz\n",
    ],
)
def test_plain_text_layout_round_trips(led: ledger.Ledger, text: str) -> None:
    draft = parse_draft(text, "story.txt")
    assert render(draft) == text
    ingest_draft(led, draft)
    assert render(led.article("story")) == text


def test_categories_line_forms() -> None:
    assert parse_draft("T\n\nB\n\ncategories:a ,b,, c ", "s.txt").categories == ["a", "b", "c"]
    assert parse_draft("T\n\nB\n\nCategories:", "s.txt").categories == []
    assert parse_draft("T\n\nB\nCategories: x\nmore text", "s.txt").categories == []


# --- revisions: which events each change gives -------------------------------------------------


def test_example_revisions_give_the_expected_events(led: ledger.Ledger) -> None:
    for number in (1, 2, 3):
        ingest(led, [REVISIONS / f"v{number}.txt"], at=f"2024-03-0{number}T09:00:00Z", article="harbour-bridge-closure")
    assert types_of(led, "harbour-bridge-closure", 1) == ["ArticleCreated"]
    assert types_of(led, "harbour-bridge-closure", 2) == ["ArticleEdited", "UpdateBlockAdded"]
    assert types_of(led, "harbour-bridge-closure", 3) == ["ArticleEdited", "UpdateBlockAdded", "CategoriesChanged"]
    for number in (1, 2, 3):
        view = led.article("harbour-bridge-closure", version=number)
        assert render(view).encode() == (REVISIONS / f"v{number}.txt").read_bytes()
    edit = next(e for e in led.events(article="harbour-bridge-closure") if e.version == 2 and e.type == "ArticleEdited")
    # "two" -> "three": the edit is recorded as the few characters that changed, not the body.
    [[start, end, text]] = edit.data["patch"]
    assert (end - start, text) == (2, "hree")


def base(blocks: str = "", categories: str = "a, b") -> str:
    return f"Title\n\nBody text.\n\n{blocks}Categories: {categories}"


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (base(), base("Update 1:\none\n\n"), [("UpdateBlockAdded", {"heading": "Update 1:", "text": "\none\n", "index": None})]),
        (base("Update 1:\none\n\n"), base("Update 1:\nONE\n\n"), [("UpdateBlockEdited", {"index": 0})]),
        (base("Update 1:\none\n\nUpdate 2:\ntwo\n\n"), base("Update 2:\ntwo\n\n"), [("UpdateBlockRemoved", {"index": 0})]),
        (base("Update 1:\none\n\nUpdate 3:\nthree\n\n"), base("Update 1:\none\n\nUpdate 2:\ntwo\n\nUpdate 3:\nthree\n\n"),
         [("UpdateBlockAdded", {"heading": "Update 2:", "text": "\ntwo\n", "index": 1})]),
        (base("Update 1:\none\n\n"), base("Update 1 (corrected):\none\n\n"), [("UpdateBlockEdited", {"index": 0, "heading": "Update 1 (corrected):"})]),
        (base(categories="a, b, c"), base(categories="c, a"), [("CategoriesChanged", {"added": ["c", "a"], "removed": ["b", "a", "c"]})]),
        (base(categories="a, b"), base(categories="a, b, c"), [("CategoriesChanged", {"added": ["c"], "removed": []})]),
    ],
)
def test_each_change_gives_its_events(led: ledger.Ledger, before: str, after: str, expected: list[tuple[str, dict]]) -> None:
    ingest_draft(led, parse_draft(before, "story.txt"))
    result = ingest_draft(led, parse_draft(after, "story.txt"))
    events = [e for e in led.events(article="story") if e.version == 2]
    assert [(e.type) for e in events] == [kind for kind, _ in expected]
    for event, (_, subset) in zip(events, expected, strict=False):
        assert {k: event.data[k] for k in subset} == subset
    assert result.version == 2
    assert render(led.article("story")) == after
    assert render(led.article("story", version=1)) == before


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Title", "", " ", "Body line.", "Update:", "UPDATE (4 P.M.):", "Update from X:", "Categories: a, b",
                         "categories: c", "## _(Update 1-Jan-2020)_ x", "\t", "Update 2:", "text ü €"]),
        min_size=1, max_size=12,
    ),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_any_text_draft_renders_back_exactly(lines: list[str], newline: str, final: bool) -> None:
    text = newline.join(lines) + (newline if final else "")
    try:
        draft = parse_draft(text, "story.txt")
    except ledger.DraftError:
        assert not text.strip()
        return
    assert render(draft) == text
    assert parse_draft(render(draft), "story.txt") == draft


# --- Markdown ----------------------------------------------------------------------------------


MD = """---
title: "Night market: it returns"
date: 2024-05-03T18:00:00Z
category: Culture
tags: [food, summer]
author: Jonas
count: 3
nested: {a: [1, 2.5, true, null]}
---

Body.

## _(Update 4-May-2024)_ Delayed

Opens at 7.
"""


def front(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def test_markdown_front_matter(led: ledger.Ledger) -> None:
    draft = parse_draft(MD, "night-market.md")
    assert draft.format == "markdown"
    assert draft.title == "Night market: it returns"
    assert draft.categories == ["Culture", "food", "summer"]
    assert {k: v for k, v in draft.metadata.items() if k != "_draft"} == {
        "date": "2024-05-03T18:00:00Z", "author": "Jonas", "count": 3, "nested": {"a": [1, 2.5, True, None]},
    }
    assert draft.body == "\nBody.\n\n"
    assert [b.heading for b in draft.blocks] == ["## _(Update 4-May-2024)_ Delayed"]
    ingest_draft(led, draft)
    assert render(led.article("night-market")) == MD


def test_markdown_value_changes_are_recorded_strictly(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft(MD, "night-market.md"))
    changed = MD.replace("count: 3", "count: 3.0").replace("author: Jonas", "author: true")
    ingest_draft(led, parse_draft(changed, "night-market.md"))
    view = led.article("night-market")
    assert view.metadata["count"] == 3.0 and isinstance(view.metadata["count"], float)
    assert view.metadata["author"] is True
    assert render(view) == changed
    assert render(led.article("night-market", version=1)) == MD


def test_front_matter_written_afresh_when_events_change_its_values(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft(MD, "night-market.md"))
    led.append([
        {"type": "CategoriesChanged", "article": "night-market", "data": {"added": ["events"]}},
        {"type": "MetadataChanged", "article": "night-market", "data": {"set": {"author": "Ana"}}},
    ])
    view = led.article("night-market")
    text = render(view)
    again = parse_draft(text, "night-market.md")
    assert (again.title, again.categories) == (view.title, view.categories)
    assert {k: v for k, v in again.metadata.items() if k != "_draft"} == {k: v for k, v in view.metadata.items() if k != "_draft"}
    assert text.endswith(inner_text(view))
    assert front(text)["author"] == "Ana"


def test_markdown_id_names_the_article(led: ledger.Ledger, tmp_path: Path) -> None:
    first = tmp_path / "draft-one.md"
    first.write_text("---\ntitle: T\nid: the-story\n---\nBody\n")
    assert ingest(led, [first])[0].article == "the-story"
    moved = tmp_path / "renamed.md"
    first.rename(moved)
    [result] = ingest(led, [moved])
    assert (result.article, result.status) == ("the-story", "unchanged")


def test_format_change_between_versions(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft("T\n\nBody\n", "s.txt"))
    ingest_draft(led, parse_draft("---\ntitle: T\n---\n\nBody\n", "s.md", article="s"))
    ingest_draft(led, parse_draft("T\n\nBody\n", "s.txt"))
    assert [render(led.article("s", version=v)) for v in (1, 2, 3)] == ["T\n\nBody\n", "---\ntitle: T\n---\n\nBody\n", "T\n\nBody\n"]
    assert led.article("s").metadata == {}


# --- TOML, JSON and no front matter; histories that change format ------------------------------

TOML_MD = """+++
# Zola writes TOML front matter between +++ lines
title = "Night market: it returns"
date = 2024-05-03T18:00:00Z
authors = ["Jonas", "Ana"]
tags = ["Culture", "food"]

[extra]
count = 3
nested = { a = [1, 2.5, true] }
+++

Body.

## _(Update 4-May-2024)_ Delayed

Opens at 7.
"""

JSON_MD = """{
  "title": "Night market: it returns",
  "date": "2024-05-03T18:00:00Z",
  "authors": ["Jonas", "Ana"],
  "tags": ["Culture", "food"],
  "extra": {"count": 3, "nested": {"a": [1, 2.5, true]}}
}

Body.

## _(Update 4-May-2024)_ Delayed

Opens at 7.
"""

YAML_MD = """---
title: "Night market: it returns"
date: 2024-05-03T18:00:00Z
authors: [Jonas, Ana]
tags: [Culture, food]
extra:
  count: 3
  nested: {a: [1, 2.5, true]}
---

Body.

## _(Update 4-May-2024)_ Delayed

Opens at 7.
"""

HEADING_MD = "\n# Night market: it returns #\n\nBody.\n\n## _(Update 4-May-2024)_ Delayed\n\nOpens at 7.\n"


def values_of(view: object) -> tuple:
    # The body and blocks as rendered: a part may be stored without the blank line before the
    # heading after it (`rendering.paragraph_break`), which a parsed draft holds.
    return (view.title, view.categories, {k: v for k, v in view.metadata.items() if k != "_draft"},  # type: ignore[attr-defined]
            [b.heading for b in view.blocks], inner_text(view))  # type: ignore[attr-defined, arg-type]


@pytest.mark.parametrize("text", [TOML_MD, JSON_MD, YAML_MD, HEADING_MD], ids=["toml", "json", "yaml", "heading"])
def test_each_front_matter_round_trips_byte_for_byte(led: ledger.Ledger, tmp_path: Path, text: str) -> None:
    path = tmp_path / "night-market.md"
    path.write_bytes(text.encode("utf-8"))
    [result] = ingest(led, [path])
    assert result.status == "created"
    view = led.article("night-market")
    assert render(view).encode("utf-8") == path.read_bytes()
    assert view.title == "Night market: it returns"
    assert [b.heading for b in view.blocks] == ["## _(Update 4-May-2024)_ Delayed"]
    assert ingest(led, [path])[0].status == "unchanged"


def test_every_front_matter_gives_the_same_values() -> None:
    toml, json_, yaml_ = (parse_draft(text, "m.md") for text in (TOML_MD, JSON_MD, YAML_MD))
    assert values_of(toml) == values_of(json_) == values_of(yaml_)
    # TOML's own datetime reads as the text YAML keeps, so `date` is one value whatever the format.
    assert toml.metadata["date"] == "2024-05-03T18:00:00Z"
    assert toml.categories == ["Culture", "food"]
    assert toml.metadata["extra"] == {"count": 3, "nested": {"a": [1, 2.5, True]}}


def test_toml_dates_and_times_become_iso_text() -> None:
    draft = parse_draft('+++\ntitle = "T"\nday = 2024-05-03\nlocal = 2024-05-03 07:32:00\n'
                        'offset = 2024-05-03T07:32:00+02:00\nat = 07:32:00\n+++\n', "m.md")
    assert [draft.metadata[k] for k in ("day", "local", "offset", "at")] == [
        "2024-05-03", "2024-05-03T07:32:00", "2024-05-03T07:32:00+02:00", "07:32:00"]


def test_plain_markdown_takes_its_title_from_the_first_heading() -> None:
    draft = parse_draft(HEADING_MD, "m.md")
    assert (draft.title, draft.body, draft.metadata["_draft"]["syntax"]) == ("Night market: it returns", "\nBody.\n\n", "heading")
    assert render(draft) == HEADING_MD
    assert parse_draft("# C#\r\nBody\n", "m.md").title == "C#"


def test_the_docs_show_one_post_in_every_markdown_syntax() -> None:
    page = (EXAMPLES.parent / "docs" / "drafts-and-watching.md").read_text(encoding="utf-8")
    section = page.split("\n## The Markdown format", 1)[1].split("\n## Bad drafts", 1)[0]
    blocks = [block.split("\n```", 1)[0] + "\n" for block in section.split("```markdown\n")[1:]]
    drafts = [parse_draft(block, "post.md") for block in blocks]
    assert [d.metadata["_draft"].get("syntax", "yaml") for d in drafts] == ["yaml", "toml", "json", "heading"]
    assert len({d.title for d in drafts}) == 1
    fronts = drafts[:3]
    assert [(d.categories, d.metadata["date"], d.metadata["author"]) for d in fronts] == [
        (["culture", "local news", "food", "summer"], "2024-05-03T18:00:00Z", "Jonas Ferreira")] * 3


HISTORY = [
    # Jekyll: YAML, a `category:` key.
    "---\ntitle: Harbour bridge closes\ncategory: transport\nauthor: Jonas  # the desk\n---\n\nThe bridge closes.\n",
    # The move to Zola: TOML, keys reordered and renamed (`tags`), comments, an [extra] table.
    '+++\n# moved from Jekyll\nauthor = "Jonas"\ntitle = "Harbour bridge closes"\ntags = ["transport"]\n\n'
    '[extra]\nlegacy = true\n+++\n\nThe bridge closes.\n',
    # And back: YAML again, another order, another comment, the extra table dropped.
    "---\n# back to YAML\nauthor: Jonas\ncategories:\n  - transport\ntitle: Harbour bridge closes\n---\n\nThe bridge closes.\n",
]


TIMES = ["2024-01-01T10:00:00Z", "2024-02-01T10:00:00Z", "2024-03-01T10:00:00Z"]


def _ingest_history(led: ledger.Ledger, drafts: list[str]) -> None:
    """Ingest `drafts` as the successive versions of bridge.md, one at each of `TIMES`."""
    for text, when in zip(drafts, TIMES, strict=True):
        ingest_draft(led, parse_draft(text, "bridge.md"), at=parse_when(when))


def test_a_history_that_changes_format_renders_every_version_as_written(led: ledger.Ledger) -> None:
    _ingest_history(led, HISTORY)
    assert [render(led.article("bridge", version=v)) for v in (1, 2, 3)] == HISTORY
    assert [render(led.article("bridge", at=when)) for when in TIMES] == HISTORY
    # Each format change is a version of its own, in history and in diff.
    history = led.history("bridge")
    assert [entry.changes for entry in history] == [["created"], ["metadata changed"], ["metadata changed"]]
    assert [entry.size for entry in history] == [len(text.encode("utf-8")) for text in HISTORY]
    diff = led.diff("bridge", 1, 2).text
    assert "+tags = [\"transport\"]" in diff and "-category: transport" in diff
    # The categories stay the same through the key's rename: one membership since version 1.
    assert [(m.article, m.entered_version) for m in led.category("transport", at=TIMES[1]).articles] == [("bridge", 1)]
    assert [(m.article, m.entered_version) for m in led.category("transport").articles] == [("bridge", 1)]
    assert led.article("bridge", version=2).metadata["extra"] == {"legacy": True}
    assert "extra" not in led.article("bridge").metadata


@pytest.mark.parametrize(
    ("text", "opening"),
    [(TOML_MD, "+++\n"), (JSON_MD, "{\n"), (YAML_MD, "---\n")],
    ids=["toml", "json", "yaml"],
)
def test_front_matter_is_written_afresh_in_its_own_syntax(led: ledger.Ledger, text: str, opening: str) -> None:
    ingest_draft(led, parse_draft(text, "m.md"))
    led.append([{"type": "MetadataChanged", "article": "m", "data": {"set": {"author": 'Ana "A" \x7f', "extra": {"n": [1, {"k": 2}]}}}}])
    fresh = render(led.article("m"))
    assert fresh.startswith(opening)
    assert values_of(parse_draft(fresh, "m.md")) == values_of(led.article("m"))


def test_values_toml_cannot_state_are_written_in_yaml(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft(TOML_MD, "m.md"))
    led.append([{"type": "MetadataChanged", "article": "m", "data": {"set": {"subtitle": None}}}])
    fresh = render(led.article("m"))
    assert fresh.startswith("---\n")
    assert values_of(parse_draft(fresh, "m.md")) == values_of(led.article("m"))


def test_a_plain_markdown_draft_keeps_its_heading_until_values_need_front_matter(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft(HEADING_MD, "m.md"))
    led.append([{"type": "ArticleEdited", "article": "m", "data": {"title": "A new title"}}])
    assert render(led.article("m")) == "# A new title\n\nBody.\n\n## _(Update 4-May-2024)_ Delayed\n\nOpens at 7.\n"
    led.append([{"type": "CategoriesChanged", "article": "m", "data": {"added": ["food"]}}])
    fresh = render(led.article("m"))
    assert fresh.startswith("---\ntitle: A new title\ncategories:\n- food\n---\n")
    assert values_of(parse_draft(fresh, "m.md")) == values_of(led.article("m"))


# --- Zola taxonomies: categories in a `taxonomies` table -----------------------------------------

ZOLA = {
    "toml": '+++\ntitle = "Night market"\n\n[taxonomies]\n# Zola keeps taxonomies here\nseries = ["city"]\n'
            'tags = ["food", "night"]\n\n[extra]\nlead = true\n+++\n\nStalls open at dusk.\n',
    "yaml": "---\ntitle: Night market\ntaxonomies:  # as Zola names them\n  tags: [food, night]\n  series: [city]\n"
            "extra: {lead: true}\n---\n\nStalls open at dusk.\n",
    "json": '{\n  "title": "Night market",\n  "taxonomies": {"series": ["city"], "tags": ["food", "night"]},\n'
            '  "extra": {"lead": true}\n}\n\nStalls open at dusk.\n',
}


def front_values(text: str) -> dict:
    """The values of any front matter, parsed by its own syntax's reader rather than ledger's."""
    if text.startswith("+++\n"):
        return tomllib.loads(text.split("+++\n")[1])
    if text.startswith("{"):
        return json.loads(text[: text.index("\n}\n") + 2])
    return front(text)


@pytest.mark.parametrize("syntax", list(ZOLA))
def test_zola_taxonomies_are_categories_and_stay_in_their_table(led: ledger.Ledger, tmp_path: Path, syntax: str) -> None:
    path = tmp_path / "night.md"
    path.write_bytes(ZOLA[syntax].encode("utf-8"))
    ingest(led, [path])
    view = led.article("night")
    assert view.categories == ["food", "night"]
    assert view.metadata["taxonomies"] == {"series": ["city"]}
    assert render(view) == ZOLA[syntax]
    assert ingest(led, [path])[0].status == "unchanged"
    # Categories changed by events: the front matter is written afresh, the categories back in
    # the table under the same key, beside the other taxonomies.
    led.append([{"type": "CategoriesChanged", "article": "night", "data": {"added": ["markets"], "removed": ["night"]}}])
    fresh = render(led.article("night"))
    values = front_values(fresh)
    assert values["taxonomies"] == {"tags": ["food", "markets"], "series": ["city"]}
    assert "tags" not in values and values["extra"] == {"lead": True}
    assert values_of(parse_draft(fresh, "night.md")) == values_of(led.article("night"))
    if syntax == "toml":
        assert '[taxonomies]\ntags = ["food", "markets"]\nseries = ["city"]\n+++\n' in fresh


def test_top_level_categories_come_before_the_taxonomies_table() -> None:
    draft = parse_draft('+++\ntitle = "T"\ntags = ["a"]\n[taxonomies]\ncategories = ["b", "a"]\n+++\n', "t.md")
    assert draft.categories == ["a", "b"]
    assert draft.metadata["_draft"]["categories_key"] == "tags" and "categories_table" not in draft.metadata["_draft"]
    # A table without categories in it is plain metadata.
    other = parse_draft('+++\ntitle = "T"\n[taxonomies]\nseries = ["s"]\n+++\n', "t.md")
    assert (other.categories, other.metadata["taxonomies"]) == ([], {"series": ["s"]})


ZOLA_HISTORY = [
    "---\ntitle: Harbour bridge closes\ncategory: transport\n---\n\nThe bridge closes.\n",
    # The move to Zola: TOML, the categories as taxonomy tags, one more of them.
    '+++\ntitle = "Harbour bridge closes"\n\n[taxonomies]\ntags = ["transport", "bridges"]\n+++\n\nThe bridge closes.\n',
    # And back to YAML with a plain `tags:` key, transport dropped.
    "---\n# back to YAML\ntags: [bridges]\ntitle: Harbour bridge closes\n---\n\nThe bridge closes.\n",
]


def test_categories_over_time_survive_a_move_to_zola_taxonomies_and_back(led: ledger.Ledger) -> None:
    _ingest_history(led, ZOLA_HISTORY)
    assert [render(led.article("bridge", version=v)) for v in (1, 2, 3)] == ZOLA_HISTORY
    stints = [(m.category, m.entered_version, m.left_version) for m in led.category_history("bridge")]
    assert stints == [("transport", 1, 3), ("bridges", 2, None)]
    assert [m.article for m in led.category("transport", at=TIMES[1]).articles] == ["bridge"]
    assert led.category("transport").articles == []


# --- authors: one value whatever the key and the syntax -----------------------------------------

AUTHOR_DRAFTS = {
    "yaml author": ("---\ntitle: T\nauthor: Ana Lima\n---\n\nBody.\n", ["Ana Lima"]),
    "yaml author list": ("---\ntitle: T\nauthor: [Ana Lima, Jonas Ferreira]\n---\n\nBody.\n", ["Ana Lima", "Jonas Ferreira"]),
    "yaml authors": ("---\ntitle: T\nauthors:\n  - Jonas Ferreira\n  - Ana Lima\n---\n\nBody.\n", ["Jonas Ferreira", "Ana Lima"]),
    "yaml both keys": ("---\ntitle: T\nauthor: Ana Lima\nauthors: [Jonas Ferreira, Ana Lima]\n---\n\nBody.\n", ["Ana Lima", "Jonas Ferreira"]),
    "jekyll author object": ("---\ntitle: T\nauthor:\n  name: Ana Lima\n  email: ana@example.org\n---\n\nBody.\n", ["Ana Lima"]),
    "toml authors (zola)": ('+++\ntitle = "T"\nauthors = ["Ana Lima", "Jonas Ferreira"]\n+++\n\nBody.\n', ["Ana Lima", "Jonas Ferreira"]),
    "toml extra author (zola)": ('+++\ntitle = "T"\n\n[extra]\nauthor = "Ana Lima"\nlead = true\n+++\n\nBody.\n', ["Ana Lima"]),
    "toml taxonomies authors": ('+++\ntitle = "T"\n\n[taxonomies]\nauthors = ["Ana Lima"]\ntags = ["food"]\n+++\n\nBody.\n', ["Ana Lima"]),
    "json author": ('{\n  "title": "T",\n  "author": "Ana Lima"\n}\n\nBody.\n', ["Ana Lima"]),
    "json params author (hugo)": ('{\n  "title": "T",\n  "params": {"author": " Ana Lima "}\n}\n\nBody.\n', ["Ana Lima"]),
    "no author": ("# T\n\nBody.\n", []),
}


@pytest.mark.parametrize("name", list(AUTHOR_DRAFTS))
def test_authors_are_one_value_whatever_the_front_matter_says(led: ledger.Ledger, tmp_path: Path, name: str) -> None:
    text, authors = AUTHOR_DRAFTS[name]
    path = tmp_path / "post.md"
    path.write_bytes(text.encode("utf-8"))
    ingest(led, [path])
    view = led.article("post")
    assert view.authors == authors
    # The metadata keeps the keys as written, and the draft comes back byte for byte.
    assert render(view).encode("utf-8") == path.read_bytes()
    assert ingest(led, [path])[0].status == "unchanged"
    (summary,) = led.articles()
    assert summary.authors == authors
    assert [s.article for s in led.articles(author="ANA LIMA")] == (["post"] if "Ana Lima" in authors else [])


def test_articles_by_author_follow_renamed_keys_events_and_a_rebuilt_catalog(led: ledger.Ledger) -> None:
    _ingest_history(led, [
        "---\ntitle: Bridge\nauthor: Ana Lima\n---\n\nThe bridge closes.\n",
        # A move to Zola: the author under [extra], a second one beside her.
        '+++\ntitle = "Bridge"\n\n[extra]\nauthors = ["Ana Lima", "Jonas Ferreira"]\n+++\n\nThe bridge closes.\n',
        "---\ntitle: Bridge\nauthors: [Jonas Ferreira]\n---\n\nThe bridge closes.\n",
    ])
    assert [led.article("bridge", version=v).authors for v in (1, 2, 3)] == [["Ana Lima"], ["Ana Lima", "Jonas Ferreira"], ["Jonas Ferreira"]]
    assert led.articles(author="Ana Lima") == []
    assert [s.article for s in led.articles(author="jonas ferreira")] == ["bridge"]
    led.append([{"type": "MetadataChanged", "article": "bridge", "data": {"set": {"extra": {"author": "Rui Costa"}}}}])
    led.append([{"type": "MetadataChanged", "article": "bridge", "data": {"set": {"source": "wire"}, "unset": ["authors"]}}])
    assert led.article("bridge").authors == ["Rui Costa"]
    assert [s.authors for s in led.articles()] == [["Rui Costa"]]
    led.replay()
    assert [s.authors for s in led.articles(author="Rui Costa")] == [["Rui Costa"]]
    with pytest.raises(ledger.InvalidInputError, match="author must be text"):
        led.articles(author=["Rui Costa"])  # type: ignore[arg-type]


# --- state: withdrawn articles, other writers ---------------------------------------------------


def test_withdrawn_article_is_restored_by_a_changed_draft(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft("T\n\nBody\n", "s.txt"))
    led.append([{"type": "ArticleWithdrawn", "article": "s"}])
    assert ingest_draft(led, parse_draft("T\n\nBody\n", "s.txt")).status == "unchanged"
    result = ingest_draft(led, parse_draft("T\n\nBody, edited\n", "s.txt"))
    assert result.changes == ["ArticleRestored", "ArticleEdited"]
    assert not led.article("s").withdrawn


def test_changes_by_another_writer_are_taken_into_account(store_dir: Path) -> None:
    with ledger.open(store_dir) as one, ledger.open(store_dir) as two:
        ingest_draft(one, parse_draft("T\n\nBody\n\nCategories: a", "s.txt"))
        two.append([{"type": "CategoriesChanged", "article": "s", "data": {"added": ["b"]}}])
        result = ingest_draft(one, parse_draft("T\n\nBody!\n\nCategories: a", "s.txt"))
        assert result.version == 3
        assert result.changes == ["ArticleEdited", "CategoriesChanged"]
        assert render(two.article("s")) == "T\n\nBody!\n\nCategories: a"


def test_plan_of_an_unchanged_draft_is_empty(led: ledger.Ledger) -> None:
    draft = parse_draft(MD, "m.md")
    assert plan(draft, None)[0]["type"] == "ArticleCreated"
    ingest_draft(led, draft)
    assert plan(draft, led.article("m")) == []


# --- bad drafts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.txt", b"Title\n\nfine\ncaf\xe9\n", "bad.txt:4: not UTF-8 (byte 0xe9 at column 4)"),
        ("empty.txt", b"", "empty.txt:1: empty draft"),
        ("blank.md", b"\n  \n", "blank.md:1: empty draft"),
        ("plain.md", b"\nJust text\n\n# Title\n", "plain.md:2: no title: a Markdown draft starts with front matter"),
        ("open.md", b"---\ntitle: T\nBody\n", "open.md:1: front matter is not closed"),
        ("broken.md", b"---\ntitle: T\nauthor: [a, b\nx: 1\n---\nBody\n", "broken.md:3: broken front matter"),
        ("untitled.md", b"---\nauthor: me\n---\nBody\n", "untitled.md:1: front matter has no `title`"),
        ("listy.md", b"---\ntitle: [a, b]\n---\n", "listy.md:2: front matter `title` must be non-empty text"),
        ("reserved.md", b"---\ntitle: T\nauthor: x\n_draft: 1\n---\n", "reserved.md:4: front-matter key `_draft` is reserved"),
        ("nan.md", b"---\ntitle: T\nscore: .nan\n---\n", "nan.md:3: front matter `score`: nan is not a finite number"),
        ("badid.md", b"---\ntitle: T\n\nid: a/b\n---\n", "badid.md:4: front matter `id`"),
        ("My Story.txt", b"Title\n", "My Story.txt:1: the file name cannot be the article id"),
        ("ctl.txt", b"Ti\x01tle\n", "ctl.txt:1: title contains a control character"),
        ("cat.txt", b"T\n\nB\nCategories: " + b"x" * 201, "cat.txt:4: category"),
    ],
)
def test_bad_drafts_give_one_line_errors_and_append_nothing(led: ledger.Ledger, tmp_path: Path, name: str, data: bytes, message: str) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Good\n\nBody\n")
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises(ledger.DraftError) as caught:
        ingest(led, [good, bad])
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(str(tmp_path / message.split(":")[0])) and message.split(":", 1)[1] in text
    assert led.head().position == 0


def test_two_drafts_of_one_article_are_refused(led: ledger.Ledger, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: A\nid: same\n---\n")
    (tmp_path / "b.md").write_text("---\ntitle: B\nid: same\n---\n")
    with pytest.raises(ledger.DraftError) as caught:
        ingest(led, [tmp_path])
    assert str(caught.value) == (
        f"{tmp_path / 'b.md'}:1: article 'same' is also the article of {tmp_path / 'a.md'}; ingest one draft per article"
    )
    assert led.head().position == 0


# --- several drafts: one atomic append ----------------------------------------------------------


def test_several_drafts_are_one_atomic_append(led: ledger.Ledger, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a1.txt").write_text("A1\n\nFirst.\n")
    ingest(led, [folder / "a1.txt"], at="2018-01-01T00:00:00Z")
    (folder / "0new.txt").write_text("New\n\nBrand new.\n")
    (folder / "a1.txt").write_text("A1\n\nFirst, edited.\n")
    (folder / "same.txt").write_text("Same\n\nUnchanged.\n")
    ingest(led, [folder / "same.txt"], at="2016-01-01T00:00:00Z")
    head = led.head()
    # a1's edit cannot be dated before its version 1: neither draft's changes are recorded.
    with pytest.raises(ledger.InvalidTimeError, match="'a1'"):
        ingest(led, [folder], at="2017-01-01T00:00:00Z")
    assert led.head() == head
    assert led.current_version("0new") == 0
    results = ingest(led, [folder], at="2019-01-01T00:00:00Z", actor="desk")
    assert [(r.article, r.status, r.version, r.changes) for r in results] == [
        ("0new", "created", 1, ["ArticleCreated"]),
        ("a1", "updated", 2, ["ArticleEdited"]),
        ("same", "unchanged", 1, []),
    ]
    assert [(r.first_position) for r in results] == [head.position + 1, head.position + 2, None]
    appended = list(led.events(after=head.position))
    assert [(e.article, e.position) for e in appended] == [("0new", head.position + 1), ("a1", head.position + 2)]
    assert len({e.recorded_at for e in appended}) == 1  # one append
    assert [r.status for r in ingest(led, [folder])] == ["unchanged"] * 3


def test_draft_model_is_plain_data() -> None:
    draft = parse_draft("T\n\nBody\n\nUpdate:\nx", "s.txt")
    assert Draft.model_validate(draft.model_dump()) == draft
    assert draft.text() == "T\n\nBody\n\nUpdate:\nx"


def test_describe_counts_removed_blocks_in_one_part_where_the_first_was_removed() -> None:
    def removed(index: int) -> dict[str, object]:
        return {"type": "UpdateBlockRemoved", "data": {"index": index}}

    edited = {"type": "ArticleEdited", "data": {"body": "x"}}
    assert describe([removed(2)]) == "removed update block 3"
    assert describe([edited, removed(2), removed(1), edited, removed(0)]) == "edited body, removed 3 update blocks, edited body"


def test_an_ingest_names_the_blocks_it_edits_and_removes_by_heading(led: ledger.Ledger) -> None:
    """A block's number moves as blocks come and go; editors know it by its heading."""
    blocks = "".join(f"Update {n}:\nnews {n}\n\n" for n in range(1, 5))
    ingest_draft(led, parse_draft(f"T\n\nBody.\n\n{blocks}", "s.txt"))
    changed = blocks.replace("Update 2:\nnews 2\n\n", "").replace("news 4", "news four")
    result = ingest_draft(led, parse_draft(f"T\n\nBody.\n\n{changed}Update 5:\nlast\n", "s.txt"))
    assert result.summary == "removed update block 2 'Update 2:', edited update block 3 'Update 4:', added update block 'Update 5:'"
    assert describe([{"type": "UpdateBlockEdited", "data": {"index": 0, "text": "x"}}]) == "edited update block 1"
    # A new heading is said as well (the old one alone read as if the block still had it).
    renamed = ingest_draft(led, parse_draft(f"T\n\nBody.\n\n{changed.replace('Update 3:', 'Update 3 (corrected):')}Update 5:\nlast\n", "s.txt"))
    assert renamed.summary == "edited update block 2 'Update 3:' now 'Update 3 (corrected):'"


def test_an_ingest_summary_never_reads_the_draft_layout_as_a_category_or_a_key(led: ledger.Ledger, tmp_path: Path) -> None:
    # Blogs have a `layout:` key of their own: "categories +b -a, layout" read as if `layout`
    # were a category, and beside "metadata layout" (that key) it said two things in one word.
    draft = tmp_path / "post.md"
    draft.write_text("---\ntitle: Post\ncategory: a\nlayout: post\n---\n\nText.\n")
    ledger.ingest(led, [str(draft)], article="p")
    draft.write_text("---\ntitle: Post\ncategory: b\nlayout: post\n---\n\nText.\n")
    (result,) = ledger.ingest(led, [str(draft)], article="p")
    assert result.summary == "categories +b -a, draft layout"
    draft.write_text("---\ntitle: Post\ncategory: b\nlayout: blog-post\n---\n\nText.\n")
    (result,) = ledger.ingest(led, [str(draft)], article="p")
    assert result.summary == "metadata layout"


def test_a_file_name_given_decomposed_is_the_composed_article_id(led: ledger.Ledger, tmp_path: Path) -> None:
    # macOS hands file names back decomposed (NFD): `café.md` as "cafe" plus a combining accent.
    draft = tmp_path / "cafe\u0301.md"
    draft.write_text("# Café opens\n\nIt opened today.\n", encoding="utf-8")
    ingest(led, [draft])
    assert [a.article for a in led.articles()] == ["caf\u00e9"]
    # The same id given decomposed, where nothing may be changed: a message that says what differs.
    with pytest.raises(ledger.InvalidInputError, match="combining mark"):
        led.append([{"type": "ArticleCreated", "article": "cafe\u0301", "data": {"title": "Café"}}])
    assert led.head().position == 1


def test_a_category_put_before_another_leaves_the_other_where_it_was(led: ledger.Ledger) -> None:
    """A draft that lists a new category before an old one is recorded in its order (the old one
    removed and added again after it, `plans._category_change`), but the old one never left:
    history, the article's and the category's stints say so, before and after a rebuild."""
    ingest_draft(led, parse_draft(base(categories="conflict zones, latest"), "story.txt"))
    ingest_draft(led, parse_draft(base(categories="conflict zones, syria, latest"), "story.txt"))
    ingest_draft(led, parse_draft(base(categories="latest, conflict zones, syria"), "story.txt"))
    assert render(led.article("story")) == base(categories="latest, conflict zones, syria")
    for _ in range(2):
        entries = led.history("story")
        assert [(e.categories_added, e.categories_removed) for e in entries] == [(["conflict zones", "latest"], []), (["syria"], []), ([], [])]
        stints = {m.category: (m.entered_version, m.left_version) for m in led.category_history("story")}
        assert stints == {"conflict zones": (1, None), "latest": (1, None), "syria": (2, None)}
        assert [(m.article, m.entered_version, m.left_version) for m in led.category_stints("latest")] == [("story", 1, None)]
        led.replay()


@pytest.mark.parametrize(
    ("start", "blocks", "name"),
    [
        ("Quake hits coast\n\nA quake struck at dawn.\n", ["\nUpdate 1:\n\nNo casualties reported.\n", "\nUpdate 2:\n\nRoads reopened.\n"], "quake.txt"),
        ("Quake\n\nA quake struck.\n\nCategories: world\n", ["Update 1:\n\nNo casualties.\n\n", "Update 2:\n\nRoads open.\n\n"], "quake.txt"),
        ("---\ntitle: Quake\n---\n\nA quake struck at dawn.\n", ["\n## Update 1:\n\nNo casualties.\n", "\n## Update 2:\n\nRoads open.\n"], "quake.md"),
        ("Quake\r\n\r\nA quake struck.\r\n", ["\r\nUpdate 1:\r\n\r\nNone hurt.\r\n", "\r\nUpdate 2:\r\n\r\nRoads open.\r\n"], "quake.txt"),
        ("Quake\n\nA quake struck.\n", ["\nUpdate 1:\n", "\nUpdate 2:\n"], "quake.txt"),
    ],
    ids=["text", "categories line", "markdown", "crlf", "headings alone"],
)
def test_a_block_added_after_the_last_part_leaves_that_part_as_it_was(led: ledger.Ledger, start: str, blocks: list[str], name: str) -> None:
    """Adding update blocks at the end of a draft, then taking the last away, records only the
    blocks: the blank line the part before a new heading gains (or loses) is rendering's, not an
    edit of that part (which listed every live update as a correction of the one before)."""
    def with_blocks(count: int) -> str:
        if start.endswith("Categories: world\n"):
            head, line = start.rsplit("Categories", 1)
            return head + "".join(blocks[:count]) + "Categories" + line
        return start + "".join(blocks[:count])

    texts = [with_blocks(1), with_blocks(2), with_blocks(1)]
    ingest_draft(led, parse_draft(with_blocks(0), name))
    for text in texts:
        ingest_draft(led, parse_draft(text, name))
    assert [[e.type for e in led.events(article="quake") if e.version == v] for v in (2, 3, 4)] == [
        ["UpdateBlockAdded"], ["UpdateBlockAdded"], ["UpdateBlockRemoved"]]
    for version, text in enumerate([with_blocks(0), *texts], 1):
        assert render(led.article("quake", version)) == text
        blame = led.blame("quake", version)
        assert blame.text == text
        # The blank line before a heading is the block's, whoever wrote the part before it.
        assert {span.version for span in blame.spans if span.part in ("heading", "block")} <= {2, 3}
    assert [e.size for e in led.history("quake")] == [len(t.encode()) for t in [with_blocks(0), *texts]]
    assert [e.changes for e in led.history("quake")] == [["created"], ["block added"], ["block added"], ["block removed"]]


@pytest.mark.parametrize(
    "content",
    ["A quake struck at dawn.\n\nUpdate 1:\n\nNo casualties reported.\n", "A quake struck at dawn.\n", "A quake struck.\r\n\r\nUpdate 1:\r\n\r\nNone hurt.\r\n"],
    ids=["blocks", "body only", "crlf"],
)
def test_adding_or_removing_the_categories_line_edits_no_text(led: ledger.Ledger, content: str) -> None:
    """A reporter who adds a `Categories:` line (after a blank line) to a draft, then takes it out,
    changes the categories and the draft's layout, not the text before it: the blank line there
    is rendering's (layout key `categories_break`), as before an update block's heading. Every
    version renders back byte for byte, and its size in history is that of the text."""
    line_end = "\r\n" if "\r\n" in content else "\n"
    plain = f"Quake hits coast{line_end}{line_end}{content}"
    texts = [plain, f"{plain}{line_end}Categories: world{line_end}", f"{plain}{line_end}Categories: world, asia", plain]
    for text in texts:
        ingest_draft(led, parse_draft(text, "quake.txt"))
    entries = led.history("quake")
    assert [e.changes for e in entries][1:] == [["categories changed", "metadata changed"]] * 3
    assert [(e.categories_added, e.categories_removed) for e in entries][1:] == [(["world"], []), (["asia"], []), ([], ["world", "asia"])]
    assert [e.type for e in led.events(article="quake")].count("ArticleEdited") == 0
    assert not any(e.type == "UpdateBlockEdited" for e in led.events(article="quake"))
    for version, text in enumerate(texts, 1):
        assert render(led.article("quake", version)) == text
        assert led.blame("quake", version).text == text
    assert [e.size for e in entries] == [len(t.encode()) for t in texts]


def test_a_draft_recorded_before_categories_break_is_unchanged_when_ingested_again(led: ledger.Ledger) -> None:
    """Parts recorded with the blank line before the `Categories:` line in their text (as ledger
    recorded them until that blank line became rendering's) are the same draft: ingesting it
    again records nothing, and a block added after them edits nothing else."""
    text = "T\n\nBody.\n\nUpdate 1:\nBlock.\n\nCategories: a\n"
    led.append([
        {"type": "ArticleCreated", "article": "story", "data": {"title": "T", "body": "\nBody.\n\n", "categories": ["a"], "metadata": {"_draft": {"tail": "\n"}}}},
        {"type": "UpdateBlockAdded", "article": "story", "data": {"heading": "Update 1:", "text": "\nBlock.\n\n"}},
    ], reserved_keys=True)
    assert render(led.article("story")) == text
    assert ingest_draft(led, parse_draft(text, "story.txt")).status == "unchanged"
    longer = text.replace("Categories", "Update 2:\nMore.\n\nCategories")
    result = ingest_draft(led, parse_draft(longer, "story.txt"))
    assert result.changes == ["UpdateBlockAdded", "MetadataChanged"]
    assert render(led.article("story")) == longer
    assert render(led.article("story", 1)) == text
    assert [e.size for e in led.history("story")] == [len(t.encode()) for t in (text, longer)]
