"""What the pages show, built from the public `Ledger` API: article bodies as safe HTML, prose
diffs as escaped `<ins>`/`<del>` markup, change summaries, blamed text as lines of runs.

Drafts are untrusted text. Markdown is rendered with raw HTML off (markdown-it-py `js-default`,
which also drops `javascript:` links) and then cleaned by nh3; every other piece of draft text
is escaped (`markupsafe.escape`) before it is wrapped in markup of ours.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

from ledger import ArticleView, Blame
from ledger.diffs import ProseBlock, ProseDiff, Run, paragraphs, prose_diff

_markdown = MarkdownIt("js-default")
# Long runs of unchanged paragraphs are folded to their first and last CONTEXT ones.
CONTEXT = 1
FOLD_AT = 4


def is_markdown(view: ArticleView) -> bool:
    """Whether the article's draft is Markdown (the draft parser keeps the format in `_draft`)."""
    layout = view.metadata.get("_draft")
    return isinstance(layout, dict) and layout.get("format") == "markdown"


# Heading ids may be linked to (`[see below](#background)`), but never take an id of the page's
# own: its form fields, its parts, and the numbered ids of update blocks, sections and hits.
_PAGE_IDS = re.compile(r"(article|at|category|kind|main|q|since|site-q|summary-h|until|legend-h|(update|hit)-\d+|[bc]\d+)\Z")
_HEADING_ATTRIBUTES = {
    **{tag: set(allowed) for tag, allowed in nh3.ALLOWED_ATTRIBUTES.items()},
    **{f"h{level}": {"id"} | set(nh3.ALLOWED_ATTRIBUTES.get(f"h{level}", ())) for level in range(1, 7)},
}


def heading_id(text: str, taken: set[str]) -> str:
    """The id of a heading reading `text`, as Markdown hosts make them (`Why it matters?` ->
    `why-it-matters`), numbered when `taken` (the page's ids so far, which it joins) has it."""
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-") or "section"
    found, n = slug, 0
    while found in taken or _PAGE_IDS.match(found):
        n += 1
        found = f"{slug}-{n}"
    taken.add(found)
    return found


def render_text(text: str, markdown: bool, top: int = 2, ids: set[str] | None = None) -> Markup:
    """Draft text as safe HTML: Markdown rendered and cleaned, plain text as escaped paragraphs.

    The text's headings are renumbered to start at level `top` without gaps (a body that opens
    with `###` under the page's `<h1>` would break the outline that screen readers navigate by),
    and get ids to link to, unique among `ids` (the page's so far, shared by its texts)."""
    if markdown:
        tokens = _markdown.parse(text)
        taken = set() if ids is None else ids
        levels = sorted({int(t.tag[1]) for t in tokens if t.type == "heading_open"})
        renumbered = {level: f"h{min(top + n, 6)}" for n, level in enumerate(levels)}
        for n, token in enumerate(tokens):
            if token.type == "heading_open":
                # Its text as read (`# The [background](http://x) story` is "The background
                # story"): the words of its runs and code, without the marks around them.
                words = "".join(child.content for child in tokens[n + 1].children or () if child.type in ("text", "code_inline"))
                token.attrSet("id", heading_id(words, taken))
            if token.type in ("heading_open", "heading_close"):
                token.tag = renumbered[int(token.tag[1])]
            if token.children:
                token.children = _images_as_links(token.children)
            for child in token.children or ():
                href = child.attrGet("href") if child.type == "link_open" else None
                if isinstance(href, str) and not urlsplit(href).scheme and not href.startswith(("//", "#")):
                    # A link into the article's own site (`/blog/release/v8.3.0`): the viewer has
                    # no such page, so it is shown as text that names it, not a link to a 404.
                    del child.attrs["href"]
                    child.attrSet("title", f"{href} (on the article's own site)")
        return Markup(nh3.clean(_markdown.renderer.render(tokens, _markdown.options, {}), attributes=_HEADING_ATTRIBUTES))
    return Markup("").join(Markup("<p>{}</p>\n").format(paragraph) for paragraph in paragraphs(text))


