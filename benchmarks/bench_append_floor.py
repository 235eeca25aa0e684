"""What one-event appends would reach if the write path did only check, seal, write, sync
(issue 16, row 1): a measured floor for the design change that row needs, not built.

    python benchmarks/bench_append_floor.py [--events 3000] [--dir DIR]

Takes turns of 100 events between three writers of the same ~800-byte `ArticleCreated`s (each a
new article, `bench_group_commit`'s events), each append durable when it returns:

* ledger: `Ledger.append`, as users append;
* the floor: the same checks of the input (the envelope and the type's data, validated as
  `Ledger.append` validates them), the same sealed line (`codec.seal`: the record's JSON, chained
  by SHA-256), one `write` and one `fdatasync` to a log file; the article's version kept in a
  dict. No states folded, no index, no locks, no group commit: what a single compiled pass from
  input to sealed line would leave of today's work;
* raw: the floor's lines written one per `write` + `fdatasync` (`compare.py`'s ceiling for
  row 1, the same code).

Prints each one's µs per append (wall and CPU) and its share of the raw rate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_group_commit import event
from compare import RawAppender

import ledger
from ledger import codec
from ledger.events import EVENT_FIELDS, SCHEMA_VERSIONS, format_time, new_event_ids, validate_data


class Floor:
    """The floor's writer: validate, seal, write, sync (see the module)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
        self.position = 0
        self.prev = codec.GENESIS_HASH
        self.versions: dict[str, int] = {}
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

    def close(self) -> None:
        """Close the log file."""
        os.close(self.fd)


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--dir", help="work folder (default: a temporary folder on the disk of the current one)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ledger-floor-", dir=args.dir or "."))
    wall = {"ledger": 0.0, "floor": 0.0, "raw": 0.0}
    cpu = {"ledger": 0.0, "floor": 0.0, "raw": 0.0}
    try:
        floor = Floor(base / "floor.jsonl")
        raw = RawAppender(base / "raw.jsonl")
        with ledger.open(base / "store", create=True) as led:
            led.append([event("warm")])
            floor.append(event("warm"))
            for turn in range(0, args.events, 100):
                batch = [event(f"e{n}") for n in range(turn, min(turn + 100, args.events))]
                written = len(floor.lines)
                order = ("ledger", "floor", "raw") if turn // 100 % 2 == 0 else ("raw", "floor", "ledger")
                for who in order:
                    started, used = time.perf_counter(), time.process_time()
                    if who == "ledger":
                        for one in batch:
                            led.append([one])
                    elif who == "floor":
                        for one in batch:
                            floor.append(one)
                    else:
                        # The floor's lines of this turn (written first in the turns that run it last).
                        raw.write(floor.lines[written:] or floor.lines[-len(batch):], 1)
                    wall[who] += time.perf_counter() - started
                    cpu[who] += time.process_time() - used
        floor.close()
        raw.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    n = args.events
    print(f"{n:,} one-event appends each, in turns of 100 (µs per append; share of the raw rate)")
    for who in ("ledger", "floor", "raw"):
        print(f"  {who:<7} wall {wall[who] / n * 1e6:7.0f}  CPU {cpu[who] / n * 1e6:6.0f}  {wall['raw'] / wall[who]:6.0%}")


if __name__ == "__main__":
    main()
