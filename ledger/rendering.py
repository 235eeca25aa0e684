"""The draft formats, written out: an article view back to the exact draft text it came from.

Two formats (docs/drafts-and-watching.md): plain text (title line, body, update blocks, an optional
last `Categories:` line) and Markdown (YAML, TOML or JSON front matter, or only a `# ` title
heading; then body, update blocks). What a view's
values do not say - the exact `Categories:` line and whether a blank line stands before it, blank
lines before the title, the trailing newline, the front matter as written - is kept by the draft parser (`ledger.draft_format`) in the
reserved metadata key `_draft` (`LAYOUT_KEY`), and only when it differs from the default. This
module also holds the pieces of the formats that both directions share, because drafts import
rendering and not the other way round.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

LAYOUT_KEY = "_draft"
"""Metadata key holding how the draft was laid out (format, raw pieces); absent for plain defaults."""

TITLE_KEY = "title"
ID_KEY = "id"
CATEGORY_KEYS = ("category", "categories", "tags")
"""Front-matter keys whose values are categories (in this order of precedence for output)."""

TAXONOMIES_KEY = "taxonomies"
"""Zola's front-matter table of taxonomies: its `tags` / `categories` (`CATEGORY_KEYS`) are
categories too; a draft that had them there has them written back there (layout key
`categories_table`)."""

CATEGORIES_LABEL = "Categories:"

RESERVED_METADATA_KEYS = frozenset({LAYOUT_KEY, TITLE_KEY, ID_KEY, *CATEGORY_KEYS})
"""Metadata keys a user may not set through events: `_draft` is written by the draft parser
only, and the others are the front-matter keys of the title, id and categories, which a Markdown
draft rendered from metadata holding them would state twice."""


SYNTAXES = ("toml", "json", "heading")
"""How a Markdown draft states its title and metadata, when not in YAML front matter (layout key
`syntax`; absent means YAML): `+++` TOML front matter, a JSON object, or a `# ` title heading."""

HEADING_TITLE_RE = re.compile(r"#[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*\r?\n?")
"""A level-1 ATX heading line (`# Title`, optionally closed by `#`s), the title of a Markdown
draft without front matter. Match with `fullmatch`; an empty title is no title."""

_LAYOUT_FIELDS: dict[str, type] = {
    "format": str, "syntax": str, "front_matter": str, "fingerprint": str, "named_id": bool, "categories_key": str,
    "categories_string": bool, "categories_table": str, "lead": str, "title_end": str, "categories_line": str, "tail": str,
    "categories_break": bool,
}
"""Every key of `metadata["_draft"]` the draft parser writes, with the type of its value."""


def check_layout(value: Any) -> None:
    """Raise `ValueError` naming the first problem when `value` is not a layout the draft parser
    could have written. Checked when an event carries one, and again when rendering, so that no
    value can break a read (rendering runs once per version in `history`: plain checks, no model)."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping written by the draft parser, not a {type(value).__name__}")
    for key, item in value.items():
        kind = _LAYOUT_FIELDS.get(key)
        if kind is None:
            raise ValueError(f"unknown key {key!r}")
        if type(item) is not kind:
            raise ValueError(f"{key}: must be {'text' if kind is str else 'true or false'}")
    if value.get("format", "markdown") != "markdown":
        raise ValueError("format: must be 'markdown' (plain text has no format key)")
    if "syntax" in value and ("format" not in value or value["syntax"] not in SYNTAXES):
        raise ValueError(f"syntax: must be one of {', '.join(SYNTAXES)}, in a Markdown layout")
    line = value.get("categories_line")
    if line is not None and (not is_categories_line(line) or "\n" in line):
        raise ValueError("categories_line: must be one 'Categories:' line")
    if value.get("categories_key", "categories") not in CATEGORY_KEYS:
        raise ValueError(f"categories_key: must be one of {', '.join(CATEGORY_KEYS)}")
    if value.get("categories_table", TAXONOMIES_KEY) != TAXONOMIES_KEY:
        raise ValueError(f"categories_table: must be {TAXONOMIES_KEY!r}")


def layout_of(view: ViewLike) -> Mapping[str, Any]:
    """The layout the draft parser kept in `view`'s metadata; empty (the plain default) when
    there is none, or when a record written before layouts were checked holds something else."""
    layout = view.metadata.get(LAYOUT_KEY)
    if not layout:
        return {}
    try:
        check_layout(layout)
    except ValueError:
        return {}
    return cast("Mapping[str, Any]", layout)


