"""History: what each version of an article says about it, and its size as rendered.

`Ledger.history` and `Ledger.timeline` describe versions from their records (`summary`);
`RenderedSize` keeps an article's rendered size up to date as its records are folded, so a
history costs the size of the changes, not versions x article size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ledger.events import parse_time
from ledger.projections import CHANGE_KIND, ArticleState
from ledger.rendering import paragraph_break, render
from ledger.store import EventStore, StoredRecord


def summary(group: list[StoredRecord]) -> dict[str, Any]:
    """What the records of one article version say about it (history and timeline fields)."""
    first, last = group[0], group[-1]
    changes: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    headings: list[str] = []
    for event in group:
        kind = CHANGE_KIND[event["type"]]
        if kind not in changes:
            changes.append(kind)
        data = event["data"]
        if event["type"] == "ArticleCreated":
            added.extend(data.get("categories", ()))
        elif event["type"] == "CategoriesChanged":
            added.extend(data.get("added", ()))
            removed.extend(data.get("removed", ()))
        elif event["type"] == "UpdateBlockAdded":
            headings.append(data["heading"])
    # A category removed and added again in one version only moved in the list: it stayed.
    moved = set(added).intersection(removed)
    if moved:
        added = [c for c in added if c not in moved]
        removed = [c for c in removed if c not in moved]
    return {
        "version": last["version"],
        "position": last["pos"],
        "occurred_at": parse_time(first["occurred_at"]),
        "recorded_at": parse_time(first["recorded_at"]),
        "actor": first.get("actor"),
        "reason": first.get("reason"),
        "changes": changes,
        "categories_added": added,
        "categories_removed": removed,
        "headings": headings,
        "events": len(group),
    }


class _Frame:
    """An article without its body and blocks, save a stand-in for their end: rendered, it gives
    exactly the bytes `render` puts around the body and blocks (title line and categories line,
    or front matter), because those depend on the text only through whether it ends in a line
    break and which paragraph break follows it."""

    __slots__ = ("blocks", "body", "categories", "id", "metadata", "title")

    def __init__(self, state: ArticleState, tail: str) -> None:
        self.id = state.id
        self.title = state.title
        self.body = tail
        self.categories = state.categories
        self.metadata = state.metadata
        self.blocks: tuple[()] = ()


class RenderedSize:
    """The UTF-8 size of an article rendered at each version, kept up to date event by event: the
    body and each update block are measured again only when they change, and only the small frame
    around them is rendered for every version (rendering every version whole would cost versions
    x article size)."""

    def __init__(self) -> None:
        self.body = 0
        # Each block's heading and text, with the paragraph break rendered before it.
        self.blocks: list[int] = []
        self.total_blocks = 0

    @classmethod
    def of(cls, state: ArticleState | None) -> RenderedSize:
        """Sizes measured on `state` (None: before the article existed), to fold on from there."""
        sizes = cls()
        if state is not None:
            sizes.body = len(state.body.encode("utf-8"))
            sizes.blocks = [_block_size(state, index) for index in range(len(state.blocks))]
            sizes.total_blocks = sum(sizes.blocks)
        return sizes

    def _measure(self, state: ArticleState, index: int) -> None:
        """Measure block `index` again, if there is one (the part before it changed, or it did)."""
        if index < len(self.blocks):
            size = _block_size(state, index)
            self.total_blocks += size - self.blocks[index]
            self.blocks[index] = size

    def apply(self, state: ArticleState, record: StoredRecord) -> None:
        """Account for `record`, already folded into `state`."""
        kind = record["type"]
        if kind == "ArticleCreated" or (kind == "ArticleEdited" and record["data"].get("patch")):
            self.body = len(state.body.encode("utf-8"))
            self._measure(state, 0)
        elif kind in ("UpdateBlockAdded", "UpdateBlockEdited"):
            index = record["data"].get("index")
            if index is None:
                index = len(state.blocks) - 1
            if kind == "UpdateBlockAdded":
                self.blocks.insert(index, 0)
            self._measure(state, index)
            self._measure(state, index + 1)
        elif kind == "UpdateBlockRemoved":
            index = record["data"]["index"]
            self.total_blocks -= self.blocks.pop(index)
            self._measure(state, index)

    def size(self, state: ArticleState) -> int:
        """Bytes of `render(state.view())`."""
        tail = ""
        for heading, text, *_ in reversed(state.blocks):
            tail = text[-1:] or heading[-1:]
            if tail:
                break
        if not tail:
            tail = state.body[-1:]
        # Rendering may put the last part's paragraph break before a `Categories:` line: the
        # frame's stand-in for the text gives the same one.
        heading, text = (state.blocks[-1][0], state.blocks[-1][1]) if state.blocks else ("", state.body)
        gap = paragraph_break(text, heading)
        if gap:
            tail = "x" + gap
        frame = len(render(_Frame(state, tail)).encode("utf-8")) - len(tail.encode("utf-8"))
        return frame + self.body + self.total_blocks


def _block_size(state: ArticleState, index: int) -> int:
    """UTF-8 bytes of block `index` of `state` as rendered: its heading and text, after the
    paragraph break that rendering puts before it (`ledger.rendering.paragraph_break`)."""
    heading, text = state.blocks[index][0], state.blocks[index][1]
    gap = paragraph_break(state.body) if index == 0 else paragraph_break(state.blocks[index - 1][1], state.blocks[index - 1][0])
    return len(gap) + len(heading.encode("utf-8")) + len(text.encode("utf-8"))


class WordChanges:
    """Words added and removed by one version after another (`Ledger.word_changes`): the bag of
    words (`ledger.diffs.word_counts`) of the body and update blocks, compared with the version
    before. Words never span a line break, so only the lines a version added or took out are
    counted: the cost of a version is its change, not the article's size."""

    def __init__(self, state: ArticleState | None) -> None:
        self._lines = self._lines_of(state)

    @staticmethod
    def _lines_of(state: ArticleState | None) -> Counter[str]:
        lines: Counter[str] = Counter()
        if state is not None:
            lines.update(state.body.split("\n"))
            for block in state.blocks:
                lines.update(block[0].split("\n"))
                lines.update(block[1].split("\n"))
        return lines

    def step(self, state: ArticleState) -> tuple[int, int]:
        """Words added and removed from the state before to `state` (the next version's)."""
        # Loaded with the first count, not with this module: a history without words (the CLI)
        # need not import the diff module and diff-match-patch.
        from ledger.diffs import word_counts

        lines = self._lines_of(state)
        if lines == self._lines:
            # Categories, metadata, a withdrawal: no line of text changed.
            return 0, 0
        # The bag after is the bag before less the words of the lines taken out plus those of
        # the lines put in: the difference of the two bags is the difference of these two.
        new = word_counts("\n".join((lines - self._lines).elements()))
        old = word_counts("\n".join((self._lines - lines).elements()))
        self._lines = lines
        return sum((new - old).values()), sum((old - new).values())


def version_records(store: EventStore, versions: list[tuple[str, int]]) -> dict[tuple[str, int], list[StoredRecord]]:
    """The records of each (article, version) of `versions`, by (article, version); versions the
    log does not have are left out."""
    # One read per article: the versions listed of one article follow each other (its versions
    # never go back in time), so the range from the first to the last is what is needed.
    wanted: dict[str, tuple[int, int]] = {}
    for name, version in versions:
        first, last = wanted.get(name, (version, version))
        wanted[name] = (min(first, version), max(last, version))
    groups: dict[tuple[str, int], list[StoredRecord]] = {}
    for name, (first, last) in wanted.items():
        for record in store.read_article(name, first, last):
            groups.setdefault((name, record["version"]), []).append(record)
    return groups
