"""Decisions: the rules that decide what an event may do, and what it records.

An event is checked against the article's current state (created once, not edited while
withdrawn, block indexes that exist...), and only what it changes is recorded (an edit becomes a
patch). These functions take the states they judge and return what to record; reading the
states from the log and appending the records is the `Ledger`'s part.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from pydantic import ValidationError

from ledger import codec
from ledger.errors import (
    ArticleNotFoundError,
    ArticleStateError,
    DuplicateEventError,
    InvalidEventError,
    NothingToDoError,
    VersionConflictError,
)
from ledger.events import (
    EVENT_FIELDS,
    EventFields,
    EventIn,
    NewRecord,
    check_json_value,
    describe_validation_error,
    format_time,
    new_event_ids,
    validate_data,
)
from ledger.patches import make_patch
from ledger.plans import same_value
from ledger.projections import ArticleState, FoldedRecord, apply_new
from ledger.rendering import LAYOUT_KEY, RESERVED_METADATA_KEYS, check_layout
from ledger.store import StoredRecord

# Types whose recorded data is their data as given, validated: a re-send of one can be
# compared with the record (the others record a change against the article's state).
_AS_GIVEN = frozenset({"ArticleCreated", "UpdateBlockAdded", "UpdateBlockRemoved", "ArticleWithdrawn", "ArticleRestored"})


def parse_event(event: EventIn | Mapping[str, Any], name: str, allowed_keys: Collection[str] = ()) -> EventFields:
    """`event` validated as `EventIn` validates it, as a plain dict (`InvalidEventError` naming
    `name` if it is not one), its reserved metadata keys checked: only those in `allowed_keys`
    may be set."""
    if isinstance(event, EventIn):
        # Validated when it was built: its fields as they are.
        parsed = cast("EventFields", dict(event.__dict__))
    else:
        try:
            parsed = EVENT_FIELDS.validate_python(event)
        except ValidationError as exc:
            raise InvalidEventError(f"{name}: {describe_validation_error(exc)}") from None
    if parsed["type"] in ("ArticleCreated", "MetadataChanged"):
        check_reserved_keys(parsed, name, allowed_keys)
    return parsed


def check_reserved_keys(event: EventFields, name: str, allowed: Collection[str]) -> None:
    """Refuse metadata keys ledger reserves (`RESERVED_METADATA_KEYS`) but those `allowed`; and
    a draft layout (`_draft`), where allowed, of another shape than the draft parser writes,
    which rendering could not use."""
    given = event.get("data") or {}
    for field in ("metadata", "set", "unset"):
        values = given.get(field)
        if not isinstance(values, (dict, list)):
            continue  # not a mapping or list: the data's model says so
        for key in values:
            if not isinstance(key, str) or key not in RESERVED_METADATA_KEYS:
                continue
            if key not in allowed:
                why = "ledger keeps a draft's layout there" if key == LAYOUT_KEY else "a Markdown draft states the article's own title, id and categories under it"
                raise InvalidEventError(f"{name}: {event['type']}: metadata key {key!r} is reserved ({why})")
            if key == LAYOUT_KEY and isinstance(values, dict):
                try:
                    check_layout(values[key])
                except ValueError as exc:
                    raise InvalidEventError(f"{name}: {event['type']}: {field}.{key}: {exc}") from None


def prepare(
    events: Sequence[EventFields],
    names: Sequence[str],
    expected_by_user: Mapping[str, int],
    current: Mapping[str, ArticleState | None],
    max_event_bytes: int,
) -> tuple[list[NewRecord], dict[str, int], dict[str, ArticleState | None]]:
    """Check `events` (as `parse_event` gives them) against the articles' `current` states
    (each article's latest state, as folded from the log alone; None for a new article, never
    changed here) and turn them into the records to append, the version each article is
    expected to be at, and each article's state after the append."""
    states: dict[str, ArticleState | None] = {}
    expected: dict[str, int] = {}
    records: list[NewRecord] = []
    # The events of an append mostly share one time: format each distinct time once.
    times: dict[datetime, str] = {}
    fresh_ids = iter(new_event_ids(sum(1 for event in events if event.get("id") is None)))
    for event, name in zip(events, names, strict=False):
        article, kind, given_id, moment = event["article"], event["type"], event.get("id"), event.get("occurred_at")
        occurred_at = None
        if moment is not None:
            occurred_at = times.get(moment)
            if occurred_at is None:
                occurred_at = times[moment] = format_time(moment)
        if article not in states:
            latest = current[article]
            version = latest.version if latest is not None else 0
            if article in expected_by_user and expected_by_user[article] != version:
                raise VersionConflictError(
                    f"{name}: article {article!r} is at version {version}, not the expected {expected_by_user[article]}; nothing appended",
                    article=article, expected=expected_by_user[article], actual=version,
                )
            expected[article] = version
            states[article] = latest.copy() if latest is not None else None
        data = record_data(event, states[article], name)
        check_size(kind, data, name, max_event_bytes)
        records.append(
            NewRecord(given_id if given_id is not None else next(fresh_ids), article, kind, data, occurred_at,
                      event.get("actor"), event.get("reason"), given_id is not None)
        )
        # Fold as we go so that the next event of the same append is checked against it.
        states[article] = fold_checked(
            states[article],
            {"type": kind, "data": data, "article": article, "version": expected[article] + 1, "occurred_at": occurred_at or "", "pos": 0},
            name,
        )
    return records, expected, states


