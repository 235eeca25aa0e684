"""The draft formats: plain-text and Markdown draft files (YAML, TOML or JSON front matter, or a
`# ` title heading) parsed into a `Draft`, the whole article the draft states; and reading draft
files safely (regular files only, bounded size, links only when asked). The formats are defined
in docs/drafts-and-watching.md; `ledger.rendering.render` writes a view back to a draft, and
`ledger.drafts` turns a draft into events.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
import unicodedata
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ledger.codec import InputJsonError, loads_input
from ledger.errors import DraftError, InvalidEventError
from ledger.events import json_kind, validate_article_id
from ledger.limits import DRAFT_SIZE_LIMIT
from ledger.model import Model
from ledger.rendering import (
    CATEGORY_KEYS,
    HEADING_TITLE_RE,
    ID_KEY,
    LAYOUT_KEY,
    TAXONOMIES_KEY,
    TITLE_KEY,
    categories_line,
    fingerprint,
    is_categories_line,
    parse_categories_line,
    render,
    split_blocks,
    without_paragraph_break,
)

if TYPE_CHECKING:
    import yaml

DRAFT_SUFFIXES = (".txt", ".md", ".markdown")
"""File name endings read as drafts (`.txt`: plain text; `.md`, `.markdown`: Markdown)."""

MARKDOWN_SUFFIXES = (".md", ".markdown")
FRONT_MATTER_DEPTH = 50
"""How deeply lists and mappings may nest in front matter."""

_CATEGORY_MAX = 200
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_OPEN_FENCE_RE = re.compile(r"\ufeff?---[ \t]*\r?\n")
_TOML_FENCE_RE = re.compile(r"\ufeff?\+\+\+[ \t]*\r?\n")


class DraftBlock(Model):
    """An update block of a draft: its heading line and everything after it up to the next block."""

    heading: str
    text: str


class Draft(Model):
    """A parsed draft: the article it states, and (in `metadata["_draft"]`) how it was laid out."""

    id: str = Field(description="The article id: front matter `id`, else the file name's stem.")
    format: Literal["text", "markdown"]
    title: str
    body: str
    blocks: list[DraftBlock] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Front-matter keys, plus `_draft` (layout).")
    source: str | None = Field(default=None, description="The file it was read from.")

    def text(self) -> str:
        """The draft's text, as `ledger.rendering.render` writes it (equal to the file's)."""
        return render(self)


# --- parsing -------------------------------------------------------------------------------


class _Refused(Exception):
    """A front-matter construct ledger does not accept, where it starts."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


