"""Hostile input: every bad input anyone finds goes here, with what it must give.

The rule each test checks: a bad input gets one plain line on stderr naming what is wrong and
where, its documented exit code (2 bad option value, 3 invalid input, 5 conflict), and leaves the
log byte for byte as it was; and nothing the schema admits can make a later read fail. The CLI
runs as a real process (`run_ledger`), so a traceback cannot hide behind an in-process runner.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from ledger.draft_format import read_draft
from ledger.events import MAX_NESTING, NewRecord
from ledger.store import LOG_FILE
from tests.conftest import run_ledger
from tests.helpers import cli

CREATE = {"type": "ArticleCreated", "article": "a1", "data": {"title": "T", "body": "b\n", "categories": ["x"]},
          "occurred_at": "2020-01-01T00:00:00Z", "id": "e1"}


def line(value: dict[str, Any] | str) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode() + b"\n"


@pytest.fixture
def store(store_dir: Path) -> Path:
    """A store holding article `a1` (one version, event id `e1`)."""
    with ledger.open(store_dir) as led:
        led.append([CREATE])
    return store_dir


def refused(store: Path, args: list[str], code: int, *needles: str, input: bytes | None = None) -> str:
    """Run `ledger ARGS` and check it fails with `code`, one line on stderr holding `needles`, no
    traceback, and the log unchanged; returns the line."""
    log = (store / LOG_FILE).read_bytes()
    result = run_ledger(*args, store=store, input=input)
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in message, message
    assert (store / LOG_FILE).read_bytes() == log
    return message


# --- point 7: reserved metadata keys, and reads no recorded value can break ------------------


@pytest.mark.parametrize(
    "event",
    [
        {"type": "ArticleCreated", "article": "b", "data": {"title": "T", "metadata": {"_draft": "x"}}},
        {"type": "ArticleCreated", "article": "b", "data": {"title": "T", "metadata": {"_draft": {"format": "markdown"}}}},
        {"type": "MetadataChanged", "article": "a1", "data": {"set": {"_draft": {"lead": "\n"}}}},
        {"type": "MetadataChanged", "article": "a1", "data": {"unset": ["_draft"]}},
        {"type": "ArticleCreated", "article": "b", "data": {"title": "T", "metadata": {"title": "Other"}}},
        {"type": "MetadataChanged", "article": "a1", "data": {"set": {"tags": ["x"]}}},
    ],
    ids=["created-draft-text", "created-draft-layout", "set-draft", "unset-draft", "created-title", "set-tags"],
)
def test_reserved_metadata_keys_are_refused_at_the_append_door(store: Path, event: dict[str, Any]) -> None:
    message = refused(store, ["append", "-"], 3, "<stdin>:1:", "metadata key", "is reserved", input=line(event))
    assert message.startswith("error: <stdin>:1: ")


def test_a_layout_must_have_the_parsers_shape_even_where_reserved_keys_pass(led: ledger.Ledger) -> None:
    for layout, problem in [("x", "not a str"), ({"front_matter": 5}, "front_matter: must be text"),
                            ({"format": "html"}, "format: must be 'markdown'"), ({"evil": True}, "unknown key 'evil'"),
                            ({"named_id": "yes"}, "named_id: must be true or false"),
                            ({"format": "markdown", "syntax": "xml"}, "syntax: must be one of toml, json, heading"),
                            ({"syntax": "toml"}, "syntax: must be one of toml, json, heading, in a Markdown layout")]:
        with pytest.raises(ledger.InvalidEventError, match=f"metadata._draft: .*{problem}"):
            led.append([{"type": "ArticleCreated", "article": "b", "data": {"title": "T", "metadata": {"_draft": layout}}}],
                       reserved_keys=True)
    assert led.head().position == 0


POISONED = [
    {"_draft": "x"},
    {"_draft": {"format": "markdown", "front_matter": 5, "fingerprint": None}},
    {"_draft": {"format": "markdown", "categories_key": 7}},
    {"_draft": {"lead": 3, "title_end": None, "categories_line": ["x"], "tail": {}}},
    {"_draft": ["format", "markdown"]},
    {"_draft": {"format": "markdown"}, "title": "Not the title", "tags": ["extra"], "id": 5},
]


@pytest.mark.slow
def test_reads_of_records_written_before_the_checks_never_fail(store_dir: Path) -> None:
    # Records such as older versions accepted: written below the checks, straight to the store.
    with ledger.open(store_dir) as led:
        for n, metadata in enumerate(POISONED):
            led.store.append([NewRecord(id=f"p{n}", article=f"b{n}", type="ArticleCreated",
                                        data={"title": "T", "body": "Body.\n", "categories": ["c"], "metadata": metadata})])
            led.store.append([NewRecord(id=f"q{n}", article=f"b{n}", type="ArticleEdited", data={"patch": [[0, 4, "New"]]})])
    with ledger.open(store_dir) as led:
        for n in range(len(POISONED)):
            for version in (1, 2):
                text = ledger.render(led.article(f"b{n}", version=version))
                assert "Not the title" not in text
            assert "New.\n" in text
            led.history(f"b{n}")
            led.diff(f"b{n}", 1, 2, words=True)
    # The CLI on the two worst: a layout that is not a mapping, reserved keys beside a layout.
    for article in ("b0", f"b{len(POISONED) - 1}"):
        for args in (["show", article], ["history", article], ["diff", article], ["log", "--article", article]):
            result = run_ledger(*args, store=store_dir)
            assert result.returncode == 0 and b"Traceback" not in result.stderr, (args, result.stderr)
    for args in (["timeline"], ["categories"], ["updated", "--since", "2000-01-01"]):
        result = run_ledger(*args, store=store_dir)
        assert result.returncode == 0 and b"Traceback" not in result.stderr, (args, result.stderr)


JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)
LAYOUTS = st.fixed_dictionaries({}, optional={
    "format": st.just("markdown"), "syntax": st.sampled_from(["toml", "json", "heading"]),
    "front_matter": st.text(max_size=30), "fingerprint": st.text(max_size=32),
    "named_id": st.booleans(), "categories_key": st.sampled_from(["category", "categories", "tags"]),
    "categories_string": st.booleans(), "categories_table": st.just("taxonomies"), "lead": st.text(max_size=5),
    "title_end": st.text(max_size=5),
    "categories_line": st.text(max_size=30), "tail": st.text(max_size=5),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    title=st.text(min_size=1, max_size=30), body=st.text(max_size=60), categories=st.lists(st.text(min_size=1, max_size=12), max_size=3),
    metadata=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4), layout=st.none() | LAYOUTS,
    heading=st.text(min_size=1, max_size=20), edit=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=2),
)
def test_anything_an_append_accepts_can_be_read(tmp_path: Path, title: str, body: str, categories: list[str],
                                                metadata: dict[str, Any], layout: dict[str, Any] | None, heading: str,
                                                edit: dict[str, Any]) -> None:
    root = ledger.init(tmp_path / f"s{time.monotonic_ns()}")
    if layout is not None:
        metadata = {**metadata, "_draft": layout}
    with ledger.open(root) as led:
        try:
            led.append([{"type": "ArticleCreated", "article": "p", "data": {"title": title, "body": body, "categories": categories,
                                                                            "metadata": metadata}}], reserved_keys=True)
        except ledger.InvalidEventError:
            return  # refused whole: a one-line error is all that may happen
        for event in ({"type": "UpdateBlockAdded", "data": {"heading": heading, "text": "\n" + body}},
                      {"type": "MetadataChanged", "data": {"set": edit}}):
            with contextlib.suppress(ledger.InvalidEventError, ledger.NothingToDoError):
                led.append([{**event, "article": "p"}], reserved_keys=True)
        current = led.article("p").version
        for version in range(1, current + 1):
            ledger.render(led.article("p", version=version))
        led.history("p")
        led.diff("p", 1, current)
        led.diff("p", 1, current, words=True)
        led.timeline()
        led.categories()
        list(led.events(article="p"))


# --- point 8: input that would be kept otherwise than given -----------------------------------


@pytest.mark.parametrize(
    "text, needles",
    [
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","metadata":{"n":123456789012345678901234567890}}}',
         ["integer 123456789012345678901234567890 is beyond 64 bits"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","metadata":{"n":-9223372036854775809}}}', ["beyond 64 bits"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","metadata":{"n":NaN}}}', ["NaN is not a JSON number"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","metadata":{"n":-Infinity}}}', ["-Infinity is not a JSON number"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","metadata":{"n":1e999}}}', ["1e999 is too large"]),
        ('{"type":"ArticleCreated","article":"b","article":"c","data":{"title":"T"}}', ["key 'article' is given twice"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","title":"U"}}', ["key 'title' is given twice"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T"},"occurred_at":12345}', ["occurred_at", "ISO 8601", "not int"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T"},"occurred_at":"12345"}', ["occurred_at", "not an ISO 8601 time"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T"},"occurred_at":"2017-09-05"}', ["occurred_at: needs a time zone"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T"},"occurred_at":"0001-01-01T00:00:00+14:00"}',
         ["occurred_at", "out of range"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T"},"actor":"\\ud800"}', ["actor", "unpaired surrogates"]),
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T","body":"x\\udc00"}}', ["ArticleCreated: body: text with unpaired surrogates (text must be Unicode"]),
        ('{"type": ', ["malformed JSON (the line ends before the JSON does)"]),
        ('{"type": "ArticleCreated" "article": "b"}', ["malformed JSON (expecting ',' delimiter at column 27)"]),
        # "invalid control character at at column ...", and a byte order mark as "expecting value".
        ('{"type":"ArticleCreated","article":"b","data":{"title":"T\x00"}}',
         ["malformed JSON (invalid control character U+0000 at column 58; write it as the escape \\u0000)"]),
        ('\ufeff{"type":"ArticleCreated","article":"b","data":{"title":"T"}}',
         ["malformed JSON (it starts with a byte order mark; save it as UTF-8 without one)"]),
    ],
    ids=["bigint", "bigneg", "nan", "inf", "1e999", "dupkey", "dupkey-data", "time-int", "time-digits", "time-naive", "time-underflow",
         "surrogate-actor", "surrogate-body", "truncated", "syntax", "nul", "bom"],
)
def test_json_that_would_change_is_refused(store: Path, text: str, needles: list[str]) -> None:
    message = refused(store, ["append", "-"], 3, "error: <stdin>:2: ", *needles, input=b"\n" + line(text))
    assert len(message) < 300


def test_python_values_that_json_cannot_keep_are_refused(led: ledger.Ledger) -> None:
    created = {"type": "ArticleCreated", "article": "b", "data": {"title": "T"}}
    for value, problem in [(math.nan, "metadata.v: nan is not a finite number"), (math.inf, "metadata.v: inf is not a finite number"),
                           (2**64, "metadata.v: integer beyond 64 bits"), (datetime.now(UTC), "metadata.v: a datetime is not a JSON value"),
                           ({1: "x"}, "metadata.v: key 1 is not text"), ((1, 2), "metadata.v: a tuple is not a JSON value"),
                           ({"k": "\ud800"}, "metadata.v.k: text with unpaired surrogates")]:
        with pytest.raises(ledger.InvalidEventError, match=f"event 1: ArticleCreated: {problem}"):
            led.append([{**created, "data": {"title": "T", "metadata": {"v": value}}}])
    with pytest.raises(ledger.InvalidEventError, match=r"occurred_at: .*out of range"):
        led.append([{**created, "occurred_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))}])
    assert led.head().position == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, needle",
    [
        ({"article": "zz"}, "as ArticleCreated of 'a1', not ArticleCreated of 'zz'"),
        ({"type": "ArticleWithdrawn", "data": {}}, "as ArticleCreated of 'a1', not ArticleWithdrawn of 'a1'"),
        ({"data": {"title": "Other"}}, "with another data"),
        ({"actor": "someone"}, "with another actor"),
        ({"occurred_at": "2021-01-01T00:00:00Z"}, "with another occurred_at"),
    ],
    ids=["article", "type", "data", "actor", "time"],
)
def test_a_reused_event_id_with_other_content_is_a_conflict(store: Path, change: dict[str, Any], needle: str) -> None:
    refused(store, ["append", "-"], 5, "<stdin>:1: event id 'e1' is already recorded (position 1)", needle, "nothing appended",
            input=line({**CREATE, **change}))
    again = run_ledger("append", "-", store=store, input=line(CREATE))
    assert again.returncode == 0 and b"already recorded: nothing appended" in again.stdout


# --- issue 14 point 3: plain words, not a parser's internals ----------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "ArticleDeleted"}, "type: unknown event type 'ArticleDeleted' (expected 'ArticleCreated', 'ArticleEdited', "),
        ({"occurred_at": "2017-09-05T16:05:00"}, "occurred_at: needs a time zone (e.g. 2017-09-05T16:05:00Z)"),
        ({"occurred_at": "2017-09"}, "occurred_at: '2017-09' is not an ISO 8601 time (e.g. 2017-09-05T16:05:00Z)"),
        ({"actor": "two\nlines"}, "actor: must be a single line"),
        ({"actor": 7}, "actor: must be text, not 7"),
        ({"data": ["T"]}, "data: must be an object ({...}), not a list"),
        ({"expected_version": "one"}, "expected_version: must be a whole number, not 'one'"),
        ({"expected_version": -1}, "expected_version: must be 0 or more, not -1"),
        ({"colour": "red"}, "colour: unknown field (expected one of type, article, data, id, actor, reason, occurred_at, expected_version)"),
        ({"data": {"title": ""}}, "ArticleCreated: title: must not be empty"),
        ({"data": {"title": "T", "categories": "news"}}, "ArticleCreated: categories: must be a list, not 'news'"),
        ({"data": {"title": "T", "body": "x\udc00"}},
         "ArticleCreated: body: text with unpaired surrogates (text must be Unicode: a \\ud800-\\udfff escape only as half of a surrogate pair)"),
        # pydantic's own words came through for a title ("must be a valid string, unable to parse raw data").
        ({"data": {"title": "T\ud800"}},
         "ArticleCreated: title: text with unpaired surrogates (text must be Unicode: a \\ud800-\\udfff escape only as half of a surrogate pair)"),
    ],
    ids=["type", "naive-time", "short-time", "two-lines", "actor-int", "data-list", "version-text", "version-negative", "extra",
         "empty-title", "categories-text", "surrogate", "title-surrogate"],
)
def test_bad_events_are_named_in_plain_words(led: ledger.Ledger, fields: dict[str, Any], message: str) -> None:
    # pydantic's words ("Value error, ", "Input should be a valid ...", orjson's "str is not valid
    # UTF-8: surrogates not allowed") said nothing a user could act on.
    event = {"type": "ArticleCreated", "article": "b", "data": {"title": "T"}, **fields}
    with pytest.raises(ledger.InvalidEventError) as caught:
        led.append_json_lines([json.dumps(event)], name="in.jsonl")
    assert str(caught.value).startswith(f"in.jsonl:1: {message}"), str(caught.value)
    assert "Input should" not in str(caught.value) and "Value error" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [({"index": "5"}, "UpdateBlockRemoved: index: must be a whole number, not '5'"),
     ({"index": "0", "heading": "X"}, "UpdateBlockEdited: index: must be a whole number, not '0'"),
     ({"index": 0.0}, "UpdateBlockRemoved: index: must be a whole number, not 0.0"),
     ({"index": True}, "UpdateBlockRemoved: index: must be a whole number, not true/false"),
     ({"index": "x", "heading": "X"}, "UpdateBlockEdited: index: must be a whole number, not 'x'"),
     ({"index": 0, "patch": [["0", 1, "x"]]}, "UpdateBlockEdited: patch.0.0: must be a whole number, not '0'")],
    ids=["removed", "edited", "float", "true", "not-a-number", "patch"],
)
def test_a_number_given_as_text_or_another_kind_is_refused(store: Path, data: dict[str, Any], message: str) -> None:
    # "0", 0.0 and true were taken for 0, 0 and 1: the log kept another value than the one written.
    with ledger.open(store) as led:
        led.append([{"type": "UpdateBlockAdded", "article": "a1", "data": {"heading": "H", "text": "old"}}])
    kind = "UpdateBlockEdited" if {"heading", "patch"} & set(data) else "UpdateBlockRemoved"
    refused(store, ["append"], 3, message, input=line({"type": kind, "article": "a1", "data": data}))


@pytest.mark.parametrize("value", ["0", 0.0, False, True])
def test_an_expected_version_that_is_not_a_json_whole_number_is_refused(led: ledger.Ledger, value: Any) -> None:
    # `true` was read as 1 and refused as a conflict; "0", 0.0 and false were taken for 0.
    with pytest.raises(ledger.InvalidEventError, match=r"^event 1: expected_version: must be a whole number, not "):
        led.append([{"type": "ArticleCreated", "article": "z", "data": {"title": "T"}, "expected_version": value}])

@pytest.mark.parametrize(
    ("event", "message"),
    [({"type": "CategoriesChanged", "data": {"categories": ["z"], "removed": ["x"]}}, "CategoriesChanged: give categories or added/removed, not both"),
     ({"type": "CategoriesChanged", "data": {"categories": ["q"], "added": ["b"]}}, "CategoriesChanged: give categories or added/removed, not both"),
     ({"type": "UpdateBlockEdited", "data": {"index": 0, "text": "two", "patch": [[0, 1, "x"]]}}, "UpdateBlockEdited: give text or patch, not both"),
     ({"type": "MetadataChanged", "data": {"set": {"k": 5}, "unset": ["k"]}}, "MetadataChanged: key 'k' is both set and unset"),
     ({"type": "ArticleEdited", "data": {"body": "new", "patch": [[0, 1, "x"]]}}, "ArticleEdited: give body or patch, not both")],
    ids=["categories-removed", "categories-added", "text-patch", "set-unset", "body-patch"],
)
def test_an_event_that_says_two_things_at_once_is_refused(store: Path, event: dict[str, Any], message: str) -> None:
    # Each of these recorded one half and dropped the other without a word.
    with ledger.open(store) as led:
        led.append([{"type": "UpdateBlockAdded", "article": "a1", "data": {"heading": "H", "text": "old"}}])
    refused(store, ["append"], 3, message, input=line({**event, "article": "a1"}))


def test_an_event_that_is_no_object_and_an_unknown_type_asked_for_are_named(led: ledger.Ledger) -> None:
    for value, shown in (("hi", "'hi'"), (5, "5"), (None, "null")):
        with pytest.raises(ledger.InvalidEventError, match="^" + re.escape(f"event 1: must be an object ({{...}}), not {shown}") + "$"):
            led.append([value])  # type: ignore[list-item]
    with pytest.raises(ledger.InvalidInputError, match=r"^unknown event type 'Nope' \(known: ArticleCreated, "):
        led.events(types=["Nope"])
    # Following a type that does not exist would wait for ever, saying nothing.
    with pytest.raises(ledger.InvalidInputError, match=r"^unknown event type 'Nope' \(known: ArticleCreated, "):
        led.follow(types=["ArticleEdited", "Nope"])


def test_an_event_id_given_twice_names_both_events(store: Path) -> None:
    two = line({**CREATE, "article": "b", "id": "dup"}) + line({"type": "ArticleEdited", "article": "b", "id": "dup", "data": {"title": "C"}})
    refused(store, ["append"], 3, "<stdin>:2: event id 'dup' is also given to <stdin>:1; nothing appended", input=two)


def test_a_binary_file_given_to_append_is_not_json_text(led: ledger.Ledger) -> None:
    with pytest.raises(ledger.InvalidEventError) as caught:
        led.append_json_lines([b"\x7fELF\x02\x01\x01\x00\xd0\x00\n"], name="prog")
    assert str(caught.value) == "prog:1: not UTF-8 text (byte 0xd0 at byte 9): expected JSON as UTF-8 text"


# --- issue 14 point 4: files that are not drafts ------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"


@pytest.mark.parametrize(
    ("name", "data", "what"),
    [("real.png", PNG, "binary data"), ("ls", b"\x7fELF\x02\x01\x01\x00\xd0\x00", "binary data"),
     ("notes.rtf", b"Title\n\ncaf\xe9\n", "not UTF-8 text")],
    ids=["png", "program", "latin-1-not-named-as-a-draft"],
)
def test_a_file_that_is_no_draft_says_so_and_names_the_draft_extensions(store: Path, tmp_path: Path, name: str, data: bytes,
                                                                        what: str) -> None:
    # It said "not UTF-8 (byte 0x89 at column 1); save the draft as UTF-8".
    path = tmp_path / name
    path.write_bytes(data)
    result = cli("ingest", str(path), store=store)
    assert (result.exit_code, result.stderr) == (3, f"error: {path}: not a draft: {what} (drafts are UTF-8 text files: .txt, .md, .markdown)\n")


def test_a_draft_in_another_encoding_is_still_told_to_save_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"Title\n\ncaf\xe9\n")
    with pytest.raises(ledger.DraftError, match=r"notes\.txt:3: not UTF-8 \(byte 0xe9 at column 4\); save the draft as UTF-8$"):
        read_draft(path)


def test_an_empty_folder_is_nothing_to_ingest(store: Path, tmp_path: Path) -> None:
    # It printed nothing and exited 0.
    empty = tmp_path / "emptydir"
    empty.mkdir()
    (empty / "picture.png").write_bytes(PNG)  # not named like a draft: not one
    result = cli("ingest", str(empty), store=store)
    assert (result.exit_code, result.stderr) == (9, f"error: nothing to ingest: no drafts in {empty} (drafts are .txt, .md, .markdown files)\n")
    with ledger.open(store) as led, pytest.raises(ledger.NothingToDoError, match="nothing to ingest: no drafts in "):
        ledger.ingest(led, [empty])


def test_a_missing_draft_has_no_line_number(tmp_path: Path) -> None:
    # It said "does-not-exist.txt:1: cannot read the draft": there is no line 1 to point at.
    missing = tmp_path / "does-not-exist.txt"
    with pytest.raises(ledger.DraftError) as caught:
        read_draft(missing)
    assert str(caught.value) == f"{missing}: cannot read the draft: No such file or directory"


# --- point 13 (events): a bound on the size of one event ----------------------------------------


@pytest.mark.slow
def test_an_event_over_the_size_limit_is_refused(store: Path) -> None:
    big = {"type": "ArticleEdited", "article": "a1", "data": {"body": "x" * 5000}}
    refused(store, ["--max-event-bytes", "4096", "append", "-"], 3, "<stdin>:1: ArticleEdited is 5,",
            "over the limit of 4,096", input=line(big))
    env_run = run_ledger("append", "-", store=store, input=line(big), env={"LEDGER_MAX_EVENT_BYTES": "4096"})
    assert env_run.returncode == 3 and b"over the limit of 4,096" in env_run.stderr
    assert run_ledger("--max-event-bytes", "6000", "append", "-", store=store, input=line(big)).returncode == 0
    # The bound is on what is recorded: a one-word edit of that 5 KB body is a small patch.
    small_edit = {"type": "ArticleEdited", "article": "a1", "data": {"body": "y" + "x" * 4999}}
    assert run_ledger("--max-event-bytes", "4096", "append", "-", store=store, input=line(small_edit)).returncode == 0


def test_the_default_limit_refuses_a_seventeen_megabyte_body(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        assert led.max_event_bytes == ledger.DEFAULT_MAX_EVENT_BYTES == 16 * 1024 * 1024
        with pytest.raises(ledger.InvalidEventError, match=r"event 1: ArticleCreated is 17,\d{3},\d{3} bytes of data, over the limit"):
            led.append([{"type": "ArticleCreated", "article": "big", "data": {"title": "T", "body": "x" * (17 * 1024 * 1024)}}])
        assert led.head().position == 0
    with ledger.open(store_dir, max_event_bytes=100) as led, pytest.raises(ledger.InvalidEventError, match="over the limit of 100"):
        led.append([{"type": "ArticleCreated", "article": "b", "data": {"title": "T", "body": "x" * 100}}])


# --- point 15: edge values --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, codes",
    [
        (["show", "a1", "--at", "9999-12-31"], {0}),
        (["show", "a1", "--at", "9999-12-31T23:59:59-14:00"], {3}),
        (["show", "a1", "--at", "0001-01-01"], {3}),
        (["show", "a1", "--at", "0001-01-01T00:00Z"], {4}),
        (["show", "a1", "--at", "99999999w"], {3}),
        (["timeline", "--since", "0001-01-01", "--until", "9999-12-31"], {3}),
        (["timeline", "--since", "0001-01-01T00:00Z", "--until", "9999-12-31"], {0}),
        (["categories", "--at", "9999-12-31"], {0}),
        (["categories", "--at", "0001-01-01"], {3}),
        (["categories", "x", "--at", "99999999999999d"], {3}),
        (["updated", "--since", "0001-01-01"], {3}),
        (["updated", "--since", "9999-12-31"], {0}),
        (["ingest", "DRAFT", "--at", "9999-12-31"], {3}),
        (["ingest", "DRAFT", "--at", "0001-01-01"], {3}),
        (["ingest", "DRAFT", "--at", "0001-01-01T00:00:00+14:00"], {3}),
        (["log", "--from", "99999999999999999999"], {2}),
        (["log", "--limit", "99999999999999999999"], {2}),
        (["timeline", "--limit", "99999999999999999999"], {2}),
        (["show", "a1", "99999999999999999999"], {2}),
        (["diff", "a1", "1", "99999999999999999999"], {2}),
        (["replay", "--to", "99999999999999999999"], {2}),
        (["--lock-timeout", "nan", "log"], {2}),
        (["--lock-timeout", "-1", "log"], {2}),
        (["--max-event-bytes", "0", "log"], {2}),
    ],
)
def test_edge_values_give_one_line_and_their_exit_code(store: Path, tmp_path: Path, args: list[str], codes: set[int]) -> None:
    draft = tmp_path / "d.txt"
    draft.write_text("Title\n\nBody.\n")
    args = [str(draft) if arg == "DRAFT" else arg for arg in args]
    log = (store / LOG_FILE).read_bytes()
    result = run_ledger(*args, store=store)
    err = result.stderr.decode()
    assert result.returncode in codes, (result.returncode, err)
    assert "Traceback" not in err
    if result.returncode != 0:
        assert err.count("\n") == 1 and err.startswith("error: "), err
    assert (store / LOG_FILE).read_bytes() == log


@pytest.mark.parametrize(
    "args, where",
    [
        (["show", "a\udcff"], "ledger show: ARTICLE"),
        (["history", "\udce9t\udce9"], "ledger history: ARTICLE"),
        (["log", "--article", "a\udcff"], "ledger log: --article"),
        (["categories", "x\udcc3"], "ledger categories: [NAME]"),
        (["articles", "--author", "a\udcff"], "ledger articles: --author"),
        (["export", "--article", "a\udcff"], "ledger export: --article"),
        (["withdraw", "a1", "--reason", "a\udcff"], "ledger withdraw: --reason"),
    ],
)
def test_an_argument_that_is_not_utf8_is_named(store: Path, args: list[str], where: str) -> None:
    # The hostile run: `ledger show $'a\xff'` (bytes that are not UTF-8, as a shell passes them)
    # ended in a UnicodeEncodeError traceback from the index's SQLite query, exit 1.
    message = refused(store, args, 2, where, "not UTF-8 text (byte 0x")
    assert message.endswith("at character 2)") or message.endswith("at character 1)"), message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("null", "<stdin>:1: expected a JSON object, got null"),
        ('"x"', "<stdin>:1: expected a JSON object, got text"),
        ('{"type": null, "article": "a2", "data": {}}', "<stdin>:1: type: unknown event type null (expected"),
    ],
)
def test_input_of_the_wrong_json_kind_is_named_in_json_words(store: Path, text: str, message: str) -> None:
    # "got NoneType", "unknown event type None": Python's names, not JSON's.
    refused(store, ["append", "-"], 3, message, input=text.encode() + b"\n")


@pytest.mark.slow
def test_lock_timeout_infinity_waits_and_nan_is_refused_in_python(store: Path) -> None:
    assert run_ledger("--lock-timeout", "inf", "append", "-", store=store,
                      input=line({"type": "ArticleEdited", "article": "a1", "data": {"body": "c\n"}})).returncode == 0
    with pytest.raises(ledger.InvalidInputError, match="lock timeout nan is not a number of seconds"):
        ledger.open(store, lock_timeout=math.nan)


@pytest.mark.slow
def test_metadata_nested_five_hundred_deep_is_refused(store: Path) -> None:
    deep: Any = "leaf"
    for _ in range(500):
        deep = [deep]
    event = {"type": "MetadataChanged", "article": "a1", "data": {"set": {"deep": deep}}}
    refused(store, ["append", "-"], 3, "<stdin>:1: MetadataChanged: set.deep.0.0", f"nested deeper than {MAX_NESTING} levels",
            input=line(event))
    ok: Any = "leaf"
    for _ in range(MAX_NESTING - 2):
        ok = [ok]
    assert run_ledger("append", "-", store=store, input=line({**event, "data": {"set": {"deep": ok}}})).returncode == 0
    assert run_ledger("show", "a1", store=store).returncode == 0


FAST_WRITER = textwrap.dedent(
    """
    import os, sys
    import ledger

    store, name, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    with ledger.open(store, lock_timeout=300) as led:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()  # start together
        n = 0
        while not os.path.exists(stop) and n < 20000:
            led.append([{"type": "ArticleEdited", "article": "hot", "data": {"title": f"{name} {n}"}}])
            n += 1
    """
)

SLOW_WRITER = textwrap.dedent(
    """
    import sys
    import ledger

    store, appends, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ledger.open(store, lock_timeout=300) as led:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()
        for a in range(appends):
            # One big append takes a while to prepare: time for the fast writers to move on.
            led.append([{"type": "UpdateBlockAdded", "article": "hot", "data": {"heading": f"Update {a}.{b}:", "text": "\\nNews.\\n"}}
                        for b in range(blocks)])
    """
)


def _race(store_dir: Path, stop: Path, slow: list[str], fast: int = 7) -> None:
    """Start `fast` writers that keep moving the article `hot` on and the `slow` process (a
    command line), let them go together, and assert that every one of them exits 0."""
    processes = [
        subprocess.Popen([sys.executable, "-c", FAST_WRITER, str(store_dir), f"w{i}", str(stop)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(fast)
    ]
    processes.append(subprocess.Popen(slow, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        slow_out, slow_err = processes[-1].communicate(timeout=600)
        stop.touch()
        outcomes = [process.communicate(timeout=600) for process in processes[:-1]] + [(slow_out, slow_err)]
    finally:
        stop.touch()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    errors = [err.decode().strip().splitlines()[-1] for _, err in outcomes if err.strip()]
    assert [process.returncode for process in processes] == [0] * (fast + 1), errors


@pytest.mark.slow
def test_writers_that_state_no_version_never_get_a_version_conflict(store_dir: Path, tmp_path: Path) -> None:
    # Seven fast writers keep moving one article on while an eighth prepares big appends to it:
    # optimistic retries alone fail it (8 conflicts in a row); none of them asked for a version.
    appends, blocks = 3, 1500
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "hot", "data": {"title": "Hot", "body": "start\n"}}])
    _race(store_dir, tmp_path / "stop", [sys.executable, "-c", SLOW_WRITER, str(store_dir), str(appends), str(blocks)])
    with ledger.open(store_dir) as led:
        assert len(led.article("hot").blocks) == appends * blocks
        assert led.verify().problems == []


SLOW_INGESTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import ledger

    store, folder, rounds, paragraphs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with ledger.open(store, lock_timeout=300) as led:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()
        for r in range(rounds):
            # A long draft takes a while to plan: time for the fast writers to move the article on.
            body = "\\n\\n".join(f"Paragraph {p} of round {r}." for p in range(paragraphs))
            draft = folder / "hot.txt"
            draft.write_text(f"Hot\\n\\n{body}\\n")
            ledger.ingest(led, [draft], article="hot")
    """
)


@pytest.mark.slow
def test_an_ingest_racing_writers_never_gets_a_version_conflict(store_dir: Path, tmp_path: Path) -> None:
    # The expected versions of an ingest are its own, not the user's: like an append without
    # one, it must not fail because others keep writing (it planned optimistically 5 times).
    folder = tmp_path / "drafts"
    folder.mkdir()
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "hot", "data": {"title": "Hot", "body": "start\n"}}])
    _race(store_dir, tmp_path / "stop", [sys.executable, "-c", SLOW_INGESTER, str(store_dir), str(folder), "3", "400"])
    with ledger.open(store_dir) as led:
        assert "Paragraph 399 of round 2." in led.article("hot").body
        assert led.verify().problems == []