def record_data(event: EventFields, state: ArticleState | None, name: str) -> dict[str, Any]:
    """Check `event` (as `parse_event` gives it) against the article's state; return the data to
    record (only what changes)."""
    kind, data, article = event["type"], dict(event.get("data") or {}), event["article"]
    where = f"{name}: "
    if kind == "ArticleCreated":
        if state is not None:
            raise ArticleStateError(f"{where}article {article!r} already exists (version {state.version})")
        return validate_data(kind, data, where)
    if state is None:
        raise ArticleNotFoundError(f"{where}article {article!r} does not exist; create it with ArticleCreated first")
    if state.withdrawn and kind not in ("ArticleRestored", "ArticleWithdrawn"):
        raise ArticleStateError(f"{where}article {article!r} is withdrawn; restore it first (ArticleRestored)")
    if kind == "ArticleWithdrawn":
        if state.withdrawn:
            raise ArticleStateError(f"{where}article {article!r} is already withdrawn")
        return validate_data(kind, data, where)
    if kind == "ArticleRestored":
        if not state.withdrawn:
            raise ArticleStateError(f"{where}article {article!r} is not withdrawn")
        return validate_data(kind, data, where)
    if kind == "ArticleEdited":
        return _edit_data(data, state, where)
    if kind == "UpdateBlockAdded":
        out = validate_data(kind, data, where)
        if out["index"] is not None and out["index"] > len(state.blocks):
            raise InvalidEventError(f"{where}UpdateBlockAdded: index {out['index']} is past the {len(state.blocks)} blocks of {article!r}")
        return out
    if kind in ("UpdateBlockEdited", "UpdateBlockRemoved"):
        # The index first, alone (missing, negative, not a whole number: in validation's
        # words), as the block's text and patch are read against the block it names.
        index = validate_data(kind, {"index": data.get("index")} if "index" in data else {}, where)["index"]
        if not 0 <= index < len(state.blocks):
            raise InvalidEventError(f"{where}{kind}: {article!r} has no update block {index} (it has {len(state.blocks)})")
        if kind == "UpdateBlockRemoved":
            return validate_data(kind, data, where)
        if "text" in data:
            if "patch" in data:
                raise InvalidEventError(f"{where}UpdateBlockEdited: give text or patch, not both")
            text = data.pop("text")
            if not isinstance(text, str):
                raise InvalidEventError(f"{where}UpdateBlockEdited: text: must be a string")
            data["patch"] = make_patch(state.blocks[index][1], text)
        out = validate_data(kind, data, where)
        block = state.blocks[out["index"]]
        if out["heading"] == block[0]:
            out["heading"] = None
        if out["heading"] is None and not out["patch"]:
            raise NothingToDoError(f"{where}UpdateBlockEdited changes nothing in block {out['index']} of {article!r}")
        return {k: v for k, v in out.items() if v is not None}
    if kind == "CategoriesChanged":
        if "categories" in data:
            if "added" in data or "removed" in data:
                raise InvalidEventError(f"{where}CategoriesChanged: give categories or added/removed, not both")
            wanted = data.pop("categories")
            if not isinstance(wanted, list):
                raise InvalidEventError(f"{where}CategoriesChanged: categories: must be a list")
            data.setdefault("added", [c for c in wanted if c not in state.categories])
            data.setdefault("removed", [c for c in state.categories if c not in wanted])
        out = validate_data(kind, data, where)
        out["added"] = [c for c in out["added"] if c not in state.categories or c in out["removed"]]
        out["removed"] = [c for c in out["removed"] if c in state.categories]
        if not out["added"] and not out["removed"]:
            raise NothingToDoError(f"{where}CategoriesChanged changes nothing for {article!r}")
        return out
    if kind == "MetadataChanged":
        out = validate_data(kind, data, where)
        both = next((key for key in out["unset"] if key in out["set"]), None)
        if both is not None:
            raise InvalidEventError(f"{where}MetadataChanged: key {both!r} is both set and unset")
        # Compare by JSON form: in Python 1 == 1.0 == True, in front matter they differ.
        out["set"] = {k: v for k, v in out["set"].items() if k not in state.metadata or not same_value(state.metadata[k], v)}
        out["unset"] = [k for k in out["unset"] if k in state.metadata]
        if not out["set"] and not out["unset"]:
            raise NothingToDoError(f"{where}MetadataChanged changes nothing for {article!r}")
        return out
    raise InvalidEventError(f"{where}unknown event type {kind!r}")


