"""The store contract: what every `EventStore` promises, checked through that interface alone
(nothing here reads a store's files). `conftest.py` runs each test against every implementation;
`test_broken_stores.py` proves the suite fails a store that breaks a promise."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import ledger
from ledger.events import NewRecord, format_time
from ledger.store import EventStore
from tests.contract.conftest import FileStoreFactory

# Generous: a loaded machine (or a slow CI runner) must not fail a correct store.
DEADLINE = 120.0


def rec(article: str, kind: str = "ArticleWithdrawn", *, id: str | None = None, when: datetime | None = None, **data: Any) -> NewRecord:
    """A store-level record (stores do not interpret `data`); an explicit `id` is one the caller
    may send again."""
    return NewRecord(
        id=id or str(uuid.uuid4()), article=article, type=kind, data=dict(data), explicit_id=id is not None,
        occurred_at=format_time(when) if when is not None else None,
    )


def wait_for(check: Callable[[], bool], what: str) -> None:
    """Poll `check` until it holds, failing after `DEADLINE` (never a fixed sleep)."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def assert_whole(store: EventStore) -> list[dict[str, Any]]:
    """Every record, checked to be gap-free from position 1, each article's versions without
    gaps, every id once, and `verify` content; returns them."""
    records = list(store.read())
    assert [r["pos"] for r in records] == list(range(1, len(records) + 1))
    assert len({r["id"] for r in records}) == len(records)
    seen: dict[str, int] = {}
    for r in records:
        assert r["version"] in (seen.get(r["article"], 0), seen.get(r["article"], 0) + 1), r
        seen[r["article"]] = r["version"]
    assert store.articles() == seen
    assert store.head().position == len(records)
    report = store.verify()
    assert report.ok and report.problems == [] and report.head_position == len(records), report
    return records


# --- appending and reading ---------------------------------------------------------------------


def test_an_empty_store(store: EventStore) -> None:
    assert store.head().position == 0
    assert list(store.read()) == [] and store.articles() == {}
    assert store.read_article("a") == [] and store.article_version("a") == 0
    assert store.verify().ok


def test_append_assigns_versions_and_gap_free_positions(store: EventStore) -> None:
    first = store.append([rec("a", "ArticleCreated"), rec("b", "ArticleCreated"), rec("a", n=1)])
    assert (first.versions, first.first_position, first.last_position, first.duplicate) == ({"a": 1, "b": 1}, 1, 3, False)
    second = store.append([rec("a", n=2)])
    assert (second.versions, second.first_position, second.last_position) == ({"a": 2}, 4, 4)
    records = assert_whole(store)
    assert [(r["pos"], r["article"], r["version"]) for r in records] == [(1, "a", 1), (2, "b", 1), (3, "a", 1), (4, "a", 2)]
    assert [r["id"] for r in records] == first.event_ids + second.event_ids
    # The keys every stored record has, as the layers above read them.
    for r in records:
        assert {"pos", "id", "article", "version", "type", "schema", "recorded_at", "occurred_at", "data"} <= set(r)
        assert r["occurred_at"] <= r["recorded_at"]
    assert store.article_versions(["a", "b", "none"]) == {"a": 2, "b": 1, "none": 0}


def test_actor_and_reason_are_kept_only_when_given(store: EventStore) -> None:
    store.append([NewRecord(id=str(uuid.uuid4()), article="a", type="ArticleCreated", data={}, actor="ana", reason="typo")])
    store.append([rec("a")])
    one, two = store.read()
    assert (one["actor"], one["reason"]) == ("ana", "typo")
    assert "actor" not in two and "reason" not in two


def test_reads_by_article_and_after_a_position_hand_out_whole_appends(store: EventStore) -> None:
    store.append([rec("a", "ArticleCreated"), rec("b", "ArticleCreated"), rec("c", "ArticleCreated")])  # 1-3
    store.append([rec("a")])  # 4
    store.append([rec("b"), rec("a")])  # 5-6
    for after in range(0, 7):
        for to in [None, *range(after, 8)]:
            want = [p for p in range(1, 7) if p > after and (to is None or p <= to)]
            assert [r["pos"] for r in store.read(after, to)] == want, (after, to)
            assert [r["pos"] for r in store.read(after, to, check=False)] == want, (after, to)
    assert [r["pos"] for r in store.read_article("a")] == [1, 4, 6]
    assert [(r["pos"], r["version"]) for r in store.read_article("a", 2)] == [(4, 2), (6, 3)]
    assert [r["pos"] for r in store.read_article("a", 1, 2)] == [1, 4]
    assert store.read_article("nobody") == []


