"""Concurrent appenders in one process: threads that share one `Ledger` and append one event
per call, against one thread doing the same, in turns in the same run.

    python benchmarks/bench_group_commit.py [--events N] [--threads T] [--rounds R]

Every append is durable when it returns (the store syncs before it answers); with group commit
the threads that wait while one append syncs share the next write and sync. Events are ~800-byte
`ArticleCreated`s of new articles (the issue's append workload). Prints events/s for one thread
and for T threads, and their ratio (the target: 8 threads >= 3x one thread), and what the disk's
sync cost in the same rounds (an 800-byte write + `fdatasync` appending to a file, the median):
the ratio depends on it, as the threads share syncs but not the CPU of their appends.

`--prototypes` adds, in the same rounds, designs measured but not built: T threads whose
appends a leader runs whole (each waiting thread hands over its events, the leader runs every
`Ledger.append` of the group in `bulk()` and syncs once: the work of a group in one thread,
with warm caches); T coroutines of one asyncio loop whose appends a task of the loop runs the
same way (no thread to wake per append); and T threads and one thread with `fdatasync` made a
no-op (what any pipelining of commits could reach at most, syncs costing nothing).
"""

from __future__ import annotations

import argparse
import asyncio
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


class _Call:
    """One append waiting for a leader to run it."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.finished = False
        self.error: BaseException | None = None
        # Held until the append ran or its thread is to lead: the thread waits on it.
        self.wake = threading.Lock()
        self.wake.acquire()

    def outcome(self) -> None:
        """The append's error raised, if it failed."""
        if self.error is not None:
            raise self.error


class LeaderRunsAppends:
    """The prototype: threads queue whole appends; the thread that finds no leader runs every
    queued append in `bulk()` (one sync for all), then wakes their threads."""

    def __init__(self, led: ledger.Ledger) -> None:
        self.led = led
        self.turns = threading.Lock()
        self.queue: list[_Call] = []
        self.leading = False

    def append(self, events: list[dict[str, Any]]) -> None:
        """Append `events`, durable when it returns."""
        call = _Call(events)
        with self.turns:
            self.queue.append(call)
            follow, self.leading = self.leading, True
        if follow:
            call.wake.acquire()
            if call.finished:
                return call.outcome()
        with self.turns:
            group, self.queue = self.queue, []
        with self.led.store.bulk():
            for one in group:
                try:
                    self.led.append(one.events)
                except ledger.LedgerError as exc:
                    one.error = exc
                one.finished = True
        for one in group:
            if one is not call:
                one.wake.release()
        with self.turns:
            if self.queue:
                self.queue[0].wake.release()
            else:
                self.leading = False
        return call.outcome()


