"""How long reading a log of a few very long records takes, against reading its bytes.

A record longer than one read chunk (64 KB) used to be copied again with every chunk, so reading
a log of two 50 MB records took minutes (quadratic in the record's length). Run:

    python benchmarks/bench_long_record.py [--mb 50] [--records 2]

It prints `verify` and `store.read` times beside the time to read the file's bytes once (the
ceiling), and their ratio, measured in the same run on the same file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import ledger
from ledger.events import NewRecord
from ledger.store import LOG_FILE, FileEventStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="size of each record's body in MB")
    parser.add_argument("--records", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-long-") as tmp:
        root = ledger.init(Path(tmp) / "store")
        body = "x" * (args.mb * 1024 * 1024)
        # The store itself takes any size: the limits on events are the application's.
        store = FileEventStore(root)
        for n in range(args.records):
            store.append([NewRecord(id=str(uuid.uuid4()), article=f"a{n}", type="ArticleCreated", data={"title": "T", "body": body})])
        store.close()
        log = root / LOG_FILE
        started = time.perf_counter()
        with log.open("rb") as handle:
            while handle.read(1 << 20):
                pass
        ceiling = time.perf_counter() - started
        store = FileEventStore(root)
        started = time.perf_counter()
        report = store.verify()
        verify = time.perf_counter() - started
        started = time.perf_counter()
        count = sum(1 for _ in store.read())
        read = time.perf_counter() - started
        store.close()
        assert report.ok and count == args.records
        size = log.stat().st_size / 1e6
        print(f"log: {size:.0f} MB in {args.records} records")
        print(f"read the bytes (ceiling): {ceiling:.2f} s")
        print(f"verify:                   {verify:.2f} s  ({verify / ceiling:.1f}x the ceiling)")
        print(f"store.read:               {read:.2f} s  ({read / ceiling:.1f}x the ceiling)")


if __name__ == "__main__":
    main()