@functools.cache
def _loader() -> type[yaml.SafeLoader]:
    """The YAML loader for front matter, made when a draft first has YAML front matter: loading
    YAML for every draft (and every command) slowed start-up. Two threads may each make one at
    first; either is the same loader."""
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML safe loading with timestamps kept as the text written (metadata must stay JSON),
        without aliases and with bounded nesting.

        An alias makes a value out of another one: a few hundred bytes of nested aliases ("billion
        laughs") expand to gigabytes, and an alias inside its own anchor is an endless value. Both
        are refused where the alias is written, before anything is built.
        """

        _depth = 0

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _Refused(f"the YAML alias *{event.anchor} is not allowed in front matter (aliases and merge keys can expand without bound; write the value out)", event.start_mark)
            if self._depth >= FRONT_MATTER_DEPTH:
                raise _Refused(f"front matter nests lists or mappings deeper than {FRONT_MATTER_DEPTH} levels", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            # A key given twice is refused, as in TOML and JSON front matter: YAML would keep the
            # last value without a word.
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in seen:
                        raise _Refused(f"front matter: key {key_node.value!r} is given twice in one mapping", key_node.start_mark)
                    seen.add(key_node.value)
            return super().construct_mapping(node, deep)

    def construct_yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        # Python reads no decimal integer of more than 4,300 digits (ValueError, a traceback
        # here): one of over 40 digits is far beyond 64 bits already, and is refused as such
        # with its key when the metadata is checked.
        text = str(node.value)
        if sum(char.isdigit() for char in text) > 40 and not text.lstrip("+-").lower().startswith(("0x", "0o", "0b")):
            return -(2**64) if text.lstrip().startswith("-") else 2**64
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    Loader.add_constructor("tag:yaml.org,2002:int", construct_yaml_int)
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _decode(data: bytes, name: str, named: bool) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A NUL byte, or a file named otherwise than a draft, is no draft saved in the wrong
        # encoding (an image, a program): say what a draft is rather than how to save one.
        if b"\0" in data or (named and not name.lower().endswith(DRAFT_SUFFIXES)):
            what = "binary data" if b"\0" in data else "not UTF-8 text"
            raise DraftError(f"{name}: not a draft: {what} (drafts are UTF-8 text files: {', '.join(DRAFT_SUFFIXES)})") from None
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DraftError(f"{name}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); save the draft as UTF-8") from None


def _check_line(value: str, what: str, name: str, line: int) -> None:
    if _CONTROL_RE.search(value) or "\r" in value:
        raise DraftError(f"{name}:{line}: {what} contains a control character")


def _check_categories(categories: list[str], name: str, line: int) -> None:
    for category in categories:
        _check_line(category, f"category {category[:40]!r}", name, line)
        if len(category) > _CATEGORY_MAX:
            raise DraftError(f"{name}:{line}: category {category[:40]!r}... is longer than {_CATEGORY_MAX} characters")


def _check_blocks(blocks: list[tuple[str, str]], content: str, first_line: int, name: str) -> None:
    offset = 0
    for heading, _text in blocks:
        offset = content.index(heading, offset)
        _check_line(heading, "update heading", name, first_line + content.count("\n", 0, offset))
        offset += len(heading)


def _article_id(explicit: Any, source: str | None, name: str, line: int, given: str | None = None) -> str:
    if given is not None:
        try:
            validate_article_id(given)
        except InvalidEventError as exc:
            raise DraftError(f"{name}:1: {exc}") from None
        if explicit is not None and str(explicit) != given:
            raise DraftError(f"{name}:{line}: front matter `id` {explicit!r} differs from the article id {given!r} asked for")
        return given
    if explicit is None:
        if source is None:
            raise DraftError(f"{name}:1: no article id: give the draft a file name or an `id` in front matter")
        # Composed (NFC), as the name was typed: some file systems (macOS) hand names back
        # decomposed, a letter and its accent as two characters, which no article id holds.
        stem = unicodedata.normalize("NFC", Path(source).name)
        for suffix in DRAFT_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        try:
            return validate_article_id(stem)
        except InvalidEventError as exc:
            raise DraftError(f"{name}:1: the file name cannot be the article id: {exc}; rename the file") from None
    if not isinstance(explicit, (str, int)) or isinstance(explicit, bool):
        raise DraftError(f"{name}:{line}: front matter `id` must be a text slug")
    try:
        return validate_article_id(str(explicit))
    except InvalidEventError as exc:
        raise DraftError(f"{name}:{line}: front matter `id`: {exc}") from None


def _parse_text(text: str, name: str, source: str | None, article: str | None) -> Draft:
    # The lead (blank lines, a BOM, spaces before the title) is layout, kept to render back.
    lead_match = re.match(r"[\s\ufeff]*", text)
    start = lead_match.end() if lead_match else 0
    if start == len(text):
        raise DraftError(f"{name}:1: empty draft: no title line")
    newline = text.find("\n", start)
    line_end = len(text) if newline < 0 else newline + 1
    title = text[start:line_end].rstrip()
    title_line = _line_of(text, start)
    _check_line(title, "title", name, title_line)
    layout: dict[str, Any] = {}
    if start:
        layout["lead"] = text[:start]
    title_end = text[start + len(title) : line_end]
    if title_end != "\n":
        layout["title_end"] = title_end
    content = text[line_end:]
    categories: list[str] = []
    stripped = content.rstrip()
    last_start = stripped.rfind("\n") + 1
    last = stripped[last_start:]
    has_line = bool(stripped) and is_categories_line(last)
    if has_line:
        categories = parse_categories_line(last)
        _check_categories(categories, name, _line_of(text, line_end + last_start))
        if last != categories_line(categories):
            layout["categories_line"] = last
        if content[len(stripped) :]:
            layout["tail"] = content[len(stripped) :]
        content = content[:last_start]
    body, blocks = split_blocks(content, markdown=False)
    _check_blocks(blocks, content, _line_of(text, line_end), name)
    if has_line:
        # The blank line before the `Categories:` line is rendering's, as before a heading: the
        # last part is stored without it (`ledger.plans`), so that adding or removing the line
        # edits no text.
        heading, part = blocks[-1] if blocks else ("", body)
        if without_paragraph_break(part, heading) != part:
            layout["categories_break"] = True
    return Draft(
        id=_article_id(None, source, name, 1, article),
        format="text",
        title=title,
        body=body,
        blocks=[DraftBlock(heading=h, text=t) for h, t in blocks],
        categories=categories,
        metadata={LAYOUT_KEY: layout} if layout else {},
        source=source,
    )


def _json_value(value: Any, where: str) -> Any:
    """Check a front-matter value can be metadata (JSON): raise `ValueError` naming the key."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where}: integer too large")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        return value
    if isinstance(value, list):
        return [_json_value(item, where) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not text")
        return {key: _json_value(item, f"{where}.{key}") for key, item in value.items()}
    raise ValueError(f"{where}: a {type(value).__name__} value cannot be stored (use text, numbers, lists, mappings)")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _holds_surrogate(value: Any) -> bool:
    """Whether a parsed front-matter value (or key) holds a lone surrogate: YAML and JSON read
    the escape `\\ud800` into one, and it is no character, so no UTF-8 log can keep it."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, list):
        return any(_holds_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_surrogate(key) or _holds_surrogate(item) for key, item in value.items())
    return False


def _key_line(front: str, key: str, first_line: int, syntax: str = "yaml") -> int:
    """The line where `key` is given at the top of `front` (which starts at `first_line`); the
    first line when it cannot be found (a key written in an unusual way)."""
    quoted = rf"['\"]?{re.escape(key)}['\"]?"
    if syntax == "toml":
        # `key = ...`, a dotted `key.sub = ...`, or a table `[key]` / `[[key]]` / `[key.sub]`.
        pattern = rf"^[ \t]*\[*[ \t]*{quoted}[ \t]*[=.\]]"
    elif syntax == "json":
        pattern = rf"\"{re.escape(key)}\"\s*:"
    elif syntax == "heading":
        pattern = "#"  # the title heading is the only key, after blank lines at most
    else:
        pattern = rf"^{quoted}[ \t]*:"
    found = re.search(pattern, front, re.MULTILINE)
    return first_line + (front.count("\n", 0, found.start()) if found else 0)


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


_TOML_PROBLEMS = {
    "Cannot overwrite a value": "a key is given twice (or as a value and as a table)",
    "Invalid date or datetime": "not a valid date or time (a month, day or hour out of range?)",
    "Invalid value": "a value TOML does not know (text must be quoted: title = \"...\")",
    "Unclosed array": "a list '[' is not closed",
    "Unclosed inline table": "an inline table '{' is not closed",
    "Unterminated string": "a quoted text is not closed",
    "Invalid statement": "a line that is neither `key = value` nor a `[table]`",
    "Expected newline or end of document after a statement":
        "something follows the value on its line (one `key = value` a line; a date or number written wrong?)",
    "Cannot declare": "a table is declared twice",
    "Cannot mutate immutable namespace": "a table or key is defined twice",
    "Cannot redefine namespace": "a table or key is defined twice",
    "Duplicate inline table key": "a key is given twice in an inline table",
}
"""tomllib's problems (a message, or the start of one that goes on to name a key in Python
syntax), in plain words."""
_TOML_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_TOML_DOTTED_RE = re.compile(rf"{_TOML_KEY_PART}(?:[ \t]*\.[ \t]*{_TOML_KEY_PART}){{{FRONT_MATTER_DEPTH},}}")
"""A dotted key or table name of more than `FRONT_MATTER_DEPTH` parts: tomllib's cost grows with
the square of a key's parts (20 KB of `a.a.a...` took 2 s, 1 MiB would take hours), so such a
key is refused before parsing. Text that merely looks like one (51 dotted words in a string) is
refused too: a false alarm on what no front matter holds, against an unbounded stall."""
_TOML_DATE_LIKE_RE = re.compile(r"=[ \t]*\d{4}-\d{1,2}-\d{1,2}(?:[ \t]*$|[Tt ]\d)")
_TOML_ERROR_RE = re.compile(r"(?P<problem>.*) \(at (?:line (?P<line>\d+), column \d+|end of document)\)")


def _fenced(text: str, opening: re.Match[str], fence: str, name: str) -> tuple[str, int]:
    """The front matter between `opening` and the next line that is only `fence` (YAML: or
    `...`), and where that closing line ends."""
    offset = opening.end()
    closers = ("---", "...") if fence == "---" else (fence,)
    while offset < len(text):
        newline = text.find("\n", offset)
        end = len(text) if newline < 0 else newline + 1
        if text[offset:end].rstrip() in closers:
            return text[opening.end() : offset], end
        offset = end
    raise DraftError(f"{name}:1: front matter is not closed: no '{fence}' line after the opening one")


_YAML_PROBLEMS = (
    ("found character '\\t' that cannot start any token", "a tab where YAML wants spaces: indent with spaces"),
    ("found unhashable key", "a list or mapping cannot be a key"),
    ("expected ',' or ']'", "a list '[' is not closed"),
    ("expected ',' or '}'", "a mapping '{' is not closed"),
    ("found unexpected end of stream", "a quoted text is not closed"),
    ("mapping values are not allowed here", "a ': ' where no key can be (put a value holding ': ' in quotes, or check the indentation)"),
    ("expected <block end>", "a line that does not line up with the ones above it (check the indentation)"),
    ("could not find expected ':'", "a line that is not `key: value`"),
)
"""PyYAML's problems (the start of its message), in plain words; its own are kept for the rest."""


