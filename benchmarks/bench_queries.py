"""The big-store queries through the public API, in one warm process (the views caught up first).

    python benchmarks/bench_queries.py STORE [--repeat N] [--since 2024-06-01]

Build STORE with `benchmarks/generate.py --events 1000000`. Prints the median and best of N
calls of `Ledger.categories`, `stats`, `articles` and `updated_since`: what `ledger categories`,
`stats`, `articles` and `updated --since` run (their process start-up comes on top;
`bench_startup.py` measures that), whole and as pages of 50 (what the commands show on a
terminal), and the counts behind their "N more" notes. Target: each under 100 ms on the 1M store.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import ledger


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--since", default="2024-06-01")
    args = parser.parse_args()
    with ledger.open(args.store) as led:
        started = time.perf_counter()
        led.catalog.refresh()
        print(f"catching the views up: {(time.perf_counter() - started) * 1000:,.0f} ms")
        queries: dict[str, Callable[[], Any]] = {
            "categories": led.categories,
            "stats": led.stats,
            "articles (all)": led.articles,
            "articles, first page of 50": lambda: led.articles(limit=50),
            "articles, page at 50,000": lambda: led.articles(limit=50, offset=50_000),
            "articles, last page": lambda: led.articles(limit=50, offset=led.count_articles() - 50),
            "count_articles": led.count_articles,
            f"updated --since {args.since} (all)": lambda: led.updated_since(args.since),
            "updated, first page of 50": lambda: led.updated_since(args.since, limit=50),
            "updated, page at 10,000": lambda: led.updated_since(args.since, limit=50, offset=10_000),
            "count_updated_since": lambda: led.count_updated_since(args.since),
        }
        for name, call in queries.items():
            times = []
            rows = 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                out = call()
                times.append(time.perf_counter() - started)
                rows = len(out) if isinstance(out, list) else 1
            print(f"{name:<36} median {statistics.median(times) * 1000:8.1f} ms, best {min(times) * 1000:8.1f} ms ({rows:,} rows)")


if __name__ == "__main__":
    main()