def _images_as_links(tokens: list[Token]) -> list[Token]:
    """A line's tokens with each image as a link to it that says it is one (`image: a cat`): the
    page loads nothing from other sites (its policy would show a broken image), and an image on
    the article's own site is not on the viewer's. An image inside a link (a badge) is its words
    only: the link stays the author's."""
    out: list[Token] = []
    depth = 0
    for token in tokens:
        depth += {"link_open": 1, "link_close": -1}.get(token.type, 0)
        if token.type != "image":
            out.append(token)
            continue
        src = token.attrGet("src")
        words = Token("text", "", 0, content=f"image: {token.content or src or 'no description'}")
        if depth or not isinstance(src, str) or not src:
            out.append(words)
        else:
            # Made a link here; one into the article's own site then loses its address as links do.
            out += [Token("link_open", "a", 1, attrs={"href": src}), words, Token("link_close", "a", -1)]
    return out


def render_heading(heading: str, markdown: bool) -> Markup:
    """An update block's heading line as the inside of the page's heading: in Markdown without
    its `#` marks and with its emphasis rendered (`## _(Update 4-May)_ Delayed` reads "(Update
    4-May) Delayed", the first part in italics), plain text escaped."""
    if not markdown:
        return escape(heading)
    text = re.sub(r"^[ \t]*#{1,6}[ \t]+|[ \t]+#+[ \t]*$", "", heading)
    return Markup(nh3.clean(_markdown.renderInline(text)))


def reading_text(view: ArticleView) -> str:
    """What a reader reads of a version, as the prose diff compares it: body, then each update
    block's heading and text (the title and categories are summarised apart)."""
    parts = [view.body]
    for block in view.blocks:
        parts.append(f"{block.heading}\n{block.text}")
    return "\n\n".join(part for part in parts if part.strip())


def runs_html(runs: tuple[Run, ...], side: str | None = None) -> Markup:
    """Word runs as markup: each fragment escaped, then wrapped. `side` "old" keeps only what the
    old text had, "new" only what the new one has (side-by-side view); None shows both."""
    out = []
    for run in runs:
        # A paragraph break made or undone (a split or merge) is whitespace: shown as a pilcrow.
        text = run.text
        if run.op != "equal" and not text.strip() and "\n" in text:
            text = "¶" + text if run.op == "insert" else "¶"
        if run.op == "equal":
            out.append(escape(text))
        elif run.op == "delete" and side != "new":
            out.append(Markup('<del><span class="vh">removed: </span>{}</del>').format(text))
        elif run.op == "insert" and side != "old":
            out.append(Markup('<ins><span class="vh">added: </span>{}</ins>').format(text))
    return Markup("").join(out)


def whole(text: str, op: str) -> Markup:
    """A whole paragraph as removed (`del`) or added (`ins`), escaped."""
    label = "removed" if op == "del" else "added"
    return Markup('<{0}><span class="vh">{1}: </span>{2}</{0}>').format(Markup(op), label, text)


@dataclass(frozen=True)
class Shown:
    """A block of the diff as a page shows it, or a fold of `hidden` unchanged paragraphs."""

    number: int
    block: ProseBlock | None = None
    hidden: int = 0


def fold(diff: ProseDiff) -> list[Shown]:
    """The diff's blocks with each long unchanged stretch folded to its ends."""
    shown: list[Shown] = []
    blocks = list(diff.blocks)
    index = 0
    while index < len(blocks):
        if blocks[index].kind != "same":
            shown.append(Shown(index, blocks[index]))
            index += 1
            continue
        end = index
        while end < len(blocks) and blocks[end].kind == "same":
            end += 1
        keep_head = 0 if index == 0 else CONTEXT
        keep_tail = 0 if end == len(blocks) else CONTEXT
        if end - index >= FOLD_AT and end - index > keep_head + keep_tail:
            shown.extend(Shown(n, blocks[n]) for n in range(index, index + keep_head))
            shown.append(Shown(index + keep_head, hidden=end - index - keep_head - keep_tail))
            shown.extend(Shown(n, blocks[n]) for n in range(end - keep_tail, end))
        else:
            shown.extend(Shown(n, blocks[n]) for n in range(index, end))
        index = end
    return shown