def test_head_is_the_last_position_and_its_hash(store: EventStore) -> None:
    store.append([rec("a", "ArticleCreated")])
    first = store.head()
    store.append([rec("a"), rec("b", "ArticleCreated")])
    head = store.head()
    assert (first.position, head.position) == (1, 3) and first.hash != head.hash
    last = list(store.read(2))[-1]
    assert head.hash == last["hash"] and last.get("end") is True
    assert store.verify().head_hash == head.hash


def test_a_second_handle_sees_the_first_ones_appends(store_factory: FileStoreFactory) -> None:
    one, two = store_factory.open(), store_factory.open()
    try:
        one.append([rec("a", n=1)])
        two.append([rec("a", n=2)])
        one.append([rec("a", n=3), rec("b", n=4)])
        with pytest.raises(ledger.VersionConflictError) as conflict:
            two.append([rec("a")], {"a": 2})
        assert (conflict.value.article, conflict.value.expected, conflict.value.actual) == ("a", 2, 3)
        two.append([rec("a", n=5)], {"a": 3})
        assert [(r["pos"], r["version"], r["data"]["n"]) for r in one.read()] == [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 1, 4), (5, 4, 5)]
        assert one.article_versions(["a", "b", "none"]) == two.article_versions(["none", "b", "a"]) == {"a": 4, "b": 1, "none": 0}
        assert one.head() == two.head()
    finally:
        one.close()
        two.close()


# --- atomicity and optimistic concurrency ---------------------------------------------------------


def test_a_multi_article_append_is_all_or_nothing(store: EventStore) -> None:
    store.append([rec("a", "ArticleCreated"), rec("b", "ArticleCreated")])
    head = store.head()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    future = datetime.now(UTC) + timedelta(hours=1)
    # The second article's record is refused: the first article's record is not written either.
    with pytest.raises(ledger.InvalidTimeError):
        store.append([rec("a", n=1), rec("b", n=2, when=future)])
    with pytest.raises(ledger.InvalidTimeError):
        store.append([rec("a", n=1, when=old), rec("a", n=2, when=old + timedelta(days=1))])
    assert store.head() == head and store.articles() == {"a": 1, "b": 1}
    done = store.append([rec("a", n=1), rec("b", n=2), rec("c", "ArticleCreated")])
    assert done.versions == {"a": 2, "b": 2, "c": 1} and (done.first_position, done.last_position) == (3, 5)
    assert [r["article"] for r in store.read(head.position)] == ["a", "b", "c"]
    assert_whole(store)


def test_an_expected_version_conflict_appends_nothing(store: EventStore) -> None:
    store.append([rec("a", "ArticleCreated"), rec("b", "ArticleCreated")])
    head = store.head()
    for expected in ({"a": 3}, {"a": 1, "b": 0}, {"c": 1}, {"a": 0}):
        with pytest.raises(ledger.VersionConflictError):
            store.append([rec("b"), rec("a"), rec("c")], expected)
    assert store.head() == head and store.articles() == {"a": 1, "b": 1}
    ok = store.append([rec("a"), rec("c", "ArticleCreated")], {"a": 1, "c": 0})
    assert ok.versions == {"a": 2, "c": 1}


# --- idempotency ---------------------------------------------------------------------------------------


def test_a_resent_append_returns_the_original_result(store_factory: FileStoreFactory, store: EventStore) -> None:
    batch = [rec("a", "ArticleCreated", id="evt-1"), rec("b", "ArticleCreated", id="evt-2"), rec("a", id="evt-3")]
    first = store.append(batch)
    store.append([rec("b")])
    head = store.head()
    again = store.append(batch)
    assert again.duplicate is True
    assert again.model_dump(exclude={"duplicate"}) == first.model_dump(exclude={"duplicate"})
    other = store_factory.open()
    try:
        assert other.append(batch).model_dump(exclude={"duplicate"}) == first.model_dump(exclude={"duplicate"})
        found = other.find_append(["evt-1", "evt-2", "evt-3"])
        assert found is not None and found.first_position == 1 and found.last_position == 3
        assert other.lookup_ids(["evt-2", "nope"]) == {"evt-2": (2, "b", 1)}
        assert other.find_append(["nope"]) is None
    finally:
        other.close()
    assert store.head() == head


