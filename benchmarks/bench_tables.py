"""What writing out unshowable characters (`ledger_cli.output.shown`) costs a long piped table.

Every cell of a table and every `log` line goes through `shown`, which writes control
characters, line separators and reordering marks out as escapes. This times `table()` piped to
/dev/null for `--rows` rows shaped like `ledger log`'s (seven cells of ASCII and accented text),
with `shown` as it is and with it replaced by the identity, the two alternating `--rounds`
times, and prints the medians and their ratio. Run:

    python benchmarks/bench_tables.py [--rows 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from ledger_cli import output


def _rows(count: int) -> list[list[object]]:
    return [
        [n, f"article-{n % 5000}", n // 5000 + 1, "ArticleEdited", "2026-12-04 21:06:01 +0000", "Rédaction locale", "typo fixed"]
        for n in range(1, count + 1)
    ]


def _time(rows: list[list[object]], shown: Callable[[str], str]) -> float:
    """Seconds to write `rows` as a piped table with `shown` as the escaping."""
    real = output.shown
    output.shown = shown
    saved = sys.stdout
    try:
        with open(os.devnull, "w", encoding="utf-8") as sink:
            sys.stdout = sink
            started = time.perf_counter()
            output.table(["pos", "article", "ver", "type", "occurred", "actor", "reason"], iter(rows))
            return time.perf_counter() - started
    finally:
        sys.stdout = saved
        output.shown = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("COLUMNS", None)  # piped and unbounded: the plain writer, as `ledger log | ...`
    rows = _rows(args.rows)
    escaped: list[float] = []
    plain: list[float] = []
    for _ in range(args.rounds):
        escaped.append(_time(rows, output.shown))
        plain.append(_time(rows, lambda text: text))
    a, b = statistics.median(escaped), statistics.median(plain)
    print(f"{args.rows:,} rows: with shown {a:.3f} s, without {b:.3f} s, ratio {a / b:.3f}x "
          f"({(a - b) / args.rows / 7 * 1e9:.0f} ns a cell)")


if __name__ == "__main__":
    main()
