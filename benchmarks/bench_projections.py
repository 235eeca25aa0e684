"""Projection benchmarks: full replay against the read-and-parse ceiling, an article at an old
version, opening a store and reading one article with checkpoints, peak memory of a replay.

    python -m pytest benchmarks/bench_projections.py --benchmark-only      # pytest-benchmark
    python benchmarks/bench_projections.py [--events N]                    # prints the figures

The store is generated once by `benchmarks/generate.py` (seeded) into `benchmarks/data/` and
reused; `LEDGER_BENCH_EVENTS` (default 100,000) sets its size, `LEDGER_BENCH_STORE` points at an
existing store instead. Ratios are measured in the same run, never against remembered figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate

import ledger
from ledger.views import ReplayStats

HERE = Path(__file__).resolve().parent
LIVE = "live-000"


def bench_store(events: int | None = None) -> Path:
    """The benchmark store (generated on first use)."""
    given = os.environ.get("LEDGER_BENCH_STORE")
    if given:
        return Path(given)
    n = events or int(os.environ.get("LEDGER_BENCH_EVENTS", "100000"))
    path = HERE / "data" / f"projections-{n}"
    if not (path / "events.jsonl").exists() or not (path / "events.jsonl").stat().st_size:
        generate.build(path, n)
    return path


def read_and_parse(path: Path) -> tuple[int, float]:
    """The ceiling: read the log's lines and parse each with orjson. Returns (events, seconds)."""
    started = time.perf_counter()
    count = 0
    with open(path / "events.jsonl", "rb") as log:
        for line in log:
            orjson.loads(line)
            count += 1
    return count, time.perf_counter() - started


def replay(path: Path) -> ReplayStats:
    """One full replay of the store's views."""
    with ledger.open(path) as led:
        return led.replay()


def old_version(led: ledger.Ledger, version: int) -> None:
    """Read the live article at `version` (an old version: folded from its nearest snapshot)."""
    led.article(LIVE, version)


def open_and_read(path: Path, article: str) -> None:
    """Open the store, read one article's current view, close."""
    with ledger.open(path) as led:
        led.article(article)


def peak_replay_memory(path: Path) -> float:
    """Peak resident memory (MB) of a process that opens the store and replays it."""
    code = (
        "import resource, sys, ledger\n"
        "with ledger.open(sys.argv[1]) as led: led.replay()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True, text=True)
    return int(done.stdout.strip()) / 1024


def some_story(path: Path) -> str:
    """An ordinary article of the store."""
    with ledger.open(path) as led:
        return next(article for article in led.store.articles() if article.startswith("story-"))


# --- pytest-benchmark -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store() -> Path:
    path = bench_store()
    with ledger.open(path) as led:
        led.categories()  # views and their checkpoint exist, as after any earlier use
    return path


def test_replay(benchmark: BenchmarkFixture, store: Path) -> None:
    events, seconds = read_and_parse(store)
    stats = benchmark.pedantic(replay, args=(store,), rounds=3, iterations=1)
    ceiling = events / seconds
    benchmark.extra_info.update(ceiling_events_per_s=ceiling, replay_events_per_s=stats.events_per_second,
                                ratio=stats.events_per_second / ceiling)


@pytest.mark.parametrize("version", [10, 1000])
def test_article_at_old_version(benchmark: BenchmarkFixture, store: Path, version: int) -> None:
    with ledger.open(store) as led:
        if led.store.article_version(LIVE) <= version:
            pytest.skip(f"{LIVE} has no more than {version} versions in this store")
        old_version(led, version)  # the first read leaves the snapshots it passes
        benchmark(old_version, led, version)


def test_open_and_read_with_checkpoints(benchmark: BenchmarkFixture, store: Path) -> None:
    article = some_story(store)
    benchmark(open_and_read, store, article)


# --- the figures, as a script -------------------------------------------------------------------


def _best(func, *args: object, rounds: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        func(*args)
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    """Print every projection figure with its ratio (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="store size (default $LEDGER_BENCH_EVENTS or 100,000)")
    args = parser.parse_args(argv)
    path = bench_store(args.events)
    gc.collect()
    events, seconds = read_and_parse(path)
    ceiling = events / seconds
    stats = min((replay(path) for _ in range(3)), key=lambda s: s.seconds)
    with ledger.open(path) as led:
        gc.disable()
        started = time.perf_counter()
        for _ in led.store.read():
            pass
        store_read = events / (time.perf_counter() - started)
        gc.enable()
    print(f"store {path} ({events:,} events, {(path / 'events.jsonl').stat().st_size / 1e6:,.0f} MB)")
    print(f"read+parse ceiling   {ceiling:>12,.0f} events/s")
    print(f"store.read alone     {store_read:>12,.0f} events/s   {store_read / ceiling:.0%} of ceiling (checksum + chain check of every line)")
    print(f"full replay          {stats.events_per_second:>12,.0f} events/s   {stats.events_per_second / ceiling:.0%} of ceiling (target >= 40%), "
          f"{stats.events_per_second / store_read:.0%} of store.read")
    print(f"replay peak memory   {peak_replay_memory(path):>12,.0f} MB (target < 1,024)")
    story = some_story(path)
    open_and_read(path, story)
    print(f"open + read current  {_best(open_and_read, path, story) * 1e3:>12.1f} ms (target < 100)")
    with ledger.open(path) as led:
        live_versions = led.store.article_version(LIVE)
        for version in (10, 1000):
            if version < live_versions:
                started = time.perf_counter()
                old_version(led, version)
                first = time.perf_counter() - started
                best = _best(old_version, led, version, rounds=20)
                print(f"{LIVE} at v{version:<8,} {best * 1e3:>12.2f} ms (first read {first * 1e3:.1f} ms; target < 10, v1000 < 2)")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; peak RSS here {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
