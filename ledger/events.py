"""Event models: what may be appended, what is recorded, and how old records are upcast.

An event enters as an `EventIn` (what a user or a draft asks to record), is validated against the
data model of its type, and leaves the store as a `RecordedEvent` (the envelope the store adds:
position, version, times, schema version). Records are validated on the way in only; on the way
out they are trusted, because every record is checksummed, and upcast by `upcast` when they were
written under an older schema.
"""

from __future__ import annotations

import functools
import math
import os
import random
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, Required

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict

from ledger.errors import InvalidEventError, InvalidInputError, InvalidTimeError
from ledger.model import Model

# Whole numbers only as JSON numbers: pydantic would also read "0", 0.0 and true as 0 or 1, so a
# quoted or mistyped number would be recorded as another value than the one written.
WholeNumber = StrictInt
# `ledger.patches.Patch` as events take it: its offsets whole numbers in that sense.
_StrictPatch = list[tuple[WholeNumber, WholeNumber, str]]

ARTICLE_ID_MAX = 200
_ARTICLE_ID_RE = re.compile(r"[^\W_][\w.~-]*")
_EVENT_ID_RE = re.compile(r"[!-~]{1,128}")
# Lone surrogates are not text: they cannot be written as UTF-8 (nor sealed into the log).
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
MAX_NESTING = 32
"""How deep metadata values may nest (lists and mappings inside each other)."""


def validate_article_id(value: str) -> str:
    """Return `value` if it is a valid article id (a slug), else raise `InvalidEventError`.

    A slug starts with a letter or digit and continues with letters, digits, `.`, `_`, `~`, `-`:
    no path separators, no spaces, no control characters, at most 200 characters.
    """
    if not isinstance(value, str) or not value:
        raise InvalidEventError("article id is empty")
    if len(value) > ARTICLE_ID_MAX:
        raise InvalidEventError(f"article id is longer than {ARTICLE_ID_MAX} characters: {value[:40]!r}...")
    if not _ARTICLE_ID_RE.fullmatch(value):
        composed = unicodedata.normalize("NFC", value)
        if composed != value and _ARTICLE_ID_RE.fullmatch(composed):
            # It prints the same as the id it should be: say what differs.
            raise InvalidEventError(
                f"article id {value!r} has a letter written as a letter plus a combining mark (Unicode NFD); "
                "write each such letter as one character (NFC), as keyboards type it"
            )
        raise InvalidEventError(
            f"article id {value!r} is not a slug (letters, digits, '.', '_', '~', '-'; no '/', spaces or control characters)"
        )
    return value


def _check_article_id(value: str) -> str:
    try:
        return validate_article_id(value)
    except InvalidEventError as exc:
        raise ValueError(str(exc)) from None


def _check_event_id(value: str) -> str:
    if not _EVENT_ID_RE.fullmatch(value):
        raise ValueError("event id must be 1-128 printable ASCII characters without spaces")
    return value


def _check_one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


