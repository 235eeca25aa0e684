"""Where an append's CPU goes, per event, by part of `Ledger.append` (issue 16, rows 1 and 2).

    python benchmarks/bench_append_parts.py [--events 20000]

Appends the generator's events inside `bulk()` (no sync per append: the CPU alone), 100 per call
(the stories, as `compare.py` batches them) and then 1 per call (the live articles' events), and
adds up the process's CPU time spent in each part: the two validations (the envelope, then
the type's data, each a TypeAdapter over TypedDicts giving plain dicts), reading states (a
cache miss folds what this process wrote from memory), `prepare` as a whole, the store's
append (sealing inside it) and remembering the states; then the index's catch-up at the next
read. Timing each call adds ~0.5 µs per timed call: the parts are
slightly inflated, the total too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import generate

import ledger
from ledger import decisions, states
from ledger.store import file as store_file

_spent: dict[str, float] = {}


def _timed(owner: Any, name: str, label: str) -> None:
    """Replace `owner.name` by the same callable adding its CPU time to `_spent[label]`."""
    inner: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            _spent[label] = _spent.get(label, 0.0) + time.process_time() - started

    setattr(owner, name, timed)


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    everything = list(generate.events(args.events))
    stories = list(generate.batches(iter([e for e in everything if not e["article"].startswith("live-")]), 100))
    live = [[e] for e in everything if e["article"].startswith("live-")]
    parts = [
        (decisions, "parse_event", "validation 1: the envelope"),
        (states.StateCache, "current", "reading states"),
        (decisions, "prepare", "prepare (validation 2 included)"),
        (decisions, "validate_data", "  validation 2: the type's data"),
        (decisions, "NewRecord", "  NewRecord (a named tuple)"),
        (store_file.FileEventStore, "append", "the store's append"),
        (store_file, "seal_append", "  of which sealing"),
        (states.StateCache, "remember", "remembering states"),
    ]
    for owner, name, label in parts:
        _timed(owner, name, label)
    for mode, appends in (("100 per call", stories), ("1 per call", live)):
        _spent.clear()
        _spent.update((label, 0.0) for _, _, label in parts)  # printed in this order
        with tempfile.TemporaryDirectory() as folder, ledger.open(Path(folder) / "store", create=True) as led:
            with led.bulk():
                started = time.process_time()
                for events in appends:
                    led.append(events)
                total = time.process_time() - started
            started = time.process_time()
            led.head()
            _spent["the index's catch-up at the next read"] = time.process_time() - started
        count = sum(len(events) for events in appends)
        print(f"{mode}: {count:,} events, {total / count * 1e6:.1f} µs of CPU per event in all")
        for label, seconds in _spent.items():
            print(f"  {label:<44} {seconds / count * 1e6:6.1f} µs")


if __name__ == "__main__":
    main()