def _yaml_problem(exc: Any) -> str:
    """What is wrong in YAML front matter, in plain words where PyYAML's are a parser's."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    tag = re.match(r"could not determine a constructor for the tag '(?:tag:yaml\.org,2002:)?(.*)'", problem)
    if tag:
        shown = tag.group(1) if tag.group(1).startswith("!") else f"!!{tag.group(1)}"
        return f"the YAML tag {shown} is not allowed in front matter (write the value plainly)"
    known = next((words for start, words in _YAML_PROBLEMS if problem.startswith(start)), None)
    if known is not None:
        return known
    char = re.match(r"found character (.*) that cannot start any token", problem)
    if char:
        return f"{char.group(1)} cannot start a value: put the value in quotes (\"...\")"
    context = getattr(exc, "context", None)
    return f"{problem}{f' ({context})' if context else ''}"


def _yaml_front(front: str, name: str) -> Any:
    import yaml

    try:
        return yaml.load(front, Loader=_loader())
    except _Refused as exc:
        raise DraftError(f"{name}:{exc.problem_mark.line + 2}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        # The line where the broken construct began (an unclosed bracket) says more than where
        # the parser gave up (often the end of the front matter).
        # (A key that cannot be one is where it is, not where its mapping began.)
        marks = ("problem_mark", "context_mark") if str(getattr(exc, "problem", "")).startswith("found unhashable key") else ("context_mark", "problem_mark")
        mark = getattr(exc, marks[0], None) or getattr(exc, marks[1], None)
        line = mark.line + 2 if mark is not None else 1
        raise DraftError(f"{name}:{line}: broken front matter: {_yaml_problem(exc)}") from None


def _deeper_than(value: Any, limit: int) -> bool:
    """True when lists and mappings in `value` nest more than `limit` levels (a mapping holding
    a list is two); stops looking `limit` levels down, so it costs no more than that."""
    if not isinstance(value, (list, dict)):
        return False
    if limit == 0:
        return True
    items = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(item, limit - 1) for item in items)


def _plain_toml(value: Any) -> Any:
    """`value` with TOML dates and times as ISO 8601 text (metadata is JSON; YAML dates stay
    text too, so `date` reads the same whatever the front matter): UTC is written `Z`."""
    if isinstance(value, dict):
        return {key: _plain_toml(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_toml(item) for item in value]
    if isinstance(value, (datetime, date, time)):
        text = value.isoformat()
        return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text
    return value


def _toml_front(front: str, name: str) -> Any:
    import tomllib

    dotted = _TOML_DOTTED_RE.search(front)
    if dotted is not None:
        line = _line_of(front, dotted.start()) + 1
        raise DraftError(f"{name}:{line}: front matter nests lists or mappings deeper than {FRONT_MATTER_DEPTH} levels")
    try:
        values = tomllib.loads(front)
    except RecursionError:
        # Lists or inline tables nested some hundreds deep: the line where they pass the limit.
        depth, line = 0, 0
        for number, row in enumerate(front.splitlines(), 2):
            line = number
            depth += row.count("[") + row.count("{") - row.count("]") - row.count("}")
            if depth > FRONT_MATTER_DEPTH:
                break
        raise DraftError(f"{name}:{line}: front matter nests lists or mappings deeper than {FRONT_MATTER_DEPTH} levels") from None
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_ERROR_RE.fullmatch(str(exc))
        problem = found.group("problem") if found else str(exc)
        line = int(found.group("line")) + 1 if found and found.group("line") else front.count("\n") + 2
        known = next((words for start, words in _TOML_PROBLEMS.items() if problem.startswith(start)), None)
        rows = front.splitlines()
        if problem.startswith("Expected newline") and 2 <= line <= len(rows) + 1 and _TOML_DATE_LIKE_RE.search(rows[line - 2]):
            # A date with a month or day out of range (`2017-13-45`) is no TOML date, so tomllib
            # reads the year as a number and stumbles on the rest: say what was meant.
            known = _TOML_PROBLEMS["Invalid date or datetime"]
        words = known or f"{problem[:1].lower()}{problem[1:]}"
        raise DraftError(f"{name}:{line}: broken TOML front matter: {words}") from None
    except ValueError as exc:
        # (After TOMLDecodeError, which is a ValueError too.)
        if "integer string conversion" not in str(exc):
            raise
        # A decimal integer of more than 4,300 digits, which Python does not read: the line it
        # is on, and its key when the line starts with one.
        digits = re.search(r"\d{4301}", front)
        line = _line_of(front, digits.start()) + 1 if digits else 2
        found = re.match(r'[ \t]*([A-Za-z0-9_-]+|"[^"\n]*")[ \t]*=', front.splitlines()[line - 2]) if digits else None
        named = found.group(1).strip('"') if found else None
        where = f"front matter `{named}`" if named else "front matter"
        raise DraftError(f"{name}:{line}: {where}: integer too large") from None
    for key, value in values.items():
        if _deeper_than(value, FRONT_MATTER_DEPTH - 1):
            line = _key_line(front, key, 2, "toml")
            raise DraftError(f"{name}:{line}: front matter nests lists or mappings deeper than {FRONT_MATTER_DEPTH} levels")
    return _plain_toml(values)


def _json_end(text: str, start: int, name: str) -> int:
    """Where the JSON object opening at `start` ends (after its `}`), found without parsing it:
    strings are skipped, brackets counted. Nesting deeper than `FRONT_MATTER_DEPTH` is refused
    here, before a recursive parser could spend a stack on it."""
    depth = 0
    in_string = escaped = False
    for offset in range(start, len(text)):
        char = text[offset]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > FRONT_MATTER_DEPTH:
                line = _line_of(text, offset)
                raise DraftError(f"{name}:{line}: front matter nests lists or mappings deeper than {FRONT_MATTER_DEPTH} levels")
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return offset + 1
    raise DraftError(f"{name}:1: JSON front matter is not closed: no '}}' matches the '{{' that opens the draft")


def _json_front(text: str, start: int, name: str) -> tuple[Any, int]:
    """The values of the JSON front matter opening at `start`, and where its closing line ends."""
    end = _json_end(text, start, name)
    newline = text.find("\n", end)
    close_end = len(text) if newline < 0 else newline + 1
    if text[end:close_end].strip():
        raise DraftError(f"{name}:{_line_of(text, end)}: text after the '}}' that closes the JSON front matter; start the body on the next line")
    front = text[start:end]
    try:
        return loads_input(front), close_end
    except InputJsonError as exc:
        if exc.position is not None:
            raise DraftError(f"{name}:{_line_of(text, start + exc.position)}: broken JSON front matter: {exc.problem}") from None
        # A refused value (a key given twice, a 65-bit integer, NaN): the line of the second
        # `"key":`, or of the number as written.
        line = 1
        if exc.subject is not None:
            keys = [m.start() for m in re.finditer(re.escape(json.dumps(exc.subject, ensure_ascii=False)) + r"\s*:", front)]
            place = keys[1] if len(keys) > 1 else front.find(exc.subject)
            line = _line_of(text, start + place) if place >= 0 else 1
        raise DraftError(f"{name}:{line}: JSON front matter: {exc}") from None


def _front_matter(text: str, name: str) -> tuple[str, str, Any, int]:
    """Find and parse the front matter of a Markdown draft: its syntax ("yaml", "toml", "json",
    "heading"), its text, its values and where it ends (the body starts there)."""
    if (opening := _OPEN_FENCE_RE.match(text)) is not None:
        front, close_end = _fenced(text, opening, "---", name)
        return "yaml", front, _yaml_front(front, name), close_end
    if (opening := _TOML_FENCE_RE.match(text)) is not None:
        front, close_end = _fenced(text, opening, "+++", name)
        return "toml", front, _toml_front(front, name), close_end
    brace = 1 if text.startswith("\ufeff") else 0
    if text.startswith("{", brace):
        values, close_end = _json_front(text, brace, name)
        return "json", text[brace:close_end], values, close_end
    lead = re.match(r"[\s\ufeff]*", text)
    start = lead.end() if lead else 0
    newline = text.find("\n", start)
    close_end = len(text) if newline < 0 else newline + 1
    heading = HEADING_TITLE_RE.fullmatch(text[start:close_end])
    if heading is None or not heading.group("title"):
        raise DraftError(
            f"{name}:{_line_of(text, start)}: no title: a Markdown draft starts with front matter "
            "('---' YAML, '+++' TOML or a JSON object, with a title) or with a '# Title' heading line"
        )
    return "heading", text[:close_end], {TITLE_KEY: heading.group("title")}, close_end


def _add_categories(
    categories: list[str], layout: dict[str, Any], key: str | None, value: Any, label: str, name: str, line: int
) -> None:
    """Add the categories `value` states (text or a list of texts) to `categories`, refusing
    anything else under `label`; `key` is the front-matter key it was under, when that is where
    rendering writes categories back (a single text there stays a text)."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    texts: list[str] = []
    for item in items:
        text_item = _scalar_text(item)
        if text_item is None:
            raise DraftError(f"{name}:{line}: front matter `{label}` must be text or a list of texts")
        texts.append(text_item)
    if key is not None and key == layout["categories_key"] and isinstance(value, str):
        layout["categories_string"] = True
    new = [item for item in dict.fromkeys(texts) if item and item not in categories]
    _check_categories(new, name, line)
    categories.extend(new)


