"""How long the `ledger` command takes to start and run a small command, as a real process.

Every command loads only what it needs (issue 14): this measures it. Run:

    python benchmarks/bench_startup.py [--runs 15]

It creates a small store in a temporary folder (three articles, a few events each), then runs
each command `--runs` times and prints the wall-clock median beside its target and its ratio to
`python -c pass` (the machine's floor: starting an interpreter at all), and the `-X importtime`
totals of `import ledger_cli.main` (what `--help` pays) and of `import ledger.application` (what
`show`, `history` and `append` pay on top). Bytecode caches are used as an installed package
has them (PYTHONDONTWRITEBYTECODE is dropped from the environment). Run it with the Python of
the environment that has the `ledger` command installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGETS_MS = {"--help": 150, "--version": 150, "show": 300, "history": 300, "append": 350}


def _ledger() -> list[str]:
    # The console script beside this interpreter, else the module run by it.
    script = Path(sys.executable).with_name("ledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger_cli.main"]


def _median_ms(command: list[str], runs: int, env: dict[str, str], before: Callable[[int], None] | None = None) -> float:
    times = []
    for run in range(runs):
        if before is not None:
            before(run)
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _import_ms(env: dict[str, str], module: str) -> float:
    # The cumulative time of the top-level import is the last line for that module.
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env, check=True, capture_output=True, text=True)
    total = 0
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (.*)$", line)
        if match and match.group(2) == module:
            total = int(match.group(1))
    return total / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (the median is printed)")
    args = parser.parse_args()
    ledger = _ledger()
    with tempfile.TemporaryDirectory(prefix="ledger-startup-") as tmp:
        store = Path(tmp) / "store"
        # With bytecode caches, as an installed package runs.
        kept = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        env = {**kept, "LEDGER_STORE": str(store), "NO_COLOR": "1"}
        subprocess.run([*ledger, "init"], env=env, check=True, capture_output=True)
        events = []
        for n in range(3):
            events.append({"type": "ArticleCreated", "article": f"a{n}", "data": {"title": f"Article {n}", "body": "First paragraph.\n\nSecond one.\n"}})
            events.append({"type": "ArticleEdited", "article": f"a{n}", "data": {"body": "First paragraph, edited.\n\nSecond one.\n"}})
        seed = Path(tmp) / "seed.jsonl"
        seed.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
        subprocess.run([*ledger, "append", str(seed)], env=env, check=True, capture_output=True)
        one = Path(tmp) / "one.jsonl"

        def new_title(run: int) -> None:
            # A new title each run: an edit that changes nothing records nothing (exit 9).
            one.write_text(json.dumps({"type": "ArticleEdited", "article": "a0", "data": {"title": f"Title {run}"}}) + "\n", encoding="utf-8")

        floor = _median_ms([sys.executable, "-c", "pass"], args.runs, env)
        commands = {
            "--help": [*ledger, "--help"],
            "--version": [*ledger, "--version"],
            "show": [*ledger, "show", "a1"],
            "history": [*ledger, "history", "a1"],
            "append": [*ledger, "append", str(one)],
        }
        print(f"python -c pass (floor): {floor:7.1f} ms")
        for name, command in commands.items():
            median = _median_ms(command, args.runs, env, new_title if name == "append" else None)
            target = TARGETS_MS[name]
            verdict = "ok" if median <= target else "OVER"
            print(f"ledger {name:<10} {median:7.1f} ms  target {target} ms  {verdict:<4}  {median / floor:5.1f}x floor")
        for module in ("ledger_cli.main", "ledger.application"):
            imports = statistics.median(_import_ms(env, module) for _ in range(args.runs))
            print(f"-X importtime of {module}: {imports:7.1f} ms (median of {args.runs})")


if __name__ == "__main__":
    main()