def _check_no_control(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError("contains control characters or unpaired surrogates")
    return value


def _check_occurred_at(value: Any) -> Any:
    # Only ISO 8601 text or a datetime: pydantic would also read 12345 (or "12345") as seconds
    # since 1970, a time nobody meant.
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO 8601 time (e.g. 2017-09-05T16:05:00Z)") from None
    elif not isinstance(value, datetime):
        raise ValueError(f"must be an ISO 8601 time as text (e.g. \"2017-09-05T16:05:00Z\"), not {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2017-09-05T16:05:00Z)")
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{value.isoformat()} is out of range: in UTC it must fall within the years 1 to 9999") from None


ArticleId = Annotated[str, AfterValidator(_check_article_id)]
EventId = Annotated[str, AfterValidator(_check_event_id)]
Category = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_one_line), AfterValidator(_check_no_control)]
OneLine = Annotated[str, AfterValidator(_check_one_line), AfterValidator(_check_no_control)]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """Render a datetime as the log's canonical UTC text (fixed width, so text order is time order)."""
    if moment.tzinfo is None:
        raise InvalidTimeError(f"time {moment.isoformat()} has no time zone")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat writes every year with four digits (strftime's %Y drops the leading zeros of years
    # before 1000, which would break the fixed width), and is twice as fast; in UTC it ends in
    # "+00:00".
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


_CANONICAL_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def parse_time(text: str) -> datetime:
    """Parse a canonical log time (as written by `format_time`) into an aware UTC datetime."""
    if _CANONICAL_TIME_RE.fullmatch(text):
        # fromisoformat is ~30x faster than strptime; on canonical text both give the same value
        # (an impossible date falls through to strptime, for its error message).
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    # pydantic reads "...Z" with its own TzInfo(0); every time a result holds is in
    # `datetime.timezone.utc`, as `parse_time` gives, so that one tz object is compared and shown.
    # After pydantic's own (compiled) parse: parsing the text again in Python made reading events
    # 15% slower.
    if value.tzinfo is not None and value.tzinfo is not UTC:
        return value.astimezone(UTC)
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""A time in a result: an aware datetime in `datetime.timezone.utc`."""


_ids_lock = threading.Lock()
_next_stamp = 0
_VERSION = 7 << 76
_VARIANT = 2 << 62
# The ids' random bits: a generator of our own, seeded from os.urandom (a user's random.seed()
# must not make two processes draw the same ids). It is 6x cheaper than an os.urandom call per
# append; ids need uniqueness, not secrecy.
_random = random.Random()


def _ids_after_fork() -> None:
    # A forked child draws other random bits than its parent, and gets a lock of its own: the
    # parent's may have been held by a thread that does not exist in the child.
    global _ids_lock  # noqa: PLW0603 - the id clock is process state, replaced in a forked child
    _ids_lock = threading.Lock()
    _random.seed()


os.register_at_fork(after_in_child=_ids_after_fork)


def new_event_ids(count: int) -> list[str]:
    """`count` fresh, unique event ids: time-ordered UUIDs (version 7, RFC 9562) in their usual
    text form, increasing within this process.

    Time order keeps the index's id lookups cheap: each new id lands at the end of the id index
    instead of at a random place in it (random version-4 ids made indexing an event 2.7x slower
    at 200k events and 5x at 1M: `benchmarks/index_ids.py`).
    """
    global _next_stamp  # noqa: PLW0603 - one id clock per process, so ids increase within it
    with _ids_lock:
        # A 60-bit counter: the millisecond (48 bits) then 12 bits counting ids within it.
        now = time.time_ns() // 1_000_000 << 12
        if now >= _next_stamp:
            # A random start in the lower half leaves room to count up within the millisecond.
            _next_stamp = now | _random.getrandbits(11)
        first = _next_stamp
        # Past 4,096 ids in one millisecond the counter borrows the next one: still increasing.
        _next_stamp += count
    ids = []
    for stamp in range(first, first + count):
        # The 128 bits: millisecond, version 7, the 12-bit count, variant 0b10, 62 random bits.
        h = f"{(stamp >> 12) << 80 | _VERSION | (stamp & 0xFFF) << 64 | _VARIANT | _random.getrandbits(62):032x}"
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


# --- the data of each event type, as recorded -------------------------------------------------


class _Data(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArticleCreated(_Data):
    """A new article: its first title, body, categories and metadata (source, url, author, ...)."""

    title: OneLine = Field(min_length=1)
    body: str = ""
    categories: list[Category] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _dedupe(value)


class ArticleEdited(_Data):
    """A change of title and/or body. The body change is a patch against the previous body.

    `patch` is a list of `[start, end, text]`: replace characters `start:end` of the previous
    body with `text`, offsets in the previous body, ascending and not overlapping.
    """

    title: OneLine | None = Field(default=None, min_length=1)
    patch: _StrictPatch | None = None


class UpdateBlockAdded(_Data):
    """An update block (a later paragraph headed e.g. "Update from Al Masdar News:").

    `heading` is the heading line as written; `text` is everything after it up to the next block
    (starting with the heading's line break). `index` is its place among the article's blocks;
    `None` puts it last.
    """

    heading: OneLine = Field(min_length=1)
    text: str = ""
    index: WholeNumber | None = Field(default=None, ge=0)


class UpdateBlockEdited(_Data):
    """A correction to an existing update block: a new heading and/or a patch of its text."""

    index: WholeNumber = Field(ge=0)
    heading: OneLine | None = Field(default=None, min_length=1)
    patch: _StrictPatch | None = None


class UpdateBlockRemoved(_Data):
    """An update block taken out of the article (it stays in history)."""

    index: WholeNumber = Field(ge=0)


class CategoriesChanged(_Data):
    """Categories added to and removed from an article (added ones go last, in order)."""

    added: list[Category] = Field(default_factory=list)
    removed: list[Category] = Field(default_factory=list)

    @field_validator("added", "removed")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _dedupe(value)


class MetadataChanged(_Data):
    """Metadata keys set (to new values) and unset (author, source, url, front-matter keys...)."""

    set: dict[str, Any] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)


class ArticleWithdrawn(_Data):
    """The article is taken down: it leaves category listings and counts and the updated feed
    (article listings mark it withdrawn) but stays in history."""


class ArticleRestored(_Data):
    """A withdrawn article is back, as it was when withdrawn."""


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


EVENT_TYPES: dict[str, type[_Data]] = {
    cls.__name__: cls
    for cls in (
        ArticleCreated,
        ArticleEdited,
        UpdateBlockAdded,
        UpdateBlockEdited,
        UpdateBlockRemoved,
        CategoriesChanged,
        MetadataChanged,
        ArticleWithdrawn,
        ArticleRestored,
    )
}
"""Every event type by name, with the model of its data."""

EventType = Literal[
    "ArticleCreated",
    "ArticleEdited",
    "UpdateBlockAdded",
    "UpdateBlockEdited",
    "UpdateBlockRemoved",
    "CategoriesChanged",
    "MetadataChanged",
    "ArticleWithdrawn",
    "ArticleRestored",
]

# --- schema versions and upcasting ------------------------------------------------------------

SCHEMA_VERSIONS: dict[str, int] = {name: 1 for name in EVENT_TYPES}
"""The schema version each type is written with today."""
SCHEMA_VERSIONS["ArticleCreated"] = 2
SCHEMA_VERSIONS["UpdateBlockAdded"] = 2


def _created_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Schema 1 (the first prototype) kept source, url and author beside the title; schema 2 keeps
    # every such key in `metadata`, so that drafts can carry any front-matter key.
    data = dict(data)
    metadata = dict(data.pop("metadata", None) or {})
    for key in ("source", "url", "author"):
        if key in data:
            value = data.pop(key)
            if value is not None:
                metadata[key] = value
    data["metadata"] = metadata
    return data


def _block_added_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Schema 1 always appended the block; schema 2 says where it goes (None: last).
    data = dict(data)
    data.setdefault("index", None)
    return data


UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("ArticleCreated", 1): _created_v1_to_v2,
    ("UpdateBlockAdded", 1): _block_added_v1_to_v2,
}
"""`(type, schema)` -> function turning data of that schema into data of the next schema."""


def upcast(record: dict[str, Any]) -> dict[str, Any]:
    """Bring a raw record's data to the current schema of its type (in place; returns it).

    Works on the raw dict before any model sees it, like the eventsourcing library's chain.
    """
    kind = record["type"]
    schema = record.get("schema", 1)
    current = SCHEMA_VERSIONS.get(kind)
    if current is None or schema == current:
        return record
    data = record["data"]
    while schema < current:
        step = UPCASTERS.get((kind, schema))
        if step is not None:
            data = step(data)
        schema += 1
    record["data"] = data
    record["schema"] = schema
    return record


# --- envelopes -----------------------------------------------------------------------------


class EventIn(Model):
    """One event as given to `Ledger.append` (one JSON line of `ledger append`).

    For `ArticleEdited`, `data` gives the new `title` and/or the whole new `body` (or a ready
    `patch`); for `UpdateBlockEdited`, a new `heading` and/or the whole new `text`; for
    `CategoriesChanged`, `added`/`removed` or the whole new list as `categories`. The ledger
    records only what changed.
    """

    model_config = ConfigDict(extra="forbid")

    type: EventType
    article: ArticleId
    data: dict[str, Any] = Field(default_factory=dict)
    id: EventId | None = None
    actor: OneLine | None = Field(default=None, max_length=200)
    reason: OneLine | None = Field(default=None, max_length=2000)
    occurred_at: Annotated[datetime | None, BeforeValidator(_check_occurred_at)] = None
    expected_version: WholeNumber | None = Field(default=None, ge=0)


class NewRecord(NamedTuple):
    """An event ready for the store: validated data in the current schema, not yet positioned.

    Internal to the append path (decisions -> store), built once per appended event from data
    already validated: a named tuple, because a pydantic model validated every field again
    (3-5 µs per event, issue 16); the fields are the same either way."""

    id: str
    article: str
    type: str
    data: dict[str, Any]
    occurred_at: str | None = None
    actor: str | None = None
    reason: str | None = None
    explicit_id: bool = False


class RecordedEvent(Model):
    """An event as the log holds it: the envelope the store added, and the data."""

    model_config = ConfigDict(frozen=True)

    position: int = Field(description="Global position in the log, 1, 2, 3... without gaps.")
    id: str = Field(description="Unique event id.")
    article: str = Field(description="The article (slug) the event belongs to.")
    version: int = Field(description="The article version this event is part of.")
    type: str = Field(description="Event type, e.g. ArticleEdited.")
    schema_version: int = Field(description="Schema version of `data` (after upcasting).")
    recorded_at: UtcDatetime = Field(description="When the store recorded it (UTC).")
    occurred_at: UtcDatetime = Field(description="When it happened (UTC); defaults to recorded_at.")
    actor: str | None = Field(default=None, description="Who made the change.")
    reason: str | None = Field(default=None, description="Why (an edit summary).")
    data: dict[str, Any] = Field(default_factory=dict, description="The type's data.")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RecordedEvent:
        """Build from a raw (checksummed, upcast) record."""
        # One validation, which also parses both times, costs half of model_construct plus two
        # parse_time calls (3.8 against 8 µs; `ledger log` builds one per event).
        return cls.model_validate(
            {
                "position": record["pos"],
                "id": record["id"],
                "article": record["article"],
                "version": record["version"],
                "type": record["type"],
                "schema_version": record.get("schema", 1),
                "recorded_at": record["recorded_at"],
                "occurred_at": record["occurred_at"],
                "actor": record.get("actor"),
                "reason": record.get("reason"),
                "data": record["data"],
            }
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The documented JSON form (`ledger log --format json`): times as ISO 8601 UTC."""
        return {
            "position": self.position,
            "id": self.id,
            "article": self.article,
            "version": self.version,
            "type": self.type,
            "schema_version": self.schema_version,
            "recorded_at": format_time(self.recorded_at),
            "occurred_at": format_time(self.occurred_at),
            "actor": self.actor,
            "reason": self.reason,
            "data": self.data,
        }


def check_json_value(value: Any, where: str, depth: int = 0) -> None:
    """Raise `ValueError` naming the place (`where`, e.g. `metadata.source`) of the first part of
    `value` that the log cannot keep exactly as given: anything but text, 64-bit integers,
    finite floats, true/false/null, lists and mappings with text keys; text with unpaired
    surrogates; nesting deeper than `MAX_NESTING`."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if _SURROGATE_RE.search(value):
            raise ValueError(f"{where}: text with unpaired surrogates")
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where}: integer beyond 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        return
    if isinstance(value, (list, dict)):
        if depth >= MAX_NESTING:
            # The path to that depth is long: its start says where.
            raise ValueError(f"{where[:60]}...: nested deeper than {MAX_NESTING} levels")
        if isinstance(value, list):
            for index, item in enumerate(value):
                check_json_value(item, f"{where}.{index}", depth + 1)
            return
        for key, item in value.items():
            if not isinstance(key, str) or _SURROGATE_RE.search(key):
                raise ValueError(f"{where}: key {key!r} is not text")
            check_json_value(item, f"{where}.{key}", depth + 1)
        return
    raise ValueError(f"{where}: a {type(value).__name__} is not a JSON value (use text, numbers, true/false, null, lists, mappings)")


def _check_metadata(kind: str, data: dict[str, Any], where: str) -> None:
    """Check the free-form metadata of `data` (the only values no model types): JSON values that
    keep exactly as given. (Reserved keys are the application's to check: see `Ledger.append`.)"""
    field = "metadata" if kind == "ArticleCreated" else "set"
    values = data.get(field)
    if not isinstance(values, dict):
        return  # not a mapping: the model says so
    try:
        check_json_value(values, field)
    except ValueError as exc:
        raise InvalidEventError(f"{where}{kind}: {exc}") from None


def copy_json(value: Any) -> Any:
    """A JSON value with its mappings and lists made anew and tuples as lists, as a read of the
    line holding it gives it (so that a caller's later change to what it gave or got cannot
    reach a recorded state or a later read)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [copy_json(item) for item in value]
    return value


def validate_data(kind: str, data: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Validate `data` for event type `kind`; return it normalised (every field of the type's
    model, in its order, defaults filled in), or raise `InvalidEventError`."""
    checked = _data_checks().get(kind)
    if checked is None:
        raise InvalidEventError(f"{where}unknown event type {kind!r}")
    adapter, fields, free = checked
    if free is not None:
        _check_metadata(kind, data, where)
    try:
        valid = adapter.validate_python(data)
    except ValidationError as exc:
        raise InvalidEventError(f"{where}{kind}: {describe_validation_error(exc)}") from None
    out = {name: valid[name] if name in valid else make() for name, make in fields}
    if free is not None:
        out[free] = copy_json(out[free])
    return out


_JSON_KINDS = {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object",
               type(None): "null"}

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "list_type": "a list",
    "dict_type": "an object ({...})",
    "bool_type": "true or false",
    "datetime_type": "an ISO 8601 time (e.g. 2017-09-05T16:05:00Z)",
    "datetime_parsing": "an ISO 8601 time (e.g. 2017-09-05T16:05:00Z)",
    "datetime_from_date_parsing": "an ISO 8601 time (e.g. 2017-09-05T16:05:00Z)",
}
"""pydantic's type errors, as what the field expects (`... must be text, not a number`)."""


def json_kind(value: Any) -> str:
    """What a parsed JSON (or YAML, TOML) value is, in plain words: `text`, `a number`, `null`..."""
    return _JSON_KINDS.get(type(value), f"a {type(value).__name__}")


def _what(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        shown = repr(value)
        return shown if len(shown) <= 40 else f"{shown[:37]}..."
    return json_kind(value)


def _plain(error: Any, model: type[BaseModel] | None) -> str:
    """One pydantic error in plain words: what is wrong with the value and what is expected."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        if model is not None and len(error["loc"]) == 1:
            fields = ", ".join(model.model_fields)
            return f"unknown field (expected one of {fields})" if fields else f"unknown field ({model.__name__} has no data fields)"
        return "unknown field"
    if kind == "missing":
        return "missing field"
    if kind == "value_error":
        # Our validators' own words, without pydantic's "Value error, " before them.
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        if error["loc"] == ("type",):
            return f"unknown event type {_what(value)} (expected {ctx['expected']})"
        return f"{_what(value)} is not allowed (expected {ctx['expected']})"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, not {_what(value)}"
    if kind == "string_unicode":
        # An unpaired surrogate (`"\\ud800"` in JSON), which no UTF-8 can write.
        return "text with unpaired surrogates (text must be Unicode: a \\ud800-\\udfff escape only as half of a surrogate pair)"
    if kind == "string_too_short" or (kind == "too_short" and isinstance(value, str)):
        # (`too_short` on text: a length checked on an optional text, which pydantic words for lists.)
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx['min_length']} characters"
    if kind in ("string_too_long", "too_long"):
        return f"must be at most {ctx['max_length']} characters, not {len(value) if isinstance(value, str) else ctx.get('actual_length')}"
    if kind == "greater_than_equal":
        return f"must be {ctx['ge']} or more, not {_what(value)}"
    message = str(error["msg"])
    return message.replace("Input should be", "must be", 1) if message.startswith("Input should be") else message


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first invalid field and what is wrong with it, in plain words (not
    pydantic's: `actor: must be a single line`, `data: must be an object ({...}), not a list`)."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    model = _MODEL_OF.get(exc.title)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    # An error of the value as a whole (an event that is no object) is named by its place alone.
    return f"{loc}: {_plain(first, model)}{more}" if loc else f"{_plain(first, model)}{more}"


# --- the validators of the append path -----------------------------------------------------
#
# What `Ledger.append` validates, each event once as it comes in and its data once: TypedDicts
# with the constraints and validator functions of `EventIn` and of the data models above, which
# pydantic turns into plain dicts (issue 16: building, dumping and validating model instances
# again cost 10-11 µs per event; these take ~3-4). The models stay what the API documents and
# the JSON Schema is made from; tests/test_events.py checks that both say the same.

_FORBID = ConfigDict(extra="forbid", defer_build=True)
# The length on the text itself, before the one-line checks, as on the models' fields (on
# `OneLine` it would run after them, with pydantic's generic message).
_Heading = Annotated[str, Field(min_length=1), AfterValidator(_check_one_line), AfterValidator(_check_no_control)]
# An optional one: the models' `OneLine | None = Field(min_length=1)`, whose length pydantic checks
# after the one-line checks (with its own words for an empty one, which messages keep).
_NewHeading = Annotated[OneLine | None, Field(min_length=1)]
_BlockIndex = Annotated[WholeNumber, Field(ge=0)]
_Categories = Annotated[list[Category], AfterValidator(_dedupe)]


@with_config(_FORBID)
class EventFields(TypedDict, total=False):
    """One event as `Ledger.append` takes it, validated: `EventIn`'s fields as a plain dict
    (those not given are absent or None; `data` is validated by its type later, as it is
    recorded)."""

    type: Required[EventType]
    article: Required[ArticleId]
    data: dict[str, Any]
    id: EventId | None
    actor: Annotated[OneLine, Field(max_length=200)] | None
    reason: Annotated[OneLine, Field(max_length=2000)] | None
    occurred_at: Annotated[datetime | None, BeforeValidator(_check_occurred_at)]
    expected_version: Annotated[WholeNumber, Field(ge=0)] | None


EVENT_FIELDS: TypeAdapter[EventFields] = TypeAdapter(EventFields)
"""Validates one event of an append (see `EventFields`): what `EventIn` checks, without a model."""


def _none() -> None:
    return None


def _required() -> Any:
    raise AssertionError("a required field is always validated")  # pragma: no cover


_Fields = tuple[tuple[str, Callable[[], Any]], ...]


@functools.cache
def _data_checks() -> dict[str, tuple[TypeAdapter[Any], _Fields, str | None]]:
    """Each type's data: its validator (a TypeAdapter over a TypedDict), its fields in the
    model's order with what a missing one becomes, and its free-form metadata field (checked
    and copied), if any. Made at the first use: a command that only reads pays nothing for it
    (issue 14)."""

    @with_config(_FORBID)
    class _CreatedData(TypedDict, total=False):
        title: Required[_Heading]
        body: str
        categories: _Categories
        metadata: dict[str, Any]

    @with_config(_FORBID)
    class _EditedData(TypedDict, total=False):
        title: _NewHeading
        patch: _StrictPatch | None

    @with_config(_FORBID)
    class _BlockAddedData(TypedDict, total=False):
        heading: Required[_Heading]
        text: str
        index: _BlockIndex | None

    @with_config(_FORBID)
    class _BlockEditedData(TypedDict, total=False):
        index: Required[_BlockIndex]
        heading: _NewHeading
        patch: _StrictPatch | None

    @with_config(_FORBID)
    class _BlockRemovedData(TypedDict):
        index: _BlockIndex

    @with_config(_FORBID)
    class _CategoriesData(TypedDict, total=False):
        added: _Categories
        removed: _Categories

    @with_config(_FORBID)
    class _MetadataData(TypedDict, total=False):
        set: dict[str, Any]
        unset: list[str]

    @with_config(_FORBID)
    class _WithdrawnData(TypedDict):
        pass

    @with_config(_FORBID)
    class _RestoredData(TypedDict):
        pass

    typed: dict[str, tuple[Any, _Fields, str | None]] = {
        "ArticleCreated": (_CreatedData, (("title", _required), ("body", str), ("categories", list), ("metadata", dict)), "metadata"),
        "ArticleEdited": (_EditedData, (("title", _none), ("patch", _none)), None),
        "UpdateBlockAdded": (_BlockAddedData, (("heading", _required), ("text", str), ("index", _none)), None),
        "UpdateBlockEdited": (_BlockEditedData, (("index", _required), ("heading", _none), ("patch", _none)), None),
        "UpdateBlockRemoved": (_BlockRemovedData, (("index", _required),), None),
        "CategoriesChanged": (_CategoriesData, (("added", list), ("removed", list)), None),
        "MetadataChanged": (_MetadataData, (("set", dict), ("unset", list)), "set"),
        "ArticleWithdrawn": (_WithdrawnData, (), None),
        "ArticleRestored": (_RestoredData, (), None),
    }
    # A validation error names the class validated: its model lists the fields expected.
    _MODEL_OF.update((cls.__name__, EVENT_TYPES[kind]) for kind, (cls, _, _) in typed.items())
    return {kind: (TypeAdapter(cls), fields, free) for kind, (cls, fields, free) in typed.items()}


_MODEL_OF: dict[str, type[BaseModel]] = {"EventIn": EventIn, "EventFields": EventIn, **EVENT_TYPES}
"""The model whose fields a validation error lists, by the name of the class validated (the
data's classes join when `_data_checks` makes them)."""


# --- the JSON Schema of the append input ----------------------------------------------------

# Data fields `append` takes beyond what is recorded: it turns them into the recorded form.
_INPUT_ONLY: dict[str, dict[str, Any]] = {
    "ArticleEdited": {"body": {"type": "string", "description": "The whole new body, instead of a patch: only what changed is recorded."}},
    "UpdateBlockEdited": {"text": {"type": "string", "description": "The whole new text of the block, instead of a patch."}},
    "CategoriesChanged": {
        "categories": {"type": "array", "items": {"type": "string"}, "description": "The whole new list, instead of added/removed."}
    },
}


def check_event_type(kind: str) -> None:
    """Raise `InvalidInputError` when `kind` is not an event type ledger has, naming those it has."""
    if kind not in EVENT_TYPES:
        raise InvalidInputError(f"unknown event type {kind!r} (known: {', '.join(EVENT_TYPES)})")


def event_schema(kind: str | None = None) -> dict[str, Any]:
    """The JSON Schema of one event as `Ledger.append` and `ledger append` take it, for event
    type `kind` (its `data` fields spelt out), or of any event (`oneOf` every type) when `kind`
    is None. Raises `InvalidInputError` for an unknown type."""
    if kind is None:
        schemas = [event_schema(name) for name in EVENT_TYPES]
        defs = {key: value for schema in schemas for key, value in schema.pop("$defs", {}).items()}
        whole: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ledger append input",
            "description": "One event, one JSON line of `ledger append`.",
            "oneOf": [{key: value for key, value in schema.items() if key != "$schema"} for schema in schemas],
        }
        if defs:
            whole["$defs"] = defs
        return whole
    check_event_type(kind)
    model = EVENT_TYPES[kind]
    data = model.model_json_schema()
    data["properties"] = {**data.get("properties", {}), **_INPUT_ONLY.get(kind, {})}
    schema = EventIn.model_json_schema()
    defs = {**schema.pop("$defs", {}), **data.pop("$defs", {})}
    schema["title"] = kind
    schema["properties"]["type"] = {"const": kind, "type": "string"}
    schema["properties"]["data"] = {key: value for key, value in data.items() if key != "title"}
    schema["required"] = ["type", "article", *(["data"] if data.get("required") else [])]
    result: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    if defs:
        result["$defs"] = defs
    return result
