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
write); and the same lines appended into space reserved past the end with `fallocate`'s
`FALLOC_FL_KEEP_SIZE` (the file keeps its true size, so readers would see no zeros: the
reservation a format change could do without). It prints each rate and ledger's rate projected
with the overwrite's sync instead of its own (ledger's time less the ceiling's, plus the
overwrite's), as a share of the ceiling, and the same with each reserved space's sync.
"""

from __future__ import annotations

import argparse
import ctypes
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
_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE (linux/falloc.h): blocks reserved past the end, size unchanged


def _fallocate_keep_size(fd: int, offset: int, length: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    if libc.fallocate(fd, _KEEP_SIZE, offset, length) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class _Tail:
    """A log whose tail is made ahead, untimed, in steps of `_STEP` (one sync each): zeros written
    and synced (`how` "zeros"), space reserved with `posix_fallocate` ("reserve"), lines then
    overwriting it; or space reserved past the end, the size kept ("keep"), lines appended."""

    def __init__(self, path: Path, how: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.how = how
        self.ahead = 0
        self.at = 0

    def make_room(self, size: int) -> None:
        """Make the tail reach `size` bytes past what is written."""
        while self.ahead < self.at + size:
            if self.how == "reserve":
                os.posix_fallocate(self.fd, self.ahead, _STEP)
            elif self.how == "keep":
                _fallocate_keep_size(self.fd, self.ahead, _STEP)
            else:
                os.pwrite(self.fd, bytes(_STEP), self.ahead)
            self.ahead += _STEP
            os.fsync(self.fd)

    def write(self, lines: list[bytes]) -> float:
        """Write `lines` one per `pwrite` + `fdatasync`; returns the seconds it took."""
        started = time.perf_counter()
        for line in lines:
            os.pwrite(self.fd, line, self.at)
            os.fdatasync(self.fd)
            self.at += len(line)
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--dir", help="work folder (default: a temporary folder on the disk of the current one)")
    args = parser.parse_args()
    events = list(generate.events(args.events, 1))
    base = Path(tempfile.mkdtemp(prefix="ledger-tail-", dir=args.dir or "."))
    clock = {"ledger": 0.0, "append": 0.0, "overwrite": 0.0, "reserved": 0.0, "kept": 0.0}
    try:
        grows = os.open(base / "grows", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        tails = {"overwrite": _Tail(base / "tail", "zeros"), "reserved": _Tail(base / "reserved", "reserve"),
                 "kept": _Tail(base / "kept", "keep")}
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
                for name, made in tails.items():
                    made.make_room(sum(map(len, lines)))
                    clock[name] += made.write(lines)
        os.close(grows)
        for made in tails.values():
            made.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    n = len(events)
    rate = {name: n / seconds for name, seconds in clock.items()}
    projected = n / (clock["ledger"] - clock["append"] + clock["overwrite"])
    projected_reserved = n / (clock["ledger"] - clock["append"] + clock["reserved"])
    projected_kept = n / (clock["ledger"] - clock["append"] + clock["kept"])
    print(f"{n:,} events, one per call; per append: ledger {clock['ledger'] / n * 1e6:.0f} µs, write + fdatasync appending "
          f"{clock['append'] / n * 1e6:.0f} µs, overwriting {clock['overwrite'] / n * 1e6:.0f} µs, into reserved space "
          f"{clock['reserved'] / n * 1e6:.0f} µs, appending into space reserved past the end {clock['kept'] / n * 1e6:.0f} µs")
    print(f"ledger {rate['ledger']:,.0f}/s = {rate['ledger'] / rate['append']:.0%} of the ceiling ({rate['append']:,.0f}/s); "
          f"with an overwriting sync: {projected:,.0f}/s = {projected / rate['append']:.0%} of it; "
          f"with a sync into reserved space: {projected_reserved:,.0f}/s = {projected_reserved / rate['append']:.0%}; "
          f"appending into space reserved past the end: {projected_kept:,.0f}/s = {projected_kept / rate['append']:.0%}")


if __name__ == "__main__":
    main()
