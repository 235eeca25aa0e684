"""CPU per event of checking an append's events: the three pydantic validations `Ledger.append`
made until 2026-12-03, the two it makes now, and one compiled validator over a union (issue 16,
rows 1 and 2).

    python benchmarks/bench_validation.py [--events 10000] [--rounds 5]

Until 2026-12-03 `Ledger.append` validated an event as an `EventIn` (the envelope; `data` a
plain dict), then its data with its type's model (plus `model_dump` for two types), then the
record to seal as a pydantic `NewRecord`. Now it validates the envelope with one `TypeAdapter`
over a TypedDict (`decisions.parse_event`) and the data with one per type (`validate_data`,
defaults filled in), both giving plain dicts; `NewRecord` is a named tuple. The prototype
validates the envelope and the data in one call of one `TypeAdapter` over a discriminated union
(by `type`) of TypedDicts (defaults not filled in). All check the same constraints with the same
validator functions. Each is timed over the generator's events (batches of 100 as `compare.py`
appends them), in the process's CPU time, best of `--rounds`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

sys.path.insert(0, str(Path(__file__).parent))
import generate

from ledger.decisions import parse_event
from ledger.events import (
    EVENT_TYPES,
    ArticleId,
    Category,
    EventId,
    EventIn,
    NewRecord,
    OneLine,
    _check_occurred_at,
    format_time,
    validate_data,
)
from ledger.patches import Patch

_STRICT = ConfigDict(extra="forbid")
_Time = Annotated[datetime | None, BeforeValidator(_check_occurred_at)]


@with_config(_STRICT)
class _Envelope(TypedDict):
    article: ArticleId
    id: NotRequired[EventId | None]
    actor: NotRequired[Annotated[OneLine, Field(max_length=200)] | None]
    reason: NotRequired[Annotated[OneLine, Field(max_length=2000)] | None]
    occurred_at: NotRequired[_Time]
    expected_version: NotRequired[Annotated[int, Field(ge=0)] | None]


@with_config(_STRICT)
class _CreatedData(TypedDict):
    title: Annotated[OneLine, Field(min_length=1)]
    body: NotRequired[str]
    categories: NotRequired[list[Category]]
    metadata: NotRequired[dict[str, Any]]


@with_config(_STRICT)
class _EditedData(TypedDict):
    title: NotRequired[Annotated[OneLine, Field(min_length=1)] | None]
    patch: NotRequired[Patch | None]
    body: NotRequired[str]


@with_config(_STRICT)
class _BlockAddedData(TypedDict):
    heading: Annotated[OneLine, Field(min_length=1)]
    text: NotRequired[str]
    index: NotRequired[Annotated[int, Field(ge=0)] | None]


@with_config(_STRICT)
class _BlockEditedData(TypedDict):
    index: Annotated[int, Field(ge=0)]
    heading: NotRequired[Annotated[OneLine, Field(min_length=1)] | None]
    patch: NotRequired[Patch | None]
    text: NotRequired[str]


@with_config(_STRICT)
class _CategoriesData(TypedDict):
    added: NotRequired[list[Category]]
    removed: NotRequired[list[Category]]
    categories: NotRequired[list[Category]]


@with_config(_STRICT)
class _MetadataData(TypedDict):
    set: NotRequired[dict[str, Any]]
    unset: NotRequired[list[str]]


class _Created(_Envelope):
    type: Literal["ArticleCreated"]
    data: _CreatedData


class _Edited(_Envelope):
    type: Literal["ArticleEdited"]
    data: _EditedData


class _BlockAdded(_Envelope):
    type: Literal["UpdateBlockAdded"]
    data: _BlockAddedData


class _BlockEdited(_Envelope):
    type: Literal["UpdateBlockEdited"]
    data: _BlockEditedData


class _Categories(_Envelope):
    type: Literal["CategoriesChanged"]
    data: _CategoriesData


class _Metadata(_Envelope):
    type: Literal["MetadataChanged"]
    data: _MetadataData


# The generator's workload uses these six types; the other three would join the union alike.
_ONE = TypeAdapter(Annotated[_Created | _Edited | _BlockAdded | _BlockEdited | _Categories | _Metadata, Field(discriminator="type")])
_MANY = TypeAdapter(list[Annotated[_Created | _Edited | _BlockAdded | _BlockEdited | _Categories | _Metadata, Field(discriminator="type")]])


class _OldNewRecord(BaseModel):
    """`NewRecord` as it was: a pydantic model, validated once more."""

    model_config = ConfigDict(frozen=True)

    id: str
    article: str
    type: str
    data: dict[str, Any]
    occurred_at: str | None = None
    actor: str | None = None
    reason: str | None = None
    explicit_id: bool = False


def models(batch: list[dict[str, Any]]) -> None:
    """What `Ledger.append` did per event until 2026-12-03, up to the record to seal (no state checks)."""
    for event in batch:
        parsed = EventIn.model_validate(event)
        model = EVENT_TYPES[parsed.type]
        valid = model.model_validate(dict(parsed.data))
        data = valid.model_dump() if parsed.type in ("ArticleCreated", "MetadataChanged") else dict(valid.__dict__)
        _OldNewRecord(
            id=parsed.id or "0190b0e4-0000-7000-8000-000000000000", article=parsed.article, type=parsed.type, data=data,
            occurred_at=format_time(parsed.occurred_at) if parsed.occurred_at is not None else None,
            actor=parsed.actor, reason=parsed.reason, explicit_id=parsed.id is not None,
        )


def now(batch: list[dict[str, Any]]) -> None:
    """What `Ledger.append` does per event now, up to the record to seal (no state checks)."""
    for event in batch:
        parsed = parse_event(event, "event")
        data = validate_data(parsed["type"], dict(parsed.get("data") or {}))
        moment = parsed.get("occurred_at")
        NewRecord(
            parsed.get("id") or "0190b0e4-0000-7000-8000-000000000000", parsed["article"], parsed["type"], data,
            format_time(moment) if moment is not None else None, parsed.get("actor"), parsed.get("reason"), parsed.get("id") is not None,
        )


def one_validator(batch: list[dict[str, Any]]) -> None:
    """The prototype: one compiled validation per event, plain dicts out."""
    for event in batch:
        _ONE.validate_python(event)


def one_call(batch: list[dict[str, Any]]) -> None:
    """The prototype over the whole append in one call."""
    _MANY.validate_python(batch)


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stories = [event for event in generate.events(args.events) if not event["article"].startswith("live-")]
    kinds = {event["type"] for event in stories}
    assert kinds <= {"ArticleCreated", "ArticleEdited", "UpdateBlockAdded", "UpdateBlockEdited", "CategoriesChanged", "MetadataChanged"}, kinds
    batches = list(generate.batches(iter(stories), 100))
    count = sum(len(batch) for batch in batches)
    ways: dict[str, Callable[[list[dict[str, Any]]], None]] = {
        "until 2026-12-03 (EventIn + data model + NewRecord)": models,
        "now (two TypeAdapters over TypedDicts)": now,
        "one TypeAdapter, per event": one_validator,
        "one TypeAdapter, per append": one_call,
    }
    best = {name: float("inf") for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():  # in turns, so that the machine's load hits each alike
            started = time.process_time()
            for batch in batches:
                way(batch)
            best[name] = min(best[name], (time.process_time() - started) / count)
    for name, seconds in best.items():
        print(f"{name:<52} {seconds * 1e6:6.2f} µs/event ({best[name] / best['until 2026-12-03 (EventIn + data model + NewRecord)']:.2f}x)")


if __name__ == "__main__":
    main()