def _edit_data(data: dict[str, Any], state: ArticleState, where: str) -> dict[str, Any]:
    if "body" in data:
        body = data.pop("body")
        if not isinstance(body, str):
            raise InvalidEventError(f"{where}ArticleEdited: body: must be a string")
        if "patch" in data:
            raise InvalidEventError(f"{where}ArticleEdited: give body or patch, not both")
        data["patch"] = make_patch(state.body, body)
    out = validate_data("ArticleEdited", data, where)
    if out["title"] == state.title:
        out["title"] = None
    if out["patch"] is not None:
        out["patch"] = [list(op) for op in out["patch"]]
    if out["title"] is None and not out["patch"]:
        raise NothingToDoError(f"{where}ArticleEdited changes nothing in {state.id!r}")
    return {k: v for k, v in out.items() if v}


def fold_checked(state: ArticleState | None, record: FoldedRecord, name: str) -> ArticleState:
    """Fold an event that is being checked for appending. Folding applies its patch, so this is
    where a patch that does not fit the text is refused (once, not applied twice)."""
    try:
        return apply_new(state, record)
    except ValueError as exc:
        raise InvalidEventError(f"{name}: {record['type']}: patch: {exc}") from None


def check_size(kind: str, data: dict[str, Any], name: str, max_event_bytes: int) -> None:
    """Refuse data that cannot be written as JSON, or is larger than `max_event_bytes`."""
    try:
        size = len(codec.dumps(data))
    except TypeError:  # orjson's JSONEncodeError: an unpaired surrogate (`"\\ud800"`) in a body
        raise InvalidEventError(f"{name}: {kind}: {_unwritable(data)}") from None
    if size > max_event_bytes:
        raise InvalidEventError(
            f"{name}: {kind} is {size:,} bytes of data, over the limit of {max_event_bytes:,}"
            " (`ledger --max-event-bytes`, or `max_event_bytes` of `ledger.open`, raises it)"
        )


def _unwritable(data: dict[str, Any]) -> str:
    """Where `data` holds what JSON cannot write, and what is expected instead."""
    for key, value in data.items():
        try:
            check_json_value(value, key)
        except ValueError as exc:
            return f"{exc} (text must be Unicode: a \\ud800-\\udfff escape only as half of a surrogate pair)"
    return "data cannot be written as JSON"


def check_prepared_again(records: Sequence[NewRecord], names: Sequence[str], recorded: Mapping[str, StoredRecord]) -> None:
    """Refuse (`DuplicateEventError`) a re-send whose events, prepared again against the articles
    as they stood before the append they repeat (`records`), do not record the data `recorded`
    under their ids: the same id reused for another change."""
    for record, name in zip(records, names, strict=False):
        first = recorded[record.id]
        if not same_value(record.data, first["data"]):
            raise DuplicateEventError(
                f"{name}: event id {record.id!r} is already recorded (position {first['pos']}) with another change; nothing appended"
            )


def check_resent(events: Sequence[EventFields], names: Sequence[str], recorded: Mapping[str, StoredRecord]) -> None:
    """Refuse (`DuplicateEventError`) `events` as a re-send of the append whose records are
    `recorded` (by event id) unless they say what it recorded (article, type, actor, reason,
    time and data where comparable): reusing an id for other content must not pass for a re-send."""
    for event, name in zip(events, names, strict=False):
        eid, kind, article, moment = event.get("id"), event["type"], event["article"], event.get("occurred_at")
        record = recorded.get(eid or "")
        if record is None:
            raise DuplicateEventError(f"{name}: event id {eid!r} is in the log, but not in the append it seems to repeat")
        where = f"{name}: event id {eid!r} is already recorded (position {record['pos']})"
        if (record["article"], record["type"]) != (article, kind):
            raise DuplicateEventError(
                f"{where} as {record['type']} of {record['article']!r}, not {kind} of {article!r}; nothing appended"
            )
        differs = [field for field in ("actor", "reason") if event.get(field) != record.get(field)]
        if moment is not None and format_time(moment) != record["occurred_at"]:
            differs.append("occurred_at")
        if kind in _AS_GIVEN:
            try:
                same = same_value(validate_data(kind, dict(event.get("data") or {})), record["data"])
            except InvalidEventError:
                same = False
            if not same:
                differs.append("data")
        if differs:
            raise DuplicateEventError(f"{where} with another {' and '.join(differs)}; nothing appended")
