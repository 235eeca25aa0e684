"""What a pre-allocated log tail would give one-event appends (issue 16, row 1): measured, not built.

    python benchmarks/bench_log_tail.py [--events 2000]

Row 1 compares ledger's one-event appends with the machine's ceiling, the same lines written
one per `write` + `fdatasync` to a file that grows. On ext4 a sync that grows the file commits
the journal (the size changed); one that overwrites bytes already allocated and written does
not. A log with a pre-allocated tail (zeros written and synced ahead, in large steps; each
append overwrites the next bytes, its last record being the commit marker, and readers stop at
the first zero byte) would pay the cheaper sync. This takes turns of 100 events, as
`compare.py` does, between: ledger's appends (real: durable when they return); the ceiling
(the lines ledger wrote, appended with a sync each); and the same lines overwriting a region
written and synced beforehand (a sync each); and the same lines written into space reserved
with `posix_fallocate` (zeros the file system hands out without writing them: no filler to
write). It prints each rate and ledger's rate projected with the overwrite's sync instead of its
own (ledger's time less the ceiling's, plus the overwrite's), as a share of the ceiling, and the
same with the reserved space's sync.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import generate

import ledger

_STEP = 4 << 20


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--dir", help="work folder (default: a temporary folder on the disk of the current one)")
    args = parser.parse_args()
    events = list(generate.events(args.events, 1))
    base = Path(tempfile.mkdtemp(prefix="ledger-tail-", dir=args.dir or "."))
    clock = {"ledger": 0.0, "append": 0.0, "overwrite": 0.0, "reserved": 0.0}
    try:
        grows = os.open(base / "grows", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        tail = os.open(base / "tail", os.O_WRONLY | os.O_CREAT, 0o644)
        reserved = os.open(base / "reserved", os.O_WRONLY | os.O_CREAT, 0o644)
        ahead = reserved_ahead = 0
        at = reserved_at = 0
        with ledger.open(base / "store", create=True) as led:
            log_path = base / "store" / "events.jsonl"
            for i in range(0, len(events), 100):
                offset = log_path.stat().st_size
                started = time.perf_counter()
                for event in events[i : i + 100]:
                    led.append([event])
                clock["ledger"] += time.perf_counter() - started
                with open(log_path, "rb") as log:
                    log.seek(offset)
                    lines = log.readlines()
                started = time.perf_counter()
                for line in lines:
                    os.write(grows, line)
                    os.fdatasync(grows)
                clock["append"] += time.perf_counter() - started
                # The tail is written ahead in large steps, untimed: one sync per 4 MB.
                while ahead < at + sum(map(len, lines)):
                    os.pwrite(tail, bytes(_STEP), ahead)
                    ahead += _STEP
                    os.fsync(tail)
                started = time.perf_counter()
                for line in lines:
                    os.pwrite(tail, line, at)
                    os.fdatasync(tail)
                    at += len(line)
                clock["overwrite"] += time.perf_counter() - started
                # Reserved ahead in the same steps, untimed: one sync per 4 MB for the new size.
                while reserved_ahead < reserved_at + sum(map(len, lines)):
                    os.posix_fallocate(reserved, reserved_ahead, _STEP)
                    reserved_ahead += _STEP
                    os.fsync(reserved)
                started = time.perf_counter()
                for line in lines:
                    os.pwrite(reserved, line, reserved_at)
                    os.fdatasync(reserved)
                    reserved_at += len(line)
                clock["reserved"] += time.perf_counter() - started
        os.close(grows)
        os.close(tail)
        os.close(reserved)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    n = len(events)
    rate = {name: n / seconds for name, seconds in clock.items()}
    projected = n / (clock["ledger"] - clock["append"] + clock["overwrite"])
    projected_reserved = n / (clock["ledger"] - clock["append"] + clock["reserved"])
    print(f"{n:,} events, one per call; per append: ledger {clock['ledger'] / n * 1e6:.0f} µs, write + fdatasync appending "
          f"{clock['append'] / n * 1e6:.0f} µs, overwriting {clock['overwrite'] / n * 1e6:.0f} µs, into reserved space "
          f"{clock['reserved'] / n * 1e6:.0f} µs")
    print(f"ledger {rate['ledger']:,.0f}/s = {rate['ledger'] / rate['append']:.0%} of the ceiling ({rate['append']:,.0f}/s); "
          f"with an overwriting sync: {projected:,.0f}/s = {projected / rate['append']:.0%} of it; "
          f"with a sync into reserved space: {projected_reserved:,.0f}/s = {projected_reserved / rate['append']:.0%}")


if __name__ == "__main__":
    main()
