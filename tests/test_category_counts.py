"""The catalog's running category counts (`ledger categories`, `stats`) agree with counting the
open category stints of live articles, however the catch-ups fall: after every few appends,
across withdrawals and restores, and after a rebuild."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import ledger
from tests.helpers import created

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import generate


def _counted(store: Path) -> list[tuple[str, int]]:
    """Each category's live articles, counted from the stints themselves."""
    db = sqlite3.connect(store / "views.sqlite")
    try:
        return db.execute(
            "SELECT m.category, COUNT(*) FROM memberships m JOIN articles a ON a.article = m.article"
            " WHERE m.left_version IS NULL AND a.withdrawn = 0 GROUP BY m.category ORDER BY m.category"
        ).fetchall()
    finally:
        db.close()


def _listed(led: ledger.Ledger) -> list[tuple[str, int]]:
    return [(c.name, c.count) for c in led.categories()]


def test_running_counts_match_the_stints_through_catch_ups_withdrawals_and_a_rebuild(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        batches = list(generate.batches(generate.events(1500, 3), 40))
        for n, batch in enumerate(batches):
            led.append(batch)
            if n % 5 == 0:
                assert _listed(led) == _counted(store_dir)
        led.append([created("gone", data={"categories": ["world", "only-here"]})])
        assert ("only-here", 1) in _listed(led)
        led.withdraw("gone")
        assert "only-here" not in dict(_listed(led))
        assert _listed(led) == _counted(store_dir)
        led.append([{"type": "ArticleRestored", "article": "gone", "data": {}}])
        assert dict(_listed(led))["only-here"] == 1
        assert _listed(led) == _counted(store_dir)
        stats = led.stats()
        assert stats.categories == len(_counted(store_dir))
        assert stats.articles == len(led.store.articles())
        assert stats.versions == sum(led.store.articles().values())
        before = _listed(led)
        led.replay()
        assert _listed(led) == before == _counted(store_dir)
