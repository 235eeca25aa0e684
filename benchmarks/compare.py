"""Side by side: ledger, the `eventsourcing` library (SQLite, fsync on commit), and the machine.

    python benchmarks/compare.py [--events N] [--json] [--peer-events M] [--single K] [--dir DIR]

Runs one seeded workload (`benchmarks/generate.py`: articles of 2-6 KB, small edits, update
blocks, category changes, two live articles with long histories) on ledger and on eventsourcing
9.x with its SQLite persistence, and measures in the same run the ceilings of this machine for
the same bytes. Every figure is printed with its ratios: `x peer` is how many times ledger is
faster than eventsourcing, `of ceiling` what share of the machine's ceiling ledger reaches.

Durability is the same on both sides: ledger `fdatasync`s every append; eventsourcing runs SQLite
in WAL mode with `synchronous=FULL` (SQLite's default, which eventsourcing keeps; checked below),
which syncs the WAL on every commit.

The append workloads time only the calls being measured (generating the events is not timed).
`--peer-events` runs eventsourcing on fewer events than ledger (its replay and appends are slow at
1M); its rates are per event, so the ratios stay comparable, and the output says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_group_commit
import generate

import ledger
from ledger.patches import apply_patch
from ledger.projections import apply

BATCH = 100


# --- the peer: eventsourcing 9.x ----------------------------------------------------------------

from eventsourcing.application import Application  # noqa: E402
from eventsourcing.domain import Aggregate, event  # noqa: E402


class Article(Aggregate):
    """The same article model in eventsourcing's idiom: one aggregate per article, one method per
    event type, each applying its change as ledger's fold does (patches with the same function)."""

    @event("Created")
    def __init__(self, slug: str, title: str, body: str, categories: list[str], metadata: dict[str, Any]) -> None:
        self.slug = slug
        self.title = title
        self.body = body
        self.categories = list(categories)
        self.metadata = dict(metadata)
        self.blocks: list[list[str]] = []

    @event("Edited")
    def edit(self, title: str | None = None, patch: list[list[Any]] | None = None) -> None:
        if title is not None:
            self.title = title
        if patch:
            self.body = apply_patch(self.body, patch)

    @event("BlockAdded")
    def add_block(self, heading: str, text: str, index: int | None = None) -> None:
        if index is None:
            self.blocks.append([heading, text])
        else:
            self.blocks.insert(index, [heading, text])

    @event("BlockEdited")
    def edit_block(self, index: int, heading: str | None = None, patch: list[list[Any]] | None = None) -> None:
        if heading is not None:
            self.blocks[index][0] = heading
        if patch:
            self.blocks[index][1] = apply_patch(self.blocks[index][1], patch)

    @event("CategoriesChanged")
    def change_categories(self, added: list[str], removed: list[str]) -> None:
        self.categories = [c for c in self.categories if c not in removed] + [c for c in added if c not in self.categories]

    @event("MetadataChanged")
    def change_metadata(self, set: dict[str, Any], unset: list[str] | None = None) -> None:
        for key in unset or ():
            self.metadata.pop(key, None)
        self.metadata.update(set)


class Articles(Application):
    """The peer application: nothing but eventsourcing's own repository and recorder."""


def peer_app(path: Path) -> Articles:
    """eventsourcing with SQLite persistence at `path` (the documented environment variables)."""
    return Articles(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})


def peer_synchronous(app: Articles) -> int:
    """SQLite's `synchronous` level on the peer's connections (2 = FULL: fsync on every commit)."""
    with app.factory.datastore.get_connection(commit=True) as conn:  # type: ignore[attr-defined]
        cursor = conn.cursor()
        cursor.execute("PRAGMA synchronous")
        return int(cursor.fetchone()[0])


