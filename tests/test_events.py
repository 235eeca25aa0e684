"""Event validation (what may be appended) and patches (how an edit is recorded)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import ledger
from ledger.events import (
    ARTICLE_ID_MAX,
    EVENT_FIELDS,
    EVENT_TYPES,
    EventIn,
    describe_validation_error,
    format_time,
    parse_time,
    validate_article_id,
    validate_data,
)
from ledger.patches import apply_patch, make_patch
from ledger.store import LOG_FILE


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "ArticleCreated", "article": "deir-ez-zor", "data": {"title": "Deir ez-Zor"}}
    base.update(fields)
    return base


# --- article ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "article",
    ["deir-ez-zor", "2017-09-05.story", "A_b~c", "x", "dörfer", "a" * ARTICLE_ID_MAX],
)
def test_valid_article_ids(article: str) -> None:
    assert validate_article_id(article) == article
    assert EventIn.model_validate(event(article=article)).article == article


@pytest.mark.parametrize(
    ("article", "why"),
    [
        ("", "empty"),
        ("news/deir-ez-zor", "not a slug"),
        ("news\\deir", "not a slug"),
        ("..", "not a slug"),
        ("../etc", "not a slug"),
        (".hidden", "not a slug"),
        ("-flag", "not a slug"),
        ("two words", "not a slug"),
        ("tab\there", "not a slug"),
        ("line\nbreak", "not a slug"),
        ("nul\x00", "not a slug"),
        ("bell\x07", "not a slug"),
        ("a" * (ARTICLE_ID_MAX + 1), "longer than 200"),
    ],
)
def test_invalid_article_ids(article: str, why: str) -> None:
    with pytest.raises(ledger.InvalidEventError, match=why):
        validate_article_id(article)
    with pytest.raises(ValidationError):
        EventIn.model_validate(event(article=article))


def test_invalid_article_id_through_append_names_the_event(led: ledger.Ledger) -> None:
    with pytest.raises(ledger.InvalidEventError, match=r"^in.jsonl:2: article: .*'a/b' is not a slug"):
        led.append([event(), event(article="a/b")], labels=["in.jsonl:1", "in.jsonl:2"])
    assert led.store.head().position == 0
    assert led.path is not None and (led.path / LOG_FILE).stat().st_size == 0


# --- event ids, times, envelope -----------------------------------------------------------


@pytest.mark.parametrize("eid", ["evt-1", "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 128, "a:b/c#1"])
def test_valid_event_ids(eid: str) -> None:
    assert EventIn.model_validate(event(id=eid)).id == eid


@pytest.mark.parametrize("eid", ["", "has space", "x" * 129, "tab\t", "naïve", "line\n"])
def test_invalid_event_ids(eid: str) -> None:
    with pytest.raises(ValidationError, match="event id must be 1-128 printable ASCII"):
        EventIn.model_validate(event(id=eid))


def test_occurred_at_needs_a_time_zone(led: ledger.Ledger) -> None:
    with pytest.raises(ledger.InvalidEventError, match=r"occurred_at: .*needs a time zone"):
        led.append([event(occurred_at="2017-09-05T16:05:00")])
    aware = EventIn.model_validate(event(occurred_at="2017-09-05T18:05:00+02:00"))
    assert aware.occurred_at == datetime(2017, 9, 5, 16, 5, tzinfo=UTC)


def test_canonical_time_text_orders_like_time() -> None:
    moments = [datetime(2017, 9, 5, 16, 5, 0, n, tzinfo=UTC) for n in (0, 5, 999999)]
    moments.append(datetime(2017, 9, 5, 16, 5, 1, tzinfo=UTC))
    texts = [format_time(m) for m in moments]
    assert texts == sorted(texts) and len({len(t) for t in texts}) == 1
    assert [parse_time(t) for t in texts] == moments
    with pytest.raises(ledger.InvalidTimeError, match="no time zone"):
        format_time(datetime(2017, 9, 5))


def test_times_before_the_year_1000_keep_the_fixed_width(led: ledger.Ledger) -> None:
    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 5, tzinfo=UTC),
               datetime(1000, 1, 1, tzinfo=UTC)]
    texts = [format_time(m) for m in moments]
    assert texts[1] == "0999-12-31T23:59:59.000005Z"
    assert texts == sorted(texts) and len({len(t) for t in texts}) == 1
    assert [parse_time(t) for t in texts] == moments
    # A date from a digitised chronicle is a time like any other.
    led.append([event(occurred_at="0999-12-31T12:00:00Z")])
    assert led.article("deir-ez-zor", at="0999-12-31T13:00:00Z").version == 1
    assert led.history("deir-ez-zor")[0].occurred_at == datetime(999, 12, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "ArticleDeleted"}, "type: unknown event type 'ArticleDeleted' \\(expected 'ArticleCreated', "),
        ({"colour": "red"}, "colour: unknown field \\(expected one of type, article, data, id, actor, reason, occurred_at, expected_version\\)$"),
        ({"article": None}, "article: must be text, not null$"),
        ({"actor": "two\nlines"}, "actor: must be a single line$"),
        ({"expected_version": -1}, "expected_version: must be 0 or more, not -1$"),
        ({"data": []}, "data: must be an object \\({...}\\), not a list$"),
        ({"expected_version": "x"}, "expected_version: must be a whole number, not 'x'$"),
    ],
)
def test_bad_envelopes(led: ledger.Ledger, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ledger.InvalidEventError, match=f"^event 1: {message}"):
        led.append([event(**fields)])


def test_missing_envelope_field(led: ledger.Ledger) -> None:
    with pytest.raises(ledger.InvalidEventError, match=r"^event 1: article: missing field"):
        led.append([{"type": "ArticleCreated", "data": {"title": "T"}}])


# --- data of each type ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("ArticleCreated", {}, "ArticleCreated: title: missing field"),
        ("ArticleCreated", {"title": "T", "subtitle": "S"}, "ArticleCreated: subtitle: unknown field \\(expected one of title, body, categories, metadata\\)"),
        ("ArticleCreated", {"title": ""}, "ArticleCreated: title: must not be empty"),
        ("ArticleEdited", {"title": ""}, "ArticleEdited: title: must not be empty$"),
        ("UpdateBlockEdited", {"index": 0, "heading": ""}, "UpdateBlockEdited: heading: must not be empty$"),
        ("ArticleCreated", {"title": "T", "categories": "news"}, "ArticleCreated: categories: must be a list, not 'news'"),
        ("UpdateBlockAdded", {"text": "t"}, "UpdateBlockAdded: heading: missing field"),
        ("UpdateBlockAdded", {"heading": "H", "index": -1}, "UpdateBlockAdded: index: must be 0 or more, not -1"),
        ("CategoriesChanged", {"added": ["ok", "bad\nline"]}, "CategoriesChanged: added.1: must be a single line"),
        ("ArticleWithdrawn", {"why": "x"}, "ArticleWithdrawn: why: unknown field \\(ArticleWithdrawn has no data fields\\)"),
        ("Renamed", {}, "unknown event type 'Renamed'"),
    ],
)
def test_validate_data(kind: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(ledger.InvalidEventError, match=f"^here: {message}"):
        validate_data(kind, data, "here: ")


def test_validate_data_normalises() -> None:
    out = validate_data("ArticleCreated", {"title": "T", "categories": ["a", "b", "a"]})
    assert out == {"title": "T", "body": "", "categories": ["a", "b"], "metadata": {}}


def test_every_event_type_validates_its_minimal_data() -> None:
    minimal = {
        "ArticleCreated": {"title": "T"},
        "ArticleEdited": {"title": "T2"},
        "UpdateBlockAdded": {"heading": "Update:"},
        "UpdateBlockEdited": {"index": 0, "heading": "Update 2:"},
        "UpdateBlockRemoved": {"index": 0},
        "CategoriesChanged": {"added": ["x"]},
        "MetadataChanged": {"set": {"author": "A"}},
        "ArticleWithdrawn": {},
        "ArticleRestored": {},
    }
    assert set(minimal) == set(ledger.EVENT_TYPES)
    for kind, data in minimal.items():
        validate_data(kind, data)


# The append path validates with TypedDicts (`EVENT_FIELDS`, `validate_data`), the API documents
# the models (`EventIn`, `EVENT_TYPES`): both must accept, normalise and refuse alike, in the same
# words. Every field gets each of these values, alone and beside an unknown field.
_CANDIDATES: list[Any] = [
    "", "T", "two\nlines", "bell\x07", "x" * 201, "y" * 2001, 0, 3, -1, 2.5, True, None, [], ["a", "b", "a"], ["ok", "bad\nline"],
    [""], {}, {"k": [1, {"n": None}]}, [[0, 1, "x"]], [[0, 1]], [["a", 1, "x"]], "2017-09-05T16:05:00Z", "2017-09-05T16:05:00",
    "12345", datetime(2017, 9, 5, tzinfo=UTC), "evt-1", "has space", "deir-ez-zor", "a/b",
]


def _outcome(validate: Any, value: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", validate(value)
    except ValidationError as exc:
        return "refused", describe_validation_error(exc)
    except ledger.InvalidEventError as exc:
        return "refused", str(exc)


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_data_validation_says_what_the_data_models_say(kind: str) -> None:
    model = EVENT_TYPES[kind]
    base = {"ArticleCreated": {"title": "T"}, "UpdateBlockAdded": {"heading": "H"}, "UpdateBlockEdited": {"index": 0},
            "UpdateBlockRemoved": {"index": 0}}.get(kind, {})
    cases = [dict(base), {**base, "extra": 1}, {}]
    cases += [{**base, field: value} for field in model.model_fields for value in _CANDIDATES]
    for data in cases:
        old = _outcome(lambda d: model.model_validate(d).model_dump(), data)
        new = _outcome(lambda d: validate_data(kind, d), data)
        expected = old if old[0] == "ok" else ("refused", f"{kind}: {old[1]}")
        assert new == expected, data


def test_envelope_validation_says_what_event_in_says() -> None:
    base = {"type": "ArticleCreated", "article": "deir-ez-zor"}
    cases = [dict(base), {**base, "extra": 1}, {"article": "a"}, {"type": "ArticleCreated"}]
    cases += [{**base, field: value} for field in EventIn.model_fields for value in [*_CANDIDATES, "ArticleDeleted"]]
    for fields in cases:
        old = _outcome(lambda f: EventIn.model_validate(f).__dict__, fields)
        new = _outcome(lambda f: {name: EVENT_FIELDS.validate_python(f).get(name, {} if name == "data" else None) for name in EventIn.model_fields}, fields)
        assert new == old, fields


# --- patches -------------------------------------------------------------------------------


def test_patch_examples() -> None:
    assert make_patch("same", "same") == []
    assert make_patch("", "new") == [(0, 0, "new")]
    assert make_patch("old", "") == [(0, 3, "")]
    assert make_patch("The cat sat.", "The dog sat.") == [(4, 7, "dog")]
    with pytest.raises(ValueError, match="does not fit a text of 3 characters"):
        apply_patch("abc", [(2, 5, "x")])
    with pytest.raises(ValueError):
        apply_patch("abcdef", [(3, 4, "x"), (1, 2, "y")])


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
lines = st.lists(st.sampled_from(["alpha\n", "beta\n", "gamma", "\n", "delta delta\r\n", "é ü\n"]), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(old=texts | lines, new=texts | lines)
def test_patch_round_trip(old: str, new: str) -> None:
    patch = make_patch(old, new)
    assert apply_patch(old, patch) == new
    starts = [op[0] for op in patch]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(patch)) and starts == sorted(starts)


def _article(words: int) -> str:
    sentences = [f"Sentence {n} says that the convoy reached checkpoint {n} before noon on Tuesday." for n in range(words)]
    return "\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5))


def test_a_one_sentence_edit_of_a_5kb_article_costs_well_under_1kb(led: ledger.Ledger, store_dir: Path) -> None:
    body = _article(70)
    assert len(body.encode()) >= 5000
    led.append([{"type": "ArticleCreated", "article": "convoy", "data": {"title": "Convoy", "body": body}}])
    before = (store_dir / LOG_FILE).stat().st_size
    new_body = body.replace("checkpoint 33 before noon", "checkpoint 33 shortly after dawn")
    led.append([{"type": "ArticleEdited", "article": "convoy", "data": {"body": new_body}}])
    growth = (store_dir / LOG_FILE).stat().st_size - before
    assert growth < 700, growth
    assert led.article("convoy").body == new_body
    recorded = list(led.events(article="convoy"))[-1]
    ((start, end, text),) = recorded.data["patch"]  # one small operation, not the article
    assert start > 2000 and end - start < 20 and len(text) < 20