def summary(old: ArticleView | None, new: ArticleView, diff: ProseDiff) -> list[str]:
    """The change summary above a diff, in plain words."""
    lines: list[str] = []
    if old is None:
        lines.append("The article was created.")
    elif old.title != new.title:
        lines.append(f"Title changed from “{old.title}” to “{new.title}”.")
    before = {(b.heading, b.added_version) for b in old.blocks} if old else set()
    for block in new.blocks:
        if (block.heading, block.added_version) not in before:
            lines.append(f"Update block added: “{block.heading}” (v{block.added_version}).")
    # A diff may run backwards (`/diff/5..2`): the blocks the older side lacks are removed.
    after = {(b.heading, b.added_version) for b in new.blocks}
    for block in old.blocks if old else []:
        if (block.heading, block.added_version) not in after:
            lines.append(f"Update block removed: “{block.heading}” (v{block.added_version}).")
    old_categories = set(old.categories) if old else set()
    added = [c for c in new.categories if c not in old_categories]
    removed = [c for c in (old.categories if old else []) if c not in set(new.categories)]
    if added or removed:
        lines.append("Categories " + ", ".join([f"+{c}" for c in added] + [f"-{c}" for c in removed]) + ".")
    if old is not None:
        # Metadata is not in the text compared below, so its changes are named here (the draft
        # parser's own layout key aside: it records how the draft was written, not what it says).
        keys = sorted(k for k in {*old.metadata, *new.metadata} - {"_draft"} if old.metadata.get(k) != new.metadata.get(k))
        if keys:
            lines.append("Metadata changed: " + ", ".join(keys) + ".")
    if old is not None and old.withdrawn != new.withdrawn:
        lines.append("The article was withdrawn." if new.withdrawn else "The article was restored.")
    names = {"added": "added", "removed": "removed", "moved": "moved", "changed": "changed", "rewritten": "rewritten", "split": "split", "merged": "merged"}
    counted = [f"{diff.counts[kind]} {label}" for kind, label in names.items() if diff.counts.get(kind)]
    if counted:
        lines.append("Paragraphs: " + ", ".join(counted) + f"; words +{diff.words_added} -{diff.words_removed}.")
    elif old is not None:
        lines.append("The text is unchanged.")
    if diff.capped:
        lines.append("The article is very large: paragraphs are compared whole.")
    return lines


def diff_views(old: ArticleView | None, new: ArticleView) -> ProseDiff:
    """The prose diff of two versions (None: the empty text before the article existed)."""
    return prose_diff(reading_text(old) if old is not None else "", reading_text(new))


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    """The last `size` results of a computation, by key (least recently used dropped first).

    Keys name recorded versions by their log positions: what was recorded never changes, so a
    kept result is never stale, and a new version has a new key."""

    def __init__(self, size: int) -> None:
        self._kept: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The result kept under `key`, else `make()`'s (then kept)."""
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        value = make()
        with self._lock:
            self._kept[key] = value
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return value


AGES = 6
"""Shades of age on a blame page, from the newest version shown (0) to the oldest (AGES - 1)."""


@dataclass(frozen=True)
class MarkedLine:
    """One line of a blamed text: the versions that wrote its words (its margin), and its runs
    as `(text, version, marked)`; `marked` runs start a new version inside a line of several,
    where the page names the version in words (the colour alone would carry it)."""

    versions: tuple[int, ...]
    pieces: tuple[tuple[str, int, bool], ...]


def blame_lines(blame: Blame) -> list[MarkedLine]:
    """The blamed text's lines (`Blame.lines`), each run of a line of several versions marked
    where a new version's words start."""
    shown = []
    for line in blame.lines():
        versions = tuple(line.versions)
        marked = []
        named = 0
        for text, version in line.runs:
            # Spaces between two runs are not named: only a run with words starts a new version,
            # named just before its first word.
            if len(versions) > 1 and version != named and text.strip():
                named = version
                words = text.lstrip()
                if words != text:
                    marked.append((text[: len(text) - len(words)], version, False))
                marked.append((words, version, True))
            else:
                marked.append((text, version, False))
        shown.append(MarkedLine(versions, tuple(marked)))
    return shown


def ages(versions: set[int]) -> dict[int, int]:
    """Each version's shade of age (see `AGES`), by its rank among `versions`, newest first."""
    ordered = sorted(versions, reverse=True)
    return {version: rank * AGES // len(ordered) for rank, version in enumerate(ordered)}
