"""Diffs of articles, for the CLI and the web viewer alike: line and word diffs of rendered
articles (difflib), as `ledger.views.Diff` models; and the prose diff the viewer shows
(paragraphs matched first, then whole words with diff-match-patch)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal

from diff_match_patch import diff_match_patch  # type: ignore[import-untyped]

from ledger.views import Diff, DiffLine, Hunk, WordChange

CONTEXT = 3
# Words, runs of whitespace, and each punctuation mark on its own ("closed." -> "closed", ".").
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
# Only "\n" ends a line (str.splitlines would also split on \r, \f, \x1c... inside a line).
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def _line(op: str, line: str) -> DiffLine:
    if line.endswith("\n"):
        return DiffLine(op=op, text=line[:-1])  # type: ignore[arg-type]
    return DiffLine(op=op, text=line, newline=False)  # type: ignore[arg-type]


def _unified(line: DiffLine) -> str:
    tail = "\n" if line.newline else "\n\\ No newline at end of text\n"
    return line.op + line.text + tail


def line_diff(article: str, old: str, new: str, from_version: int, to_version: int) -> Diff:
    """The unified line diff of `old` -> `new`, with `CONTEXT` lines around each change."""
    # Lines keep their line breaks, so that "a" against "a\n" is a difference, as in diff(1).
    a, b = _LINE.findall(old), _LINE.findall(new)
    hunks: list[Hunk] = []
    out: list[str] = []
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(CONTEXT):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        lines: list[DiffLine] = []
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                lines.extend(_line(" ", line) for line in a[x1:x2])
                continue
            lines.extend(_line("-", line) for line in a[x1:x2])
            lines.extend(_line("+", line) for line in b[y1:y2])
        hunk = Hunk(from_start=i1 + 1 if i2 > i1 else i1, from_count=i2 - i1, to_start=j1 + 1 if j2 > j1 else j1, to_count=j2 - j1, lines=lines)
        hunks.append(hunk)
    if hunks:
        out.append(f"--- {article} v{from_version}\n")
        out.append(f"+++ {article} v{to_version}\n")
        for hunk in hunks:
            out.append(f"@@ -{_range(hunk.from_start, hunk.from_count)} +{_range(hunk.to_start, hunk.to_count)} @@\n")
            out.extend(_unified(line) for line in hunk.lines)
    text = "".join(out)
    return Diff(article=article, from_version=from_version, to_version=to_version, words=False, hunks=hunks, text=text)


def _range(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start},{count}"


def word_diff(article: str, old: str, new: str, from_version: int, to_version: int) -> Diff:
    """The word diff of `old` -> `new`: runs of equal, deleted and inserted words (whitespace
    kept exactly, so joining the equal and insert runs gives `new` back)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    changes: list[WordChange] = []
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    # Equal runs alternate with the others (a replace gives a delete then an insert), so no run
    # follows one of its own kind.
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            changes.append(WordChange(op="equal", text="".join(a[i1:i2])))
            continue
        if i2 > i1:
            changes.append(WordChange(op="delete", text="".join(a[i1:i2])))
        if j2 > j1:
            changes.append(WordChange(op="insert", text="".join(b[j1:j2])))
    text = "".join(
        change.text if change.op == "equal" else (f"[-{change.text}-]" if change.op == "delete" else f"{{+{change.text}+}}")
        for change in changes
    )
    return Diff(article=article, from_version=from_version, to_version=to_version, words=True, changes=changes, text=text)


# --- prose diff: paragraphs matched first, then whole words inside each changed pair ------------
# For reading (the web viewer): a one-word edit marks one word, a moved paragraph is shown as
# moved, and a paragraph rewritten past `REWRITE_CUTOFF` is shown whole, before and after, rather
# than as confetti of tiny insertions and deletions.