def test_a_partly_resent_append_is_refused(store: EventStore) -> None:
    store.append([rec("a", "ArticleCreated", id="evt-1")])
    head = store.head()
    with pytest.raises(ledger.DuplicateEventError):
        store.append([rec("b", "ArticleCreated", id="evt-2"), rec("a", id="evt-1")])
    with pytest.raises(ledger.DuplicateEventError):
        store.find_append(["evt-2", "evt-1"])
    with pytest.raises(ledger.InvalidEventError):
        store.append([rec("b", id="x"), rec("c", id="x")])
    assert store.head() == head


# --- times ---------------------------------------------------------------------------------------------


def test_occurred_at_rules(store: EventStore) -> None:
    old = datetime(2017, 9, 5, 16, 5, tzinfo=UTC)
    first = store.append([rec("a", "ArticleCreated", when=old)])
    assert first.occurred_at["a"] == old and first.recorded_at is not None and first.recorded_at > old
    store.append([rec("a", when=old + timedelta(days=1))])
    head = store.head()
    with pytest.raises(ledger.InvalidTimeError, match="earlier than version 2"):
        store.append([rec("a", when=old + timedelta(hours=1))])
    with pytest.raises(ledger.InvalidTimeError, match="in the future"):
        store.append([rec("b", when=datetime.now(UTC) + timedelta(hours=1))])
    with pytest.raises(ledger.InvalidTimeError, match="share one occurred_at"):
        store.append([rec("c", when=old), rec("c", when=old + timedelta(days=1))])
    assert store.head() == head
    # The same time as the version before is in order; without one, a version occurs when recorded.
    store.append([rec("a", when=old + timedelta(days=1))])
    now = store.append([rec("a")])
    assert now.occurred_at["a"] == now.recorded_at
    assert store.version_at("a", format_time(old - timedelta(seconds=1))) == 0
    assert store.version_at("a", format_time(old)) == 1
    assert store.version_at("a", format_time(old + timedelta(days=1))) == 3
    assert store.version_at("a", format_time(datetime.now(UTC))) == 4
    times = store.version_times("a")
    assert [v for v, _, _ in times] == [1, 2, 3, 4]
    assert [when for _, when, _ in times] == sorted(when for _, when, _ in times)
    assert all(when <= recorded for _, when, recorded in times)


# --- the hash chain --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["change", "remove", "reorder"])
def test_verify_finds_a_changed_removed_or_reordered_record(store_factory: FileStoreFactory, kind: str) -> None:
    store = store_factory.open()
    try:
        for n in range(6):
            store.append([rec(f"a{n % 2}", n=n)])
        assert store.verify().ok
        chained = list(store.read())
        assert all(r["prev"] == before["hash"] for before, r in itertools.pairwise(chained))
    finally:
        store.close()
    store_factory.tamper(kind, 3)
    store = store_factory.open()
    try:
        report = store.verify()
        assert not report.ok and report.problems
        assert min(p.position or 0 for p in report.problems) in (3, 4), report.problems
    finally:
        store.close()


# --- concurrent writers and followers ------------------------------------------------------------------


def _write(factory: FileStoreFactory, name: str, appends: int) -> None:
    """One writer: `appends` appends on its own handle, to its own article and a shared one."""
    store = factory.open()
    try:
        for n in range(appends):
            store.append([rec(name, n=n), rec("shared", writer=name, n=n)])
    finally:
        store.close()


def _check_writers(factory: FileStoreFactory, names: list[str], appends: int) -> None:
    store = factory.open()
    try:
        records = assert_whole(store)
        assert len(records) == 2 * len(names) * appends
        for name in names:
            mine = [r["data"]["n"] for r in records if r["article"] == name]
            assert mine == list(range(appends))
            assert [r["data"]["n"] for r in records if r["data"].get("writer") == name] == mine
        assert store.article_version("shared") == len(names) * appends
        # Each append's two records are neighbours: no other writer's record came between them.
        for one, two in zip(records[::2], records[1::2], strict=False):
            assert (two["pos"], two["data"].get("writer"), two["data"]["n"]) == (one["pos"] + 1, one["article"], one["data"]["n"])
    finally:
        store.close()


