"""How long blame and search take, and how big the text index is (issue 15).

Blame: a long article of 1,000 versions (word edits in a growing body, update blocks) is built
in a temporary store; blame of version 1,000 is timed cold (no text index yet: the index is
built and 1,000 events folded), warm (snapshots kept), and in a new `Ledger` (snapshots read
from text.sqlite), against reading the article at that version.

Search (with `--store`, a store made by `benchmarks/generate.py`): the views and the text index
rebuilt, their sizes, and searches of phrases taken from the store's articles, of a common word
and of a phrase that is nowhere.

With `--caught-up EVENTS`: a store of that many generated events whose text index is caught up
every 2,000 events and never rebuilt (how it grows in use): the catch-ups' time and its size.

    python benchmarks/bench_blame.py [--versions 1000] [--store /tmp/gen1m [--no-rebuild]] [--no-blame] [--caught-up 100000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ledger

WORDS = [
    "minister", "police", "bridge", "harbour", "council", "river", "storm", "election", "city", "officials",
    "said", "today", "night", "workers", "ferry", "road", "union", "talks", "strike", "report", "court",
    "judge", "vote", "budget", "health", "school", "water",
]


def _timed(work: Callable[[], object], runs: int) -> float:
    """Median wall-clock milliseconds of `runs` calls."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _cpu(work: Callable[[], object], runs: int) -> float:
    """Median milliseconds of this process's CPU time over `runs` calls (steadier than the wall
    clock on cores shared with other work)."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "."


def build(root: Path, versions: int) -> None:
    """A store at `root` with the long article `live` of `versions` versions."""
    rng = random.Random(15)
    paragraphs = [" ".join(_sentence(rng) for _ in range(4)) for _ in range(20)]
    ledger.init(root)
    with ledger.open(root) as led, led.bulk():
        led.append([{"type": "ArticleCreated", "article": "live", "data": {"title": "Live: the storm", "body": "\n\n".join(paragraphs) + "\n"}}])
        blocks = 0
        for version in range(2, versions + 1):
            if version % 25 == 0:
                blocks += 1
                event = {"type": "UpdateBlockAdded", "article": "live", "data": {"heading": f"Update {blocks}:", "text": "\n" + _sentence(rng) + "\n"}}
            else:
                if version % 10 == 0:
                    paragraphs.insert(rng.randrange(len(paragraphs) + 1), _sentence(rng))
                else:
                    index = rng.randrange(len(paragraphs))
                    words = paragraphs[index].split(" ")
                    for _ in range(rng.randint(1, 3)):
                        words[rng.randrange(len(words))] = rng.choice(WORDS)
                    changed = " ".join(words)
                    # A replacement may draw the word it replaces: then a word is added.
                    paragraphs[index] = changed if changed != paragraphs[index] else changed + " " + rng.choice(WORDS)
                event = {"type": "ArticleEdited", "article": "live", "data": {"body": "\n\n".join(paragraphs) + "\n"}}
            led.append([{**event, "actor": f"editor {version % 7}", "reason": f"edit {version}"}])


def bench_blame(versions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-blame-") as folder:
        root = Path(folder) / "store"
        build(root, versions)
        size = len(ledger.render(ledger.open(root).article("live")))
        with ledger.open(root) as led:
            start = time.perf_counter()
            blame = led.blame("live", version=versions)
            cold = (time.perf_counter() - start) * 1000
            warm = _timed(lambda: led.blame("live", version=versions), 20)
            warm_cpu = _cpu(lambda: led.blame("live", version=versions), 20)
            middle = _timed(lambda: led.blame("live", version=versions // 2 + 7), 20)
            article = _timed(lambda: led.article("live", versions), 20)

        def fresh() -> None:
            with ledger.open(root) as other:
                other.blame("live", version=versions)

        def fresh_article() -> None:
            with ledger.open(root) as other:
                other.article("live", versions)

        reopened = _timed(fresh, 5)
        reopened_article = _timed(fresh_article, 5)
        print(f"article of {versions} versions: {size:,} characters rendered, {len(blame.spans):,} spans, {len({s.version for s in blame.spans})} versions named")
        print(f"blame v{versions}, cold (index built, {versions} events folded): {cold:.1f} ms")
        print(f"blame v{versions}, warm: {warm:.2f} ms, CPU time {warm_cpu:.2f} ms (article v{versions}: {article:.2f} ms)")
        print(f"blame v{versions // 2 + 7}, warm: {middle:.2f} ms")
        print(f"blame v{versions} in a new Ledger: {reopened:.1f} ms (article in a new Ledger: {reopened_article:.1f} ms)")


def _used(path: Path) -> int:
    """Bytes of a SQLite file's pages in use, after its WAL is checkpointed (a rebuild leaves
    free pages behind, which the next writes reuse)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_count", "freelist_count", "page_size"))
    finally:
        db.close()
    return int((pages - free) * size)