def peer_apply(aggregates: dict[str, Article], ids: dict[str, uuid.UUID], ev: dict[str, Any]) -> Article:
    """Turn one generated event into the peer's aggregate method call."""
    slug, data, kind = ev["article"], ev["data"], ev["type"]
    if kind == "ArticleCreated":
        agg = Article(slug, data["title"], data["body"], data["categories"], data["metadata"])
        aggregates[slug] = agg
        ids[slug] = agg.id
        return agg
    agg = aggregates[slug]
    if kind == "ArticleEdited":
        agg.edit(title=data.get("title"), patch=data.get("patch"))
    elif kind == "UpdateBlockAdded":
        agg.add_block(data["heading"], data["text"], data.get("index"))
    elif kind == "UpdateBlockEdited":
        agg.edit_block(data["index"], data.get("heading"), data.get("patch"))
    elif kind == "CategoriesChanged":
        agg.change_categories(data["added"], data["removed"])
    elif kind == "MetadataChanged":
        agg.change_metadata(data["set"], data.get("unset"))
    else:
        raise ValueError(f"unexpected event type {kind}")
    return agg


# --- helpers -----------------------------------------------------------------------------------


def chunks(stream: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Generated events in lists of `size`, generated ahead of the timed calls."""
    out: list[dict[str, Any]] = []
    for ev in stream:
        out.append(ev)
        if len(out) == size:
            yield out
            out = []
    if out:
        yield out


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


class RawRecord(BaseModel):
    """A log record as a pydantic model: the validation ceiling (`model_validate` of each line)."""

    model_config = ConfigDict(extra="allow")

    pos: int
    id: str
    article: str
    version: int
    type: str
    schema_version: int = Field(alias="schema")
    recorded_at: str
    occurred_at: str
    actor: str | None = None
    reason: str | None = None
    data: dict[str, Any]
    prev: str
    hash: str


class Results:
    """Collects figures; prints them as a table or as JSON lines."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, unit: str, ledger_value: float | None, peer: float | None = None,
            ceiling: float | None = None, target: str = "", met: bool | None = None, note: str = "") -> None:
        """One figure. For rates (`/s`) higher is better; for `ms` and `MB` lower is better."""
        higher = unit.endswith("/s")
        ratios: dict[str, float] = {}
        if ledger_value and peer:
            ratios["x_peer"] = round(ledger_value / peer if higher else peer / ledger_value, 2)
        if ledger_value and ceiling:
            ratios["of_ceiling"] = round(ledger_value / ceiling if higher else ceiling / ledger_value, 3)
        self.rows.append({"name": name, "unit": unit, "ledger": _round(ledger_value), "peer": _round(peer),
                          "ceiling": _round(ceiling), "ratios": ratios, "target": target, "met": met, "note": note})

    def print_table(self, header: str) -> None:
        """A plain-text table with one row per figure."""
        print(header)
        cols = ("figure", "unit", "ledger", "eventsourcing", "ceiling", "x peer", "of ceiling", "target", "met")
        lines = [cols]
        for r in self.rows:
            lines.append((
                r["name"], r["unit"], _fmt(r["ledger"]), _fmt(r["peer"]), _fmt(r["ceiling"]),
                _fmt(r["ratios"].get("x_peer")), _pct(r["ratios"].get("of_ceiling")), r["target"],
                "" if r["met"] is None else ("yes" if r["met"] else "NO"),
            ))
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(cols))]
        for n, line in enumerate(lines):
            print("  ".join(str(v).ljust(w) if i in (0, 1, 7) else str(v).rjust(w) for i, (v, w) in enumerate(zip(line, widths, strict=False))))
            if n == 0:
                print("  ".join("-" * w for w in widths))
        for r in self.rows:
            if r["note"]:
                print(f"* {r['name']}: {r['note']}")


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 3) if value < 100 else round(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


class RawAppender:
    """The ceiling for appends: the same bytes written to a plain file, `write` + `fdatasync`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)

    def write(self, lines: list[bytes], per_sync: int) -> float:
        """Write `lines`, `per_sync` per write and sync; returns the seconds it took."""
        started = time.perf_counter()
        for i in range(0, len(lines), per_sync):
            os.write(self.fd, b"".join(lines[i : i + per_sync]))
            os.fdatasync(self.fd)
        return time.perf_counter() - started

    def close(self) -> None:
        """Close and delete the file."""
        os.close(self.fd)
        self.path.unlink()


def read_lines(path: Path, offset: int) -> list[bytes]:
    """The lines (with newlines) of `path` from byte `offset` on."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.readlines()


def ledger_replay(store: Path) -> tuple[int, int]:
    """Rebuild every article (bodies, blocks, categories) from the whole log, as the peer does:
    the store's raw records folded by `ledger.projections.apply`. Returns (events, articles)."""
    with ledger.open(store) as led:
        states: dict[str, Any] = {}
        count = 0
        # check=False, as `Ledger.replay` reads: lines are hash-checked once, when indexed.
        for record in led.store.read(check=False):
            states[record["article"]] = apply(states.get(record["article"]), record)
            count += 1
        return count, len(states)


def cli_replay(store: Path) -> tuple[float, float, float]:
    """`ledger replay` as users run it (a fresh process rebuilding every persisted view: the
    catalogue, feed, timeline, stints, snapshots, and the text index, in a second process on
    logs of 20,000 records or more): the events/s it reports for the rebuild, events/s from the
    process's start to its exit (start-up included), and the peak RSS (MB) of the largest of
    its processes."""
    with ledger.open(store) as led:
        events = led.head().position
    # Run under a small parent of its own, whose children's peak RSS is then the command's and
    # its child's alone (this process has waited for other children already).
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True);"
               " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "ledger_cli.main", "--store", str(store), "replay"],
                         check=True, capture_output=True, text=True).stdout
    wall = events / (time.perf_counter() - started)
    # "replayed N events of M articles to position P in S s (R events/s)", then the peak in KB
    report, peak = out.strip().splitlines()[-2:]
    reported = float(report.rsplit("(", 1)[1].split()[0].replace(",", ""))
    return reported, wall, int(peak) / 1024