def _parse_markdown(text: str, name: str, source: str | None, article: str | None) -> Draft:
    syntax, front, values, close_end = _front_matter(text, name)
    # The line `front` starts on: the one after the opening fence, or the draft's first line for
    # a JSON object (its first key may share the '{' line) and a heading (blank lines included).
    first_line = 1 if syntax in ("json", "heading") else 2
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise DraftError(f"{name}:2: front matter must be a mapping of keys to values, not {json_kind(values)}")
    title: str | None = None
    explicit_id: Any = None
    categories: list[str] = []
    metadata: dict[str, Any] = {}
    layout: dict[str, Any] = {"format": "markdown", "front_matter": text[:close_end]}
    if syntax != "yaml":
        layout["syntax"] = syntax
    for key, value in values.items():
        line = _key_line(front, str(key), first_line, syntax)
        if _holds_surrogate(key) or _holds_surrogate(value):
            raise DraftError(f"{name}:{line}: front matter holds an escape that is no character "
                             "(an unpaired surrogate, \\ud800 to \\udfff); write the character itself")
        if not isinstance(key, str):
            raise DraftError(f"{name}:{line}: front-matter key {key!r} is not text")
        if key == TITLE_KEY:
            title = _scalar_text(value)
            if title is None or not title.strip():
                raise DraftError(f"{name}:{line}: front matter `title` must be non-empty text")
            if "\n" in title:
                raise DraftError(f"{name}:{line}: front matter `title` spans several lines")
            _check_line(title, "title", name, line)
        elif key == ID_KEY:
            explicit_id = value
            layout["named_id"] = True
        elif key in CATEGORY_KEYS:
            if "categories_key" not in layout:
                layout["categories_key"] = key
            where = None if "categories_table" in layout else key
            _add_categories(categories, layout, where, value, key, name, line)
        elif key == TAXONOMIES_KEY and isinstance(value, dict) and any(sub in value for sub in CATEGORY_KEYS):
            # Zola's `[taxonomies]` table: its `tags` / `categories` are the article's categories
            # (a blog moving from `category:` to Zola keeps its categories over time); its other
            # taxonomies stay metadata under `taxonomies`.
            rest: dict[str, Any] = {}
            for sub, item in value.items():
                if sub in CATEGORY_KEYS:
                    if "categories_key" not in layout:
                        layout["categories_key"] = sub
                        layout["categories_table"] = key
                    where = sub if layout.get("categories_table") == key else None
                    _add_categories(categories, layout, where, item, f"{key}.{sub}", name, line)
                else:
                    rest[sub] = item
            if rest:
                try:
                    metadata[key] = _json_value(rest, f"front matter `{key}`")
                except ValueError as exc:
                    raise DraftError(f"{name}:{line}: {exc}") from None
        elif key == LAYOUT_KEY:
            raise DraftError(f"{name}:{line}: front-matter key `{LAYOUT_KEY}` is reserved by ledger")
        else:
            try:
                metadata[key] = _json_value(value, f"front matter `{key}`")
            except ValueError as exc:
                raise DraftError(f"{name}:{line}: {exc}") from None
    if title is None:
        raise DraftError(f"{name}:1: front matter has no `title`")
    article = _article_id(explicit_id, source, name, _key_line(front, ID_KEY, first_line, syntax), article)
    layout["fingerprint"] = fingerprint(title, categories, metadata)
    content = text[close_end:]
    body, blocks = split_blocks(content, markdown=True)
    _check_blocks(blocks, content, _line_of(text, close_end), name)
    metadata[LAYOUT_KEY] = layout
    return Draft(
        id=article,
        format="markdown",
        title=title,
        body=body,
        blocks=[DraftBlock(heading=h, text=t) for h, t in blocks],
        categories=categories,
        metadata=metadata,
        source=source,
    )


