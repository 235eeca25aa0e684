"""When a dirty draft has settled: the watcher's timing, apart from files and events.

A name becomes dirty when the file system reports something about it (or a scan finds it
changed); it is due to be read once it has been quiet for `quiet` seconds, or dirty for
`max_wait` seconds, but never while a writer is known to have it open, unless that was
`open_check` seconds ago (the close event may have been lost). Nothing here reads a file or a
clock of its own: the clock is given, so the rules can be tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DELETE_LIMIT = 10.0
"""Seconds a vanished draft waits while other drafts are pending: it may have been renamed to one
of them, and an article whose draft only moved must never be withdrawn."""


@dataclass
class _Dirty:
    first: float
    last: float
    writing: bool = False
    retry_at: float = 0.0
    # Counts the events seen: a read during which it moved may have seen a half-written file.
    events: int = 0


class Settling:
    """The dirty names of one folder and when each is due to be read; safe to use from the
    file-system events' thread and the reader's thread at once.

    `track_writers` says whether "a writer has it open" is ever known (only with close events);
    without it, a name is never held back as being written. `clock` returns seconds (monotonic).
    """

    def __init__(
        self,
        *,
        quiet: float,
        max_wait: float,
        open_check: float,
        track_writers: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self.open_check = open_check
        self._gone_at: dict[str, float] = {}
        self.track_writers = track_writers
        self.clock = clock
        self._lock = threading.Lock()
        self._dirty: dict[str, _Dirty] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._dirty)

    def touch(self, name: str, *, writing: bool | None) -> None:
        """An event for `name`: it is dirty from now on. `writing` says whether a writer now has
        it open (None: unknown, keep what was known)."""
        now = self.clock()
        with self._lock:
            entry = self._dirty.get(name)
            if entry is None:
                entry = self._dirty[name] = _Dirty(first=now, last=now)
            entry.last = now
            entry.events += 1
            if writing is not None:
                entry.writing = self.track_writers and writing

    def mark(self, names: Iterable[str]) -> None:
        """Names found changed by a scan: dirty from now on unless they already are."""
        now = self.clock()
        with self._lock:
            for name in names:
                self._dirty.setdefault(name, _Dirty(first=now, last=now))

    def due(self, now: float) -> list[str]:
        """The names due to be read at `now`, in no particular order."""
        due: list[str] = []
        with self._lock:
            for name, entry in self._dirty.items():
                if entry.retry_at > now:
                    continue
                quiet = now - entry.last
                if entry.writing and quiet < self.open_check:
                    continue  # written and not yet closed
                if quiet < self.quiet and now - entry.first < self.max_wait:
                    continue
                due.append(name)
        return due

    def restart(self, names: Iterable[str], now: float) -> None:
        """`names` are still open for writing, however quiet: their quiet period starts afresh."""
        with self._lock:
            for name in names:
                entry = self._dirty.get(name)
                if entry is not None:
                    entry.first = entry.last = now

    def deletions(self, gone: list[str], read: int, now: float, grace: float = 0.0) -> list[str]:
        """Which of the `gone` names (due, but no longer in the folder) may be treated as deleted
        now, while `read` other due names are about to be read: those seen gone for `grace`
        seconds at least; all of them when no other name is pending, else only those dirty for
        `DELETE_LIMIT` seconds."""
        with self._lock:
            # Since when each has been seen gone (not since it became dirty: it may have been
            # dirty, and there, for long before).
            self._gone_at = {name: self._gone_at.get(name, now) for name in gone}
            settled = [name for name in gone if now - self._gone_at[name] >= grace]
            if len(self._dirty) - read - len(gone) == 0:
                return settled
            return [name for name in settled if now - self._dirty[name].first >= DELETE_LIMIT]

    def events(self, name: str) -> int:
        """How many events came for `name` since it became dirty (0 if it is not)."""
        with self._lock:
            entry = self._dirty.get(name)
            return entry.events if entry is not None else 0

    def forget(self, name: str) -> None:
        """`name` is dealt with: no longer dirty."""
        with self._lock:
            self._dirty.pop(name, None)

    def forget_if_quiet(self, name: str, events: int) -> bool:
        """Forget `name` unless an event came for it since `events` were counted (then it was
        written to while read: it stays dirty, as if just touched). True if forgotten."""
        with self._lock:
            entry = self._dirty.get(name)
            if entry is not None and entry.events != events:
                entry.last = self.clock()
                return False
            self._dirty.pop(name, None)
            return True

    def again(self, name: str) -> None:
        """`name` changed while read: it stays dirty, quiet from now."""
        now = self.clock()
        with self._lock:
            entry = self._dirty.get(name)
            if entry is not None:
                entry.last = now

    def retry_after(self, name: str, delay: float) -> None:
        """`name` failed for a reason other than its content: due again in `delay` seconds at
        the earliest (dirty from now if it was not)."""
        now = self.clock()
        with self._lock:
            entry = self._dirty.setdefault(name, _Dirty(first=now, last=now))
            entry.retry_at = now + delay
