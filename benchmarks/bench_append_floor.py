"""What appends would reach if the write path did only check, seal, write, sync (issue 16, rows
1, 2 and 2b): a measured floor for the design change those rows need, not built.

    python benchmarks/bench_append_floor.py [--events 3000] [--batched 20000] [--dir DIR]

**One event per call.** Takes turns of 100 events between three writers of the same ~800-byte
`ArticleCreated`s (each a new article, `bench_group_commit`'s events), each append durable when
it returns:

* ledger: `Ledger.append`, as users append;
* the floor: the same checks of the input (the envelope and the type's data, validated as
  `Ledger.append` validates them), the same sealed line (`codec.seal`: the record's JSON, chained
  by SHA-256), one `write` and one `fdatasync` to a log file; the article's version kept in a
  dict. No states folded, no index, no locks, no group commit: what a single compiled pass from
  input to sealed line would leave of today's work;
* raw: the floor's lines written one per `write` + `fdatasync` (`compare.py`'s ceiling for
  row 1, the same code).

**100 events per call.** The generator's stories (`compare.py`'s row 2 workload, the live
articles left out), in turns of 1,000 events between four writers, one `fdatasync` per call:
ledger's `Ledger.append` of 100; the floor's (the same two validations per event, the store's
own time rules and sealing, `store.contract.new_versions` and `store.logfile.seal_append`, one
`write`); the raw ceiling (the floor's lines, 100 per write); and eventsourcing saving the same
100 changes in one transaction (`compare.py`'s peer). The floor checks nothing against the
articles' states (a patch that does not fit, a block that is not there): a lower bound on what
any write path in Python must do.

Prints each one's µs per event (wall and CPU), its share of the raw rate, and for 100 per call
its ratio to the peer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import generate
from bench_group_commit import event
from compare import RawAppender, peer_app, peer_apply

import ledger
from ledger import codec
from ledger.events import EVENT_FIELDS, SCHEMA_VERSIONS, NewRecord, format_time, new_event_ids, validate_data
from ledger.store.contract import new_versions
from ledger.store.logfile import seal_append


class Floor:
    """The floor's writer: validate, seal, write, sync (see the module)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
        self.position = 0
        self.prev = codec.GENESIS_HASH
        self.versions: dict[str, int] = {}
        self.occurred: dict[str, str] = {}
        self.offset = 0
        self.lines: list[bytes] = []

    def append(self, given: dict[str, Any]) -> None:
        """One event, durable when it returns."""
        fields = EVENT_FIELDS.validate_python(given)
        data = validate_data(fields["type"], dict(fields["data"]))
        article = fields["article"]
        version = self.versions.get(article, 0) + 1
        now = format_time(datetime.now(UTC))
        self.position += 1
        record = {
            "pos": self.position, "id": new_event_ids(1)[0], "article": article, "version": version, "type": fields["type"],
            "schema": SCHEMA_VERSIONS[fields["type"]], "recorded_at": now, "occurred_at": now, "data": data, "end": True,
        }
        line, self.prev = codec.seal(record, self.prev)
        os.write(self.fd, line)
        os.fdatasync(self.fd)
        self.versions[article] = version
        self.lines.append(line)

    def append_many(self, events: list[dict[str, Any]]) -> None:
        """One append of `events` (one version per article), durable when it returns."""
        ids = iter(new_event_ids(len(events)))
        records = []
        for given in events:
            fields = EVENT_FIELDS.validate_python(given)
            kind = fields["type"]
            moment = fields.get("occurred_at")
            records.append(NewRecord(next(ids), fields["article"], kind, validate_data(kind, dict(fields.get("data") or {})),
                                     format_time(moment) if moment is not None else None))
        now = format_time(datetime.now(UTC))
        new, times = new_versions(records, self.versions, self.occurred, now)
        lines, sealed = seal_append(records, new, times, now, self.position, self.prev, self.offset)
        data = b"".join(lines)
        os.write(self.fd, data)
        os.fdatasync(self.fd)
        self.position, self.prev = sealed[-1][2]["pos"], sealed[-1][3]
        self.offset += len(data)
        self.versions.update(new)
        self.occurred.update(times)
        self.lines.extend(lines)

    def close(self) -> None:
        """Close the log file."""
        os.close(self.fd)


def _each(append: Callable[[Any], object]) -> Callable[[list[Any]], None]:
    """A writer's turn: `append` called on each item in order."""

    def turn(items: list[Any]) -> None:
        for item in items:
            append(item)

    return turn


