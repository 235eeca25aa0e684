"""Benchmarks of the event log: appending (fsync per call, batched, bulk) and reading.

Run: python3 -m pytest benchmarks/bench_store.py --benchmark-only -q

Events are ~800-byte `ArticleCreated` events, the size the reference figures in the field notes
were measured with. Each benchmark's `extra_info` holds events per second.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger.store import FileEventStore

READ_STORE_EVENTS = 10_000
_BODY = ("The convoy reached the checkpoint before noon, officials said, and the road was reopened. " * 8)[:700]


def _event(article: str, n: int) -> dict[str, Any]:
    return {"type": "ArticleCreated", "article": article, "data": {"title": f"Story {n}", "body": _BODY, "categories": ["latest"]}}


@pytest.fixture
def led(tmp_path: Path) -> Iterator[ledger.Ledger]:
    with ledger.open(tmp_path / "store", create=True) as opened:
        yield opened


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 10,000 events: 500 articles, each created then edited 19 times (100 per append)."""
    root = tmp_path_factory.mktemp("bench") / "store"
    with ledger.open(root, create=True) as opened, opened.bulk():
        batch: list[dict[str, Any]] = []
        for version in range(20):
            for article in range(500):
                name = f"story-{article}"
                if version == 0:
                    batch.append(_event(name, article))
                else:
                    batch.append({"type": "ArticleEdited", "article": name, "data": {"body": _BODY + f" Edit {version}."}})
                if len(batch) == 100:
                    opened.append(batch)
                    batch = []
        assert opened.head().position == READ_STORE_EVENTS
    return root


def _rate(benchmark: Any, events: int) -> None:
    # With --benchmark-disable (a smoke run) each body runs once and nothing is timed.
    if benchmark.stats is not None:
        benchmark.extra_info["events_per_second"] = round(events / benchmark.stats.stats.mean)


def test_append_one_event_per_call(benchmark: Any, led: ledger.Ledger) -> None:
    names = (f"one-{n}" for n in itertools.count())
    benchmark.pedantic(lambda: led.append([_event(next(names), 0)]), rounds=300, iterations=1, warmup_rounds=5)
    _rate(benchmark, 1)


def test_append_100_events_per_call(benchmark: Any, led: ledger.Ledger) -> None:
    counter = itertools.count()

    def append() -> None:
        n = next(counter)
        led.append([_event(f"batch-{n}-{i}", i) for i in range(100)])

    benchmark.pedantic(append, rounds=60, iterations=1, warmup_rounds=2)
    _rate(benchmark, 100)


def test_append_one_event_per_call_in_bulk(benchmark: Any, led: ledger.Ledger) -> None:
    counter = itertools.count()

    def hundred_appends() -> None:
        n = next(counter)
        with led.bulk():
            for i in range(100):
                led.append([_event(f"bulk-{n}-{i}", i)])

    benchmark.pedantic(hundred_appends, rounds=30, iterations=1, warmup_rounds=1)
    _rate(benchmark, 100)


def test_read_whole_log_raw_records(benchmark: Any, big_store: Path) -> None:
    store = FileEventStore(big_store)
    try:
        count = benchmark.pedantic(lambda: sum(1 for _ in store.read()), rounds=15, iterations=1, warmup_rounds=1)
    finally:
        store.close()
    assert count == READ_STORE_EVENTS
    _rate(benchmark, READ_STORE_EVENTS)


def test_read_whole_log_as_recorded_events(benchmark: Any, big_store: Path) -> None:
    with ledger.open(big_store) as opened:
        count = benchmark.pedantic(lambda: sum(1 for _ in opened.events()), rounds=15, iterations=1, warmup_rounds=1)
    assert count == READ_STORE_EVENTS
    _rate(benchmark, READ_STORE_EVENTS)


def test_read_article(benchmark: Any, big_store: Path) -> None:
    store = FileEventStore(big_store)
    names = (f"story-{n % 500}" for n in itertools.count(0, 37))
    try:
        records = benchmark.pedantic(lambda: store.read_article(next(names)), rounds=500, iterations=1, warmup_rounds=5)
    finally:
        store.close()
    assert len(records) == 20
    _rate(benchmark, 20)


def test_verify_whole_log(benchmark: Any, big_store: Path) -> None:
    store = FileEventStore(big_store)
    try:
        report = benchmark.pedantic(store.verify, rounds=10, iterations=1, warmup_rounds=1)
    finally:
        store.close()
    assert report.ok and report.events == READ_STORE_EVENTS
    _rate(benchmark, READ_STORE_EVENTS)
