"""Attribution: which version wrote each character of an article, folded from its events.

Alongside the text of the title, the body and every update block's heading and text, the fold
carries runs: `[length, version]` pairs whose lengths add up to the length of that text. Each
patch splits, shifts and inserts runs; a new block, title or heading brings runs of its own.

Word precision. `ingest` records patches cut per line and trimmed to the characters that
differ, so one patch operation may replace several words of which some are unchanged (two words
edited in one sentence make one operation spanning both). The recorded patches are left as they
are (the log's format and every existing log stay as they were); instead each operation is widened
to whole words and the replaced words are compared with the new ones word by word: words that did
not change keep the runs they had, only the others are the new version's.

Moves into a new block: a notice updated by putting an update heading above the original post
moves the post's text out of the body and into the new block, in one version (the body's patch,
then `UpdateBlockAdded`). The text that version's patches and removals took out is kept while the
version is folded, and a block it adds is compared with it word by word, like a replaced
region: the moved words keep the versions that wrote them.

Restores: `Ledger.restore` writes the restored text as ordinary edits. A version whose field
(title, body, a block) ends up exactly as that field was at an earlier version takes the earlier
version's runs for it (`ledger.textindex`): what a restore, or a revert by hand, brings back
keeps the version that first wrote it.

The frame (front matter, layout, the `Categories:` line: what rendering adds around the title,
body and blocks) is set by metadata and category events, not by patches: its runs follow its
rendered text, compared word by word once per version. The paragraph break rendering puts
before a block whose part before it ends without one (`paragraph_break`) is the block's.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from difflib import SequenceMatcher
from itertools import accumulate, pairwise
from operator import itemgetter
from typing import Any

from ledger.errors import CorruptStoreError
from ledger.projections import ArticleState, FoldedRecord
from ledger.rendering import ViewLike, block_breaks, layout_of, render

Runs = list[list[int]]
"""`[length, version]` pairs, in text order, covering a text exactly."""

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]+")
# Above this many token (or line) pairs a replaced region is not compared word by word (or line
# by line: difflib is quadratic in the worst case): the region is the new version's.
_MAX_COMPARE = 4_000_000


def _add(runs: Runs, length: int, version: int) -> None:
    """Append a run, merging it with the last one when the version is the same."""
    if length <= 0:
        return
    if runs and runs[-1][1] == version:
        runs[-1] = [runs[-1][0] + length, version]
    else:
        runs.append([length, version])


def fresh(text: str, version: int) -> Runs:
    """The runs of a text written whole by `version`."""
    return [[len(text), version]] if text else []


def _cut(runs: Runs, start: int, end: int, starts: list[int] | None = None) -> Runs:
    """The runs of characters `start:end`; `starts` (each run's offset, from `_starts`) finds
    the first run by bisection instead of a walk from the beginning."""
    out: Runs = []
    if start >= end:
        return out
    if starts is None:
        starts = _starts(runs)
    first = max(bisect_right(starts, start) - 1, 0)
    last = bisect_left(starts, end) - 1
    if first == last:
        return [[end - start, runs[first][1]]]
    # The runs strictly inside are taken whole (a slice); the first and last are trimmed.
    out.append([starts[first] + runs[first][0] - start, runs[first][1]])
    out.extend(runs[first + 1 : last])
    out.append([end - starts[last], runs[last][1]])
    return out


def _starts(runs: Runs) -> list[int]:
    """The offset at which each run starts."""
    # `map` and `itemgetter` run in C: a third of the time of a generator (a patch of a long
    # article's body looks up thousands of runs).
    return list(accumulate(map(itemgetter(0), runs[:-1]), initial=0)) if runs else []


def _extend(out: Runs, more: Runs) -> None:
    """Append runs, merging only where they meet (the runs in between are already merged)."""
    if not more:
        return
    _add(out, more[0][0], more[0][1])
    out.extend(more[1:])


def _compare(old: str, old_runs: Runs, new: str, version: int) -> Runs:
    """Runs of `new`, which replaced `old` (with `old_runs`): words unchanged keep their runs.

    The tokens both texts start and end with are kept without comparing (an update put above a
    long post keeps the post's runs, however long); what is between is compared word by word,
    or, past `_MAX_COMPARE` token pairs, line by line first and word by word within the lines
    that changed where those are small enough."""
    if not old or not new:
        return fresh(new, version)
    old_tokens = _TOKEN.findall(old)
    new_tokens = _TOKEN.findall(new)
    old_starts = list(accumulate(map(len, old_tokens), initial=0))
    new_starts = list(accumulate(map(len, new_tokens), initial=0))
    runs_starts = _starts(old_runs)
    out: Runs = []

    def keep(i1: int, i2: int) -> None:
        _extend(out, _cut(old_runs, old_starts[i1], old_starts[i2], runs_starts))

    def compare(i1: int, i2: int, j1: int, j2: int) -> None:
        matcher = SequenceMatcher(None, old_tokens[i1:i2], new_tokens[j1:j2], autojunk=False)
        for tag, a1, a2, b1, b2 in matcher.get_opcodes():
            if tag == "equal":
                keep(i1 + a1, i1 + a2)
            else:
                _add(out, new_starts[j1 + b2] - new_starts[j1 + b1], version)

    def lines(i1: int, i2: int, tokens: list[str]) -> list[int]:
        # Where each line of tokens[i1:i2] starts (a whitespace token holding a line break ends one).
        bounds = [i1]
        for at in range(i1, i2):
            if "\n" in tokens[at]:
                bounds.append(at + 1)
        if bounds[-1] != i2:
            bounds.append(i2)
        return bounds

    def by_lines(i1: int, i2: int, j1: int, j2: int) -> None:
        old_lines, new_lines = lines(i1, i2, old_tokens), lines(j1, j2, new_tokens)
        if (len(old_lines) - 1) * (len(new_lines) - 1) > _MAX_COMPARE:
            _add(out, new_starts[j2] - new_starts[j1], version)
            return
        keys_old = ["".join(old_tokens[a:b]) for a, b in pairwise(old_lines)]
        keys_new = ["".join(new_tokens[a:b]) for a, b in pairwise(new_lines)]
        for tag, a1, a2, b1, b2 in SequenceMatcher(None, keys_old, keys_new, autojunk=False).get_opcodes():
            o1, o2, n1, n2 = old_lines[a1], old_lines[a2], new_lines[b1], new_lines[b2]
            if tag == "equal":
                keep(o1, o2)
            elif tag == "replace" and (o2 - o1) * (n2 - n1) <= _MAX_COMPARE:
                compare(o1, o2, n1, n2)
            else:
                _add(out, new_starts[n2] - new_starts[n1], version)

    same = 0
    most = min(len(old_tokens), len(new_tokens))
    while same < most and old_tokens[same] == new_tokens[same]:
        same += 1
    tail = 0
    while tail < most - same and old_tokens[-1 - tail] == new_tokens[-1 - tail]:
        tail += 1
    keep(0, same)
    i2, j2 = len(old_tokens) - tail, len(new_tokens) - tail
    if same in (i2, j2):
        _add(out, new_starts[j2] - new_starts[same], version)
    elif (i2 - same) * (j2 - same) <= _MAX_COMPARE:
        compare(same, i2, same, j2)
    else:
        by_lines(same, i2, same, j2)
    keep(i2, len(old_tokens))
    return out


def _word_start(text: str, at: int) -> int:
    while at > 0 and (text[at - 1].isalnum() or text[at - 1] == "_"):
        at -= 1
    return at


def _word_end(text: str, at: int) -> int:
    while at < len(text) and (text[at].isalnum() or text[at] == "_"):
        at += 1
    return at


def patch_runs(old: str, runs: Runs, patch: Sequence[Sequence[Any]], version: int) -> Runs:
    """The runs after `patch` (`[start, end, text]` operations on `old`) made by `version`."""
    # Widen each operation to whole words; operations that then overlap are one group, whose
    # new text is its operations applied to the widened old text.
    groups: list[list[Any]] = []
    for start, end, text in patch:
        low, high = _word_start(old, start), _word_end(old, end)
        if groups and low <= groups[-1][1]:
            groups[-1][1] = max(high, groups[-1][1])
            groups[-1][2].append((start, end, text))
        else:
            groups.append([low, high, [(start, end, text)]])
    widened: list[tuple[int, int, str]] = []
    for low, high, operations in groups:
        pieces = []
        cursor = low
        for start, end, text in operations:
            pieces.append(old[cursor:start])
            pieces.append(text)
            cursor = end
        pieces.append(old[cursor:high])
        widened.append((low, high, "".join(pieces)))
    starts = _starts(runs)
    out: Runs = []
    cursor = 0
    for low, high, text in widened:
        _extend(out, _cut(runs, cursor, low, starts))
        _extend(out, _compare(old[low:high], _cut(runs, low, high, starts), text, version))
        cursor = high
    _extend(out, _cut(runs, cursor, len(old), starts))
    return out


class Attribution:
    """The runs of one article at one version: title, body, each block's heading and text, and
    the frame: what a rendering adds around them (front matter, layout, the `Categories:`
    line), kept with its text so that a change of metadata or categories is compared word by
    word too."""

    __slots__ = ("blocks", "body", "frame", "frame_text", "taken", "taken_text", "title", "version")

    def __init__(self) -> None:
        self.version = 0
        self.title: Runs = []
        self.body: Runs = []
        self.blocks: list[tuple[Runs, Runs]] = []
        self.frame: Runs = []
        self.frame_text = ""
        # What the version being folded took out of the body and the blocks (text and runs),
        # for a block it adds; not in snapshots, which are taken where a version ends.
        self.taken: Runs = []
        self.taken_text = ""

    def _take(self, text: str, runs: Runs) -> None:
        if not text:
            return
        if self.taken_text:
            # A line break between pieces, so that words of two pieces never join into one.
            self.taken_text += "\n"
            _add(self.taken, 1, self.version)
        self.taken_text += text
        _extend(self.taken, runs)

    def _take_patched(self, old: str, runs: Runs, patch: Sequence[Sequence[Any]]) -> None:
        """Keep what `patch` removes from `old` (whose runs are `runs`)."""
        starts = _starts(runs)
        for start, end, _text in patch:
            self._take(old[start:end], _cut(runs, start, end, starts))

    def to_list(self) -> list[Any]:
        """A plain JSON-able form (the snapshot form)."""
        return [self.version, self.title, self.body, [list(block) for block in self.blocks], self.frame, self.frame_text]

    @classmethod
    def from_list(cls, values: list[Any]) -> Attribution:
        """Back from `to_list`'s form."""
        attribution = cls()
        attribution.version, attribution.title, attribution.body, blocks, attribution.frame, attribution.frame_text = values
        attribution.blocks = [(heading, text) for heading, text in blocks]
        return attribution


def apply_attribution(attribution: Attribution, before: ArticleState | None, record: FoldedRecord) -> Attribution:
    """Fold one record into `attribution` (in place), given the article's state `before` it.
    The frame follows once per version (`settle_frame`)."""
    kind = record["type"]
    data = record["data"]
    version = record["version"]
    if version != attribution.version:
        attribution.taken, attribution.taken_text = [], ""
        attribution.version = version
    if kind == "ArticleCreated":
        attribution.title = fresh(data["title"], version)
        attribution.body = fresh(data.get("body", ""), version)
        attribution.blocks = []
        attribution.frame_text = ""
        attribution.frame = []
    elif before is None:
        pass
    elif kind == "ArticleEdited":
        if data.get("title") is not None:
            attribution.title = _compare(before.title, attribution.title, data["title"], version)
        if data.get("patch"):
            attribution._take_patched(before.body, attribution.body, data["patch"])
            attribution.body = patch_runs(before.body, attribution.body, data["patch"], version)
    elif kind == "UpdateBlockAdded":
        text = data.get("text", "")
        runs = _compare(attribution.taken_text, attribution.taken, text, version) if attribution.taken_text else fresh(text, version)
        block = (fresh(data["heading"], version), runs)
        index = data.get("index")
        if index is None:
            attribution.blocks.append(block)
        else:
            attribution.blocks.insert(index, block)
    elif kind == "UpdateBlockEdited":
        index = data["index"]
        heading, text = attribution.blocks[index]
        old_heading, old_text = before.blocks[index][0], before.blocks[index][1]
        if data.get("heading") is not None:
            heading = _compare(old_heading, heading, data["heading"], version)
        if data.get("patch"):
            attribution._take_patched(old_text, text, data["patch"])
            text = patch_runs(old_text, text, data["patch"], version)
        attribution.blocks[index] = (heading, text)
    elif kind == "UpdateBlockRemoved":
        attribution._take(before.blocks[data["index"]][1], attribution.blocks[data["index"]][1])
        del attribution.blocks[data["index"]]
    return attribution


def settle_frame(attribution: Attribution, state: ArticleState) -> None:
    """Bring the frame's runs to `state`, the article at the end of `attribution.version`.

    Once per version, not per event: between the events of one version the frame may read
    otherwise (a draft's front matter is written afresh from the values after its categories
    change, and as typed again once its layout follows), which must not count as a change."""
    frame = _frame_text(_StateView(state))
    if frame != attribution.frame_text:
        attribution.frame = _compare(attribution.frame_text, attribution.frame, frame, attribution.version)
        attribution.frame_text = frame


class _Block:
    __slots__ = ("heading", "text")

    def __init__(self, heading: str, text: str) -> None:
        self.heading = heading
        self.text = text


class _StateView:
    """An `ArticleState` as rendering reads it (a `ViewLike`), without building its model."""

    def __init__(self, state: ArticleState) -> None:
        self.id = state.id
        self.title = state.title
        self.body = state.body
        self.categories = state.categories
        self.metadata = state.metadata
        self.blocks = [_Block(block[0], block[1]) for block in state.blocks]


Part = str
"""Which part of the rendered text a span is in: `title`, `body`, `heading`, `block` (a block's
text), `frame` (front matter and layout around the title) or `categories` (the categories line)."""


def _layout(view: ViewLike) -> tuple[str, list[tuple[str, int]]]:
    """The rendered text of `view` and its segments in order, `(kind, length)`: kind `frame`,
    `title`, `body`, `gap` (the paragraph break rendered before a block: `paragraph_break`),
    `block` (a block's heading and text, in order) or `categories` (what follows them in plain
    text)."""
    text = render(view)
    layout = layout_of(view)
    inner: list[tuple[str, int]] = [("body", len(view.body))]
    for block, gap in zip(view.blocks, block_breaks(view), strict=True):
        if gap:
            inner.append(("gap", len(gap)))
        inner.append(("block", len(block.heading) + len(block.text)))
    inner_length = sum(length for _, length in inner)
    if layout.get("format") == "markdown":
        head = len(text) - inner_length
        at = text.find(view.title, 0, head) if view.title else -1
        if at < 0:
            return text, [("frame", head), *inner]
        # Front matter written from the values holds the title as typed; the rest is the frame.
        return text, [("frame", at), ("title", len(view.title)), ("frame", head - at - len(view.title)), *inner]
    lead = len(layout.get("lead", ""))
    title_end = len(layout.get("title_end", "\n"))
    rest = len(text) - lead - len(view.title) - title_end - inner_length
    return text, [("frame", lead), ("title", len(view.title)), ("frame", title_end), *inner, ("categories", rest)]


def _frame_text(view: ViewLike) -> str:
    """The frame of `view`'s rendering: its frame and categories segments, joined."""
    text, segments = _layout(view)
    pieces = []
    offset = 0
    for kind, length in segments:
        if kind in ("frame", "categories"):
            pieces.append(text[offset : offset + length])
        offset += length
    return "".join(pieces)


def rendered_runs(view: ViewLike, attribution: Attribution) -> tuple[str, list[tuple[int, int, int, Part]]]:
    """The rendered text of `view` (`ledger.rendering.render`) and its spans
    `(start, end, version, part)`, covering it exactly, in order."""
    text, segments = _layout(view)
    frame_starts = _starts(attribution.frame)
    pieces: list[tuple[Runs, Part]] = []
    frame_at = 0
    blocks = 0
    for kind, length in segments:
        if kind in ("frame", "categories"):
            pieces.append((_cut(attribution.frame, frame_at, frame_at + length, frame_starts), kind))
            frame_at += length
        elif kind == "title":
            pieces.append((attribution.title, "title"))
        elif kind == "body":
            pieces.append((attribution.body, "body"))
        elif kind == "gap":
            # The blank line before a block came with the block: its heading's first version.
            following = attribution.blocks[blocks] if blocks < len(attribution.blocks) else ([], [])
            runs = following[0] or following[1]
            pieces.append(([[length, runs[0][1] if runs else attribution.version]], "frame"))
        elif blocks < len(attribution.blocks):
            # (Fewer blocks than the view has: the check below says the attribution is damaged.)
            heading, block = attribution.blocks[blocks]
            pieces.extend(((heading, "heading"), (block, "block")))
            blocks += 1
    spans: list[tuple[int, int, int, Part]] = []
    offset = 0
    for runs, part in pieces:
        for length, version in runs:
            if spans and spans[-1][2] == version and spans[-1][3] == part:
                spans[-1] = (spans[-1][0], offset + length, version, part)
            else:
                spans.append((offset, offset + length, version, part))
            offset += length
    if offset != len(text):
        raise CorruptStoreError(f"article {view.id!r}: the attribution covers {offset} of the {len(text)} characters of its text (`ledger replay` rebuilds it)")
    return text, spans