class LoopRunsAppends:
    """The coroutine prototype: coroutines queue whole appends; a task of their loop runs every
    queued append in `bulk()` (one sync for all), then resolves their futures."""

    def __init__(self, led: ledger.Ledger) -> None:
        self.led = led
        self.queue: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self.waiting: asyncio.Future[None] | None = None

    async def append(self, events: list[dict[str, Any]]) -> None:
        """Append `events`, durable when it returns."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((events, done))
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(None)
        await done

    async def run(self) -> None:
        """Run the queued appends, group by group, until cancelled."""
        while True:
            if not self.queue:
                self.waiting = asyncio.get_running_loop().create_future()
                await self.waiting
            # Every coroutine that is ready queues its append before the group goes.
            await asyncio.sleep(0)
            group, self.queue = self.queue, []
            outcomes: list[BaseException | None] = []
            with self.led.store.bulk():
                for events, _ in group:
                    try:
                        self.led.append(events)
                        outcomes.append(None)
                    except ledger.LedgerError as exc:
                        outcomes.append(exc)
            for (_, done), error in zip(group, outcomes, strict=True):
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)


def coroutine_appends_per_second(store: Path, events: int, tasks: int, tag: str) -> float:
    """events/s of `events` one-event appends by `tasks` coroutines through `LoopRunsAppends`."""
    per_task = events // tasks

    async def run(led: ledger.Ledger) -> float:
        appender = LoopRunsAppends(led)
        runner = asyncio.create_task(appender.run())
        batches = [[event(f"{tag}-{n}-{i}") for i in range(per_task)] for n in range(tasks)]

        async def work(batch: list[dict[str, Any]]) -> None:
            for ev in batch:
                await appender.append([ev])

        began = time.perf_counter()
        await asyncio.gather(*(work(batch) for batch in batches))
        elapsed = time.perf_counter() - began
        runner.cancel()
        return per_task * tasks / elapsed

    with ledger.open(store, create=True) as led:
        led.append([event(f"{tag}-warm")])
        return asyncio.run(run(led))


def appends_per_second(store: Path, events: int, threads: int, tag: str, *, leader_runs: bool = False) -> float:
    """events/s of `events` one-event appends by `threads` threads sharing one open Ledger
    (`leader_runs`: through `LeaderRunsAppends`)."""
    per_thread = events // threads
    with ledger.open(store, create=True) as led:
        led.append([event(f"{tag}-warm")])
        start = threading.Barrier(threads + 1)
        append = LeaderRunsAppends(led).append if leader_runs else led.append

        def work(n: int) -> None:
            batch = [event(f"{tag}-{n}-{i}") for i in range(per_thread)]
            start.wait()
            for ev in batch:
                append([ev])

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
    best = measure_all(base, events, threads, rounds, prototypes=False)
    return best["one"], best["many"], best["sync"]


def measure_all(base: Path, events: int, threads: int, rounds: int, *, prototypes: bool) -> dict[str, float]:
    """`measure`'s figures by name (`one`, `many`, `sync`), and with `prototypes` those of the
    prototypes (`leader`, `coroutines`, `many_unsynced`, `one_unsynced`), all in the same rounds."""
    kinds = ["one", "many"] + (["leader", "coroutines", "many_unsynced", "one_unsynced"] if prototypes else [])
    best = dict.fromkeys(kinds, 0.0)
    syncs: list[float] = []
    real_sync = os.fdatasync
    for r in range(rounds):
        for kind in kinds:
            store = base / f"group-{kind}"
            count = 1 if kind.startswith("one") else threads
            if kind.endswith("unsynced"):
                os.fdatasync = lambda fd: None
            try:
                rate = (
                    coroutine_appends_per_second(store, events, count, f"r{r}")
                    if kind == "coroutines"
                    else appends_per_second(store, events, count, f"r{r}", leader_runs=kind == "leader")
                )
            finally:
                os.fdatasync = real_sync
            best[kind] = max(best[kind], rate)
            shutil.rmtree(store, ignore_errors=True)
        syncs += sync_microseconds(base / "sync")
    best["sync"] = statistics.median(syncs)
    return best


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1600)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prototypes", action="store_true", help="also measure the designs described above")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ledger-group-"))
    try:
        best = measure_all(base, args.events, args.threads, args.rounds, prototypes=args.prototypes)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    one, n = best["one"], args.threads
    print(f"1 thread: {one:,.0f} events/s; {n} threads: {best['many']:,.0f} events/s; ratio {best['many'] / one:.2f}x; "
          f"a write + fdatasync {best['sync']:,.0f} µs (median)")
    if args.prototypes:
        print(f"  {n} threads, a leader running whole appends: {best['leader']:,.0f} events/s ({best['leader'] / one:.2f}x one thread)")
        print(f"  {n} coroutines, a task of their loop running whole appends: {best['coroutines']:,.0f} events/s "
              f"({best['coroutines'] / one:.2f}x one thread)")
        print(f"  syncs a no-op: {n} threads {best['many_unsynced']:,.0f} events/s ({best['many_unsynced'] / one:.2f}x one synced thread); "
              f"1 thread {best['one_unsynced']:,.0f} events/s")


if __name__ == "__main__":
    main()
