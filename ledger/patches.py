"""Text patches: the small, exact form in which an edit is recorded.

A patch is a list of `[start, end, text]` operations against the old text: replace characters
`start:end` with `text`. Offsets are ascending and never overlap. A one-sentence edit of a long
article is one short operation, so the log grows by the change, not by the article.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from itertools import accumulate

Patch = list[tuple[int, int, str]]


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    low, high = 0, limit
    # Binary search on slice equality: C-speed comparisons instead of a Python loop per char.
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _common_suffix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            low = mid
        else:
            high = mid - 1
    return low


def make_patch(old: str, new: str) -> Patch:
    """The patch that turns `old` into `new` (empty when they are equal).

    Lines are matched first (fast on long texts), then each changed run of lines is trimmed to
    the characters that really differ, so an edit inside a long paragraph stays small.
    """
    if old == new:
        return []
    head = _common_prefix(old, new)
    tail = _common_suffix(old[head:], new[head:])
    old_mid = old[head : len(old) - tail]
    new_mid = new[head : len(new) - tail]
    old_lines = old_mid.splitlines(keepends=True)
    new_lines = new_mid.splitlines(keepends=True)
    old_starts = [0, *accumulate(len(line) for line in old_lines)]
    new_starts = [0, *accumulate(len(line) for line in new_lines)]
    patch: Patch = []
    matcher = SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old_chunk = old_mid[old_starts[i1] : old_starts[i2]]
        new_chunk = new_mid[new_starts[j1] : new_starts[j2]]
        pre = _common_prefix(old_chunk, new_chunk)
        suf = _common_suffix(old_chunk[pre:], new_chunk[pre:])
        patch.append(
            (
                head + old_starts[i1] + pre,
                head + old_starts[i2] - suf,
                new_chunk[pre : len(new_chunk) - suf],
            )
        )
    return patch


def apply_patch(old: str, patch: Patch) -> str:
    """Apply `patch` to `old`. Raises `ValueError` if the patch does not fit the text."""
    pieces: list[str] = []
    cursor = 0
    for start, end, text in patch:
        if start < 0:
            raise ValueError(f"patch operation [{start}, {end}] starts before the text does: offsets are 0 or more")
        if start < cursor:
            raise ValueError(f"patch operation [{start}, {end}] starts before the end of the one before it ({cursor}): operations must be in order and not overlap")
        if end < start:
            raise ValueError(f"patch operation [{start}, {end}] ends before it starts")
        if end > len(old):
            raise ValueError(f"patch operation [{start}, {end}] does not fit a text of {len(old)} characters")
        pieces.append(old[cursor:start])
        pieces.append(text)
        cursor = end
    pieces.append(old[cursor:])
    return "".join(pieces)
