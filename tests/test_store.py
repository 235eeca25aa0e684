"""The file event store: appends, reads, concurrency control, idempotency, times, the index,
recovery and damage, through the `Ledger` and the log's bytes. Real stores on disk; nothing of
the store is mocked. What every store promises, through the `EventStore` interface alone, is in
`tests/contract`."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from ledger import codec
from ledger.events import NewRecord, format_time
from ledger.store import INDEX_FILE, LOG_FILE, FileEventStore
from tests.helpers import created, edited

# --- helpers -------------------------------------------------------------------------------


def log_bytes(store_dir: Path) -> bytes:
    return (store_dir / LOG_FILE).read_bytes()


def lines_of(store_dir: Path) -> list[dict[str, Any]]:
    return [codec.decode(line) for line in log_bytes(store_dir).splitlines()]


def snapshot(store: ledger.EventStore) -> dict[str, Any]:
    """Everything a reader can ask a store, for comparing two opens of one log."""
    articles = store.articles()
    return {
        "read": list(store.read()),
        "articles": articles,
        "by_article": {a: store.read_article(a) for a in articles},
        "versions": {a: store.article_version(a) for a in articles},
        "times": {a: store.version_times(a) for a in articles},
        "head": store.head(),
    }


def raw(article: str, data: dict[str, Any], kind: str = "ArticleWithdrawn", **extra: Any) -> NewRecord:
    """A store-level record (the store does not interpret `data`)."""
    return NewRecord(id=extra.pop("id", str(uuid.uuid4())), article=article, type=kind, data=data, **extra)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    """Warnings the "ledger" logger emits during the test (the CLI turns off propagation to the
    root logger, so caplog would miss them after a CLI test ran in this process)."""
    handler = _Collect()
    logger = logging.getLogger("ledger")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


# --- appending and reading -----------------------------------------------------------------


def test_append_assigns_versions_and_positions_and_reads_back(led: ledger.Ledger) -> None:
    first = led.append([created("a"), created("b"), {"type": "CategoriesChanged", "article": "a", "data": {"added": ["x"]}}])
    assert (first.versions, first.first_position, first.last_position, first.duplicate) == ({"a": 1, "b": 1}, 1, 3, False)
    second = led.append([edited("a", "Body, edited.", actor="ana", reason="typo")])
    assert (second.versions, second.first_position, second.last_position) == ({"a": 2}, 4, 4)

    store = led.store
    records = list(store.read())
    assert [(r["pos"], r["article"], r["version"], r["type"]) for r in records] == [
        (1, "a", 1, "ArticleCreated"),
        (2, "b", 1, "ArticleCreated"),
        (3, "a", 1, "CategoriesChanged"),
        (4, "a", 2, "ArticleEdited"),
    ]
    assert [r["id"] for r in records] == first.event_ids + second.event_ids
    assert (records[3]["actor"], records[3]["reason"]) == ("ana", "typo")
    assert "actor" not in records[0] and "reason" not in records[0]
    assert [r["pos"] for r in store.read_article("a")] == [1, 3, 4]
    assert [r["pos"] for r in store.read_article("a", 2)] == [4]
    assert [r["pos"] for r in store.read_article("a", 1, 1)] == [1, 3]
    assert store.read_article("nobody") == []
    assert (store.article_version("a"), store.article_version("b"), store.article_version("c")) == (2, 1, 0)
    assert store.articles() == {"a": 2, "b": 1}
    assert store.head().position == 4
    assert store.head().hash == led.verify().head_hash == codec.hash_of(log_bytes(led.path).splitlines()[-1])


def test_one_append_is_one_version_and_one_end_marker(led: ledger.Ledger, store_dir: Path) -> None:
    led.append([created("a")])
    led.append([edited("a", "one"), created("b"), {"type": "CategoriesChanged", "article": "a", "data": {"added": ["k"]}}])
    records = lines_of(store_dir)
    assert [(r["article"], r["version"], r.get("end", False)) for r in records] == [
        ("a", 1, True),
        ("a", 2, False),
        ("b", 1, False),
        ("a", 2, True),
    ]
    # Every record of one append shares one recorded_at; records chain by hash.
    assert len({r["recorded_at"] for r in records[1:]}) == 1
    assert [r["prev"] for r in records] == [codec.GENESIS_HASH, *(r["hash"] for r in records[:-1])]


def test_generated_event_ids_are_time_ordered_uuid7(led: ledger.Ledger) -> None:
    before = time.time()
    first = led.append([created("a"), created("b")])
    second = led.append([created("c")])
    ids = first.event_ids + second.event_ids
    assert all(uuid.UUID(eid).version == 7 and uuid.UUID(eid).variant == uuid.RFC_4122 for eid in ids)
    # Ids sort in the order they were recorded, and carry the millisecond they were made in.
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert before - 1 <= int(ids[0][:8] + ids[0][9:13], 16) / 1000 <= time.time() + 1


def test_event_ids_stay_unique_and_ordered_past_4096_in_one_millisecond() -> None:
    from ledger.events import new_event_ids

    ids = new_event_ids(10_000) + new_event_ids(3)
    assert ids == sorted(ids) and len(set(ids)) == 10_003
    assert all(uuid.UUID(eid).version == 7 for eid in ids)



def test_a_forked_child_makes_ids_even_if_the_parent_held_the_id_lock() -> None:
    from ledger import events

    parent_ids = events.new_event_ids(1)
    read_end, write_end = os.pipe()
    with events._ids_lock:  # as another thread of the parent might be at the moment of the fork
        pid = os.fork()
        if pid == 0:
            os.write(write_end, events.new_event_ids(1)[0].encode())
            os._exit(0)
    deadline = time.monotonic() + 10
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the id lock")
        time.sleep(0.01)
    child_id = os.read(read_end, 100).decode()
    os.close(read_end)
    os.close(write_end)
    assert uuid.UUID(child_id).version == 7
    # The child draws its own random bits: the same millisecond and count cannot collide.
    assert child_id[19:] != events.new_event_ids(1)[0][19:] and child_id not in parent_ids

# --- optimistic concurrency ------------------------------------------------------------------


def test_version_conflict_appends_nothing(led: ledger.Ledger, store_dir: Path) -> None:
    led.append([created("a"), created("b")])
    before = log_bytes(store_dir)
    with pytest.raises(ledger.VersionConflictError, match="'a' is at version 1, not the expected 3") as prepared:
        led.append([edited("b", "new b"), edited("a", "new a", expected_version=3)])
    with pytest.raises(ledger.VersionConflictError):
        led.append([created("a", expected_version=0)])
    with pytest.raises(ledger.VersionConflictError) as stored:
        led.store.append([raw("b", {}), raw("a", {})], {"a": 1, "b": 0})
    # Named for a caller that reads the article again and retries, whichever refused it.
    assert (prepared.value.article, prepared.value.expected, prepared.value.actual) == ("a", 3, 1)
    assert (stored.value.article, stored.value.expected, stored.value.actual) == ("b", 0, 1)
    # A group commit gives each waiting thread a copy; a process pool pickles it: both keep them.
    for again in (copy.copy(stored.value), pickle.loads(pickle.dumps(stored.value))):
        assert (type(again), str(again), again.article, again.expected, again.actual) == (ledger.VersionConflictError, str(stored.value), "b", 0, 1)
    assert log_bytes(store_dir) == before
    assert led.store.articles() == {"a": 1, "b": 1}
    ok = led.append([edited("a", "new a", expected_version=1), created("c", expected_version=0)])
    assert ok.versions == {"a": 2, "c": 1}


def test_versions_of_many_articles_at_once_from_a_reader_and_a_writer(store_dir: Path) -> None:
    writer, reader = FileEventStore(store_dir), FileEventStore(store_dir)
    try:
        writer.append([raw(f"a{i}", {}) for i in range(700)])  # more than one query's worth of names
        writer.append([raw("a3", {})])
        wanted = ["a3", "zz", *(f"a{i}" for i in range(700))]
        expected = {"zz": 0, **{f"a{i}": 1 for i in range(700)}, "a3": 2}
        assert reader.article_versions(wanted) == writer.article_versions(wanted) == expected
        writer.append([raw("zz", {})])  # the reader sees it on its next look
        assert reader.article_versions(["zz"]) == {"zz": 1}
    finally:
        writer.close()
        reader.close()


def test_a_patch_that_does_not_fit_is_refused_and_nothing_is_written(led: ledger.Ledger, store_dir: Path) -> None:
    led.append([created("a", body="Short.")])
    led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nOne."}}])
    before = log_bytes(store_dir)
    bad = [
        ({"type": "ArticleEdited", "article": "a", "data": {"title": "New", "patch": [[2, 40, "x"]]}},
         r"ArticleEdited: patch: patch operation \[2, 40\] does not fit a text of 6 characters"),
        ({"type": "UpdateBlockEdited", "article": "a", "data": {"index": 0, "patch": [[3, 1, "x"]]}},
         r"UpdateBlockEdited: patch: patch operation \[3, 1\] ends before it starts"),
        ({"type": "ArticleEdited", "article": "a", "data": {"patch": [[0, 3, "X"], [2, 4, "Y"]]}},
         r"ArticleEdited: patch: patch operation \[2, 4\] starts before the end of the one before it \(3\): operations must be in order and not overlap"),
        # (It was "starts before the end of the one before it (0)", with none before it.)
        ({"type": "ArticleEdited", "article": "a", "data": {"patch": [[-1, 0, "x"]]}},
         r"ArticleEdited: patch: patch operation \[-1, 0\] starts before the text does: offsets are 0 or more"),
    ]
    for event, message in bad:
        with pytest.raises(ledger.InvalidEventError, match=f"^event 1: {message}$"):
            led.append([event])
    # A second event of one append is checked against the first one's result.
    with pytest.raises(ledger.InvalidEventError, match=r"^event 2: ArticleEdited: patch: .* does not fit a text of 3 characters$"):
        led.append([edited("a", "Big"), {"type": "ArticleEdited", "article": "a", "data": {"patch": [[0, 6, "x"]]}}])
    assert log_bytes(store_dir) == before


# --- idempotency ---------------------------------------------------------------------------


def test_resent_ids_return_the_original_result(led: ledger.Ledger, store_dir: Path) -> None:
    batch = [created("a", id="evt-1"), created("b", id="evt-2"), edited("a", "changed", id="evt-3")]
    first = led.append(batch)
    led.append([edited("b", "later")])
    before = log_bytes(store_dir)
    again = led.append(batch)
    assert again.duplicate is True
    assert again.model_dump(exclude={"duplicate"}) == first.model_dump(exclude={"duplicate"})
    # The same through a fresh open (the index, not memory, answers) and at the store level.
    with ledger.open(store_dir) as other:
        assert other.append(batch).model_dump(include={"versions", "first_position", "last_position", "event_ids", "duplicate"}) == {
            "versions": first.versions, "first_position": 1, "last_position": 3, "event_ids": first.event_ids, "duplicate": True,
        }
        records = [NewRecord(id=e["id"], article=e["article"], type=e["type"], data={}, explicit_id=True) for e in batch]
        assert other.store.append(records).duplicate is True
    assert log_bytes(store_dir) == before


def test_an_id_resent_with_another_change_is_refused_not_taken_for_a_resend(led: ledger.Ledger, store_dir: Path) -> None:
    """A change is recorded as what it changes (a body as a patch, categories as added and
    removed): a re-send is compared as prepared against the article as it stood before, so an id
    reused for another change is refused instead of answered `duplicate` and lost."""
    led.append([created("a", id="c-1")])
    block = {"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nfirst\n"}, "id": "b-1"}
    changes = [
        [edited("a", "changed body", id="e-1")],
        [{"type": "ArticleEdited", "article": "a", "data": {"title": "A"}, "id": "t-1"},
         {"type": "ArticleEdited", "article": "a", "data": {"title": "B"}, "id": "t-2"}],
        [block],
        [{"type": "UpdateBlockEdited", "article": "a", "data": {"index": 0, "text": "\nsecond\n"}, "id": "u-1"}],
        [{"type": "CategoriesChanged", "article": "a", "data": {"categories": ["x", "y"]}, "id": "k-1"}],
        [{"type": "MetadataChanged", "article": "a", "data": {"set": {"k": 1}}, "id": "m-1"}],
    ]
    for append in changes:
        led.append(append)
    led.append([edited("a", "a later body")])
    before = log_bytes(store_dir)
    for append in changes:
        assert led.append(append).duplicate is True
    others = [
        [edited("a", "another body", id="e-1")],
        [{"type": "ArticleEdited", "article": "a", "data": {"title": "Other"}, "id": "t-1"},
         {"type": "ArticleEdited", "article": "a", "data": {"title": "B"}, "id": "t-2"}],
        [{"type": "UpdateBlockEdited", "article": "a", "data": {"index": 0, "text": "\nthird\n"}, "id": "u-1"}],
        [{"type": "CategoriesChanged", "article": "a", "data": {"categories": ["z"]}, "id": "k-1"}],
        [{"type": "MetadataChanged", "article": "a", "data": {"set": {"k": 2}}, "id": "m-1"}],
    ]
    for append in others:
        with pytest.raises(ledger.DuplicateEventError, match=r"is already recorded \(position \d+\) with another change; nothing appended|already recorded, for other content"):
            led.append(append)
    assert log_bytes(store_dir) == before


class _RacedStore(FileEventStore):
    """A real store on which another writer records `batch` right after this one looked at the
    articles' versions to check its append against them: the interleaving of two processes
    sending the same append at once."""

    batch: ClassVar[list[dict[str, Any]]] = []

    def article_versions(self, articles: Any) -> dict[str, int]:
        versions = super().article_versions(articles)
        if self.batch:
            batch, self.batch = self.batch, []
            with ledger.open(self.root) as other:
                other.append(batch)
        return versions


@pytest.mark.parametrize(
    "batch",
    [
        [created("c", id="c-1")],
        [edited("a", "new body", id="e-1")],
        [edited("a", "new body", id="e-1", expected_version=1)],
        [created("d", id="d-1"), edited("a", "other body", id="e-2")],
    ],
    ids=["create", "edit", "edit with expected version", "two articles"],
)
def test_a_resend_racing_the_first_send_gets_the_original_result(store_dir: Path, batch: list[dict[str, Any]]) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a")])
    store = _RacedStore(store_dir)
    store.batch = batch
    with ledger.Ledger(store) as led:
        result = led.append(batch)
        assert result.duplicate is True
        assert result.event_ids == [e["id"] for e in batch] and result.first_position == 2
        assert [e.id for e in led.events()][1:] == result.event_ids


def test_partly_known_ids_are_refused(led: ledger.Ledger, store_dir: Path) -> None:
    led.append([created("a", id="evt-1")])
    before = log_bytes(store_dir)
    with pytest.raises(ledger.DuplicateEventError, match="1 of 2 event ids are already in the log"):
        led.append([created("b", id="evt-2"), edited("a", "x", id="evt-1")])
    with pytest.raises(ledger.DuplicateEventError):
        led.append([created("b"), edited("a", "x", id="evt-1")])
    with pytest.raises(ledger.DuplicateEventError):
        led.store.append([raw("b", {}), NewRecord(id="evt-1", article="a", type="ArticleWithdrawn", data={}, explicit_id=True)])
    with pytest.raises(ledger.InvalidEventError, match="same event id is given twice"):
        led.store.append([raw("b", {}, id="x"), raw("c", {}, id="x")])
    assert log_bytes(store_dir) == before


# --- times -----------------------------------------------------------------------------------


def test_occurred_at_rules(led: ledger.Ledger, store_dir: Path) -> None:
    old = datetime(2017, 9, 5, 16, 5, tzinfo=UTC)
    imported = led.append([created("a", occurred_at=old.isoformat())])
    assert imported.occurred_at["a"] == old and imported.recorded_at > old
    later = led.append([edited("a", "v2", occurred_at=(old + timedelta(days=1)).isoformat())])
    assert later.occurred_at["a"] == old + timedelta(days=1)
    before = log_bytes(store_dir)
    # Says what to do: a history imported from git, whose author dates can go back, needs it.
    with pytest.raises(ledger.InvalidTimeError, match=r"earlier than version 2 \(2017-09-06T16:05:00.000000Z\): an article's versions never go back in time; give a time at or after 2017-09-06T16:05:00.000000Z$"):
        led.append([edited("a", "v3", occurred_at=(old + timedelta(hours=1)).isoformat())])
    future = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(ledger.InvalidTimeError, match="in the future"):
        led.append([created("b", occurred_at=future.isoformat())])
    with pytest.raises(ledger.InvalidTimeError, match="share one occurred_at"):
        led.append([created("c", occurred_at=old.isoformat()),
                    {"type": "CategoriesChanged", "article": "c", "data": {"added": ["k"]}, "occurred_at": (old + timedelta(1)).isoformat()}])
    assert log_bytes(store_dir) == before
    # Without occurred_at, a version occurs when it is recorded.
    now = led.append([edited("a", "v3")])
    assert now.occurred_at["a"] == now.recorded_at
    store = led.store
    assert store.version_at("a", format_time(old - timedelta(seconds=1))) == 0
    assert store.version_at("a", format_time(old)) == 1
    assert store.version_at("a", format_time(old + timedelta(days=2))) == 2
    assert store.version_at("a", format_time(datetime.now(UTC))) == 3
    assert [v for v, _, _ in store.version_times("a")] == [1, 2, 3]


# --- the index -----------------------------------------------------------------------------


def _fill(led: ledger.Ledger) -> None:
    led.append([created("a"), created("b")])
    led.append([edited("a", "a2"), created("c")])
    led.append([edited("b", "b2")])


def test_index_deleted_or_corrupt_is_rebuilt_with_the_same_answers(store_dir: Path, warnings_logged: list[str]) -> None:
    with ledger.open(store_dir) as led:
        _fill(led)
        want = snapshot(led.store)
    index = store_dir / INDEX_FILE
    index.unlink()
    with ledger.open(store_dir) as led:
        assert snapshot(led.store) == want
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)
    with ledger.open(store_dir) as led:
        assert snapshot(led.store) == want
    assert any("unreadable index, rebuilding it" in message for message in warnings_logged), warnings_logged


def test_stale_index_catches_up(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a"), created("b")])
    saved = (store_dir / INDEX_FILE).read_bytes()
    with ledger.open(store_dir) as led:
        led.append([edited("a", "a2"), created("c")])
        led.append([edited("b", "b2")])
        want = snapshot(led.store)
    (store_dir / INDEX_FILE).write_bytes(saved)
    with ledger.open(store_dir) as led:
        assert snapshot(led.store) == want
        assert led.append([edited("c", "c2")]).first_position == 6


def test_index_of_another_store_is_not_trusted(tmp_path: Path, warnings_logged: list[str]) -> None:
    one, two = ledger.init(tmp_path / "one"), ledger.init(tmp_path / "two")
    with ledger.open(one) as led:
        _fill(led)
        want = snapshot(led.store)
    with ledger.open(two) as led:
        # Same length of log, same shape, other content: only the store id tells them apart.
        led.append([created("x"), created("y")])
        led.append([edited("x", "a2"), created("z")])
        led.append([edited("y", "b2")])
    shutil.copy(two / INDEX_FILE, one / INDEX_FILE)
    with ledger.open(one) as led:
        assert snapshot(led.store) == want
    assert any("index does not match the log" in message for message in warnings_logged), warnings_logged


def test_log_truncated_by_something_else(store_dir: Path, warnings_logged: list[str]) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a")])
    keep = len(log_bytes(store_dir))
    writer = ledger.open(store_dir)
    try:
        writer.append([created("b")])
        assert writer.head().position == 2  # the index has seen position 2
        os.truncate(store_dir / LOG_FILE, keep)
        with pytest.raises(ledger.CorruptStoreError, match="truncated"):
            writer.append([created("c")])
    finally:
        writer.close()
    assert len(log_bytes(store_dir)) == keep
    # A new open knows from the index that position 2 was committed: the log lost it, which is
    # damage to report (exit 8), not something to follow silently.
    with pytest.raises(ledger.CorruptStoreError, match=r"positions up to 2 .* were committed: it was truncated"):
        ledger.open(store_dir)
    with ledger.open(store_dir, recover=False) as led:
        report = led.verify()
    assert not report.ok and "positions up to 2" in report.problems[-1].message
    assert len(log_bytes(store_dir)) == keep
    # The way out the message gives: delete the index to accept the log as it is now.
    (store_dir / INDEX_FILE).unlink()
    with ledger.open(store_dir) as led:
        assert led.store.articles() == {"a": 1}
        assert led.append([created("c")]).first_position == 2


# --- recovery and damage -------------------------------------------------------------------


def _torn(store_dir: Path) -> tuple[bytes, bytes]:
    """A log with two appends and, after them, what a crash mid-append leaves: one complete
    line without the end marker and half of the next."""
    with ledger.open(store_dir) as led:
        led.append([created("a")])
        led.append([created("b"), created("c")])
    good = log_bytes(store_dir)
    state = lines_of(store_dir)[-1]
    one, digest = codec.seal({"pos": 4, "id": "t1", "article": "d", "version": 1, "type": "ArticleCreated", "schema": 2,
                              "recorded_at": state["recorded_at"], "occurred_at": state["recorded_at"], "data": {"title": "D"}}, state["hash"])
    two, _ = codec.seal({"pos": 5, "id": "t2", "article": "e", "version": 1, "type": "ArticleCreated", "schema": 2,
                         "recorded_at": state["recorded_at"], "occurred_at": state["recorded_at"], "data": {"title": "E"}, "end": True}, digest)
    with open(store_dir / LOG_FILE, "ab") as f:
        f.write(one + two[: len(two) // 2])
    return good, one + two[: len(two) // 2]


def test_torn_tail_is_invisible_then_cut_on_open_with_a_warning(store_dir: Path, warnings_logged: list[str]) -> None:
    good, tail = _torn(store_dir)
    with ledger.open(store_dir, recover=False) as led:
        report = led.verify()
        assert report.ok and report.torn_tail_bytes == len(tail) and report.head_position == 3
        assert [r["pos"] for r in led.store.read()] == [1, 2, 3]
        assert led.store.read_article("d") == [] and led.store.article_version("d") == 0
    assert log_bytes(store_dir) == good + tail
    with ledger.open(store_dir) as led:
        assert any(f"cut {len(tail)} bytes" in message for message in warnings_logged), warnings_logged
        assert log_bytes(store_dir) == good
        assert led.append([created("d")]).first_position == 4
        assert led.verify().ok


def test_a_writer_cuts_a_torn_tail_before_appending(store_dir: Path) -> None:
    good, _ = _torn(store_dir)
    with ledger.open(store_dir, recover=False) as led:
        led.append([created("z")])
    records = lines_of(store_dir)
    assert [r["pos"] for r in records] == [1, 2, 3, 4] and records[-1]["article"] == "z"
    assert log_bytes(store_dir).startswith(good)


def test_recover_leaves_an_append_in_progress_alone(store_dir: Path) -> None:
    import fcntl

    good, tail = _torn(store_dir)
    # Another writer holds the lock: the bytes after the last end marker are its append in
    # progress, not a crash's leftover.
    fd = os.open(store_dir / LOG_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with ledger.open(store_dir) as led:
            assert [r["pos"] for r in led.store.read()] == [1, 2, 3]
            assert led.store.head().position == 3
        assert log_bytes(store_dir) == good + tail
    finally:
        os.close(fd)
    with ledger.open(store_dir):
        assert log_bytes(store_dir) == good


def _middle_line(store_dir: Path, before: int = 0) -> tuple[int, int, int]:
    """(line number, byte offset, length) of the middle line of the log, or of one `before` it."""
    data = log_bytes(store_dir)
    lines = data.splitlines(keepends=True)
    middle = len(lines) // 2 - before
    return middle + 1, sum(len(line) for line in lines[:middle]), len(lines[middle]) - 1


@pytest.fixture
def filled(store_dir: Path) -> Path:
    with ledger.open(store_dir) as led:
        led.append([created("a", body="x" * 300), created("b")])
        for n in range(4):
            led.append([edited("a", f"body {n}"), edited("b", f"b body {n}")])
    return store_dir


@pytest.mark.parametrize("before", [0, 1], ids=["closing record", "inner record"])
def test_every_flipped_byte_of_a_middle_record_is_reported_once(filled: Path, before: int) -> None:
    line_no, start, length = _middle_line(filled, before)
    position = line_no  # one record per line, positions from 1
    original = log_bytes(filled)
    path = filled / LOG_FILE
    store = FileEventStore(filled)
    try:
        assert store.verify().ok
        for offset in range(start, start + length):
            with open(path, "r+b") as f:
                f.seek(offset)
                f.write(bytes([original[offset] ^ 0x01]))
            report = store.verify()
            assert [p.position for p in report.problems] == [position], offset
            assert report.problems[0].message.startswith(f"line {line_no}, position {position}, byte {start}: "), offset
            assert not report.ok
            with open(path, "r+b") as f:
                f.seek(offset)
                f.write(original[offset : offset + 1])
    finally:
        store.close()
    assert log_bytes(filled) == original


@pytest.mark.slow
def test_a_flipped_byte_is_reported_by_reading_opening_and_the_cli(filled: Path) -> None:
    from tests.conftest import run_ledger

    with ledger.open(filled) as led:
        led.head()  # the index now covers the whole log
    line_no, start, length = _middle_line(filled)
    data = bytearray(log_bytes(filled))
    data[start + length // 2] ^= 0x20
    (filled / LOG_FILE).write_bytes(bytes(data))
    with ledger.open(filled) as led:
        with pytest.raises(ledger.CorruptStoreError, match=f"position {line_no} ") as caught:
            list(led.events())
        assert caught.value.position == line_no
        # The damaged record belongs to a or b: reading both articles must hit it.
        with pytest.raises(ledger.CorruptStoreError, match=f"position {line_no} "):
            for name in ("a", "b"):
                led.store.read_article(name)
    # Without an index, opening reads the log and stops at the damage.
    (filled / INDEX_FILE).unlink()
    with pytest.raises(ledger.CorruptStoreError, match=f"position {line_no} \\(line at byte {start}\\)"):
        ledger.open(filled)
    result = run_ledger("verify", store=filled)
    assert result.returncode == 8
    assert f"line {line_no}, position {line_no}, byte {start}: record " in result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert log_bytes(filled) == bytes(data)


# --- bulk ----------------------------------------------------------------------------------


def test_bulk_syncs_once_and_appends_are_visible_inside(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    with ledger.open(store_dir) as led, ledger.open(store_dir) as reader:
        led.append([created("a")])
        assert len(syncs) == 1
        with led.bulk():
            for n in range(50):
                led.append([created(f"art-{n}")])
                with led.bulk():  # nested blocks sync once, at the outer end
                    led.append([edited(f"art-{n}", "edited")])
            assert len(syncs) == 1
            assert reader.store.head().position == 101
        assert len(syncs) == 2
        assert [r["pos"] for r in reader.store.read()] == list(range(1, 102))
        assert reader.verify().ok


# --- any sequence of appends ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
appends = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d-1", "é.x"]),
            st.dictionaries(st.text(max_size=8), json_values, max_size=4),
            st.none() | st.text(min_size=1, max_size=10).filter(lambda s: "\n" not in s),
        ),
        min_size=1,
        max_size=5,
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=appends)
def test_any_sequence_of_appends_reads_back_exactly(tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[str, dict[str, Any], str | None]]]) -> None:
    root = ledger.init(tmp_path_factory.mktemp("prop") / "store")
    expected: list[dict[str, Any]] = []
    versions: dict[str, int] = {}
    store = FileEventStore(root)
    try:
        for batch in batches:
            records = [raw(article, data, actor=actor) for article, data, actor in batch]
            result = store.append(records)
            bumped = {article: versions.get(article, 0) + 1 for article, _, _ in batch}
            versions.update(bumped)
            assert result.versions == bumped
            for record in records:
                expected.append({"pos": len(expected) + 1, "id": record.id, "article": record.article,
                                 "version": bumped[record.article], "data": record.data, "actor": record.actor})
        got = snapshot(store)
    finally:
        store.close()

    def seen(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: r.get(k) for k in ("pos", "id", "article", "version", "data", "actor")} for r in records]

    assert seen(got["read"]) == expected
    for article in versions:
        assert seen(got["by_article"][article]) == [e for e in expected if e["article"] == article]
    assert got["articles"] == versions
    (root / INDEX_FILE).unlink()
    fresh = FileEventStore(root)
    try:
        assert snapshot(fresh) == got
        assert fresh.verify().ok
    finally:
        fresh.close()


def test_the_state_an_append_leaves_is_the_state_the_log_folds_to(store_dir: Path) -> None:
    # The states cache keeps what `prepare` folded, stamped with what the store chose: block
    # times given by their event, taken from another event of the append, or chosen by the store.
    from ledger.projections import fold

    block = {"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nMore.\n"}}
    appends: list[list[dict[str, Any]]] = [
        [created("a", "T", "Body.\n") | {"occurred_at": "2024-01-01T00:00:00Z"}],
        [edited("a", "Body, edited.\n") | {"occurred_at": "2024-01-02T00:00:00Z"}, block],
        [block | {"occurred_at": "2024-01-04T00:00:00Z"}, block],
        [block],
        [block | {"data": {"heading": "First:", "index": 0}}],
    ]
    with ledger.open(store_dir) as led:
        for events in appends:
            led.append(events)
            cached = led.latest_state("a")
            assert cached is not None
            folded = fold(led.store.read_article("a"))
            assert folded is not None
            assert [cached.blocks, cached.updated_at, cached.version] == [folded.blocks, folded.updated_at, folded.version]


def test_an_articles_records_read_right_after_its_append_are_the_logs_own(store_dir: Path) -> None:
    # Read before the index takes them, an article's new records come from what this process
    # sealed: they must still be what the log holds (lists as JSON gives them), and what a
    # caller does to a record it was given must not reach the next read.
    with ledger.open(store_dir) as led:
        led.append([created("a", "T", "one\n", data={"metadata": {"desk": "news"}})])
        led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "H", "text": "t"}}])
        led.append([{"type": "UpdateBlockEdited", "article": "a", "data": {"index": 0, "text": "t2"}}])
        first = led.store.read_article("a")
        first[0]["data"]["metadata"]["desk"] = "changed by the caller"
        again = led.store.read_article("a")
        assert again[0]["data"]["metadata"] == {"desk": "news"}
        assert [record["data"] for record in again] == [record["data"] for record in led.store.read()]


def test_closing_a_ledger_whose_views_fail_to_close_still_releases_the_log(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A view that raised on close left the store open: its files, and an append not yet synced.
    from ledger.catalog import Catalog
    from ledger.errors import StoreError

    def log_fds() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == str((store_dir / LOG_FILE).resolve()))

    before = log_fds()
    led = ledger.open(store_dir)
    led.append([created("a")])
    led.categories()  # the catalog is open
    assert log_fds() > before

    def broken(self: Catalog) -> None:
        raise StoreError("views: cannot close")

    monkeypatch.setattr(Catalog, "close", broken)
    with pytest.raises(StoreError, match="cannot close"):
        led.close()
    assert log_fds() == before
