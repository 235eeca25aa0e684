"""Blame and search over the real corpus: the last version of every article is blamed whole, and
search finds where sampled phrases came in and went out, as a scan of every version finds."""

from __future__ import annotations

import random
from collections.abc import Iterator

import ledger
from ledger.rendering import render
from tests.helpers import phrase_stretches
from tests.test_corpus import ingested  # noqa: F401 - the fixture: the whole corpus in one store

Stretch = tuple[str, int, int | None]


def _phrases(led: ledger.Ledger, article: str, rng: random.Random) -> Iterator[str]:
    """Three-word phrases taken from random old versions of the article."""
    current = led.current_version(article)
    for _ in range(5):
        view = led.article(article, rng.randint(1, current))
        lines = [line.split() for line in view.body.split("\n") if len(line.split()) >= 3]
        if lines:
            words = rng.choice(lines)
            start = rng.randrange(len(words) - 2)
            yield " ".join(words[start : start + 3])


def test_the_last_version_of_every_article_is_blamed_whole(ingested) -> None:  # noqa: F811
    led, histories = ingested
    for article in histories:
        blame = led.blame(article)
        assert blame.text == render(led.article(article)), article
        assert "".join(span.text for span in blame.spans) == blame.text, article
        assert blame.spans[0].start == 0 and blame.spans[-1].end == len(blame.text)
        assert all(1 <= span.version <= blame.version for span in blame.spans)


def test_search_finds_where_phrases_came_in_and_went_out(ingested) -> None:  # noqa: F811
    led, histories = ingested
    rng = random.Random(15)
    # The articles with the longest histories, and a random sample of the rest.
    by_length = sorted(histories, key=lambda name: -len(histories[name]))
    sample = by_length[:15] + rng.sample(by_length[15:], 15)
    checked = vanished = 0
    for article in sample:
        for phrase in _phrases(led, article, rng):
            expected = phrase_stretches(led, article, phrase)
            assert expected, (article, phrase)
            hits = led.search(phrase, article=article)
            assert sorted((h.part, h.appeared_version, h.vanished_version) for h in hits) == expected, (article, phrase)
            assert all(h.current == (h.vanished_version is None) for h in hits)
            everywhere = [h for h in led.search(phrase) if h.article == article]
            assert everywhere == hits
            checked += 1
            vanished += sum(1 for _, _, gone in expected if gone is not None)
    # Enough phrases, and some of them taken out again by a later version.
    assert checked >= 100 and vanished >= 5, (checked, vanished)