def _parts(path: Path) -> str:
    """Megabytes of each table of a SQLite file, its indexes counted with it, largest first."""
    db = sqlite3.connect(path)
    try:
        owners = dict(db.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
        sizes: dict[str, int] = {}
        for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owners.get(name, name)
            table = next((fts for fts in ("sentences_fts", "lines_fts") if table.startswith(fts)), table)
            sizes[table] = sizes.get(table, 0) + size
    finally:
        db.close()
    return ", ".join(f"{name} {size / 1e6:.1f}" for name, size in sorted(sizes.items(), key=lambda item: -item[1]) if size >= 100_000)


def bench_search(store: Path, rebuild: bool) -> None:
    with ledger.open(store) as led:
        events = led.head().position
        if rebuild:
            start = time.perf_counter()
            led.catalog.rebuild()
            views_seconds = time.perf_counter() - start
            start = time.perf_counter()
            led.text_index.rebuild()
            text_seconds = time.perf_counter() - start
            print(f"rebuild: views {views_seconds:.1f} s, text index {text_seconds:.1f} s")
        views, text = _used(store / "views.sqlite"), _used(store / "text.sqlite")
        print(f"store: {events:,} events, {len(led.store.articles()):,} articles")
        print(f"size: views.sqlite {views / 1e6:.1f} MB, text.sqlite {text / 1e6:.1f} MB ({text / views:.0%} of the views)")
        print(f"text.sqlite by table (MB): {_parts(store / 'text.sqlite')}")
        rng = random.Random(15)
        names = sorted(led.store.articles())
        led.search("warm up the index")
        for size in (3, 5):
            phrases = []
            while len(phrases) < 20:
                view = led.article(rng.choice(names))
                words = view.body.split()
                if len(words) > size:
                    at = rng.randrange(len(words) - size + 1)
                    phrases.append(" ".join(words[at : at + size]))
            timings = []
            hits = []
            for phrase in phrases:
                start = time.perf_counter()
                hits.append(len(led.search(phrase)))
                timings.append((time.perf_counter() - start) * 1000)
            print(
                f"search of 20 {size}-word phrases from the articles: median {statistics.median(timings):.1f} ms,"
                f" max {max(timings):.1f} ms; stretches found: median {statistics.median(hits):.0f}, max {max(hits)}"
            )
        one = rng.choice(names)
        print(f"the last phrases within one article (--article): median {_timed(lambda: [led.search(p, article=one) for p in phrases[:5]], 3) / 5:.1f} ms")
        for phrase in ("minister", "no such phrase anywhere"):
            found = len(led.search(phrase))
            print(f"search {phrase!r}: {_timed(lambda phrase=phrase: led.search(phrase), 3):.1f} ms ({found:,} stretches)")


def bench_caught_up(events: int) -> None:
    """A store of `events` generated events written as `generate.py` writes them, the text index
    caught up (a search) every 2,000 events and never rebuilt, as a newsroom's index grows: the
    time the catch-ups took and the index's size against the views'."""
    sys.path.insert(0, str(Path(__file__).parent))
    from generate import batches
    from generate import events as generated

    with tempfile.TemporaryDirectory(prefix="ledger-caught-up-") as folder:
        root = Path(folder) / "store"
        done = caught = 0
        spent = 0.0

        def caught_up(led: ledger.Ledger) -> None:
            nonlocal spent, caught
            start = time.perf_counter()
            led.search("minister said")
            spent += time.perf_counter() - start
            caught = done

        with ledger.open(root, create=True) as led:

            def stories() -> Iterator[dict[str, Any]]:
                nonlocal done
                for event in generated(events):
                    done += 1
                    if done - caught >= 2000:
                        caught_up(led)
                    if event["article"].startswith("live-"):
                        led.append([event])
                    else:
                        yield event

            with led.bulk():
                for group in batches(stories(), 100):
                    led.append(group)
            caught_up(led)
            led.articles(limit=1)
        views, text = _used(root / "views.sqlite"), _used(root / "text.sqlite")
        print(f"caught up every 2,000 of {events:,} events: {spent:.1f} s in catch-ups")
        print(f"size: views.sqlite {views / 1e6:.2f} MB, text.sqlite {text / 1e6:.2f} MB ({text / views:.1%} of the views)")
        print(f"text.sqlite by table (MB): {_parts(root / 'text.sqlite')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000, help="versions of the long article (default 1000)")
    parser.add_argument("--store", type=Path, help="a store made by benchmarks/generate.py, for the search figures")
    parser.add_argument("--no-rebuild", action="store_true", help="time the searches only (the views and index as they are)")
    parser.add_argument("--no-blame", action="store_true", help="skip the long article")
    parser.add_argument("--caught-up", type=int, metavar="EVENTS", help="also build a store of EVENTS generated events, its index caught up every 2,000")
    args = parser.parse_args()
    if not args.no_blame:
        bench_blame(args.versions)
    if args.store is not None:
        bench_search(args.store, rebuild=not args.no_rebuild)
    if args.caught_up is not None:
        bench_caught_up(args.caught_up)


if __name__ == "__main__":
    main()
