"""Line and word diffs of rendered articles (difflib), as `ledger.views.Diff` models."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

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

