"""The benchmark data generator: seeded, realistic, and writes stores that `ledger verify` accepts."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

import ledger
from tests.conftest import run_ledger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import generate


def test_same_seed_same_events_other_seed_other_events() -> None:
    first = list(generate.events(400, seed=7))
    assert first == list(generate.events(400, seed=7))
    assert first != list(generate.events(400, seed=8))
    assert len(first) == 400


def test_the_mix_is_a_newsrooms() -> None:
    evs = list(generate.events(3000, seed=1))
    kinds = Counter(e["type"] for e in evs)
    assert set(kinds) >= {"ArticleCreated", "ArticleEdited", "UpdateBlockAdded", "UpdateBlockEdited", "CategoriesChanged"}
    assert kinds["ArticleEdited"] > kinds["UpdateBlockAdded"] > kinds["CategoriesChanged"]
    bodies = [len(e["data"]["body"]) for e in evs if e["type"] == "ArticleCreated"]
    assert min(bodies) >= 2000 and max(bodies) <= 6000
    # One live article gets a long history (the historical-read benchmarks need 1,000 versions).
    assert Counter(e["article"] for e in evs)["live-000"] >= 600
    times = [e["occurred_at"] for e in evs]
    assert times == sorted(times)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 100])
def test_build_writes_a_store_that_verifies(tmp_path: Path, batch: int) -> None:
    store = generate.build(tmp_path / "store", 600, seed=3, batch=batch)
    done = run_ledger("verify", store=store)
    assert done.returncode == 0, done.stderr.decode()
    with ledger.open(store) as led:
        assert led.head().position == 600
        # Live articles get one version per event whatever the batch size.
        live = sum(1 for e in generate.events(600, seed=3) if e["article"] == "live-000")
        assert led.article("live-000").version == live


def test_build_refuses_a_store_with_events(tmp_path: Path) -> None:
    store = generate.build(tmp_path / "store", 50)
    with pytest.raises(SystemExit, match="already there"):
        generate.build(store, 50)