def rebuild_parts(store: Path) -> tuple[float, float]:
    """events/s of the two rebuilds `ledger replay` runs, each alone in this process: the
    catalog (`views.sqlite`) and the text index (`text.sqlite`, searched and blamed)."""
    with ledger.open(store) as led:
        events = led.head().position
        started = time.perf_counter()
        led.catalog.rebuild()
        catalog = events / (time.perf_counter() - started)
        started = time.perf_counter()
        led.text_index.rebuild()
        text = events / (time.perf_counter() - started)
    return catalog, text


# --- the live article: ~200 KB, hundreds of update blocks ------------------------------------


def live_article_events(versions: int, seed: int) -> Iterator[dict[str, Any]]:
    """One live article as a newsroom runs it for days: a 40 KB story that every third version
    gets a ~400-character update block and otherwise a sentence more (by patch). Version 1,000
    is ~200 KB with ~330 update blocks."""
    rng = random.Random(seed)
    body = " ".join(generate._sentence(rng) for _ in range(330))[:40_000]
    yield {"type": "ArticleCreated", "article": "live-big", "data": {"title": "Live: the siege", "body": body, "categories": ["world"], "metadata": {}}}
    for version in range(2, versions + 1):
        if version % 3 == 0:
            text = " ".join(generate._sentence(rng) for _ in range(4))[:400]
            yield {"type": "UpdateBlockAdded", "article": "live-big", "data": {"heading": f"Update {version}", "text": text}}
        else:
            sentence = " " + generate._sentence(rng)
            yield {"type": "ArticleEdited", "article": "live-big", "data": {"patch": [[len(body), len(body), sentence]]}}
            body += sentence


