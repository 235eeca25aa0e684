"""Exactness over the real corpus: every version of every article, ingested in order with its date,
author and commit subject, renders back to exactly its bytes, by version and by time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

import ledger
from ledger.draft_format import parse_draft
from ledger.drafts import ingest_draft
from ledger.rendering import render
from tests.conftest import CORPUS
from tests.helpers import corpus_versions, ingest_corpus_version


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory):
    """The whole corpus ingested into one store: (ledger, {article: [(corpus file bytes, ledger
    version, time used)]})."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (CI has ../shared beside the project)")
    corpus = CORPUS
    root = ledger.init(tmp_path_factory.mktemp("corpus") / "store")
    led = ledger.open(root)
    histories: dict[str, list[tuple[bytes, int, datetime]]] = {}
    with led.bulk():
        for version in corpus_versions(corpus):
            result = ingest_corpus_version(led, version)
            histories.setdefault(version.article, []).append((version.data, result.version, version.at))
    yield led, histories
    led.close()


def test_corpus_has_every_article_and_version(ingested, corpus: Path) -> None:
    led, histories = ingested
    assert len(histories) == len([p for p in corpus.iterdir() if p.is_dir()]) == 244
    assert sum(len(h) for h in histories.values()) == 2001
    assert set(led.store.articles()) == set(histories)


def test_every_version_renders_to_its_exact_bytes(ingested) -> None:
    led, histories = ingested
    for article, history in histories.items():
        previous = 0
        for number, (data, version, _) in enumerate(history, 1):
            assert version >= previous
            previous = version
            view = led.article(article, version=version)
            assert render(view).encode("utf-8") == data, f"{article} corpus v{number:03d} (ledger v{version})"
        assert led.store.article_version(article) == history[-1][1]


def test_ingesting_every_last_version_again_appends_nothing(ingested) -> None:
    led, histories = ingested
    head = led.head().position
    for article, history in histories.items():
        result = ingest_draft(led, parse_draft(history[-1][0], f"{article}.md"))
        assert result.status == "unchanged" and result.version == history[-1][1]
    assert led.head().position == head


def test_at_lookups_return_the_version_of_that_time(ingested) -> None:
    led, histories = ingested
    for article, history in histories.items():
        for _, (_, _, when) in enumerate(history):
            # The last corpus version at that time is what the article said then.
            last = max(i for i, (_, _, other) in enumerate(history) if other == when)
            data = history[last][0]
            assert render(led.article(article, at=when)).encode("utf-8") == data, f"{article} at {when}"


def test_update_blocks_are_found_in_the_corpus(ingested) -> None:
    led, _histories = ingested
    added = [e for e in led.events(types=["UpdateBlockAdded"]) if e.version > 1]
    # The corpus README counts 79 versions in 47 articles adding a paragraph starting with
    # "Update"; our heading rule finds blocks added later in at least 40 articles.
    assert len({e.article for e in added}) >= 40
    assert all("update" in e.data["heading"].lower() for e in added)
    march = led.article("vulnerability--mar-2022-security-releases")
    assert [b.heading for b in march.blocks][:1] == ["### _(Update 16-Mar-2022)_ Summary"] or any(
        "Update 16-Mar-2022" in b.heading for b in march.blocks
    )
    assert all(b.added_version > 1 for b in march.blocks)