_HEADING_RE = re.compile(
    r"""[ \t]*(?:\#{1,6}[ \t]+)?[_*]{0,3}           # Markdown heading marks and emphasis
    (?:
        \([ \t]*update(?:d)?\b[^)\n]*\)             # (Update 16-Mar-2022) ...
      | update(?:d)?                                # Update ... : ...
        (?:[ \t]+from[ \t][^\n]*?                   #   from Al Masdar News
          |[ \t]*\([^)\n]*\)                        #   (4:05 P.M.)
          |[ \t]*[,\u2013\u2014-][^\n]*?            #   , 5 p.m. / - 10:30
          |[ \t]+\#?\d[^\n]*?                       #   2 / #2 / 16 March
        )?
        [_*]{0,3}[ \t]*:
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_CATEGORIES_RE = re.compile(r"[ \t]*categories[ \t]*:", re.IGNORECASE)
_FENCE_RE = re.compile(r"[ \t]{0,3}(```|~~~)")


class BlockLike(Protocol):
    """An update block: its heading line and the text after it."""

    heading: str
    text: str


class ViewLike(Protocol):
    """What rendering needs of an article: an `ArticleView` or a parsed `Draft`."""

    @property
    def id(self) -> str:
        """The article's id (read-only: `ArticleView.id` is an alias of its `article` field)."""

    title: str
    body: str
    categories: list[str]
    metadata: dict[str, Any]

    @property
    def blocks(self) -> Sequence[BlockLike]:
        """The update blocks, in order."""


def is_update_heading(line: str) -> bool:
    """True if `line` (without its line break) reads as an update-block heading.

    The line starts, after optional Markdown heading marks (`## `) and emphasis (`_`, `*`), with
    either `(Update ...)` or the word `Update`/`Updated`, an optional qualifier (`from SOURCE`,
    `(TIME)`, `, TIME`, `- TIME`, a number) and a colon. `Updates are now available` or
    `## Update root certificates` are not headings.
    """
    return _HEADING_RE.match(line) is not None


def is_categories_line(line: str) -> bool:
    """True if `line` is a plain-text `Categories:` line (label case-insensitive)."""
    return _CATEGORIES_RE.match(line) is not None


def parse_categories_line(line: str) -> list[str]:
    """The categories of a `Categories: a, b` line: split on commas, stripped, empty ones and
    repeats dropped."""
    rest = line.split(":", 1)[1]
    return list(dict.fromkeys(part.strip() for part in rest.split(",") if part.strip()))


def categories_line(categories: Sequence[str]) -> str:
    """The canonical `Categories:` line for `categories` (empty text when there are none)."""
    return f"{CATEGORIES_LABEL} {', '.join(categories)}" if categories else ""


def split_blocks(content: str, markdown: bool) -> tuple[str, list[tuple[str, str]]]:
    """Split the text after the title (plain) or front matter (Markdown) into the body and the
    update blocks `(heading, text)`.

    A block starts at a heading line (see `is_update_heading`) that begins a paragraph: the
    first line, or a line after a blank one. In Markdown, lines inside fenced code are never
    headings. The body ends, and each block's text runs, up to the next heading line.
    """
    lines = content.splitlines(keepends=True)
    starts: list[int] = []
    offset = 0
    previous_blank = True
    fence: str | None = None
    for line in lines:
        bare = line.rstrip("\r\n")
        if markdown:
            found = _FENCE_RE.match(bare)
            if found and (fence is None or found.group(1) == fence):
                fence = found.group(1) if fence is None else None
                previous_blank = False
                offset += len(line)
                continue
        if fence is None and previous_blank and is_update_heading(bare):
            starts.append(offset)
        previous_blank = not bare.strip()
        offset += len(line)
    if not starts:
        return content, []
    body = content[: starts[0]]
    blocks: list[tuple[str, str]] = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(content)
        chunk = content[start:end]
        cut = len(chunk.split("\n", 1)[0])
        heading = chunk[:cut]
        if heading.endswith("\r"):
            cut -= 1
            heading = heading[:-1]
        blocks.append((heading, chunk[cut:]))
    return body, blocks


def paragraph_break(part: str, heading: str = "") -> str:
    """What rendering puts between `part` (the body, or a block's text after its `heading`) and
    the update block heading after it: the line break that makes that heading start a paragraph
    when `part` ends its last line but not its paragraph, else nothing. Lines are split as
    `split_blocks` splits them (`str.splitlines`), so a blank line is the same for both.

    A part followed by a heading is stored without the blank line a draft has there
    (`without_paragraph_break`), so that adding a block after the last part of a draft, or
    removing the last block, leaves the part before it as it was instead of editing its end."""
    if not part.endswith("\n"):
        return ""
    line_end = "\r\n" if part.endswith("\r\n") else "\n"
    # Only the last line is looked at (a live blog's block texts are rendered by the hundred); a
    # text without a line break before its last one continues its heading's line.
    start = part.rfind("\n", 0, len(part) - len(line_end)) + 1
    last = part[start:] if start else heading + part
    if not last.splitlines()[-1].strip():
        return ""
    return line_end


def without_paragraph_break(part: str, heading: str = "") -> str:
    """`part` (after `heading`, for a block's text) as stored when an update block follows it:
    without the last line break of its ending blank line, when `paragraph_break` gives that
    line break back (so that `part` is `without_paragraph_break(part) +
    paragraph_break(without_paragraph_break(part))` for any part a heading can follow)."""
    for line_end in ("\r\n", "\n"):
        if part.endswith(line_end * 2):
            shorter = part[: -len(line_end)]
            return shorter if paragraph_break(shorter, heading) == line_end else part
    return part


def block_breaks(view: ViewLike) -> list[str]:
    """The `paragraph_break` rendering puts before each update block of `view`, in order."""
    breaks = []
    previous, heading = view.body, ""
    for block in view.blocks:
        breaks.append(paragraph_break(previous, heading))
        previous, heading = block.text, block.heading
    return breaks


def categories_break(view: ViewLike) -> str:
    """The `paragraph_break` after the last part of `view` (its last block, or its body): what
    rendering puts before the `Categories:` line of a plain-text draft whose layout says the
    blank line there is rendering's (`categories_break`)."""
    if view.blocks:
        return paragraph_break(view.blocks[-1].text, view.blocks[-1].heading)
    return paragraph_break(view.body)


def inner_text(view: ViewLike) -> str:
    """The body and update blocks of `view` as rendered: each block's heading and text after
    the `paragraph_break` of the part before it."""
    parts = [view.body]
    for block, gap in zip(view.blocks, block_breaks(view), strict=True):
        parts.extend((gap, block.heading, block.text))
    return "".join(parts)


def fingerprint(title: str, categories: Sequence[str], metadata: Mapping[str, Any]) -> str:
    """A short hash of the values a Markdown front matter states (title, categories, metadata
    other than `_draft`), so rendering can tell whether the front matter as written still says
    what the view says."""
    values = {key: value for key, value in metadata.items() if key != LAYOUT_KEY}
    text = json.dumps([title, list(categories), values], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def dump_front_matter(values: Mapping[str, Any]) -> str:
    """Front-matter YAML for `values`, in their order, one key per line."""
    if not values:
        return ""
    # Only a draft with front matter needs YAML: loading it for every command slowed start-up.
    import yaml

    return yaml.safe_dump(dict(values), sort_keys=False, allow_unicode=True, default_flow_style=False, width=2**16)


def _toml_value(value: Any) -> str | None:
    """`value` as a TOML value (inline arrays and tables), or None when TOML cannot say it (null)."""
    if value is None:
        return None
    if isinstance(value, str):
        # A JSON string is a TOML basic string too, once DEL (raw in JSON, not in TOML) is escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, dict):
        parts = [(_toml_key(key), _toml_value(item)) for key, item in value.items()]
        if any(text is None for _, text in parts):
            return None
        return "{" + ", ".join(f"{key} = {text}" for key, text in parts) + "}"
    items = [_toml_value(item) for item in value]
    if any(text is None for text in items):
        return None
    return "[" + ", ".join(text for text in items if text is not None) + "]"


def _toml_key(key: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return json.dumps(key, ensure_ascii=False).replace("\x7f", "\\u007f")


def dump_toml(values: Mapping[str, Any], table: str | None = None) -> str | None:
    """TOML front matter (between `+++` lines) for `values`, or None when TOML cannot say them
    (a null anywhere): nested lists and mappings are written inline, one key per line, except
    the mapping under `table`, written last as a `[table]` as Zola writes `[taxonomies]`."""
    lines = []
    section = []
    for key, value in values.items():
        if key == table and isinstance(value, dict):
            section.append(f"[{_toml_key(key)}]\n")
            for sub, item in value.items():
                text = _toml_value(item)
                if text is None:
                    return None
                section.append(f"{_toml_key(sub)} = {text}\n")
            continue
        text = _toml_value(value)
        if text is None:
            return None
        lines.append(f"{_toml_key(key)} = {text}\n")
    return "+++\n" + "".join(lines + section) + "+++\n"


def _canonical_front_matter(view: ViewLike, layout: Mapping[str, Any]) -> str:
    # Written afresh from the values: title first, then the id if the draft named one, the
    # categories under the key the draft used (a single string stays a string), then metadata.
    key = layout.get("categories_key", "categories")
    values: dict[str, Any] = {TITLE_KEY: view.title}
    if layout.get("named_id"):
        values[ID_KEY] = view.id
    table = layout.get("categories_table")
    others = view.metadata.get(TAXONOMIES_KEY, {})
    if view.categories or "categories_key" in layout:
        as_string = layout.get("categories_string") and len(view.categories) == 1
        stated = view.categories[0] if as_string else list(view.categories)
        if table is not None and isinstance(others, dict):
            # Back into the table, beside the other taxonomies metadata holds there.
            values[table] = {key: stated, **{k: v for k, v in others.items() if k not in CATEGORY_KEYS}}
        else:
            values[key] = stated
    # Reserved keys are refused in new events; an older record may hold one, which must not
    # restate (or, under a categories key, add to) what the values above say.
    values.update((k, v) for k, v in view.metadata.items() if k not in RESERVED_METADATA_KEYS and k not in values)
    # In the draft's own syntax where it can state the values; else YAML, which states them all.
    syntax = layout.get("syntax")
    if syntax == "json":
        return json.dumps(values, ensure_ascii=False, indent=2) + "\n"
    if syntax == "toml" and (toml := dump_toml(values, table)) is not None:
        return toml
    if syntax == "heading" and len(values) == 1:
        line = f"# {view.title}\n"
        found = HEADING_TITLE_RE.fullmatch(line)
        if found is not None and found.group("title") == view.title:
            return line
    return "---\n" + dump_front_matter(values) + "---\n"


def render_markdown(view: ViewLike) -> str:
    """The Markdown draft of `view`: front matter, body, update blocks.

    The front matter is the one written in the draft, byte for byte, as long as the view's title,
    categories and metadata are still the values it states; otherwise (they were changed by
    events rather than by a draft) it is written afresh from the values.
    """
    layout = layout_of(view)
    raw = layout.get("front_matter")
    head = raw if raw is not None and layout.get("fingerprint") == fingerprint(view.title, view.categories, view.metadata) else _canonical_front_matter(view, layout)
    return head + inner_text(view)


def render_text(view: ViewLike) -> str:
    """The plain-text draft of `view`: title line, body, update blocks, `Categories:` line."""
    layout = layout_of(view)
    parts = [layout.get("lead", ""), view.title, layout.get("title_end", "\n"), inner_text(view)]
    raw_line = layout.get("categories_line")
    line = raw_line if raw_line is not None and parse_categories_line(raw_line) == list(view.categories) else categories_line(view.categories)
    if line:
        if layout.get("categories_break"):
            parts.append(categories_break(view))
        # Content written by events may lack a final line break; the line must stand alone. The
        # last non-empty part tells, without joining a live blog's whole text twice.
        if not next((part for part in reversed(parts) if part), "").endswith("\n"):
            parts.append("\n")
        parts.append(line)
        parts.append(layout.get("tail", ""))
    return "".join(parts)


def render(view: ViewLike) -> str:
    """The draft text of `view` (an `ArticleView` or a `Draft`), in the format it was written in.

    After ingesting a draft, `render(article)` gives back the draft's exact text
    (docs/drafts-and-watching.md); articles written only through events render as plain text.
    """
    if layout_of(view).get("format") == "markdown":
        return render_markdown(view)
    return render_text(view)