REWRITE_CUTOFF = 0.4
"""A changed paragraph with less than this share of its words kept is shown as a whole rewrite."""
MOVE_CUTOFF = 0.6
"""A removed paragraph this similar to an added one elsewhere is shown as moved."""
WORD_DIFF_TIMEOUT = 0.5
"""Seconds diff-match-patch may spend on one paragraph pair before it settles for a coarser diff."""
MAX_PROSE_CHARS = 2_000_000
"""Above this many characters (both texts together) a prose diff compares whole paragraphs only."""
MAX_MOVE_CANDIDATES = 200
"""Move detection compares every removed paragraph with every added one; above this many of
either it is skipped (wikidiff2 does the same above 100 changed lines)."""

# Paragraphs are separated by blank lines; whitespace inside them (nbsp, re-wrapping) is noise.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SPACES = re.compile(r"\s+")
# Whole words (so "12" -> "14" is one change), runs of whitespace, single other characters.
_WORD = re.compile(r"\w+|\s+|[^\w\s]")
# The tokens of `_WORD` less the runs of whitespace (counted by C, not filtered in Python).
_COUNTED = re.compile(r"\w+|[^\w\s]")

RunOp = Literal["equal", "delete", "insert"]
BlockKind = Literal["same", "added", "removed", "changed", "rewritten", "moved", "split", "merged"]


@dataclass(frozen=True)
class Run:
    """A run of words of a paragraph pair: kept (`equal`), only before (`delete`), only after (`insert`)."""

    op: RunOp
    text: str


@dataclass(frozen=True)
class ProseBlock:
    """One paragraph of a prose diff.

    `same`: unchanged; `added` / `removed`: only after / before; `changed`: edited, `runs` mark
    the words; `rewritten`: edited past the cut-off, shown whole as `old` then `new`; `moved`:
    taken from paragraph `moved_from` of the old text (0-based) to here, `runs` marking any edits
    made on the way; `split`: one old paragraph that became several (`new` holds them, separated
    by blank lines), `merged`: several that became one; `runs` mark the words and breaks. A removed paragraph that moved has `moved_to`, the index of the block that
    shows it at its new place."""

    kind: BlockKind
    old: str = ""
    new: str = ""
    runs: tuple[Run, ...] = ()
    moved_from: int | None = None
    moved_to: int | None = None


@dataclass(frozen=True)
class ProseDiff:
    """A prose diff: its blocks in the order of the new text (removed ones where they stood),
    counts of paragraphs by kind, words added and removed, and whether a cap made it coarser."""

    blocks: tuple[ProseBlock, ...]
    counts: dict[str, int] = field(default_factory=dict)
    words_added: int = 0
    words_removed: int = 0
    capped: bool = False


def paragraphs(text: str) -> list[str]:
    """The paragraphs of `text`: split on blank lines, each stripped, empty ones dropped."""
    return [part.strip() for part in _PARAGRAPH_BREAK.split(text) if part.strip()]


def _normal(paragraph: str) -> str:
    return _SPACES.sub(" ", paragraph).strip()


def _word_count(text: str) -> int:
    return sum(1 for token in _WORD.findall(text) if not token.isspace())


def word_runs(old: str, new: str, *, timeout: float = WORD_DIFF_TIMEOUT) -> list[Run]:
    """Whole-word runs of `old` -> `new`: diff-match-patch over words mapped to characters (so a
    change is never part of a word), then its semantic clean-up, which groups the changes a
    reader would group. Joining the equal and insert runs gives `new` back."""
    tokens: dict[str, str] = {}
    names: list[str] = []

    def encode(text: str) -> str:
        out = []
        for token in _WORD.findall(text):
            code = tokens.get(token)
            if code is None:
                number = len(names) + 1
                # Skip the surrogate range: those code points are not characters on their own.
                code = chr(number if number < 0xD800 else number + 0x800)
                tokens[token] = code
                names.append(token)
            out.append(code)
        return "".join(out)

    a, b = encode(old), encode(new)
    engine = diff_match_patch()
    engine.Diff_Timeout = timeout
    found = engine.diff_main(a, b, False)
    engine.diff_cleanupSemantic(found)
    ops: dict[int, RunOp] = {0: "equal", -1: "delete", 1: "insert"}
    runs: list[Run] = []
    for op, chars in found:
        text = "".join(names[(ord(c) if ord(c) < 0xD800 else ord(c) - 0x800) - 1] for c in chars)
        if runs and runs[-1].op == ops[op]:
            runs[-1] = Run(ops[op], runs[-1].text + text)
        elif text:
            runs.append(Run(ops[op], text))
    return runs


