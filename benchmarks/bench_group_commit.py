"""Concurrent appenders in one process: threads that share one `Ledger` and append one event
per call, against one thread doing the same, in turns in the same run.

    python benchmarks/bench_group_commit.py [--events N] [--threads T] [--rounds R]

Every append is durable when it returns (the store syncs before it answers); with group commit
the threads that wait while one append syncs share the next write and sync. Events are ~800-byte
`ArticleCreated`s of new articles (the issue's append workload). Prints events/s for one thread
and for T threads, and their ratio (the target: 8 threads >= 3x one thread), and what the disk's
sync cost in the same rounds (an 800-byte write + `fdatasync` appending to a file, the median):
the ratio depends on it, as the threads share syncs but not the CPU of their appends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ledger

_BODY = ("Officials said the convoy reached the northern district early on Monday, according to a statement. " * 7)[:700]


def event(slug: str) -> dict[str, Any]:
    """One ~800-byte `ArticleCreated` for a new article `slug`."""
    return {"type": "ArticleCreated", "article": slug,
            "data": {"title": f"Convoy reaches the district ({slug})", "body": _BODY, "categories": ["world"], "metadata": {}}}


def appends_per_second(store: Path, events: int, threads: int, tag: str) -> float:
    """events/s of `events` one-event appends by `threads` threads sharing one open Ledger."""
    per_thread = events // threads
    with ledger.open(store, create=True) as led:
        led.append([event(f"{tag}-warm")])
        start = threading.Barrier(threads + 1)

        def work(n: int) -> None:
            batch = [event(f"{tag}-{n}-{i}") for i in range(per_thread)]
            start.wait()
            for ev in batch:
                led.append([ev])

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - began
    return per_thread * threads / elapsed


def sync_microseconds(path: Path, writes: int = 200) -> list[float]:
    """µs of each of `writes` 800-byte writes + `fdatasync`, appending to a new file."""
    line = b"x" * 799 + b"\n"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for _ in range(writes):
            started = time.perf_counter()
            os.write(fd, line)
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(fd)
        path.unlink()
    return times


def measure(base: Path, events: int, threads: int, rounds: int) -> tuple[float, float, float]:
    """Best events/s of one thread and of `threads` threads over `rounds` turns each, and the
    median µs of a write + sync over the same rounds."""
    best = {1: 0.0, threads: 0.0}
    syncs: list[float] = []
    for r in range(rounds):
        for count in (1, threads):
            store = base / f"group-{count}"
            best[count] = max(best[count], appends_per_second(store, events, count, f"r{r}"))
            shutil.rmtree(store, ignore_errors=True)
        syncs += sync_microseconds(base / "sync")
    return best[1], best[threads], statistics.median(syncs)


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1600)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ledger-group-"))
    try:
        one, many, sync = measure(base, args.events, args.threads, args.rounds)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"1 thread: {one:,.0f} events/s; {args.threads} threads: {many:,.0f} events/s; ratio {many / one:.2f}x; "
          f"a write + fdatasync {sync:,.0f} µs (median)")


if __name__ == "__main__":
    main()
