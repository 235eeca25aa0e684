"""What the shape of event ids costs the index: ledger's time-ordered ids against random UUID4s.

    python benchmarks/index_ids.py [--rows N] [--json]

Both runs index the same rows with the store's own schema and insert code
(`ledger.store.index.LogIndex`: its `open` and `write`), 20,000 per transaction as an
import does, and differ only in the ids: `new_event_ids` (UUIDv7, increasing) or `uuid.uuid4()`.
Prints the cost per row as the index grows and the ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.events import new_event_ids
from ledger.store.index import LogIndex

_PER_TRANSACTION = 20_000
_ARTICLES = 97_000  # as many as the 1M-event generated store has
_TIME = "2024-01-01T00:00:00.000000Z"


def _build(path: Path, rows: int, make_ids: Callable[[int], list[str]]) -> list[tuple[int, float]]:
    """Index `rows` records; returns (rows, microseconds per row) of each transaction."""
    index = LogIndex(path, busy_timeout=10.0, on_memory=lambda: None)
    db = index.open()
    costs: list[tuple[int, float]] = []
    try:
        for start in range(0, rows, _PER_TRANSACTION):
            count = min(_PER_TRANSACTION, rows - start)
            ids = make_ids(count)
            records: list[tuple[int, int, dict[str, Any], str]] = [
                (
                    (start + i) * 700,
                    700,
                    {"pos": start + i + 1, "id": ids[i], "article": f"story-{(start + i) % _ARTICLES:06d}",
                     "version": (start + i) // _ARTICLES + 1, "type": "ArticleEdited", "occurred_at": _TIME, "recorded_at": _TIME},
                    "",
                )
                for i in range(count)
            ]
            began = time.perf_counter()
            db.execute("BEGIN")
            index.write(records)
            db.execute("COMMIT")
            costs.append((count, (time.perf_counter() - began) / count * 1e6))
    finally:
        index.close()
    return costs


def main(argv: list[str] | None = None) -> int:
    """Run both builds and print the table (or JSON with `--json`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="events to index (default 200,000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    kinds: dict[str, Callable[[int], list[str]]] = {
        "time-ordered (ledger)": new_event_ids,
        "random uuid4": lambda n: [str(uuid.uuid4()) for _ in range(n)],
    }
    results: dict[str, list[tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make_ids in kinds.items():
            results[name] = _build(Path(tmp) / f"{len(results)}.sqlite", args.rows, make_ids)
    ours, theirs = results.values()
    every = max(1, len(ours) // 5)
    marks = [(min((i + 1) * _PER_TRANSACTION, args.rows), ours[i][1], theirs[i][1]) for i in range(every - 1, len(ours), every)]
    total = {name: sum(count * cost for count, cost in costs) / 1e6 for name, costs in results.items()}
    if args.json:
        print(json.dumps({"rows": args.rows, "us_per_row": [{"indexed": n, "ledger": round(a, 2), "uuid4": round(b, 2)} for n, a, b in marks],
                          "seconds": {k: round(v, 1) for k, v in total.items()}}))
        return 0
    print(f"indexing {args.rows:,} events, {_PER_TRANSACTION:,} per transaction: microseconds per event")
    print(f"{'index size':>12}  {'time-ordered':>12}  {'uuid4':>8}  {'uuid4 / ours':>12}")
    for n, a, b in marks:
        print(f"{n:>12,}  {a:>12.1f}  {b:>8.1f}  {b / a:>11.1f}x")
    print("total: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in total.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