def _timed(wall: dict[str, float], cpu: dict[str, float], who: str, work: Callable[[Any], object], items: Any) -> None:
    started, used = time.perf_counter(), time.process_time()
    work(items)
    wall[who] += time.perf_counter() - started
    cpu[who] += time.process_time() - used


def one_per_call(base: Path, n: int) -> None:
    """Row 1: ledger, the floor and raw, one event per call (see the module)."""
    wall = dict.fromkeys(("ledger", "floor", "raw"), 0.0)
    cpu = dict(wall)
    floor = Floor(base / "floor.jsonl")
    raw = RawAppender(base / "raw.jsonl")
    with ledger.open(base / "store", create=True) as led:
        led.append([event("warm")])
        floor.append(event("warm"))
        work: dict[str, Callable[[Any], object]] = {
            "ledger": _each(lambda one: led.append([one])),
            "floor": _each(floor.append),
            "raw": lambda lines: raw.write(lines, 1),
        }
        for turn in range(0, n, 100):
            batch = [event(f"e{n}") for n in range(turn, min(turn + 100, n))]
            written = len(floor.lines)
            order = ("ledger", "floor", "raw") if turn // 100 % 2 == 0 else ("raw", "floor", "ledger")
            for who in order:
                # Raw writes the floor's lines of this turn (written first in the turns that run it last).
                items = batch if who != "raw" else floor.lines[written:] or floor.lines[-len(batch):]
                _timed(wall, cpu, who, work[who], items)
    floor.close()
    raw.close()
    print(f"{n:,} one-event appends each, in turns of 100 (µs per append; share of the raw rate)")
    for who in ("ledger", "floor", "raw"):
        print(f"  {who:<7} wall {wall[who] / n * 1e6:7.0f}  CPU {cpu[who] / n * 1e6:6.0f}  {wall['raw'] / wall[who]:6.0%}")


def batched(base: Path, n: int, size: int = 100) -> None:
    """Row 2: ledger, the floor, raw and eventsourcing, `size` events per call (see the module)."""
    stories = [ev for ev in generate.events(n) if not ev["article"].startswith("live-")]
    calls = list(generate.batches(iter(stories), size))
    wall = dict.fromkeys(("ledger", "floor", "raw", "peer"), 0.0)
    cpu = dict(wall)
    floor = Floor(base / "floor-batched.jsonl")
    raw = RawAppender(base / "raw-batched.jsonl")
    app = peer_app(base / "peer.sqlite")
    aggregates: dict[str, Any] = {}
    ids: dict[str, Any] = {}

    def peer(turn: list[list[dict[str, Any]]]) -> None:
        for call in turn:
            touched = {id(a): a for a in (peer_apply(aggregates, ids, ev) for ev in call)}
            app.save(*touched.values())

    with ledger.open(base / "store-batched", create=True) as led:
        work: dict[str, Callable[[Any], object]] = {
            "ledger": _each(led.append),
            "floor": _each(floor.append_many),
            "raw": lambda lines: raw.write(lines, size),
            "peer": peer,
        }
        for at in range(0, len(calls), 10):
            turn = calls[at : at + 10]
            written = len(floor.lines)
            order = ("ledger", "floor", "raw", "peer") if at // 10 % 2 == 0 else ("peer", "raw", "floor", "ledger")
            for who in order:
                count = sum(map(len, turn))
                items = turn if who != "raw" else floor.lines[written:] or floor.lines[-count:]
                _timed(wall, cpu, who, work[who], items)
        # The index follows the log lazily: its catch-up is part of ledger's cost (as in compare.py).
        _timed(wall, cpu, "ledger", lambda _: led.head(), None)
    app.close()
    floor.close()
    raw.close()
    count = len(stories)
    print(f"{count:,} events each, {size} per call, in turns of {10 * size:,} (µs per event; share of the raw rate; x eventsourcing)")
    for who in ("ledger", "floor", "raw", "peer"):
        print(f"  {who:<7} wall {wall[who] / count * 1e6:7.1f}  CPU {cpu[who] / count * 1e6:6.1f}  {wall['raw'] / wall[who]:6.0%}"
              f"  {wall['peer'] / wall[who]:5.2f}x")


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events appended one per call (default 3,000)")
    parser.add_argument("--batched", type=int, default=20_000, help="generated events for 100 per call (default 20,000)")
    parser.add_argument("--dir", help="work folder (default: a temporary folder on the disk of the current one)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ledger-floor-", dir=args.dir or "."))
    try:
        one_per_call(base, args.events)
        batched(base, args.batched)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
