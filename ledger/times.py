"""Times as people type them: ISO 8601 instants and dates, and relative ages like `2h`.

Two rules keep a typed time meaning what the person saw:

* A time without a zone is local time, because that is how ledger prints times for people
  (JSON output is always UTC with `Z`).
* A time typed to a coarser precision than the log's microseconds covers that whole period when
  it is an upper bound (`end=True`: "as of", "until"): `--at 2017-09-05T16:05:00` means as of the
  end of that second, so the version that `history` shows at 16:05:00 is included, and
  `--at 2017-09-05` means as of the end of that day. As a lower bound (`since`) or a point in
  time (when something occurred) it means the start of the period.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from ledger.errors import InvalidTimeError

_AGE = re.compile(r"(\d+)\s*(s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_CLOCK = re.compile(r"[T ](\d{2})(:?\d{2})?(:?\d{2})?([.,]\d+)?", re.IGNORECASE)
_TICK = timedelta(microseconds=1)


def _period(raw: str) -> timedelta:
    """How long the typed text spans: a day, an hour, a minute, a second, or nothing."""
    if _DATE_ONLY.fullmatch(raw):
        return timedelta(days=1)
    clock = _CLOCK.search(raw)
    if clock is None or clock.group(4):
        return timedelta(0)
    if clock.group(3):
        return timedelta(seconds=1)
    if clock.group(2):
        return timedelta(minutes=1)
    return timedelta(hours=1)


def _local(moment: datetime, text: str | datetime, *, day: bool) -> datetime:
    """`moment` (naive) as the machine's local time; `InvalidTimeError` when the clocks skipped
    it (moved forward past it) or passed it twice (moved back), which a zone must settle. A
    `day` typed without a time starts at its first instant, wherever its clocks start it (in
    zones that change them at midnight, 00:00 may not exist, or happen twice)."""
    first = moment.replace(fold=0).astimezone()
    try:
        second = moment.replace(fold=1).astimezone()
    except (OverflowError, ValueError):
        # Near the years 1 and 9999 the second reading leaves the range: no clock change there.
        return first
    if first.utcoffset() == second.utcoffset():
        return first
    # Skipped: neither reading is a time the local clocks showed.
    skipped = all(datetime.fromtimestamp(reading.timestamp()) != moment for reading in (first, second))
    if day:
        # The day's first instant: where its clocks start after a skip (the later reading), or
        # the first of a midnight that happens twice.
        return max(first, second) if skipped else min(first, second)
    shown = str(text) if isinstance(text, str) else moment.isoformat()
    wall = moment.isoformat(timespec="minutes" if not moment.second and not moment.microsecond else "seconds")
    offsets = " or ".join(f"{wall}{value.strftime('%z')[:3]}:{value.strftime('%z')[3:5]}" for value in (first, second))
    if skipped:
        raise InvalidTimeError(f"time {shown!r} does not exist in local time (the clocks moved forward past it): give a zone, {offsets}")
    raise InvalidTimeError(f"time {shown!r} happened twice in local time (the clocks moved back): give a zone, {offsets}")


def parse_when(text: str | datetime, now: datetime | None = None, *, end: bool = False) -> datetime:
    """An aware UTC datetime from `2017-09-05T16:05:00Z`, `2017-09-05T18:05+02:00`,
    `2017-09-05 16:05` (local time), `2017-09-05`, or an age before `now`: `90s`, `90m`, `2h`,
    `3d`, `1w`.

    With `end`, text typed to less than microsecond precision means the last instant of the
    period it names (see the module docstring). Raises `InvalidTimeError` naming the text.
    """
    if isinstance(text, datetime):
        moment = text
        span = timedelta(0)
    else:
        raw = text.strip()
        age = _AGE.fullmatch(raw)
        if age:
            base = now or datetime.now(UTC)
            try:
                return base - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
            except OverflowError:
                # timedelta itself overflows past 999,999,999 days, the subtraction before year 1.
                raise InvalidTimeError(f"cannot read time {text!r}: that age reaches back before the year 1") from None
        try:
            moment = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            raise InvalidTimeError(
                f"cannot read time {text!r}: use ISO 8601 (2017-09-05T16:05:00Z, 2017-09-05) or an age (90m, 2h, 3d)"
            ) from None
        span = _period(raw)
    naive = moment.tzinfo is None
    try:
        if naive:
            day = span == timedelta(days=1)
            if end and day and moment.date() < date.max:
                # A local day ends where the next one starts: 23 or 25 hours on a day the
                # clocks change, not 24 at the offset it started with.
                return (_local(moment + span, text, day=True) - _TICK).astimezone(UTC)
            # Naive means local: `astimezone` reads a naive datetime as the machine's local time.
            moment = _local(moment, text, day=day)
        if end and span:
            # The period's last instant, reached without stepping past it: the end of 9999-12-31
            # is a valid time, the start of the day after is not.
            moment = moment + (span - _TICK)
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        # At the edges of years 1 and 9999 the shift to UTC (or, for local times, the C library's
        # conversion) leaves the range a datetime can hold.
        hint = " (a local time near those edges needs a zone, e.g. 0001-01-01T00:00Z)" if naive else ""
        raise InvalidTimeError(f"time {str(text)!r} is out of range: in UTC it must fall within the years 1 to 9999{hint}") from None