def test_concurrent_writers_in_threads_lose_and_duplicate_nothing(store_factory: FileStoreFactory) -> None:
    names, appends = [f"t{i}" for i in range(4)], 40
    failures: list[BaseException] = []

    def run(name: str) -> None:
        try:
            _write(store_factory, name, appends)
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
        assert not thread.is_alive(), "a writer thread did not finish"
    assert failures == []
    _check_writers(store_factory, names, appends)


def test_threads_sharing_one_handle_lose_and_duplicate_nothing(store: EventStore) -> None:
    failures: list[BaseException] = []

    def run(name: str) -> None:
        try:
            for n in range(30):
                store.append([rec(name, n=n)])
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert failures == [] and len(assert_whole(store)) == 90


@pytest.mark.slow
def test_concurrent_writers_in_processes_lose_and_duplicate_nothing(store_factory: FileStoreFactory) -> None:
    names, appends = [f"p{i}" for i in range(3)], 30
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write, args=(store_factory, name, appends)) for name in names]
    for process in processes:
        process.start()
    for process in processes:
        process.join(DEADLINE)
        assert process.exitcode == 0, f"a writer process failed or hung (exit code {process.exitcode})"
    _check_writers(store_factory, names, appends)


def _follow(factory: FileStoreFactory, total: int, seen: list[int], failures: list[BaseException]) -> None:
    """A follower: reads after the last position it saw, in a loop, until it saw `total` records."""
    store = factory.open()
    try:
        position = 0
        deadline = time.monotonic() + DEADLINE
        while position < total and time.monotonic() < deadline:
            if store.head().position == position:
                time.sleep(0.001)
                continue
            for record in store.read(position):
                seen.append(record["pos"])
                position = record["pos"]
    except BaseException as exc:  # reported by the test thread
        failures.append(exc)
    finally:
        store.close()


@pytest.mark.parametrize("writers_in", ["threads", pytest.param("processes", marks=pytest.mark.slow)])
def test_a_follower_sees_every_event_once_in_order_while_writers_write(store_factory: FileStoreFactory, writers_in: str) -> None:
    names, appends = ["w0", "w1"], 40
    total = 2 * len(names) * appends
    seen: list[int] = []
    failures: list[BaseException] = []
    follower = threading.Thread(target=_follow, args=(store_factory, total, seen, failures))
    follower.start()
    if writers_in == "threads":
        writers: list[Any] = [threading.Thread(target=_write, args=(store_factory, name, appends)) for name in names]
    else:
        context = multiprocessing.get_context("spawn")
        writers = [context.Process(target=_write, args=(store_factory, name, appends)) for name in names]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(DEADLINE)
    follower.join(DEADLINE)
    assert not follower.is_alive() and failures == []
    assert seen == list(range(1, total + 1))
    _check_writers(store_factory, names, appends)


def test_a_follower_waits_for_an_append_then_sees_it(store_factory: FileStoreFactory, store: EventStore) -> None:
    seen: list[int] = []
    failures: list[BaseException] = []
    follower = threading.Thread(target=_follow, args=(store_factory, 3, seen, failures))
    follower.start()
    store.append([rec("a", "ArticleCreated")])
    wait_for(lambda: seen == [1], "the follower to see position 1")
    store.append([rec("a"), rec("b", "ArticleCreated")])
    follower.join(DEADLINE)
    assert (seen, failures) == ([1, 2, 3], [])


@pytest.mark.parametrize(("key", "value"), [("pos", 1.0), ("pos", True), ("version", 1.0), ("article", 7), ("occurred_at", None)])
def test_an_import_whose_envelope_ledger_would_not_seal_is_refused(store: EventStore, key: str, value: Any) -> None:
    # Sealed and chained correctly, but `1.0` or `true` for a number passed for 1 and went into
    # the log as written (the file store), or failed deep inside the PostgreSQL store's insert.
    from ledger.codec import GENESIS_HASH, decode, seal
    from ledger.store.logfile import seal_append

    lines, _ = seal_append([rec("a", "ArticleCreated", title="A", body="a")], {"a": 1}, {"a": "2026-01-01T00:00:00.000000Z"},
                           "2026-01-01T00:00:00.000000Z", 0, GENESIS_HASH, 0)
    record = decode(lines[0])
    for field in ("prev", "hash"):
        del record[field]
    record[key] = value
    line, _ = seal(record, GENESIS_HASH)
    with pytest.raises(ledger.InvalidEventError, match=f"record 1: record field '{key}' is not"):
        store.append_raw([line])
    assert store.head().position == 0
