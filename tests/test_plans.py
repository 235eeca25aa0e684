"""Planning the events that turn one article into another (`ledger.plans`), as drafts and
`Ledger.restore` both use it: JSON equality of values, blocks matched by heading, categories in
order, and restores that render exactly as the old version."""

from __future__ import annotations

import pytest

import ledger
from ledger.draft_format import parse_draft
from ledger.drafts import ingest_draft
from ledger.plans import plan_changes, same_value
from ledger.rendering import render
from tests.helpers import created


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (1, 1, True),
        (1, True, False),
        (1, 1.0, False),
        (0, False, False),
        (None, None, True),
        ("1", 1, False),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({"a": [1]}, {"a": [True]}, False),
        ([1, 2], [2, 1], False),
    ],
)
def test_same_value_is_json_equality(a: object, b: object, same: bool) -> None:
    assert same_value(a, b) is same


def test_restore_sees_one_become_true(led: ledger.Ledger) -> None:
    led.append([created("a", "A", "x\n", data={"metadata": {"n": 1, "flag": 0}})])
    led.append([{"type": "MetadataChanged", "article": "a", "data": {"set": {"n": True, "flag": False}}}])
    assert led.article("a").metadata == {"n": True, "flag": False}
    led.restore("a", 1)
    now = led.article("a")
    assert now.version == 3
    assert [(k, type(v)) for k, v in now.metadata.items()] == [("n", int), ("flag", int)]  # not the bools of v2
    assert render(now) == render(led.article("a", 1))
    with pytest.raises(ledger.NothingToDoError):
        led.restore("a", 1)


def test_restore_of_removed_and_reordered_blocks_keeps_the_blocks_that_stayed(led: ledger.Ledger) -> None:
    led.append([created("a", "A", "x\n")])
    for heading in ("Update 1:", "Update 2:", "Update 3:"):
        led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": heading, "text": f"\n{heading} text\n"}}])
    # v5: block 2 removed; v6: block 3 moved to the front.
    led.append([{"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 1}}])
    led.append([
        {"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 1}},
        {"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update 3:", "text": "\nUpdate 3: text\n", "index": 0}},
    ])
    assert [b.heading for b in led.article("a").blocks] == ["Update 3:", "Update 1:"]
    led.restore("a", 5)  # [1, 3]: one block moves (re-added), the other stays as it was
    now = led.article("a")
    assert [(b.heading, b.added_version) for b in now.blocks] == [("Update 1:", 7), ("Update 3:", 6)]
    assert sorted(e.type for e in led.events(article="a") if e.version == 7) == ["UpdateBlockAdded", "UpdateBlockRemoved"]
    assert render(now) == render(led.article("a", 5))
    led.restore("a", 4)  # [1, 2, 3]: only block 2 comes back
    now = led.article("a")
    assert [(b.heading, b.added_version) for b in now.blocks] == [("Update 1:", 7), ("Update 2:", 8), ("Update 3:", 6)]
    assert [e.type for e in led.events(article="a") if e.version == 8] == ["UpdateBlockAdded"]
    assert render(now) == render(led.article("a", 4))


def test_drafts_and_restore_plan_alike(led: ledger.Ledger) -> None:
    first = "---\ntitle: T\ncount: 1\ncategories: [a, b, c]\n---\nBody\n\nUpdate 1:\none\n\nUpdate 2:\ntwo\n"
    second = "---\ntitle: T\ncount: true\ncategories: [c, a]\n---\nBody\n\nUpdate 2:\ntwo!\n"
    ingest_draft(led, parse_draft(first, "s.md"))
    ingest_draft(led, parse_draft(second, "s.md"))
    from_draft = plan_changes(led.article("s"), parse_draft(first, "s.md"))
    from_version = plan_changes(led.article("s"), led.article("s", 1))
    assert from_draft == from_version
    assert [e["type"] for e in from_version] == ["UpdateBlockAdded", "UpdateBlockEdited", "CategoriesChanged", "MetadataChanged"]
    led.restore("s", 1)
    assert render(led.article("s")) == first


def test_a_plain_text_target_leaves_unstated_metadata_alone(led: ledger.Ledger) -> None:
    ingest_draft(led, parse_draft("T\n\nBody\n", "s.txt"))
    led.append([{"type": "MetadataChanged", "article": "s", "data": {"set": {"source": "wire"}}}])
    draft = parse_draft("T\n\nBody\n", "s.txt")
    assert plan_changes(led.article("s"), draft, metadata_keys={"_draft"}) == []
    assert plan_changes(led.article("s"), draft) == [{"type": "MetadataChanged", "data": {"set": {}, "unset": ["source"]}}]


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        # A new notice put on top while the old one's heading went down a level (the corpus's
        # openssl notice of March 2022): the old block stays the old block.
        ("# _(Update 16-Mar-2022)_ Summary\n\nPlanned.\n\n## Original post\n\nA fix.\n",
         "# _(Update 18-Mar-2022)_ Out\n\nReleased.\n\n### _(Update 16-Mar-2022)_ Summary\n\nPlanned.\n\n## Original post\n\nA fix.\n",
         [("UpdateBlockAdded", 0), ("UpdateBlockEdited", 1)]),
        # A heading reworded above the same text, a block put before it.
        ("## Update 1: roads shut\n\nThe roads are shut.\n",
         "## Update 2: rain\n\nMore rain.\n\n## Update 1: all roads shut\n\nThe roads are shut.\n",
         [("UpdateBlockAdded", 0), ("UpdateBlockEdited", 1)]),
        # Nothing matches: paired in order, as before.
        ("## Update 1: a\n\nOne.\n", "## Update 2: b\n\nTwo.\n\n## Update 3: c\n\nThree.\n",
         [("UpdateBlockEdited", 0), ("UpdateBlockAdded", None)]),
    ],
    ids=["heading-level", "heading-reworded", "unmatched"],
)
def test_blocks_are_matched_by_heading_then_loosely_by_heading_and_text(led: ledger.Ledger, before: str, after: str,
                                                                        events: list[tuple[str, int | None]]) -> None:
    """The feed says when each update block was added: a block kept under a changed heading must
    stay the block it was (its added version and time), not pass them to a new block above."""
    head = "---\ntitle: Notice\n---\n\n"
    first = ingest_draft(led, parse_draft(head + before, "n.md"))
    ingest_draft(led, parse_draft(head + after, "n.md"))
    assert [(e.type, e.data.get("index")) for e in led.events(article="n") if e.version == 2] == events
    assert render(led.article("n")) == head + after
    blocks = led.article("n").blocks
    if events[0][0] == "UpdateBlockAdded":
        assert [b.added_version for b in blocks] == [2, *[first.version] * (len(blocks) - 1)]