def parse_draft(
    data: bytes | str, source: str | os.PathLike[str] | None = None, *, markdown: bool | None = None, article: str | None = None
) -> Draft:
    """Parse a draft's bytes (or text). `source` is the file name: it gives the article id (its
    stem, unless front matter names an `id`, or `article` is given), the format (`.md`,
    `.markdown`: Markdown, unless `markdown` says) and the name in error messages.

    Raises `DraftError` (one line: file, line, what is wrong) for bytes that are not UTF-8 (or
    binary, or not UTF-8 in a file not named like a draft: "not a draft"), an
    empty draft, a missing title (a Markdown draft needs front matter or a `# ` title heading),
    broken or hostile front matter or an invalid article id.
    """
    name = os.fspath(source) if source is not None else "<draft>"
    text = _decode(data, name, source is not None) if isinstance(data, bytes) else data
    if markdown is None:
        markdown = name.lower().endswith(MARKDOWN_SUFFIXES)
    if not text.strip("\ufeff \t\r\n"):
        raise DraftError(f"{name}:1: empty draft: no title")
    src = name if source is not None else None
    return _parse_markdown(text, name, src, article) if markdown else _parse_text(text, name, src, article)


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "not a regular file"


def _link_target(name: str, path: Path) -> os.stat_result:
    """The file a symbolic link in a drafts folder points to, when it is a regular file in the
    same folder (links out of the folder would let a draft publish any file the user can read)."""
    folder = os.path.realpath(path.parent)
    target = os.path.realpath(path)
    if os.path.commonpath([folder, target]) != folder:
        raise DraftError(f"{name}: a symbolic link to {target}, outside the drafts folder: not followed")
    try:
        info = os.stat(target)
    except OSError as exc:
        raise DraftError(f"{name}: a symbolic link to {target}, which cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DraftError(f"{name}: a symbolic link to {_kind(info.st_mode)}, not a regular file: only regular files are drafts")
    return info


def check_draft_file(path: str | os.PathLike[str], *, follow_symlinks: bool = False) -> os.stat_result:
    """The `lstat` of `path` (of its target, for a followed link) if it can be read as a draft;
    else `DraftError` naming what it is. Only regular files are drafts: a FIFO or a device would
    block or never end, a folder is not text. A symbolic link is followed only when asked, and
    only to a regular file in the link's own folder."""
    name = os.fspath(path)
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise DraftError(f"{name}: cannot read the draft: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        if not follow_symlinks:
            raise DraftError(f"{name}: a symbolic link: not followed (--follow-symlinks reads links to drafts in the same folder)")
        return _link_target(name, Path(path))
    if not stat.S_ISREG(info.st_mode):
        raise DraftError(f"{name}: {_kind(info.st_mode)}, not a regular file: only regular files are drafts")
    return info


def read_draft_bytes(
    path: str | os.PathLike[str], *, follow_symlinks: bool = False, max_size: int = DRAFT_SIZE_LIMIT
) -> tuple[bytes, os.stat_result]:
    """The bytes of the draft file at `path` and its `fstat` as read, after `check_draft_file`.

    The file is opened without blocking and checked again once open (it may have been swapped
    for a FIFO or a link in between); more than `max_size` bytes is refused before it is read.
    """
    name = os.fspath(path)
    expected = check_draft_file(path, follow_symlinks=follow_symlinks)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise DraftError(f"{name}: cannot read the draft: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino) or not stat.S_ISREG(info.st_mode):
            raise DraftError(f"{name}: replaced while it was opened; save it again")
        too_big = f"{name}: the draft is over the size limit of {max_size:,} bytes (--max-draft-size sets another)"
        if info.st_size > max_size:
            raise DraftError(too_big)
        chunks: list[bytes] = []
        size = 0
        # The file may grow after fstat: read one byte past the limit to know.
        while size <= max_size:
            chunk = os.read(fd, max_size + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_size:
            raise DraftError(too_big)
    except OSError as exc:
        raise DraftError(f"{name}: cannot read the draft: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return b"".join(chunks), info


def read_draft(
    path: str | os.PathLike[str], article: str | None = None, *, follow_symlinks: bool = False, max_size: int = DRAFT_SIZE_LIMIT
) -> Draft:
    """Read and parse the draft file at `path` (see `parse_draft`); `article` overrides the id.
    Only a regular file of at most `max_size` bytes is read, and a symbolic link only with
    `follow_symlinks` (see `read_draft_bytes`)."""
    data, _ = read_draft_bytes(path, follow_symlinks=follow_symlinks, max_size=max_size)
    return parse_draft(data, path, article=article)


def is_draft_name(name: str) -> bool:
    """True for names of draft files: an allowed suffix, and not hidden, temporary or backup."""
    lower = name.lower()
    if not lower.endswith(DRAFT_SUFFIXES):
        return False
    return not (name.startswith((".", "#", "~$")) or name.endswith(("~", "#")) or "___jb_" in name)
