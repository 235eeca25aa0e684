"""The PostgreSQL store beside the eventsourcing library's PostgreSQL recorder, on one server in one run.

    python benchmarks/bench_postgres.py [--url URL] [--calls N] [--events N] [--json]

Without `--url`, starts a throw-away cluster (`tests/pgserver.py`) with fsync on, so a commit
costs what it costs on this disk. Both sides get the same ~800-byte events and the same server:

* ledger: `PostgresEventStore.append` of `NewRecord`s (one article per writer): one call of the
  procedure `ledger_append_grouped`, which takes the appends' lock, checks versions and ids,
  seals the records (hash chain) and commits (letting the lock go before the flush when other
  writers queue for it);
* eventsourcing 9.x: `PostgresApplicationRecorder.insert_events` of `StoredEvent`s (one aggregate
  per writer), which takes `LOCK TABLE ... IN EXCLUSIVE MODE` and inserts.

Rows: appends of 1 and 100 events per call by 1, 4 and 16 writers in threads and 4 and 16 in
processes (events/s, all writers together); ledger's writers together against one writer of
the same kind (threads or processes; in the ledger column, the one writer in the other);
ledger against itself with the lock held through
the commit's flush, as schema 2 held it (1, 4 and 16 processes: the flush shared, in the ledger
column, against held, in the other); a full replay (ledger: `read()`, every line
hash-checked and parsed; eventsourcing: `select_notifications` in pages of 1,000, each state
parsed with orjson); reading an article's records up to an old version (ms per call); and an
old version as each side's users read it: `compare.py`'s live article (~200 KB, hundreds of
update blocks) at version 500 of 1,000, ledger's `Ledger.article(version=)` (the views'
snapshots in the local cache, the records after one from the server) against eventsourcing's
`repository.get(version=)` of the same events as `compare.py`'s aggregate, with its snapshots
every 32 versions (ledger's own interval).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import orjson  # noqa: E402

import ledger  # noqa: E402
from ledger.events import NewRecord, new_event_ids  # noqa: E402
from ledger.store.postgres import PostgresEventStore, init_schema  # noqa: E402
from tests import pgserver  # noqa: E402

BODY = "x" * 700


def ledger_records(article: str, start: int, n: int) -> list[NewRecord]:
    """`n` events of ~800 bytes for `article` (its first ever one creates it), with the ids
    `Ledger.append` gives events (time-ordered: random ones would insert at random places in the
    id index, which no writer of ledger's does unless it brings its own)."""
    return [
        NewRecord(id=eid, article=article, type="ArticleCreated" if start + i == 0 else "ArticleEdited", data={"body": BODY, "n": start + i})
        for i, eid in enumerate(new_event_ids(n))
    ]


def peer_events(aggregate: uuid.UUID, start: int, n: int) -> list[Any]:
    from eventsourcing.persistence import StoredEvent

    return [
        StoredEvent(originator_id=aggregate, originator_version=start + i + 1, topic="bench:ArticleEdited",
                    state=orjson.dumps({"body": BODY, "n": start + i, "id": str(uuid.uuid4())}))
        for i in range(n)
    ]


def peer_server(url: str) -> dict[str, str]:
    """The server `url` names, as eventsourcing's PostgreSQL settings take it."""
    parts = urlparse(url)
    query = parse_qs(parts.query)
    return {
        "dbname": parts.path.lstrip("/"), "host": unquote(query.get("host", [parts.hostname or ""])[0]),
        "port": query.get("port", [str(parts.port or 5432)])[0], "user": parts.username or "", "password": unquote(parts.password or ""),
    }


def peer_recorder(url: str, pool_size: int, *, create: bool = True) -> Any:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(**peer_server(url), pool_size=pool_size, max_overflow=0)
    recorder = PostgresApplicationRecorder(datastore)
    if create:
        # Not in every writer process: concurrent CREATE OR REPLACE FUNCTION fails in PostgreSQL.
        recorder.create_table()
    return recorder


def _ledger_writer(url: str, name: str, calls: int, per_call: int, shared: PostgresEventStore | None = None, start: Any = None, done: Any = None) -> None:
    store = shared or PostgresEventStore(url)
    first = 0
    if start is not None:
        # Connected and warm (the article made, the server's functions compiled for this
        # session), as a long-running writer is: a process's start-up is not the store's rate.
        store.append(ledger_records(name, 0, 1))
        first = 1
        start.wait()
    try:
        for call in range(calls):
            store.append(ledger_records(name, first + call * per_call, per_call))
        if done is not None:
            done.put(time.monotonic())
    finally:
        if shared is None:
            store.close()


def _held_writer(url: str, name: str, calls: int, per_call: int, shared: PostgresEventStore | None = None, start: Any = None, done: Any = None) -> None:
    """`_ledger_writer` with the appends' lock held through the commit's flush, as schema 2 held
    it: the function called directly, not through the procedure that lets the lock go before the
    flush when writers queue (the row that measures what that is worth)."""
    from ledger.store import postgres

    postgres._APPEND_GROUPED = postgres._APPEND
    _ledger_writer(url, name, calls, per_call, shared, start, done)


def _peer_writer(url: str, aggregate: uuid.UUID, calls: int, per_call: int, shared: Any = None, start: Any = None, done: Any = None) -> None:
    recorder = shared or peer_recorder(url, 1, create=False)
    first = 0
    if start is not None:
        recorder.insert_events(peer_events(aggregate, 0, 1))  # connected and warm, as above
        first = 1
        start.wait()
    for call in range(calls):
        recorder.insert_events(peer_events(aggregate, first + call * per_call, per_call))
    if done is not None:
        done.put(time.monotonic())
    if shared is None:
        recorder.datastore.close()


def run_writers(side: str, url: str, writers: int, calls: int, per_call: int, mode: str) -> float:
    """Events/s of `writers` writers (threads sharing one store object, as a server process
    would, or processes each with its own), each making `calls` appends of `per_call` events."""
    target: Callable[..., None] = {"ledger": _ledger_writer, "held": _held_writer}.get(side, _peer_writer)
    names: list[Any] = [uuid.uuid4() for _ in range(writers)] if side == "eventsourcing" else [f"w{uuid.uuid4().hex[:8]}" for _ in range(writers)]
    if mode == "threads":
        shared: Any = PostgresEventStore(url, pool_size=max(writers, 2)) if side == "ledger" else peer_recorder(url, writers)
        workers: list[Any] = [threading.Thread(target=target, args=(url, name, calls, per_call, shared)) for name in names]
        for worker in workers:
            worker.start()
        started = time.perf_counter()
    else:
        if side == "eventsourcing":
            peer_recorder(url, 1).datastore.close()  # the table, made once
        context = multiprocessing.get_context("spawn")
        # Timed from when every process has started and connected to when the last one's last
        # append returned: start-up and shut-down (a second or more of a short run) are not the store's.
        start = context.Barrier(writers + 1)
        done = context.Queue()
        workers = [context.Process(target=target, args=(url, name, calls, per_call, None, start, done)) for name in names]
        shared = None
        for worker in workers:
            worker.start()
        try:
            start.wait(timeout=300)
        except threading.BrokenBarrierError:
            raise SystemExit(f"a {side} writer process did not start (see its traceback above)") from None
        begun = time.monotonic()
        finished: list[float] = []
        while len(finished) < len(workers):
            try:
                finished.append(done.get(timeout=1.0))
            except queue.Empty:
                # A writer that failed never reports: stop rather than wait for it for ever.
                if any(worker.exitcode not in (None, 0) for worker in workers):
                    for worker in workers:
                        worker.terminate()
                    raise SystemExit(f"a {side} writer process failed (see its traceback above)") from None
        for worker in workers:
            worker.join()
        return writers * calls * per_call / (max(finished) - begun)
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if shared is not None:
        if side == "ledger":
            shared.close()
        else:
            shared.datastore.close()
    return writers * calls * per_call / elapsed


def fill(side: str, url: str, events: int, versions: int) -> Any:
    """A store of `events` events in appends of 100 (one article per append), and an article
    "live" with `versions` versions (ledger: one append each, as every version is; eventsourcing:
    one event each, in calls of 100), for the reads."""
    if side == "ledger":
        store = PostgresEventStore(url)
        for start in range(0, events, 100):
            store.append(ledger_records(f"a{start}", 0, 100))
        for version in range(versions):
            store.append(ledger_records("live", version, 1))
        return store, "live"
    recorder = peer_recorder(url, 2)
    for _ in range(0, events, 100):
        recorder.insert_events(peer_events(uuid.uuid4(), 0, 100))
    live = uuid.uuid4()
    for start in range(0, versions, 100):
        recorder.insert_events(peer_events(live, start, min(100, versions - start)))
    return recorder, live


def wal_per_append(side: str, url: str, appends: int) -> float:
    """Bytes of WAL one writer's 1-event append writes (`pg_current_wal_lsn` before and after;
    nothing else writes to the cluster meanwhile)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        run_writers(side, url, 1, appends, 1, "threads")
        row = conn.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (before[0] if before else "0/0",)).fetchone()
    return float(row[0]) / appends if row else 0.0


def replay_rates(store: PostgresEventStore, peer: Any) -> tuple[float, float, float]:
    """Events/s of a full replay: ledger checked, ledger as the views read (`check=False`), the peer."""
    started = time.perf_counter()
    count = sum(1 for _ in store.read())
    checked = count / (time.perf_counter() - started)
    started = time.perf_counter()
    seen, position = 0, 1
    while True:
        page = peer.select_notifications(position, 1000)
        if not page:
            break
        for notification in page:
            orjson.loads(notification.state)
        seen += len(page)
        position = page[-1].id + 1
    peer_rate = seen / (time.perf_counter() - started)
    started = time.perf_counter()
    count = sum(1 for _ in store.read(check=False))
    return checked, count / (time.perf_counter() - started), peer_rate


def old_version_ms(store: PostgresEventStore, article: str, peer: Any, aggregate: uuid.UUID, old: int, repeat: int = 20) -> tuple[float, float]:
    """ms per read of an article up to version `old`: ledger, the peer."""
    started = time.perf_counter()
    for _ in range(repeat):
        store.read_article(article, 1, old)
    ledger_ms = (time.perf_counter() - started) / repeat * 1000
    started = time.perf_counter()
    for _ in range(repeat):
        for stored in peer.select_events(aggregate, lte=old):
            orjson.loads(stored.state)
    return ledger_ms, (time.perf_counter() - started) / repeat * 1000


def users_old_version(url: str, versions: int, read: int, rounds: int) -> list[tuple[float, float]]:
    """ms per read of the live article as it was at version `read` (the module's last row), each
    round's median of each side: ledger, the peer."""
    import compare

    class Articles(compare.Articles):
        snapshotting_intervals: ClassVar[dict[type[Any], int]] = {compare.Article: 32}

    name = f"live-{uuid.uuid4().hex[:8]}"
    cache = tempfile.mkdtemp(prefix="ledger-bench-cache-")
    os.environ["LEDGER_CACHE_DIR"] = cache
    server = peer_server(url)
    app = Articles(env={"PERSISTENCE_MODULE": "eventsourcing.postgres", **{f"POSTGRES_{key.upper()}": value for key, value in server.items()}})
    aggregates: dict[str, Any] = {}
    ids: dict[str, uuid.UUID] = {}
    try:
        with ledger.open(url) as led:
            for generated in compare.live_article_events(versions, 1):
                ev = {**generated, "article": name}
                led.append([ev])
                app.save(compare.peer_apply(aggregates, ids, ev))
            led.categories()  # the views catch up, leaving their snapshots
            pairs = []
            for _ in range(rounds):
                mine = compare.median_ms(lambda: led.article(name, version=read), 20)
                theirs = compare.median_ms(lambda: app.repository.get(ids[name], version=read), 5)
                pairs.append((mine, theirs))
            return pairs
    finally:
        app.close()
        shutil.rmtree(cache, ignore_errors=True)


def in_turns(rounds: int, first: Callable[[], float], second: Callable[[], float]) -> list[tuple[float, float]]:
    """Each round's (first(), second()), which of the two runs first alternating from round to
    round: the disk's and the machine's speed drift within a round too."""
    pairs = []
    for turn in range(rounds):
        if turn % 2 == 0:
            one = first()
            other = second()
        else:
            other = second()
            one = first()
        pairs.append((one, other))
    return pairs


def calls_each(calls: int, per_call: int, writers: int) -> int:
    """Appends each of `writers` makes of `per_call` events: `calls` in all of 1 event, a tenth
    as many of 100."""
    return max(1, (calls if per_call == 1 else calls // 10) // writers)


def summary(figure: str, unit: str, pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """A row from its rounds (ledger, peer): each side's median and range, and the median and
    range of the rounds' ratios (ledger's advantage: rate / rate, or time / time inverted)."""
    ratios = [(lg / pe if unit != "ms" else pe / lg) for lg, pe in pairs]
    ledger_side, peer_side = [lg for lg, _ in pairs], [pe for _, pe in pairs]
    return {
        "figure": figure, "unit": unit, "rounds": len(pairs),
        "ledger": statistics.median(ledger_side), "ledger_range": [min(ledger_side), max(ledger_side)],
        "eventsourcing": statistics.median(peer_side), "eventsourcing_range": [min(peer_side), max(peer_side)],
        "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a server to use (a database whose user may create databases); default: a throw-away cluster")
    parser.add_argument("--calls", type=int, default=400, help="appends of 1 event per writer configuration and round, in all (default 400)")
    parser.add_argument("--events", type=int, default=20000, help="events for the replay and old-version rows (default 20,000)")
    parser.add_argument("--versions", type=int, default=1000, help="versions of the live article for the old-version row (default 1,000)")
    parser.add_argument("--rounds", type=int, default=5, help="turns of each row, the two sides alternating (default 5)")
    parser.add_argument("--only", help="run only the rows whose name holds this text")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # Stopped (`timeout`, a kill) the script still stops its throw-away cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = pgserver.Cluster(host="", port=0, external=args.url) if args.url else pgserver.start(durable=True)
    rows: list[dict[str, Any]] = []

    def wanted(figure: str) -> bool:
        return args.only is None or args.only in figure

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    try:
        # One database for both sides and every round (each side's writers use new articles or
        # aggregates per run): CREATE DATABASE checkpoints, which would disturb the next run.
        url = cluster.url(cluster.create_database("bench"))
        init_schema(url)
        peer_recorder(url, 1).datastore.close()
        if wanted("WAL"):
            report(summary("WAL per 1-event append", "bytes", in_turns(args.rounds, partial(wal_per_append, "ledger", url, 50), partial(wal_per_append, "eventsourcing", url, 50))))
        for per_call in (1, 100):
            for writers, mode in ((1, "threads"), (4, "threads"), (16, "threads"), (4, "processes"), (16, "processes")):
                figure = f"append {per_call}/call, {writers} {'writer' if writers == 1 else mode}"
                if wanted(figure):
                    calls = calls_each(args.calls, per_call, writers)
                    report(summary(figure, "events/s", in_turns(
                        args.rounds, partial(run_writers, "ledger", url, writers, calls, per_call, mode), partial(run_writers, "eventsourcing", url, writers, calls, per_call, mode),
                    )))
        for per_call in (1, 100):
            # ledger against itself: writers together against one writer of the same kind, in
            # turns within each round (the table grows through a run, and later rows insert into
            # bigger indexes: rows measured minutes apart are not comparable).
            for writers, mode in ((4, "threads"), (16, "threads"), (4, "processes"), (16, "processes")):
                figure = f"together against one: {per_call}/call, {writers} {mode}"
                if wanted(figure):
                    calls = calls_each(args.calls, per_call, writers)
                    report(summary(figure, "events/s", in_turns(
                        args.rounds, partial(run_writers, "ledger", url, writers, calls, per_call, mode), partial(run_writers, "ledger", url, 1, calls * writers, per_call, mode),
                    )))
        for per_call in (1, 100):
            # ledger against itself: the flush shared (schema 3) or the lock held through it.
            for writers in (1, 4, 16):
                figure = f"flush shared against held: {per_call}/call, {writers} process{'es' if writers > 1 else ''}"
                if wanted(figure):
                    calls = calls_each(args.calls, per_call, writers)
                    report(summary(figure, "events/s", in_turns(
                        args.rounds, partial(run_writers, "ledger", url, writers, calls, per_call, "processes"), partial(run_writers, "held", url, writers, calls, per_call, "processes"),
                    )))
        if wanted("replay") or wanted("version"):
            store, article = fill("ledger", url, args.events, args.versions)
            peer, aggregate = fill("eventsourcing", url, args.events, args.versions)
            replays = [replay_rates(store, peer) for _ in range(args.rounds)]
            old = args.versions // 2
            olds = [old_version_ms(store, article, peer, aggregate, old) for _ in range(args.rounds)]
            if wanted("replay"):
                report(summary(f"full replay of {args.events:,} events, every line hash-checked", "events/s", [(c, p) for c, _, p in replays]))
                report(summary("  the same as the views read it (check=False)", "events/s", [(u, p) for _, u, p in replays]))
            if wanted("version"):
                report(summary(f"an article up to version {old:,} (of {args.versions:,})", "ms", olds))
            store.close()
            peer.datastore.close()
        if wanted("as users read it"):
            # A database of its own: the rows above append records that are not events a
            # `Ledger` could fold (the store's API takes them as they are).
            views_url = cluster.url(cluster.create_database("users"))
            init_schema(views_url)
            old = args.versions // 2
            report(summary(f"a live article at version {old:,} as users read it", "ms", users_old_version(views_url, args.versions, old, args.rounds)))
    finally:
        cluster.stop()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'figure':<58} {'unit':<9} {'ledger (range)':>24} {'eventsourcing (range)':>24} {'ratio (range)':>20}")
    for row in rows:
        lo, hi = row["ledger_range"]
        plo, phi = row["eventsourcing_range"]
        rlo, rhi = row["ratio_range"]
        f = ",.2f" if row["unit"] == "ms" else ",.0f"
        print(f"{row['figure']:<58} {row['unit']:<9} {row['ledger']:>8{f}} ({lo:{f}}-{hi:{f}}){'':>2} {row['eventsourcing']:>8{f}} ({plo:{f}}-{phi:{f}}){'':>2}"
              f" {row['ratio']:>5.2f}x ({rlo:.2f}-{rhi:.2f})")
    print(f"(medians of {args.rounds} rounds, the sides alternating; ratio: ledger's advantage, the median of the rounds' ratios; "
          f"machine: {os.uname().sysname} {os.uname().release}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
