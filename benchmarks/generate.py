"""Seeded generator of realistic benchmark stores.

    python benchmarks/generate.py --events N --out DIR [--seed S] [--batch 100]

The workload is a newsroom's: articles of 2-6 KB are created, then edited a sentence at a time,
given update blocks ("Update from Al Masdar News: ..."), corrected, moved between categories and
re-tagged. Most articles are edited for a while after they appear and then go quiet (a working
set of recent stories); a few "live" articles run for the whole log and reach thousands of
versions, so that historical reads can be measured deep into a long history (`live-000` has at
least 1,000 versions for any `N` >= 10,000).

`events(n, seed)` yields the same events for the same `n` and `seed`, as the dicts `Ledger.append`
takes (edits as ready patches, as a draft-ingesting client would send after diffing), so
`benchmarks/compare.py` can feed the same workload to ledger and to other libraries. The CLI
writes them through the public API (`ledger.open(...).append(...)` inside `bulk()`), so the store
is exactly what users would get, and `ledger verify` accepts it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_WORDS = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you", "were", "her", "she", "there", "been", "one", "all", "we", "their", "has", "would", "when", "if", "so", "no", "will", "can", "more", "about", "said", "government", "forces", "city", "army", "officials", "report", "reports", "according", "statement", "minister", "people", "week", "spokesman", "council", "agency", "residents", "police", "border", "ministry", "talks", "president", "election", "vote", "court", "ruling", "security", "attack", "district", "province", "capital", "region", "northern", "southern", "eastern", "western", "troops", "civilians", "aid", "convoy", "supplies", "hospital", "water", "power", "workers", "union", "strike", "protest", "march", "crowd", "journalists", "news", "press", "release", "update", "editor", "correction", "sources", "confirmed", "denied", "announced", "yesterday", "today", "tomorrow", "morning", "evening", "night", "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "early", "late", "after", "before", "during", "while", "since", "until", "despite", "although", "however", "meanwhile", "further", "several", "many", "few", "most", "some", "every", "other", "another", "first", "second", "third", "last", "next", "new", "old", "major", "minor", "local", "national", "international", "foreign", "domestic", "economic", "political", "military", "public", "private", "social", "health", "energy", "oil", "gas", "prices", "market", "bank", "trade", "deal", "agreement", "plan", "budget", "tax", "school", "students", "teachers", "children", "families", "homes", "streets", "roads", "bridge", "airport", "port", "station", "river", "valley", "mountain", "village", "town", "villages", "towns", "areas", "fighting", "offensive", "siege", "blockade", "lifted", "broken", "advanced", "retreated", "captured", "held", "launched", "opened", "closed", "delivered", "arrived", "left", "met", "spoke", "told", "asked", "warned", "called", "urged", "pledged", "promised", "rejected", "accepted", "signed", "approved"]  # noqa: E501 - one word list, kept on one line

_SOURCES = ("Al Masdar News", "Reuters", "AP", "AFP", "the BBC", "our correspondent", "the ministry", "TASS", "the UN")
_CATEGORIES = (
    "world", "politics", "economy", "business", "science", "health", "sport", "culture", "technology",
    "middle-east", "europe", "africa", "asia", "americas", "conflict", "environment", "opinion", "media",
)
_LIVE_ARTICLES = 2
_WORKING_SET = 400
_POOL = 5000
_START = datetime(2024, 1, 1, tzinfo=UTC)


class _Article:
    """What the generator remembers of an article to write sensible next events."""

    __slots__ = ("blocks", "body", "categories", "slug", "title")

    def __init__(self, slug: str, title: str, body: str, categories: list[str]) -> None:
        self.slug = slug
        self.title = title
        self.body = body
        self.blocks: list[str] = []
        self.categories = categories


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 24))
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".....?!")


def _paragraph(rng: random.Random, sentences: int, pool: list[str]) -> str:
    # Sentences come from a seeded pool: generating every word afresh would cost more than
    # the appends being measured.
    return " ".join(rng.choices(pool, k=sentences))


def _body(rng: random.Random, pool: list[str]) -> str:
    target = rng.randint(2000, 6000)
    paragraphs: list[str] = []
    size = 0
    while size < target:
        paragraph = _paragraph(rng, rng.randint(2, 5), pool)
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:target].rstrip() + "."


def _small_edit(rng: random.Random, text: str) -> tuple[list[list[Any]], str]:
    """A one-sentence correction: replace a few words somewhere in `text`."""
    start = rng.randrange(0, max(1, len(text) - 60))
    start = text.find(" ", start) + 1
    end = text.find(" ", start + rng.randint(1, 40))
    if end < 0:
        end = len(text)
    replacement = " ".join(rng.choices(_WORDS, k=rng.randint(1, 8)))
    return [[start, end, replacement]], text[:start] + replacement + text[end:]


def events(n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield `n` events (dicts for `Ledger.append`), the same ones for the same `n` and `seed`."""
    rng = random.Random(seed)
    pool = [_sentence(rng) for _ in range(_POOL)]
    live_share = min(0.3, max(0.02, 1300 / max(n, 1)))
    active: list[_Article] = []
    live: list[_Article] = []
    created = 0
    moment = _START

    def create(slug: str) -> tuple[_Article, dict[str, Any]]:
        title = _sentence(rng)[:-1][:120]
        body = _body(rng, pool)
        categories = rng.sample(_CATEGORIES, rng.randint(1, 3))
        article = _Article(slug, title, body, categories)
        data = {
            "title": title,
            "body": body,
            "categories": categories,
            "metadata": {"source": rng.choice(_SOURCES), "author": f"reporter-{rng.randrange(40)}"},
        }
        return article, {"type": "ArticleCreated", "article": slug, "data": data}

    for _ in range(n):
        moment += timedelta(seconds=rng.randint(1, 30))
        if len(live) < _LIVE_ARTICLES:
            article, event = create(f"live-{len(live):03d}")
            live.append(article)
        elif rng.random() < live_share:
            article = live[0] if rng.random() < 0.7 else rng.choice(live)
            event = _change(rng, article, pool)
        elif not active or rng.random() < 0.1:
            article, event = create(f"story-{created:07d}")
            created += 1
            active.append(article)
            if len(active) > _WORKING_SET:
                # Stories go quiet: drop the oldest from the working set (its text stays in the log).
                active.pop(0)
        else:
            article = rng.choice(active) if rng.random() < 0.5 else active[-1 - min(len(active) - 1, int(rng.expovariate(0.05)))]
            event = _change(rng, article, pool)
        event["occurred_at"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if rng.random() < 0.3:
            event["actor"] = f"editor-{rng.randrange(12)}"
            event["reason"] = rng.choice(("typo", "style", "fact check", "new information", "legal", "headline"))
        yield event


def _change(rng: random.Random, article: _Article, pool: list[str]) -> dict[str, Any]:
    """One change to an existing article: mostly small edits, then blocks and categories."""
    roll = rng.random()
    slug = article.slug
    if roll < 0.55:
        if rng.random() < 0.1:
            article.title = _sentence(rng)[:-1][:120]
            return {"type": "ArticleEdited", "article": slug, "data": {"title": article.title}}
        patch, article.body = _small_edit(rng, article.body)
        return {"type": "ArticleEdited", "article": slug, "data": {"patch": patch}}
    if roll < 0.75 or (roll < 0.82 and not article.blocks):
        text = "\n\n" + _paragraph(rng, rng.randint(2, 6), pool)
        article.blocks.append(text)
        heading = f"Update from {rng.choice(_SOURCES)}:"
        return {"type": "UpdateBlockAdded", "article": slug, "data": {"heading": heading, "text": text}}
    if roll < 0.82:
        index = rng.randrange(len(article.blocks))
        patch, article.blocks[index] = _small_edit(rng, article.blocks[index])
        return {"type": "UpdateBlockEdited", "article": slug, "data": {"index": index, "patch": patch}}
    if roll < 0.95:
        removable = [c for c in article.categories if len(article.categories) > 1]
        added = [c for c in rng.sample(_CATEGORIES, 2) if c not in article.categories][:1]
        removed = [rng.choice(removable)] if removable and rng.random() < 0.5 else []
        if not added and not removed:
            added = [f"tag-{rng.randrange(10**6)}"]
        article.categories = [c for c in article.categories if c not in removed] + added
        return {"type": "CategoriesChanged", "article": slug, "data": {"added": added, "removed": removed}}
    return {
        "type": "MetadataChanged",
        "article": slug,
        "data": {"set": {"status": rng.choice(("developing", "updated", "final")), "revision": rng.randrange(10**6)}},
    }


def batches(stream: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Group events into appends of `size`. Events of one article in one append make one version,
    which must have one time: every event of a batch takes the time of its last event."""
    pending: list[dict[str, Any]] = []
    for event in stream:
        pending.append(event)
        if len(pending) == size:
            yield _one_time(pending)
            pending = []
    if pending:
        yield _one_time(pending)


def _one_time(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    when = group[-1]["occurred_at"]
    for event in group:
        event["occurred_at"] = when
    return group


def build(out: Path, n: int, seed: int = 1, batch: int = 100, progress: bool = False) -> Path:
    """Write `n` generated events to a new store at `out` through the public API, inside `bulk()`
    (one sync at the end). Stories come `batch` events per append; the live articles' events
    come one per append, as a live blog is updated, so their histories get one version per event.
    Returns the store folder."""
    import ledger

    if (out / "events.jsonl").exists() and (out / "events.jsonl").stat().st_size:
        raise SystemExit(f"{out}: a store with events is already there; pick an empty folder")
    started = time.perf_counter()
    done = 0

    def stories() -> Iterator[dict[str, Any]]:
        nonlocal done
        for event in events(n, seed):
            done += 1
            if progress and done % 100_000 == 0:
                print(f"{done:,} events ({done / (time.perf_counter() - started):,.0f}/s)", file=sys.stderr)
            if event["article"].startswith("live-"):
                led.append([event])
            else:
                yield event

    with ledger.open(out, create=True) as led, led.bulk():
        for group in batches(stories(), batch):
            led.append(group)
    with ledger.open(out) as led:
        led.head()  # bring the derived index up to date, as any later open would
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Generate a seeded, realistic ledger store for benchmarks.")
    parser.add_argument("--events", type=int, required=True, help="number of events")
    parser.add_argument("--out", type=Path, required=True, help="store folder to create (must be empty)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same events)")
    parser.add_argument("--batch", type=int, default=100, help="events per append (default 100)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    build(args.out, args.events, args.seed, args.batch, progress=True)
    elapsed = time.perf_counter() - started
    print(f"{args.events:,} events in {elapsed:.1f}s ({args.events / elapsed:,.0f}/s) -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