def _kept_share(runs: list[Run], old: str, new: str) -> float:
    kept = sum(_word_count(run.text) for run in runs if run.op == "equal")
    return kept / max(_word_count(old), _word_count(new), 1)


def _similarity(old: str, new: str) -> float:
    # Cheap and order-blind: the share of words the two have in common (as multisets).
    a, b = Counter(_normal(old).lower().split()), Counter(_normal(new).lower().split())
    return sum((a & b).values()) / max(sum(a.values()), sum(b.values()), 1)


def _span(text: str, candidates: list[str]) -> int:
    """How many of `candidates`, from the first, `text` was split into (or merged from): the
    count whose joined text resembles `text` best, past `MOVE_CUTOFF` and better than the first
    alone; 0 when none does."""
    best, score = 0, max(_similarity(text, candidates[0]), MOVE_CUTOFF) if candidates else 1.0
    for count in range(2, min(len(candidates), 8) + 1):
        similar = _similarity(text, " ".join(candidates[:count]))
        if similar > score:
            best, score = count, similar
    return best


def _pair(old: str, new: str, capped: bool) -> ProseBlock:
    """The block of a paragraph that stands where an old one stood, edited."""
    if capped:
        return ProseBlock("rewritten", old=old, new=new)
    runs = word_runs(old, new)
    if _kept_share(runs, old, new) < REWRITE_CUTOFF:
        return ProseBlock("rewritten", old=old, new=new)
    return ProseBlock("changed", old=old, new=new, runs=tuple(runs))


