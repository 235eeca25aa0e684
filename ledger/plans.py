"""Plans: the changes (events) that turn one state of an article into another.

Ingesting a draft (`ledger.drafts`) and restoring an old version (`Ledger.restore`) ask the same
question - which events bring the article as it is now to the article as it should read? - and
get one answer here, so both follow the same rules: title and body in one `ArticleEdited`,
update blocks matched by heading (edited, added or removed where they stand), categories in
order, metadata compared as JSON values (`same_value`). Applying the events to the current view
gives a view that renders to the same text as the target.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from difflib import SequenceMatcher
from typing import Any

from ledger import codec
from ledger.projections import ArticleView
from ledger.rendering import LAYOUT_KEY, ViewLike, layout_of, paragraph_break, without_paragraph_break


def same_value(a: Any, b: Any) -> bool:
    """True when `a` and `b` are the same JSON value, types and key order included: unlike
    Python's `==`, `1`, `1.0` and `true` differ, as they do in front matter and in the log."""
    return codec.dumps(a) == codec.dumps(b)


def _category_change(old: Sequence[str], new: Sequence[str]) -> dict[str, list[str]] | None:
    """`CategoriesChanged` data (`added`, `removed`) that turns `old` into `new`, order
    included, or None when they are equal. The longest common start stays; categories after it
    that must move are removed and added again at their new place (added ones go last)."""
    if list(old) == list(new):
        return None
    wanted = set(new)
    staying = [c for c in old if c in wanted]
    keep = 0
    while keep < len(staying) and keep < len(new) and staying[keep] == new[keep]:
        keep += 1
    removed = [c for c in old if c not in wanted] + staying[keep:]
    return {"added": list(new[keep:]), "removed": removed}


def _stored(parts: Sequence[tuple[str, str]], categories_break: bool) -> list[str]:
    """Texts of consecutive parts (`(heading, text)`: the body with no heading, then the blocks)
    as they are to be stored.

    The blank line between a part and the heading after it is rendering's when the part lacks
    it (`paragraph_break`), so a part may be stored with it or without; so is the one before a
    plain-text draft's `Categories:` line when its layout says so (`categories_break`). Parts
    are stored without it; but where the last part ends its paragraph otherwise (a layout
    written before that key) every part keeps it. Either way, adding a block after the last
    part, removing the last block, or adding or removing the `Categories:` line leaves the part
    before it as it was."""
    last_heading, last = parts[-1]
    if categories_break:
        last = without_paragraph_break(last, last_heading)
    whole = last.endswith("\n") and not paragraph_break(last, last_heading)
    stored = []
    for heading, text in parts[:-1]:
        bare = without_paragraph_break(text, heading)
        stored.append(bare + paragraph_break(bare, heading) if whole else bare)
    return [*stored, last]


def _same_part(current: tuple[str, str], target: tuple[str, str], followed: bool) -> bool:
    """Whether a part stored as `current` (`(heading, text)`) already renders as `target` does, a
    block following it when `followed`: the same text, or the same but for the paragraph break
    rendering gives."""
    return current[1] == target[1] or (followed and without_paragraph_break(current[1], current[0]) == without_paragraph_break(target[1], target[0]))


# How blocks that no heading matches may still be the same block, tried in turn on what is left
# unmatched: the heading without its Markdown marks, emphasis and spacing (`## _(Update 1)_` made
# `### (Update 1)`), then the text (a heading reworded above the same text).
_LOOSE_KEYS: tuple[Callable[[tuple[str, str]], str], ...] = (
    lambda block: " ".join(re.sub(r"[#_*]+", " ", block[0]).split()).casefold(),
    lambda block: without_paragraph_break(block[1], block[0]).strip(),
)


