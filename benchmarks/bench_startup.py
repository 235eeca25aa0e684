"""How long the `ledger` command takes to start and run a small command, as a real process.

Every command loads only what it needs (issue 14): this measures it. Run:

    python benchmarks/bench_startup.py [--runs 15] [--baseline DIR]

It creates a small store in a temporary folder (three articles, a few events each), then runs
each command `--runs` times and prints the wall-clock median (and the fastest run) beside its
target and its ratio to `python -c pass` (the machine's floor: starting an interpreter at all),
the median CPU time (user + system) of the process, and the `-X importtime` totals of `import
ledger_cli.main` (what `--help` pays) and of `import ledger.application` (what `show`,
`history` and `append` pay on top). Bytecode caches are used as an installed package has them
(PYTHONDONTWRITEBYTECODE is dropped from the environment). Run it with the Python of the
environment that has the `ledger` command installed.

`--baseline DIR` compares with another checkout of the project (such as a `git worktree` of
main) in the same run: on a shared machine the load moves between runs, so only figures taken
together compare. Each checkout then runs from its own folder (`ledger` and `ledger_cli` put
first on PYTHONPATH, both started the same way: `python -c "from ledger_cli.main import main;
..."`, which skips the console script's own few milliseconds) on a store it made itself, the two
alternating command by command, and the ratio this/baseline of each median is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TARGETS_MS = {"--help": 150, "--version": 150, "show": 300, "history": 300, "append": 350}
ROOT = Path(__file__).resolve().parent.parent
LAUNCH = "import sys\nfrom ledger_cli.main import main\nsys.exit(main())"


@dataclass
class Side:
    """One checkout under test: how to start its `ledger`, its environment and its timings."""

    name: str
    ledger: list[str]
    env: dict[str, str]
    folder: Path
    one: Path
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)


def _installed_ledger() -> list[str]:
    # The console script beside this interpreter, else the module run by it.
    script = Path(sys.executable).with_name("ledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ledger_cli.main"]


def _run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) milliseconds of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def _import_ms(side: Side, module: str) -> float:
    # The cumulative time of the top-level import is the last line for that module.
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], env=side.env, cwd=side.folder, check=True, capture_output=True, text=True)
    total = 0
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (.*)$", line)
        if match and match.group(2) == module:
            total = int(match.group(1))
    return total / 1000


def _side(name: str, checkout: Path | None, tmp: Path, base_env: dict[str, str]) -> Side:
    """A checkout (None: the installed `ledger`) with a small store of its own."""
    folder = tmp / name
    folder.mkdir()
    env = {**base_env, "LEDGER_STORE": str(folder / "store")}
    if checkout is None:
        ledger = _installed_ledger()
    else:
        # The checkout's packages under their installed names, found before any installed copy.
        path = folder / "path"
        path.mkdir()
        (path / "ledger").symlink_to(checkout / "ledger", target_is_directory=True)
        (path / "ledger_cli").symlink_to(checkout / "cli", target_is_directory=True)
        env["PYTHONPATH"] = str(path)
        ledger = [sys.executable, "-c", LAUNCH]
        found = subprocess.run([sys.executable, "-c", "import ledger, ledger_cli; print(ledger.__file__); print(ledger_cli.__file__)"],
                               env=env, cwd=folder, check=True, capture_output=True, text=True).stdout.split()
        assert all(Path(file).is_relative_to(path) for file in found), f"{name} runs {found}, not {checkout}"
    # Run in its folder: `python -c` puts the working folder first on sys.path, where a checkout
    # of the project would be found before the one under test.
    subprocess.run([*ledger, "init"], env=env, cwd=folder, check=True, capture_output=True)
    events = []
    for n in range(3):
        events.append({"type": "ArticleCreated", "article": f"a{n}", "data": {"title": f"Article {n}", "body": "First paragraph.\n\nSecond one.\n"}})
        events.append({"type": "ArticleEdited", "article": f"a{n}", "data": {"body": "First paragraph, edited.\n\nSecond one.\n"}})
    seed = folder / "seed.jsonl"
    seed.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    subprocess.run([*ledger, "append", str(seed)], env=env, cwd=folder, check=True, capture_output=True)
    return Side(name, ledger, env, folder, folder / "one.jsonl")


def _commands(side: Side) -> dict[str, list[str]]:
    return {
        "--help": [*side.ledger, "--help"],
        "--version": [*side.ledger, "--version"],
        "show": [*side.ledger, "show", "a1"],
        "history": [*side.ledger, "history", "a1"],
        "append": [*side.ledger, "append", str(side.one)],
    }


def _measure(sides: list[Side], runs: int) -> None:
    """Run every command `runs` times on each side, the sides alternating (and which goes first
    alternating too), keeping each run's wall-clock and CPU milliseconds."""
    for name in TARGETS_MS:
        for run in range(runs):
            for side in sides if run % 2 == 0 else reversed(sides):
                if name == "append":
                    # A new title each run: an edit that changes nothing records nothing (exit 9).
                    side.one.write_text(json.dumps({"type": "ArticleEdited", "article": "a0", "data": {"title": f"Title {run}"}}) + "\n", encoding="utf-8")
                wall, cpu = _run(_commands(side)[name], side.env, side.folder)
                side.wall.setdefault(name, []).append(wall)
                side.cpu.setdefault(name, []).append(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (the median is printed)")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="another checkout of the project to compare with, in the same run")
    args = parser.parse_args()
    # With bytecode caches, as an installed package runs.
    kept = {name: value for name, value in os.environ.items() if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env = {**kept, "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory(prefix="ledger-startup-") as tmp:
        sides = [_side("this", None if args.baseline is None else ROOT, Path(tmp), env)]
        if args.baseline is not None:
            sides.append(_side("baseline", args.baseline.resolve(), Path(tmp), env))
        floor = statistics.median(_run([sys.executable, "-c", "pass"], env, Path(tmp))[0] for _ in range(args.runs))
        print(f"python -c pass (floor): {floor:7.1f} ms   load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
        _measure(sides, args.runs)
        this = sides[0]
        for name, target in TARGETS_MS.items():
            median, cpu = statistics.median(this.wall[name]), statistics.median(this.cpu[name])
            verdict = "ok" if median <= target else "OVER"
            line = f"ledger {name:<10} {median:7.1f} ms (fastest {min(this.wall[name]):5.1f})  target {target} ms  {verdict:<4}  {median / floor:5.1f}x floor  CPU {cpu:6.1f} ms"
            if len(sides) > 1:
                base = sides[1]
                base_median, base_cpu = statistics.median(base.wall[name]), statistics.median(base.cpu[name])
                line += f"  | baseline {base_median:7.1f} ms (fastest {min(base.wall[name]):5.1f}), CPU {base_cpu:6.1f} ms"
                line += f"  | this/baseline {median / base_median:.2f}, fastest {min(this.wall[name]) / min(base.wall[name]):.2f}, CPU {cpu / base_cpu:.2f}"
            print(line)
        for module in ("ledger_cli.main", "ledger.application"):
            for side in sides:
                imports = statistics.median(_import_ms(side, module) for _ in range(args.runs))
                label = "" if len(sides) == 1 else f" ({side.name})"
                print(f"-X importtime of {module}{label}: {imports:7.1f} ms (median of {args.runs})")
        print(f"load average {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
