"""The web viewer's prose diff (ledger.diffs.prose_diff): paragraphs matched first, whole words
inside them, moves shown as moves, rewrites shown whole, caps; and its escaping into markup."""

from __future__ import annotations

import time

import pytest

from ledger import diffs
from ledger.diffs import paragraphs, prose_diff, word_runs
from ledger.web.present import render_text, runs_html, whole


def _marked(runs: list[diffs.Run]) -> str:
    return "".join(r.text if r.op == "equal" else (f"[-{r.text}-]" if r.op == "delete" else f"{{+{r.text}+}}") for r in runs)


def test_numbers_and_words_change_whole() -> None:
    assert _marked(word_runs("The toll rose to 12 on Tuesday.", "The toll rose to 14 on Tuesday.")) == "The toll rose to [-12-]{+14+} on Tuesday."
    assert "air" not in _marked(word_runs("a strike on the base", "an airstrike on the base")).replace("airstrike", "")


@pytest.mark.parametrize(("old", "new"), [("a b c", "a x c"), ("", "new words"), ("old words", ""), ("Ünïcödé 12, tab\tand  spaces.", "Ünïcödé 14; tab and spaces!")])
def test_runs_give_both_texts_back(old: str, new: str) -> None:
    runs = word_runs(old, new)
    assert "".join(r.text for r in runs if r.op != "insert") == old
    assert "".join(r.text for r in runs if r.op != "delete") == new


def test_many_distinct_words_past_the_surrogate_range() -> None:
    # Words are mapped to characters; more than 55,296 distinct words must skip the surrogates.
    old = " ".join(f"w{n}" for n in range(60_000))
    new = old.replace("w59999", "changed")
    runs = word_runs(old, new)
    assert "".join(r.text for r in runs if r.op != "delete") == new


def test_unchanged_paragraphs_and_whitespace_noise() -> None:
    result = prose_diff("One two.\n\nThree  four.", "One two.\n\n\nThree\u00a0four.\n")
    assert [b.kind for b in result.blocks] == ["same", "same"]
    assert result.words_added == result.words_removed == 0


def test_an_edit_marks_words_a_rewrite_shows_whole() -> None:
    old = "The bridge was closed on Tuesday after engineers found cracks in two cables.\n\nThe mayor spoke at noon about the closure and the ferries."
    new = "The bridge was closed on Tuesday after engineers found cracks in three cables.\n\nFerries will run every hour, officials said in a statement tonight."
    kinds = [b.kind for b in prose_diff(old, new).blocks]
    assert kinds == ["changed", "rewritten"]
    changed = prose_diff(old, new).blocks[0]
    assert [(r.op, r.text) for r in changed.runs if r.op != "equal"] == [("delete", "two"), ("insert", "three")]


def test_a_moved_paragraph_is_shown_moved_with_its_edits() -> None:
    first = "Engineers found cracks in two of the supporting cables on Tuesday morning."
    second = "Ferries will run every half hour until the bridge reopens, the port said."
    third = "The mayor asked drivers to avoid the harbour district during the repairs."
    result = prose_diff(f"{first}\n\n{second}\n\n{third}", f"{second}\n\n{third}\n\n{first.replace('two', 'three')}")
    moved = [b for b in result.blocks if b.kind == "moved"]
    assert len(moved) == 1 and moved[0].moved_from == 0
    assert [(r.op, r.text) for r in moved[0].runs if r.op != "equal"] == [("delete", "two"), ("insert", "three")]
    away = [b for b in result.blocks if b.kind == "removed"]
    assert len(away) == 1 and away[0].moved_to == result.blocks.index(moved[0])
    assert result.counts == {"moved": 1, "same": 2}


def test_added_and_removed_paragraphs_count_words() -> None:
    result = prose_diff("Keep this.\n\nDrop these three.", "Keep this.\n\nA new paragraph here.\n\nAnd another.")
    assert result.counts.get("same") == 1
    assert result.words_added >= 5 and result.words_removed >= 3


def test_a_huge_text_is_compared_by_whole_paragraphs_in_time() -> None:
    paragraph = " ".join(f"word{n}" for n in range(200))
    old = "\n\n".join(f"{n} {paragraph}" for n in range(6000))
    new = old.replace("1 word0", "1 changed").replace("5000 word5", "5000 other")
    started = time.monotonic()
    result = prose_diff(old, new)
    assert result.capped and len(old) + len(new) > diffs.MAX_PROSE_CHARS
    assert {b.kind for b in result.blocks} == {"same", "rewritten"}
    assert time.monotonic() - started < 60  # a bound against hanging, not a speed target (benchmarks/)


def test_fragments_are_escaped_before_they_are_wrapped() -> None:
    runs = tuple(word_runs("<b>safe</b> text", "<script>alert(1)</script> text"))
    html = str(runs_html(runs))
    assert "<script" not in html and "<b>" not in html and "script&gt;alert(1)" in html
    assert '<ins><span class="vh">added: </span>' in html and '<del><span class="vh">removed: </span>' in html
    assert "<img" not in str(whole("<img src=x onerror=alert(1)>", "ins"))


def test_drafts_render_inert() -> None:
    markdown = str(render_text("Hi <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n[click](javascript:alert(1)) [ok](https://example.org)", True))
    assert "<script" not in markdown and "onerror" not in markdown.replace("onerror=alert(1)&gt;", "") and 'href="javascript' not in markdown
    assert 'href="https://example.org"' in markdown
    plain = str(render_text("<script>alert(1)</script>\n\nsecond", False))
    assert plain == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n<p>second</p>\n"
    assert paragraphs("a\n\n \n\nb\nc") == ["a", "b\nc"]


def test_long_unchanged_stretches_fold_to_their_ends() -> None:
    from ledger.web.present import fold

    same = [f"Paragraph {n} stays exactly as it was." for n in range(10)]
    result = prose_diff("\n\n".join([*same, "The end was here."]), "\n\n".join([*same, "The end is here."]))
    shown = fold(result)
    # The leading stretch folds whole but for the paragraph next to the change.
    assert [(s.block.kind if s.block else f"fold {s.hidden}") for s in shown] == ["fold 9", "same", "changed"]
    short = fold(prose_diff("a\n\nb\n\nc", "a\n\nb\n\nd"))
    assert all(s.block is not None for s in short)


def test_a_split_or_merged_paragraph_is_shown_as_such() -> None:
    whole_paragraph = "The council met on Monday. It approved the harbour budget and the new ferry timetable for the summer."
    parts = "The council met on Monday.\n\nIt approved the harbour budget and the new ferry timetable for the summer season."
    split = prose_diff(f"Intro stays.\n\n{whole_paragraph}\n\nEnd stays.", f"Intro stays.\n\n{parts}\n\nEnd stays.")
    assert [b.kind for b in split.blocks] == ["same", "split", "same"]
    assert split.blocks[1].new == parts
    assert [(r.op, r.text) for r in split.blocks[1].runs if r.op != "equal"] == [("delete", " "), ("insert", "\n\n"), ("insert", " season")]
    assert "¶" in str(runs_html(split.blocks[1].runs))
    merged = prose_diff(f"Intro stays.\n\n{parts}\n\nEnd stays.", f"Intro stays.\n\n{whole_paragraph}\n\nEnd stays.")
    assert [b.kind for b in merged.blocks] == ["same", "merged", "same"] and merged.counts == {"same": 2, "merged": 1}
    assert merged.words_removed == 1 and merged.words_added == 0