def _align(
    old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]], i1: int, i2: int, j1: int, j2: int, level: int
) -> Iterator[tuple[int | None, int | None]]:
    """The blocks `old[i1:i2]` and `new[j1:j2]` in order as pairs `(i, j)`: the same block in
    both, or one removed (`(i, None)`) or added (`(None, j)`). Matched by `level`'s key (-1: the
    heading as written, then each of `_LOOSE_KEYS`); what no key matches is paired in order, the
    rest removed and added (a block whose heading and text both changed as another was put
    before it cannot be told from one replaced)."""
    if level == len(_LOOSE_KEYS):
        paired = min(i2 - i1, j2 - j1)
        yield from zip(range(i1, i1 + paired), range(j1, j1 + paired), strict=True)
        yield from ((i, None) for i in range(i1 + paired, i2))
        yield from ((None, j) for j in range(j1 + paired, j2))
        return
    key = (lambda block: block[0]) if level < 0 else _LOOSE_KEYS[level]
    matcher = SequenceMatcher(None, [key(block) for block in old[i1:i2]], [key(block) for block in new[j1:j2]], autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag == "equal":
            yield from zip(range(i1 + a1, i1 + a2), range(j1 + b1, j1 + b2), strict=True)
        elif tag == "replace":
            yield from _align(old, new, i1 + a1, i1 + a2, j1 + b1, j1 + b2, level + 1)
        else:
            yield from ((i, None) for i in range(i1 + a1, i1 + a2))
            yield from ((None, j) for j in range(j1 + b1, j1 + b2))


def _block_events(
    old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]], last_followed: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """Events that turn the blocks `old` into `new` (`(heading, text)` pairs, `new` as stored):
    blocks are matched by heading (`_align`); matched ones with a new heading or text are
    edited, the others removed or added where they stand (each event's index counts the events
    before it). Also the text the last block keeps when it is an old one whose text stays (else
    None); `last_followed` when rendering puts a paragraph break after it too (a `Categories:`
    line)."""
    events: list[dict[str, Any]] = []
    kept: str | None = None
    # The blocks as the events so far leave them: the new ones before `at`, the old ones after.
    at, length = 0, len(old)
    for i, j in _align(old, new, 0, len(old), 0, len(new), -1):
        if i is None:
            assert j is not None
            heading, text = new[j]
            events.append({"type": "UpdateBlockAdded", "data": {"heading": heading, "text": text, "index": None if at == length else at}})
            at, length = at + 1, length + 1
        elif j is None:
            events.append({"type": "UpdateBlockRemoved", "data": {"index": at}})
            length -= 1
        else:
            before, after, last = old[i], new[j], j == len(new) - 1
            data: dict[str, Any] = {"index": at}
            if before[0] != after[0]:
                data["heading"] = after[0]
            if not _same_part(before, after, not last or last_followed):
                data["text"] = after[1]
            elif last:
                kept = before[1]
            if len(data) > 1:
                events.append({"type": "UpdateBlockEdited", "data": data})
            at += 1
    return events, kept


def _metadata_change(old: dict[str, Any], new: dict[str, Any], keys: Collection[str] | None = None) -> dict[str, Any] | None:
    """`MetadataChanged` data (`set`, `unset`) that makes the keys `keys` of `old` say what
    `new` says (None: every key of either), or None when they already do. Values are compared
    with `same_value`."""
    def stated(key: str) -> bool:
        return keys is None or key in keys

    changed = {key: value for key, value in new.items() if stated(key) and (key not in old or not same_value(old[key], value))}
    unset = [key for key in old if stated(key) and key not in new]
    if not changed and not unset:
        return None
    return {"set": changed, "unset": unset}


def plan_changes(
    current: ArticleView | None,
    target: ViewLike,
    *,
    metadata_keys: Collection[str] | None = None,
    restore: bool = False,
) -> list[dict[str, Any]]:
    """The events (`{"type", "data"}`) that turn `current` (None: no article yet) into `target`.

    `metadata_keys` are the metadata keys `target` states (None: all; a key it states and does
    not have is unset). A withdrawn article gets `ArticleRestored` first when anything changes,
    or when `restore` is set. Empty when `current` already says what `target` says.
    """
    # A plain-text draft's blank line before its `Categories:` line is rendering's (layout key
    # `categories_break`): the last part is then followed by a paragraph break too.
    categories_break = layout_of(target).get("categories_break") is True
    body, *texts = _stored([("", target.body), *((block.heading, block.text) for block in target.blocks)], categories_break)
    blocks = [(block.heading, text) for block, text in zip(target.blocks, texts, strict=True)]
    if current is None:
        created = {"title": target.title, "body": body, "categories": list(target.categories), "metadata": dict(target.metadata)}
        return [{"type": "ArticleCreated", "data": created}] + [
            {"type": "UpdateBlockAdded", "data": {"heading": h, "text": t}} for h, t in blocks
        ]
    events: list[dict[str, Any]] = []
    edit: dict[str, Any] = {}
    if target.title != current.title:
        edit["title"] = target.title
    if not _same_part(("", current.body), ("", body), bool(blocks) or categories_break):
        edit["body"] = body
    if edit:
        events.append({"type": "ArticleEdited", "data": edit})
    block_events, kept = _block_events([(block.heading, block.text) for block in current.blocks], blocks, categories_break)
    events.extend(block_events)
    if not blocks and "body" not in edit:
        kept = current.body
    categories = _category_change(current.categories, target.categories)
    if categories is not None:
        events.append({"type": "CategoriesChanged", "data": categories})
    wanted = target.metadata
    last_heading = blocks[-1][0] if blocks else ""
    if categories_break and kept is not None and not paragraph_break(kept, last_heading) and not layout_of(current).get("categories_break"):
        # The last part keeps a text stored with its blank line (before the layout had the key):
        # it renders the same without the key, which is then no change to record.
        wanted = {**wanted, LAYOUT_KEY: {k: v for k, v in layout_of(target).items() if k != "categories_break"}}
        if not wanted[LAYOUT_KEY]:
            del wanted[LAYOUT_KEY]
    metadata = _metadata_change(current.metadata, wanted, metadata_keys)
    if metadata is not None:
        events.append({"type": "MetadataChanged", "data": metadata})
    if current.withdrawn and (events or restore):
        events.insert(0, {"type": "ArticleRestored", "data": {}})
    return events