def live_article(base: Path, versions: int, seed: int, repeat: int) -> tuple[float, float, float, int, tuple[float, int]]:
    """Median ms to read version 1,000 of the live article (a fresh Ledger, views caught up),
    the same from eventsourcing, the first read's ms, the article's size at 1,000 (bytes), and
    the slowest version from 1,000 on (its best median ms of 3 passes of reads, and which version)."""
    store = base / "ledger-live"
    shutil.rmtree(store, ignore_errors=True)
    peer_db = base / "peer-live.sqlite"
    _remove_sqlite(peer_db)
    app = peer_app(peer_db)
    aggregates: dict[str, Article] = {}
    ids: dict[str, uuid.UUID] = {}
    with ledger.open(store, create=True) as led, led.bulk():
        for ev in live_article_events(versions, seed):
            led.append([ev])
            app.save(peer_apply(aggregates, ids, ev))
    with ledger.open(store) as led:
        led.head()
        led.catalog.refresh()
    with ledger.open(store) as led:
        started = time.perf_counter()
        view = led.article("live-big", version=1000)
        first = (time.perf_counter() - started) * 1000
        size = len(view.body.encode()) + sum(len(b.text.encode()) + len(b.heading.encode()) for b in view.blocks)
        ledger_ms = median_ms(lambda: led.article("live-big", version=1000), repeat)
        # Flat: the versions farthest from a snapshot fold the most records. The slowest of 200
        # medians picks up any moment the machine was busy: each version is read 15 times in
        # each of 3 passes over them all, and keeps its best pass's median.
        medians: dict[int, float] = {}
        for _ in range(3):
            for version in range(1000, versions + 1):
                ms = median_ms(lambda version=version: led.article("live-big", version=version), 15)
                medians[version] = min(ms, medians.get(version, ms))
        slowest = max((ms, version) for version, ms in medians.items())
    peer_id = ids["live-big"]
    peer_ms = median_ms(lambda: app.repository.get(peer_id, version=1000), max(3, repeat // 5))
    app.close()
    return ledger_ms, peer_ms, first, size, slowest


def ledger_rebuild_views(store: Path) -> float | None:
    """events/s of `Ledger.replay()` (rebuilds the persisted views), when the library has it."""
    with ledger.open(store) as led:
        replay = getattr(led, "replay", None)
        if not callable(replay):
            return None
        started = time.perf_counter()
        stats = replay()
        return stats.events / (time.perf_counter() - started)


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace, results: Results, say: Callable[[str], None]) -> dict[str, Any]:
    """Run every measurement; fill `results`; return facts about the run."""
    n, seed = args.events, args.seed
    peer_n = min(args.peer_events or n, n)
    single_n = min(args.single, n)
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    facts: dict[str, Any] = {"events": n, "peer_events": peer_n, "single_events": single_n, "seed": seed, "dir": str(base)}

    # 1. one event per call, fsync on every append ------------------------------------------
    # The three contenders take turns, 100 events each, so that disk noise from other work on
    # the machine falls on all of them alike; the raw ceiling writes the very lines ledger wrote.
    say(f"append one per call: {single_n:,} events")
    evs = list(generate.events(single_n, seed))
    single_store = base / "ledger-single"
    shutil.rmtree(single_store, ignore_errors=True)
    peer_db = base / "peer-single.sqlite"
    _remove_sqlite(peer_db)
    app = peer_app(peer_db)
    facts["peer_sqlite_synchronous"] = peer_synchronous(app)
    aggregates: dict[str, Article] = {}
    ids: dict[str, uuid.UUID] = {}
    clock = {"ledger": 0.0, "peer": 0.0, "raw": 0.0}
    raw = RawAppender(base / "raw-single")
    with ledger.open(single_store, create=True) as led:
        log_path = single_store / "events.jsonl"
        for i in range(0, single_n, 100):
            turn = evs[i : i + 100]
            offset = log_path.stat().st_size
            started = time.perf_counter()
            for ev in turn:
                led.append([ev])
            clock["ledger"] += time.perf_counter() - started
            started = time.perf_counter()
            for ev in turn:
                app.save(peer_apply(aggregates, ids, ev))
            clock["peer"] += time.perf_counter() - started
            clock["raw"] += raw.write(read_lines(log_path, offset), 1)
    app.close()
    raw.close()
    ledger_single, peer_single, raw_single = (single_n / clock[k] for k in ("ledger", "peer", "raw"))
    results.add("append, 1 event per call", "events/s", ledger_single, peer_single, raw_single,
                ">= 80% of ceiling", ledger_single >= 0.8 * raw_single,
                note="ceiling: the same lines written one per write() + fdatasync()")
    del evs, aggregates, ids

    # 2. 100 events per call, fsync on every append; builds the main store -------------------
    say(f"append 100 per call: {n:,} events (eventsourcing: {peer_n:,})")
    store = base / "ledger-main"
    shutil.rmtree(store, ignore_errors=True)
    peer_db = base / "peer-main.sqlite"
    _remove_sqlite(peer_db)
    app = peer_app(peer_db)
    aggregates, ids = {}, {}
    clock = {"ledger": 0.0, "peer": 0.0, "raw": 0.0}
    counted = {"ledger": 0, "peer": 0, "raw": 0}
    events_json = 0
    raw = RawAppender(base / "raw-batch")
    done = 0
    with ledger.open(store, create=True) as led:
        log_path = store / "events.jsonl"
        for chunk in chunks(generate.events(n, seed), 2_000):
            events_json += sum(len(orjson.dumps(ev)) + 1 for ev in chunk)
            live = [ev for ev in chunk if ev["article"].startswith("live-")]
            stories = [ev for ev in chunk if not ev["article"].startswith("live-")]
            # Live articles get one version per event (untimed): the deep histories that the
            # historical reads below need.
            for ev in live:
                led.append([ev])
            offset = log_path.stat().st_size
            started = time.perf_counter()
            for group in generate.batches(iter(stories), BATCH):
                led.append(group)
            if done + len(chunk) >= n:
                # The derived index follows the log lazily; catching it up is part of the cost.
                led.head()
            clock["ledger"] += time.perf_counter() - started
            counted["ledger"] += len(stories)
            lines = read_lines(log_path, offset)
            clock["raw"] += raw.write(lines, BATCH)
            counted["raw"] += len(lines)
            if done < peer_n:
                for ev in chunk[: peer_n - done]:
                    if ev["article"].startswith("live-"):
                        app.save(peer_apply(aggregates, ids, ev))
                peer_stories = [ev for ev in chunk[: peer_n - done] if not ev["article"].startswith("live-")]
                started = time.perf_counter()
                for i in range(0, len(peer_stories), BATCH):
                    touched = {id(a): a for a in (peer_apply(aggregates, ids, ev) for ev in peer_stories[i : i + BATCH])}
                    app.save(*touched.values())
                clock["peer"] += time.perf_counter() - started
                counted["peer"] += len(peer_stories)
            done += len(chunk)
        led.head()
    raw.close()
    app.close()
    ledger_batch, peer_batch, raw_batch = (counted[k] / clock[k] for k in ("ledger", "peer", "raw"))
    story_ids = sorted((slug, aid) for slug, aid in ids.items() if slug.startswith("story-"))
    live_id = ids["live-000"]
    del aggregates
    results.add("append, 100 events per call", "events/s", ledger_batch, peer_batch, raw_batch,
                ">= 4x peer, >= 50% of ceiling",
                ledger_batch >= 4 * peer_batch and ledger_batch >= 0.5 * raw_batch,
                note="ceiling: the same lines written 100 per write() + fdatasync()")

    # 2b. 1,000 events per call, on a store of its own (the peer: 1,000 per save) ------------
    big_n = min(n, 20_000)
    say(f"append 1,000 per call: {big_n:,} events")
    big_store = base / "ledger-1000"
    shutil.rmtree(big_store, ignore_errors=True)
    big_db = base / "peer-1000.sqlite"
    _remove_sqlite(big_db)
    big_app = peer_app(big_db)
    big_aggregates: dict[str, Article] = {}
    big_ids: dict[str, uuid.UUID] = {}
    clock = {"ledger": 0.0, "peer": 0.0}
    counted = {"ledger": 0, "peer": 0}
    with ledger.open(big_store, create=True) as led:
        for chunk in chunks(generate.events(big_n, seed), 2_000):
            stories = [ev for ev in chunk if not ev["article"].startswith("live-")]
            for ev in chunk:
                if ev["article"].startswith("live-"):
                    led.append([ev])
                    big_app.save(peer_apply(big_aggregates, big_ids, ev))
            groups = list(generate.batches(iter(stories), 1_000))
            started = time.perf_counter()
            for group in groups:
                led.append(group)
            clock["ledger"] += time.perf_counter() - started
            counted["ledger"] += len(stories)
            started = time.perf_counter()
            for i in range(0, len(stories), 1_000):
                touched = {id(a): a for a in (peer_apply(big_aggregates, big_ids, ev) for ev in stories[i : i + 1_000])}
                big_app.save(*touched.values())
            clock["peer"] += time.perf_counter() - started
            counted["peer"] += len(stories)
    big_app.close()
    shutil.rmtree(big_store, ignore_errors=True)
    _remove_sqlite(big_db)
    ledger_big, peer_big = (counted[k] / clock[k] for k in ("ledger", "peer"))
    results.add("append, 1,000 events per call", "events/s", ledger_big, peer_big, target=">= 4x peer",
                met=ledger_big >= 4 * peer_big, note=f"{big_n:,} events; eventsourcing saves 1,000 per transaction")

    # 3. full replay ------------------------------------------------------------------------
    # Each contender runs `rounds` times, in turns, and its best run counts: on a shared machine
    # the best run is the one least disturbed by other work.
    rounds = args.rounds if args.rounds else (3 if n <= 200_000 else 1)
    say(f"full replay ({rounds} rounds)")
    app = peer_app(peer_db)
    log_file = store / "events.jsonl"

    def peer_replay_all() -> int:
        count = 0
        states: dict[Any, Any] = {}
        start = 1
        while True:
            page = app.recorder.select_notifications(start, 1000)
            if not page:
                return count
            for notification in page:
                domain_event = app.mapper.to_domain_event(notification)
                states[domain_event.originator_id] = domain_event.mutate(states.get(domain_event.originator_id))
                count += 1
            start = page[-1].id + 1

    def read_parse() -> int:
        count = 0
        with open(log_file, "rb") as f:
            for line in f:
                orjson.loads(line)
                count += 1
        return count

    def read_validate() -> int:
        count = 0
        with open(log_file, "rb") as f:
            for line in f:
                RawRecord.model_validate(orjson.loads(line))
                count += 1
        return count

    contenders: dict[str, Callable[[], int]] = {
        "ledger": lambda: ledger_replay(store)[0],
        "peer": peer_replay_all,
        "parse": read_parse,
        "validate": read_validate,
    }
    best: dict[str, float] = {name: 0.0 for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            gc.collect()
            started = time.perf_counter()
            count = fn()
            best[name] = max(best[name], count / (time.perf_counter() - started))
    with ledger.open(store) as led:
        facts["articles"] = len(led.store.articles())
    results.add("full replay (read + rebuild all)", "events/s", best["ledger"], best["peer"], best["parse"],
                ">= 4x peer, >= 40% of read+parse",
                best["ledger"] >= 4 * best["peer"] and best["ledger"] >= 0.4 * best["parse"],
                note=f"ceilings: read lines + orjson.loads {best['parse']:,.0f}/s; + pydantic validation {best['validate']:,.0f}/s; "
                     f"best of {rounds} runs each, in turns")
    results.add("ceiling: read + orjson + pydantic", "events/s", None, None, best["validate"])
    views_rate = ledger_rebuild_views(store)
    if views_rate is not None:
        results.add("Ledger.replay() (every persisted view)", "events/s", views_rate, best["peer"], best["parse"],
                    note="rebuilds and writes the catalogue (views.sqlite) and the text index (text.sqlite), not the bodies")
    catalog_rate, text_rate = rebuild_parts(store)
    results.add("  of which the catalogue alone", "events/s", catalog_rate, best["peer"], best["parse"],
                note="Catalog.rebuild(): the listings, feed, timeline, stints, snapshots")
    results.add("  of which the text index alone", "events/s", text_rate, best["peer"], best["parse"],
                note="TextIndex.rebuild(): search and blame")
    say("ledger replay (the command, a fresh process)")
    replay_rate, replay_wall, replay_peak = cli_replay(store)
    results.add("`ledger replay` (command, every view)", "events/s", replay_rate, best["peer"], best["parse"],
                ">= 4x peer, >= 40% of read+parse",
                replay_rate >= 4 * best["peer"] and replay_rate >= 0.4 * best["parse"],
                note=f"the rate the command reports for its rebuild; {replay_wall:,.0f}/s from the process's start to its exit; "
                     f"peak RSS {replay_peak:,.0f} MB (the largest of its processes); peer: its full replay above")

    # 4. one article at an old version ------------------------------------------------------
    with ledger.open(store) as led:
        live_versions = led.store.article_version("live-000")
        facts["live_versions"] = live_versions
        for version in (10, 1000):
            if version > live_versions:
                continue
            say(f"read at version {version}")
            ledger_ms = median_ms(lambda version=version: led.article("live-000", version=version), args.repeat)
            peer_ms = None
            if app.repository.get(live_id).version >= version:
                peer_ms = median_ms(lambda version=version: app.repository.get(live_id, version=version), args.repeat)
            target = "< 2 ms, flat" if version == 1000 else ""
            results.add(f"one article at version {version:,}", "ms", ledger_ms, peer_ms,
                        target=target, met=(ledger_ms < 2) if version == 1000 else None)

    say("live article: version 1,000 of ~200 KB with hundreds of update blocks")
    live_ms, live_peer_ms, live_first, live_size, (slowest_ms, slowest) = live_article(base, args.live_versions, seed, args.repeat)
    results.add("version 1,000 of a ~200 KB live article", "ms", live_ms, live_peer_ms, target="< 2 ms",
                met=live_ms < 2,
                note=f"{live_size / 1000:,.0f} KB at version 1,000 of {args.live_versions:,}; first read after opening "
                     f"{live_first:.2f} ms; eventsourcing folds from its first event (no snapshots)")
    results.add(f"  the slowest of versions 1,000-{args.live_versions:,} (flat)", "ms", slowest_ms, None, target="< 2 ms",
                met=slowest_ms < 2, note=f"version {slowest:,}; each version's median of 15 reads, the best of 3 passes over them all")

    # 5. open a store and read one article --------------------------------------------------
    say("open and read one article")
    slug, story_id = story_ids[len(story_ids) // 2]

    def open_and_read() -> None:
        with ledger.open(store) as fresh:
            fresh.article(slug)

    def peer_open_and_read() -> None:
        fresh = peer_app(peer_db)
        fresh.repository.get(story_id)
        fresh.close()

    ledger_open = median_ms(open_and_read, args.repeat)
    peer_open = median_ms(peer_open_and_read, args.repeat)
    app.close()
    results.add(f"open store ({n:,} events) + read 1 article", "ms", ledger_open, peer_open,
                target="< 100 ms at 1M", met=ledger_open < 100)

    # 6. threads appending at once (group commit) -------------------------------------------
    say(f"append 1 per call from {args.threads} threads sharing one Ledger, against 1 thread")
    one, many, sync = bench_group_commit.measure(base, args.threads * 100, args.threads, 3)
    results.add(f"append, {args.threads} threads x 1 event per call", "events/s", many, ceiling=one,
                target=">= 3x one thread", met=many >= 3 * one,
                note=f"ceiling column: one thread appending the same way ({one:,.0f}/s), best of 3 in turns; "
                     f"every append durable when it returns; a write + fdatasync took {sync:.0f} µs in the same rounds")

    # 7. memory and size --------------------------------------------------------------------
    say("peak memory of a full replay (separate process)")
    peak = replay_peak_mb(store)
    baseline = replay_peak_mb(None)
    results.add("peak RSS of a full replay", "MB", peak, target="< 1 GB at 1M", met=peak < 1024,
                note=f"the interpreter with ledger imported and nothing replayed: {baseline:.0f} MB")
    log_bytes = (store / "events.jsonl").stat().st_size
    results.add("log size / events' JSON", "x", log_bytes / events_json, target="< 1.5x", met=log_bytes / events_json < 1.5,
                note=f"log {log_bytes / 1e6:,.1f} MB; the events as given to append, as JSON lines, {events_json / 1e6:,.1f} MB; "
                     f"index {(store / 'index.sqlite').stat().st_size / 1e6:,.1f} MB (derived, not counted)")
    facts["log_bytes"] = log_bytes
    return facts


def replay_peak_mb(store: Path | None) -> float:
    """Peak resident memory (MB) of a fresh process that replays `store` (or only imports).

    Read from the child's own `VmHWM` (/proc): `ru_maxrss` would count the pages the child
    shared with this big parent before it exec'd."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import compare\n"
        "if len(sys.argv) > 2: compare.ledger_replay(__import__('pathlib').Path(sys.argv[2]))\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    argv = [sys.executable, "-c", code, str(Path(__file__).resolve().parent)] + ([str(store)] if store else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _peer_version() -> str:
    from importlib.metadata import version

    return version("eventsourcing")


def machine() -> str:
    """One line naming the machine, Python and the libraries measured."""
    return (f"{os.uname().sysname} {os.uname().release} {os.uname().machine}, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}, eventsourcing {_peer_version()}, orjson {orjson.__version__}, "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')}")


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Compare ledger with eventsourcing (SQLite) and the machine's ceilings.")
    parser.add_argument("--events", type=int, default=10_000, help="events in the main store (default 10,000)")
    parser.add_argument("--peer-events", type=int, default=None, help="events for eventsourcing (default: --events)")
    parser.add_argument("--single", type=int, default=2_000, help="events appended one per call (default 2,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--live-versions", type=int, default=1200, help="versions of the ~200 KB live article (default 1,200)")
    parser.add_argument("--threads", type=int, default=8, help="threads of the group-commit row (default 8)")
    parser.add_argument("--repeat", type=int, default=30, help="repetitions of each read (median reported)")
    parser.add_argument("--rounds", type=int, default=0, help="full replays per contender (default 3, 1 above 200k events)")
    parser.add_argument("--dir", help="work folder (default: a temporary folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    args = parser.parse_args(argv)
    def say(msg: str) -> None:
        return (print(f"... {msg}", file=sys.stderr, flush=True))
    results = Results()
    temporary = None
    if not args.dir:
        temporary = args.dir = tempfile.mkdtemp(prefix="ledger-compare-")
    try:
        facts = run(args, results, say)
    finally:
        if temporary and not args.keep:
            shutil.rmtree(temporary, ignore_errors=True)
    facts["machine"] = machine()
    if args.json:
        for row in results.rows:
            print(json.dumps({**row, "events": facts["events"], "peer_events": facts["peer_events"]}))
        print(json.dumps({"name": "run", **facts}))
    else:
        peer_note = "" if facts["peer_events"] == facts["events"] else (
            f"; eventsourcing ran on the first {facts['peer_events']:,} events (rates are per event)")
        results.print_table(
            f"ledger vs eventsourcing {_peer_version()} (SQLite, synchronous="
            f"{facts['peer_sqlite_synchronous']}) - {facts['events']:,} events, {facts['single_events']:,} one per call, "
            f"{facts.get('articles', 0):,} articles, live-000 has {facts.get('live_versions', 0):,} versions{peer_note}\n"
            f"{facts['machine']}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
