"""When a dirty draft is due to be read (`ledger.settling`), on a fake clock: no waiting."""

from __future__ import annotations

import pytest

from ledger.settling import DELETE_LIMIT, Settling


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settling(clock: Clock, *, track_writers: bool = False) -> Settling:
    return Settling(quiet=0.5, max_wait=3.0, open_check=5.0, track_writers=track_writers, clock=clock)


def test_a_name_is_due_once_quiet(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    assert pending.due(clock.advance(0.4)) == []
    assert pending.due(clock.advance(0.1)) == ["a.txt"]
    assert len(pending) == 1  # due is a question, not a decision


def test_each_event_starts_the_quiet_period_afresh(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    clock.advance(0.4)
    pending.touch("a.txt", writing=False)
    assert pending.due(clock.advance(0.4)) == []
    assert pending.due(clock.advance(0.1)) == ["a.txt"]


def test_a_name_that_never_stops_changing_is_due_after_max_wait(clock: Clock) -> None:
    pending = settling(clock)
    for _ in range(11):
        pending.touch("a.txt", writing=False)
        assert pending.due(clock.advance(0.25)) == []
    pending.touch("a.txt", writing=False)
    assert pending.due(clock.advance(0.25)) == ["a.txt"]  # 3 s after the first event


def test_a_name_open_for_writing_waits_for_open_check_even_past_max_wait(clock: Clock) -> None:
    pending = settling(clock, track_writers=True)
    pending.touch("a.txt", writing=True)
    assert pending.due(clock.advance(4.9)) == []
    assert pending.due(clock.advance(0.1)) == ["a.txt"]


def test_a_close_makes_the_name_due_after_quiet(clock: Clock) -> None:
    pending = settling(clock, track_writers=True)
    pending.touch("a.txt", writing=True)
    clock.advance(1.0)
    pending.touch("a.txt", writing=False)
    assert pending.due(clock.advance(0.5)) == ["a.txt"]


def test_an_attribute_change_keeps_what_was_known_of_the_writer(clock: Clock) -> None:
    pending = settling(clock, track_writers=True)
    pending.touch("a.txt", writing=True)
    pending.touch("a.txt", writing=None)
    assert pending.due(clock.advance(1.0)) == []


def test_without_close_events_no_name_is_held_back_as_being_written(clock: Clock) -> None:
    pending = settling(clock, track_writers=False)
    pending.touch("a.txt", writing=True)
    assert pending.due(clock.advance(0.5)) == ["a.txt"]


def test_a_scan_marks_names_without_moving_those_already_dirty(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    clock.advance(0.4)
    pending.mark(["a.txt", "b.txt"])
    assert pending.due(clock.advance(0.1)) == ["a.txt"]
    assert sorted(pending.due(clock.advance(0.4))) == ["a.txt", "b.txt"]
    assert pending.events("b.txt") == 0 and pending.events("a.txt") == 1


def test_a_name_still_open_restarts_its_wait(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    now = clock.advance(3.0)
    assert pending.due(now) == ["a.txt"]
    pending.restart(["a.txt"], now)
    assert pending.due(clock.advance(0.4)) == []
    assert pending.due(clock.advance(0.1)) == ["a.txt"]


def test_a_failed_name_waits_for_its_retry(clock: Clock) -> None:
    pending = settling(clock)
    pending.retry_after("a.txt", 2.0)
    assert pending.due(clock.advance(1.9)) == []
    assert pending.due(clock.advance(0.1)) == ["a.txt"]


def test_forget_if_quiet_keeps_a_name_written_to_while_read(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    seen = pending.events("a.txt")
    pending.touch("a.txt", writing=False)  # during the read
    assert not pending.forget_if_quiet("a.txt", seen)
    assert pending.due(clock.advance(0.4)) == []
    assert pending.forget_if_quiet("a.txt", pending.events("a.txt"))
    assert len(pending) == 0


def test_again_restarts_the_quiet_period_and_forget_forgets(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    clock.advance(0.5)
    pending.again("a.txt")
    assert pending.due(clock.advance(0.4)) == []
    pending.forget("a.txt")
    assert pending.due(clock.advance(10.0)) == [] and len(pending) == 0


def test_a_vanished_name_waits_while_others_are_pending(clock: Clock) -> None:
    # It may have been renamed to one of them: its article must not be withdrawn too early.
    pending = settling(clock)
    pending.touch("old.txt", writing=False)
    pending.touch("new.txt", writing=True)
    now = clock.advance(0.5)
    assert pending.deletions(["old.txt"], 0, now) == []
    assert pending.deletions(["old.txt"], 0, clock.advance(DELETE_LIMIT)) == ["old.txt"]


def test_a_vanished_name_is_deleted_at_once_when_nothing_else_waits(clock: Clock) -> None:
    pending = settling(clock)
    pending.touch("old.txt", writing=False)
    pending.touch("new.txt", writing=False)
    assert pending.deletions(["old.txt"], 1, clock.advance(0.5)) == ["old.txt"]


def test_a_grace_counts_from_when_the_name_was_first_seen_gone(clock: Clock) -> None:
    # Dirty for long (a retry after a locked store), then gone: the grace starts when it went.
    pending = settling(clock)
    pending.touch("a.txt", writing=False)
    clock.advance(10.0)
    assert pending.deletions(["a.txt"], 0, clock.now, grace=3.0) == []
    assert pending.deletions(["a.txt"], 0, clock.advance(2.9), grace=3.0) == []
    assert pending.deletions(["a.txt"], 0, clock.advance(0.2), grace=3.0) == ["a.txt"]
    # Back meanwhile (not among the gone names): gone again, the grace starts again.
    assert pending.deletions([], 0, clock.advance(1.0), grace=3.0) == []
    assert pending.deletions(["a.txt"], 0, clock.advance(1.0), grace=3.0) == []
