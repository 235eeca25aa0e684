"""Times as people type them: ISO 8601 instants and dates, and relative ages like `2h`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from ledger.errors import InvalidTimeError

_AGE = re.compile(r"(\d+)\s*(s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | datetime, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from `2017-09-05T16:05:00Z`, `2017-09-05T18:05+02:00`, `2017-09-05`
    (midnight UTC), or an age before `now`: `90s`, `90m`, `2h`, `3d`, `1w`.

    A time without a zone is taken as UTC. Raises `InvalidTimeError` naming the text.
    """
    if isinstance(text, datetime):
        moment = text
    else:
        raw = text.strip()
        age = _AGE.fullmatch(raw)
        if age:
            base = now or datetime.now(timezone.utc)
            return base - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
        try:
            moment = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            raise InvalidTimeError(
                f"cannot read time {text!r}: use ISO 8601 (2017-09-05T16:05:00Z, 2017-09-05) or an age (90m, 2h, 3d)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
