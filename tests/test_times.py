"""Typed times: ISO 8601, local time without a zone, ages, and the period an upper bound covers."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ledger.errors import InvalidTimeError
from ledger.times import parse_when


@pytest.fixture
def paris() -> Iterator[None]:
    """Run with the machine's local zone set to Europe/Paris (UTC+1 in winter)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_instants_with_a_zone_are_exact() -> None:
    assert parse_when("2017-09-05T16:05:00Z") == datetime(2017, 9, 5, 16, 5, tzinfo=UTC)
    assert parse_when("2017-09-05T18:05:00+02:00") == datetime(2017, 9, 5, 16, 5, tzinfo=UTC)
    assert parse_when("2017-09-05T16:05:00.250000Z", end=True) == datetime(2017, 9, 5, 16, 5, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "last"),
    [
        ("2017-09-05", datetime(2017, 9, 5, tzinfo=UTC), datetime(2017, 9, 5, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2017-09-05T16Z", datetime(2017, 9, 5, 16, tzinfo=UTC), datetime(2017, 9, 5, 16, 59, 59, 999999, tzinfo=UTC)),
        ("2017-09-05T16:05Z", datetime(2017, 9, 5, 16, 5, tzinfo=UTC), datetime(2017, 9, 5, 16, 5, 59, 999999, tzinfo=UTC)),
        ("2017-09-05T16:05:07Z", datetime(2017, 9, 5, 16, 5, 7, tzinfo=UTC), datetime(2017, 9, 5, 16, 5, 7, 999999, tzinfo=UTC)),
    ],
)
def test_an_upper_bound_covers_the_period_typed(text: str, start: datetime, last: datetime) -> None:
    assert parse_when(text) == start
    assert parse_when(text, end=True) == last


def test_a_time_without_a_zone_is_local_time(paris: None) -> None:
    assert parse_when("2026-11-27 22:22:58") == datetime(2026, 11, 27, 21, 22, 58, tzinfo=UTC)
    assert parse_when("2026-11-27") == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [("2026-03-29 02:30", "time '2026-03-29 02:30' does not exist in local time (the clocks moved forward past it): give a zone, "
                          "2026-03-29T02:30+01:00 or 2026-03-29T02:30+02:00"),
     ("2026-10-25T02:30:15", "time '2026-10-25T02:30:15' happened twice in local time (the clocks moved back): give a zone, "
                             "2026-10-25T02:30:15+02:00 or 2026-10-25T02:30:15+01:00")],
    ids=["skipped", "twice"],
)
def test_a_local_time_the_clocks_skipped_or_passed_twice_needs_a_zone(paris: None, text: str, message: str) -> None:
    # Read silently, a time in the spring gap became another hour, and one in the autumn hour
    # that happens twice the first of them.
    with pytest.raises(InvalidTimeError, match=f"^{re.escape(message)}$"):
        parse_when(text)
    assert parse_when("2026-03-29 03:30") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert parse_when("2026-10-25T02:30:15+01:00") == datetime(2026, 10, 25, 1, 30, 15, tzinfo=UTC)


def test_ages_count_back_from_now() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_when("90m", now) == now - timedelta(minutes=90)
    assert parse_when("3d", now, end=True) == now - timedelta(days=3)


@pytest.mark.parametrize("text", ["yesterday", "2017-13-01", "", "5 parsecs"])
def test_unreadable_times_name_the_text(text: str) -> None:
    with pytest.raises(InvalidTimeError, match="cannot read time"):
        parse_when(text)


def test_as_of_a_second_includes_what_happened_within_it(led) -> None:  # type: ignore[no-untyped-def]
    led.append([{"type": "ArticleCreated", "article": "a", "occurred_at": "2017-09-05T16:05:00.300000Z",
                 "data": {"title": "First"}}])
    led.append([{"type": "ArticleEdited", "article": "a", "occurred_at": "2017-09-05T18:00:00.500000Z",
                 "data": {"title": "Second"}}])
    # `history` prints 16:05:00 for version 1: asking as of that second must find it.
    assert led.article("a", at="2017-09-05T16:05:00Z").version == 1
    assert led.article("a", at="2017-09-05T18:00:00Z").version == 2
    assert led.article("a", at="2017-09-05T17:59:59Z").version == 1
    assert led.article("a", at="2017-09-05").version == 2


def test_a_time_the_store_refuses_names_where_the_event_came_from(led) -> None:  # type: ignore[no-untyped-def]
    """The store judges an append's times under its lock, by article; the error still names the
    input the article's event came from (`file:line`, a draft), and nothing is appended."""
    led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A"}}])
    head = led.head()
    early = {"type": "ArticleEdited", "article": "a", "data": {"title": "B"}, "occurred_at": "2001-01-01T00:00:00Z"}
    late = {"type": "ArticleCreated", "article": "b", "data": {"title": "B"}, "occurred_at": "2999-01-01T00:00:00Z"}
    with pytest.raises(InvalidTimeError, match=r"^events\.jsonl:2: ArticleEdited for 'a': occurred_at 2001-01-01T00:00:00\.000000Z is earlier than version 1"):
        led.append_json_lines(['{"type": "ArticleCreated", "article": "c", "data": {"title": "C"}}', json.dumps(early)], name="events.jsonl")
    with pytest.raises(InvalidTimeError, match=r"^story\.txt: ArticleCreated for 'b': occurred_at 2999-01-01T00:00:00\.000000Z is in the future$"):
        led.append([late], labels=["story.txt"])
    assert led.head() == head


def test_a_day_starts_and_ends_where_its_clocks_do(paris: None) -> None:
    # Typed without a zone on the day the clocks change, a day is 23 or 25 hours long: its end
    # was taken 24 hours after its start, an hour into the next day or short of its own end.
    assert parse_when("2026-03-29", end=True) == datetime(2026, 3, 29, 21, 59, 59, 999999, tzinfo=UTC)
    assert parse_when("2026-10-25", end=True) == datetime(2026, 10, 25, 22, 59, 59, 999999, tzinfo=UTC)


def test_a_day_whose_midnight_the_clocks_skip_starts_at_its_first_instant() -> None:
    # Santiago moves its clocks at midnight: 2024-09-08 00:00 never happened there, and the date
    # alone, which names the day, was refused as a skipped time.
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/Santiago"
    time.tzset()
    try:
        assert parse_when("2024-09-08") == datetime(2024, 9, 8, 4, 0, tzinfo=UTC)  # 01:00 -03:00
        assert parse_when("2024-09-08", end=True) == datetime(2024, 9, 9, 2, 59, 59, 999999, tzinfo=UTC)
        with pytest.raises(InvalidTimeError, match="does not exist in local time"):
            parse_when("2024-09-08 00:30")
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
