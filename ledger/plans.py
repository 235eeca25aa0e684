"""Plans: the changes (events) that turn one state of an article into another.

Ingesting a draft (`ledger.drafts`) and restoring an old version (`Ledger.restore`) ask the same
question - which events bring the article as it is now to the article as it should read? - and
get one answer here, so both follow the same rules: title and body in one `ArticleEdited`,
update blocks matched by heading (edited, added or removed where they stand), categories in
order, metadata compared as JSON values (`same_value`). Applying the events to the current view
gives a view that renders to the same text as the target.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
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


def _block_events(
    old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]], last_followed: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """Events that turn the blocks `old` into `new` (`(heading, text)` pairs, `new` as stored):
    blocks are matched by heading; matched ones with a new heading or text are edited, the
    others removed or added where they stand (each event's index counts the events before it).
    Also the text the last block keeps when it is an old one whose text stays (else None);
    `last_followed` when rendering puts a paragraph break after it too (a `Categories:` line)."""
    events: list[dict[str, Any]] = []
    length = len(old)
    kept: list[str] = []

    def edit(index: int, before: tuple[str, str], after: tuple[str, str], last: bool) -> None:
        data: dict[str, Any] = {"index": index}
        if before[0] != after[0]:
            data["heading"] = after[0]
        if not _same_part(before, after, not last or last_followed):
            data["text"] = after[1]
        elif last:
            kept.append(before[1])
        if len(data) > 1:
            events.append({"type": "UpdateBlockEdited", "data": data})

    delta = 0
    matcher = SequenceMatcher(None, [h for h, _ in old], [h for h, _ in new], autojunk=False)
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        at = i1 + delta
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            edit(at + k, old[i1 + k], new[j1 + k], j1 + k == len(new) - 1)
        for _ in range(paired, i2 - i1):
            events.append({"type": "UpdateBlockRemoved", "data": {"index": at + paired}})
            length -= 1
        for k in range(paired, j2 - j1):
            heading, text = new[j1 + k]
            index = at + k
            events.append({"type": "UpdateBlockAdded", "data": {"heading": heading, "text": text, "index": None if index == length else index}})
            length += 1
        delta += (j2 - j1) - (i2 - i1)
    return events, kept[0] if kept else None


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