def prose_diff(old: str, new: str) -> ProseDiff:
    """The reading diff of `old` -> `new` (see `ProseBlock`): paragraphs matched first (equal
    text, whitespace aside), the rest paired where they stand, moved paragraphs found among the
    rest, whole-word runs inside each pair. Past `MAX_PROSE_CHARS` only whole paragraphs are
    compared (`capped`)."""
    capped = len(old) + len(new) > MAX_PROSE_CHARS
    a, b = paragraphs(old), paragraphs(new)
    matcher = SequenceMatcher(None, [_normal(p) for p in a], [_normal(p) for p in b], autojunk=False)
    # First pass: equal paragraphs, split and merged ones, and edited ones where they stand (pairs
    # past the cut-off are left as removed + added, so that a move elsewhere can claim them). Each slot is
    # (kind, old index, new index), -1 where a side has none.
    slots: list[tuple[str, int, int]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            slots.extend(("same", i, j1 + (i - i1)) for i in range(i1, i2))
            continue
        olds, news = list(range(i1, i2)), list(range(j1, j2))
        while olds and news:
            # A split or merge takes its paragraphs: its slot, then one "" slot for each more.
            if not capped and (count := _span(a[olds[0]], [b[j] for j in news])) > 1:
                slots.append(("split", olds.pop(0), news.pop(0)))
                slots.extend(("", -1, news.pop(0)) for _ in range(count - 1))
            elif not capped and (count := _span(b[news[0]], [a[i] for i in olds])) > 1:
                slots.append(("merged", olds.pop(0), news.pop(0)))
                slots.extend(("", olds.pop(0), -1) for _ in range(count - 1))
            elif _similarity(a[olds[0]], b[news[0]]) >= REWRITE_CUTOFF or (len(olds) == len(news) == 1):
                slots.append(("pair", olds.pop(0), news.pop(0)))
            elif len(olds) >= len(news):
                slots.append(("removed", olds.pop(0), -1))
            else:
                slots.append(("added", -1, news.pop(0)))
        slots.extend(("removed", i, -1) for i in olds)
        slots.extend(("added", -1, j) for j in news)
    # Second pass: a removed paragraph close to an added one elsewhere moved there.
    moves: dict[int, int] = {}  # new index -> old index
    removed = [i for kind, i, _ in slots if kind == "removed"]
    added = [j for kind, _, j in slots if kind == "added"]
    if not capped and len(removed) <= MAX_MOVE_CANDIDATES and len(added) <= MAX_MOVE_CANDIDATES:
        taken: set[int] = set()
        for j in added:
            best, score = -1, MOVE_CUTOFF
            for i in removed:
                if i not in taken and (similar := _similarity(a[i], b[j])) >= score:
                    best, score = i, similar
            if best >= 0:
                moves[j] = best
                taken.add(best)
    blocks: list[ProseBlock] = []
    shown_at: dict[int, int] = {}  # old index of a moved paragraph -> block index at its new place
    left_at: dict[int, int] = {}  # block index of a removed paragraph -> its old index
    for number, (kind, i, j) in enumerate(slots):
        if kind == "":
            continue  # Taken by the split or merge before it.
        if kind in ("split", "merged"):
            # The paragraphs it spans are the slots after it marked "".
            span = 1 + next((n for n, slot in enumerate(slots[number + 1 :]) if slot[0] != ""), len(slots) - number - 1)
            old_text = "\n\n".join(a[i : i + span]) if kind == "merged" else a[i]
            new_text = "\n\n".join(b[j : j + span]) if kind == "split" else b[j]
            joined: BlockKind = "split" if kind == "split" else "merged"
            blocks.append(ProseBlock(joined, old=old_text, new=new_text, runs=tuple(word_runs(old_text, new_text))))
        elif kind == "same":
            blocks.append(ProseBlock("same", old=a[i], new=b[j]))
        elif kind == "pair":
            blocks.append(_pair(a[i], b[j], capped))
        elif kind == "added" and j in moves:
            source = moves[j]
            runs = () if _normal(a[source]) == _normal(b[j]) else tuple(word_runs(a[source], b[j]))
            shown_at[source] = len(blocks)
            blocks.append(ProseBlock("moved", old=a[source], new=b[j], runs=runs, moved_from=source))
        elif kind == "added":
            blocks.append(ProseBlock("added", new=b[j]))
        else:
            left_at[len(blocks)] = i
            blocks.append(ProseBlock("removed", old=a[i]))
    # A moved paragraph's old place points at its new one.
    for index, i in left_at.items():
        if i in shown_at:
            blocks[index] = ProseBlock("removed", old=a[i], moved_to=shown_at[i])
    return _totals(blocks, capped)


def _totals(blocks: list[ProseBlock], capped: bool) -> ProseDiff:
    counts: Counter[str] = Counter()
    added = removed = 0
    for block in blocks:
        if block.kind == "removed" and block.moved_to is not None:
            continue
        counts[block.kind] += 1
        if block.kind == "added":
            added += _word_count(block.new)
        elif block.kind == "removed":
            removed += _word_count(block.old)
        elif block.kind == "rewritten":
            added, removed = added + _word_count(block.new), removed + _word_count(block.old)
        elif block.runs:
            added += sum(_word_count(run.text) for run in block.runs if run.op == "insert")
            removed += sum(_word_count(run.text) for run in block.runs if run.op == "delete")
    return ProseDiff(blocks=tuple(blocks), counts=dict(counts), words_added=added, words_removed=removed, capped=capped)


def word_counts(text: str) -> Counter[str]:
    """How often each word (and punctuation mark) occurs in `text`: two of these give the words
    added and removed between versions without a diff (`Counter` subtraction), for history rows."""
    return Counter(_COUNTED.findall(text))
