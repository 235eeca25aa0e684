"""The catalog (views.sqlite): catch-up, checkpoints deleted, stale or corrupt, other
processes appending, and article snapshots."""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger.catalog import VIEWS_FILE, _body_runs, _digest, _from_part
from ledger.codec import dumps, loads
from ledger.events import NewRecord
from ledger.projections import SNAPSHOT_EVERY, ArticleState, fold, state_from_list
from tests.conftest import run_ledger
from tests.helpers import build_newsroom, t


def answers(led: ledger.Ledger) -> tuple[Any, ...]:
    """Every listing the views answer, for comparing two sets of views."""
    return (
        led.categories(),
        led.categories(at=t("12:00")),
        led.categories(at=t("13:30")),
        led.category("roads"),
        led.category("traffic", at=t("11:00")),
        led.category_history("bridge"),
        led.updated_since(t("00:00")),
        led.timeline(),
        led.article("bridge").model_dump(),
    )


@pytest.fixture
def built(store_dir: Path) -> tuple[Path, tuple[Any, ...]]:
    with ledger.open(store_dir) as led:
        build_newsroom(led)
        return store_dir, answers(led)


def test_views_are_persisted_with_their_position(built: tuple[Path, tuple[Any, ...]]) -> None:
    store_dir, _ = built
    db = sqlite3.connect(store_dir / VIEWS_FILE)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    with ledger.open(store_dir) as led:
        head = led.head()
    assert (meta["position"], meta["hash"]) == (head.position, head.hash)
    assert db.execute("SELECT article, version, withdrawn FROM articles ORDER BY article").fetchall() == [("bridge", 7, 0), ("storm", 3, 0)]
    db.close()


def test_deleted_views_rebuild_with_the_same_answers(built: tuple[Path, tuple[Any, ...]]) -> None:
    store_dir, expected = built
    for suffix in ("", "-wal", "-shm"):
        Path(str(store_dir / VIEWS_FILE) + suffix).unlink(missing_ok=True)
    with ledger.open(store_dir) as led:
        assert answers(led) == expected
    assert (store_dir / VIEWS_FILE).exists()


def test_corrupt_views_rebuild_with_the_same_answers(built: tuple[Path, tuple[Any, ...]], caplog: pytest.LogCaptureFixture) -> None:
    store_dir, expected = built
    for suffix in ("-wal", "-shm"):
        Path(str(store_dir / VIEWS_FILE) + suffix).unlink(missing_ok=True)
    (store_dir / VIEWS_FILE).write_bytes(b"this is not a database" * 100)
    with ledger.open(store_dir) as led:
        assert answers(led) == expected
    assert "rebuilding" in caplog.text


@pytest.mark.slow
def test_a_record_the_views_cannot_fold_is_a_corrupt_store_not_a_rebuild(
    built: tuple[Path, tuple[Any, ...]], caplog: pytest.LogCaptureFixture
) -> None:
    store_dir, _expected = built
    views = store_dir / VIEWS_FILE
    inode = views.stat().st_ino
    with ledger.open(store_dir) as led:
        # The store does not interpret data: only the Ledger refuses an edit of an article that
        # was never created, so this is how a damaged (or foreign-written) log looks.
        led.store.append([NewRecord(id="ghost-1", article="ghost", type="ArticleEdited", data={"title": "Boo"})])
        position = led.head().position
        for _ in range(2):
            with pytest.raises(ledger.CorruptStoreError, match=f"^log position {position}: ArticleEdited of article 'ghost', which no earlier record created"):
                led.categories()
        # The views stay as they were, at the position before: nothing deleted, nothing rebuilt.
        assert views.stat().st_ino == inode
        with pytest.raises(ledger.CorruptStoreError):
            led.replay()
    assert "rebuilding" not in caplog.text
    db = sqlite3.connect(views)
    assert dict(db.execute("SELECT key, value FROM meta"))["position"] == position - 1
    db.close()
    done = run_ledger("categories", store=store_dir)
    assert done.returncode == 8
    assert done.stderr.decode().startswith(f"error: log position {position}: ArticleEdited of article 'ghost'")
    assert done.stderr.decode().count("\n") == 1


def test_views_of_another_log_are_rebuilt(built: tuple[Path, tuple[Any, ...]], tmp_path: Path) -> None:
    store_dir, expected = built
    other = ledger.init(tmp_path / "other")
    with ledger.open(other) as led:
        for n in range(12):
            led.append([{"type": "ArticleCreated", "article": f"x{n}", "data": {"title": "X", "categories": ["elsewhere"]}}])
        assert led.categories()[0].name == "elsewhere"
    shutil.copy(other / VIEWS_FILE, store_dir / VIEWS_FILE)
    for suffix in ("-wal", "-shm"):
        Path(str(store_dir / VIEWS_FILE) + suffix).unlink(missing_ok=True)
    with ledger.open(store_dir) as led:
        assert answers(led) == expected


def test_stale_views_catch_up_from_their_position(built: tuple[Path, tuple[Any, ...]]) -> None:
    store_dir, _ = built
    with ledger.open(store_dir) as led:
        led.replay(to=3)  # a checkpoint behind the log
        db = sqlite3.connect(store_dir / VIEWS_FILE)
        assert dict(db.execute("SELECT key, value FROM meta"))["position"] == 3
        db.close()
        assert [c.name for c in led.categories()] == ["local", "roads", "weather"]
        assert len(led.timeline()) == 10


def test_tampered_checkpoint_position_is_detected(built: tuple[Path, tuple[Any, ...]]) -> None:
    store_dir, expected = built
    db = sqlite3.connect(store_dir / VIEWS_FILE)
    db.execute("UPDATE meta SET value = 5 WHERE key = 'position'")  # hash no longer matches position 5
    db.execute("DELETE FROM articles WHERE article = 'storm'")
    db.commit()
    db.close()
    with ledger.open(store_dir) as led:
        assert answers(led) == expected


SECOND_PROCESS = textwrap.dedent(
    """
    import sys, ledger
    with ledger.open(sys.argv[1]) as led:
        for n in range(int(sys.argv[2])):
            led.append([{"type": "ArticleCreated", "article": f"p{n}", "data": {"title": f"P{n}", "categories": ["proc"]}}])
            led.append([{"type": "UpdateBlockAdded", "article": f"p{n}", "data": {"heading": f"Update {n}:"}}])
    """
)


@pytest.mark.slow
def test_views_follow_another_process_appending(built: tuple[Path, tuple[Any, ...]]) -> None:
    store_dir, _ = built
    count = 40
    with ledger.open(store_dir) as led:
        writer = subprocess.Popen([sys.executable, "-c", SECOND_PROCESS, str(store_dir), str(count)])
        seen = []
        try:
            while writer.poll() is None:
                try:
                    listing = led.category("proc").articles
                except ledger.CategoryNotFoundError:
                    listing = []  # no article of the writer's has been in it yet
                seen.append(len(listing))
                # Every answer is a consistent prefix: an article is listed only once it exists.
                assert all(m.title == f"P{m.article[1:]}" for m in listing)
        finally:
            writer.wait(timeout=60)
        assert writer.returncode == 0
        assert seen == sorted(seen)
        assert len(led.category("proc").articles) == count
        assert len(led.updated_since(t("00:00"))) == count + 2
        live = (led.categories(), led.timeline(), led.updated_since(t("00:00")))
        led.replay()
        assert (led.categories(), led.timeline(), led.updated_since(t("00:00"))) == live


# --- snapshots ---------------------------------------------------------------------------------


@pytest.fixture
def long_article(led: ledger.Ledger) -> ledger.Ledger:
    led.append([{"type": "ArticleCreated", "article": "long", "data": {"title": "Long", "body": "v1\n"}, "occurred_at": "2017-01-01T00:00:00Z"}])
    for v in range(2, 3 * SNAPSHOT_EVERY + 6):
        led.append([{"type": "ArticleEdited", "article": "long", "data": {"body": f"v{v}\n"}, "occurred_at": f"2017-01-01T00:{v // 60:02d}:{v % 60:02d}Z"}])
    return led


def _snapshot_versions(led: ledger.Ledger) -> list[int]:
    db = sqlite3.connect(led.path / VIEWS_FILE)
    try:
        return [v for (v,) in db.execute("SELECT version FROM snapshots WHERE article = 'long' ORDER BY version")]
    finally:
        db.close()


def test_reads_leave_snapshots_and_give_the_same_states(long_article: ledger.Ledger) -> None:
    led = long_article
    with ledger.open(led.path) as fresh:  # a cold cache: reads fold from snapshots
        for version in (1, SNAPSHOT_EVERY, SNAPSHOT_EVERY + 1, 2 * SNAPSHOT_EVERY + 7, 3 * SNAPSHOT_EVERY + 5):
            expected = fold(led.store.read_article("long", 1, version))
            assert fresh.article("long", version).body == expected.body == f"v{version}\n"
        assert _snapshot_versions(fresh) == [SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY, 3 * SNAPSHOT_EVERY]


def test_historical_read_folds_only_records_after_the_snapshot(long_article: ledger.Ledger) -> None:
    led = long_article
    led.article("long", 2 * SNAPSHOT_EVERY + 1)
    # Mark the snapshot: a read that starts from it shows the mark, one that starts from the
    # log's beginning would not.
    db = sqlite3.connect(led.path / VIEWS_FILE)
    (blob, record_hash) = db.execute(
        "SELECT state, hash FROM snapshots WHERE article = 'long' AND version = ?", (2 * SNAPSHOT_EVERY,)
    ).fetchone()
    state = loads(blob)
    state[2] = "From the snapshot"
    # Sealed again as ledger would seal it: an unsealed edit is refused (tests/test_hostile_store.py).
    marked = dumps(state)
    db.execute(
        "UPDATE snapshots SET state = ?, digest = ? WHERE article = 'long' AND version = ?",
        (marked, _digest(record_hash, marked), 2 * SNAPSHOT_EVERY),
    )
    db.commit()
    db.close()
    with ledger.open(led.path) as fresh:
        assert fresh.article("long", 2 * SNAPSHOT_EVERY + 3).title == "From the snapshot"
        assert fresh.article("long", 2 * SNAPSHOT_EVERY - 1).title == "Long"


def test_snapshots_do_not_change_as_of_time(long_article: ledger.Ledger) -> None:
    led = long_article
    when = "2017-01-01T00:01:05Z"  # version 65 occurred then
    before = led.article("long", at=when)
    led.article("long", 2 * SNAPSHOT_EVERY)
    assert 2 * SNAPSHOT_EVERY in _snapshot_versions(led)
    after = led.article("long", at=when)
    assert before == after
    assert after.version == 65


def test_unreadable_snapshot_is_ignored(long_article: ledger.Ledger) -> None:
    led = long_article
    led.article("long", SNAPSHOT_EVERY + 2)
    db = sqlite3.connect(led.path / VIEWS_FILE)
    db.execute("UPDATE snapshots SET state = ?", (b"[1, 2",))
    db.commit()
    db.close()
    with ledger.open(led.path) as fresh:
        assert fresh.article("long", SNAPSHOT_EVERY + 2).body == f"v{SNAPSHOT_EVERY + 2}\n"


def test_catch_up_snapshots_long_histories_before_any_read(long_article: ledger.Ledger) -> None:
    led = long_article
    assert not (led.path / VIEWS_FILE).exists()  # appends alone need no views
    led.categories()  # the views catch up
    assert _snapshot_versions(led) == [SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY, 3 * SNAPSHOT_EVERY]
    led.replay()  # snapshots of the same log survive a replay
    assert _snapshot_versions(led) == [SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY, 3 * SNAPSHOT_EVERY]


@pytest.fixture
def big_article(led: ledger.Ledger) -> ledger.Ledger:
    # ~130,000 characters: full snapshots every 65 versions or more (`snapshot_due`), parts between.
    words = [f"word{n}\n" if n % 10 == 9 else f"word{n} " for n in range(20000)]
    led.append([{"type": "ArticleCreated", "article": "big", "data": {"title": "Big", "body": "".join(words)}}])
    for v in range(2, 7 * SNAPSHOT_EVERY + 3):
        kind = v % 6
        if kind == 0:
            data: dict[str, Any] = {"heading": f"Update {v}:", "text": f"Block of version {v}."}
            led.append([{"type": "UpdateBlockAdded", "article": "big", "data": data}])
        elif kind == 1 and v > 40:
            led.append([{"type": "UpdateBlockEdited", "article": "big", "data": {"index": v % 3, "patch": [[0, 5, f"Edit {v}"]]}}])
        elif kind == 2 and v % 4 == 0 and v > 60:
            led.append([{"type": "UpdateBlockRemoved", "article": "big", "data": {"index": 1}}])
        elif kind == 3:
            led.append([{"type": "CategoriesChanged", "article": "big", "data": {"added": [f"c{v}"], "removed": [f"c{v - 6}"] if v > 9 else []}}])
        elif kind == 4:
            led.append([{"type": "MetadataChanged", "article": "big", "data": {"set": {"v": v}}}])
        else:
            # Edits at the start, in the middle and at the end of the body.
            body = led.article("big").body
            at = (0, len(body) // 2, len(body))[v // 6 % 3]
            led.append([{"type": "ArticleEdited", "article": "big", "data": {"patch": [[at, min(at + 3, len(body)), f"<{v}>"]]}}])
    return led


def _snapshot_kinds(led: ledger.Ledger, article: str) -> dict[int, str]:
    db = sqlite3.connect(led.path / VIEWS_FILE)
    try:
        rows = db.execute("SELECT version, state FROM snapshots WHERE article = ? ORDER BY version", (article,))
        return {v: "part" if isinstance(loads(blob)[0], int) else "full" for v, blob in rows}
    finally:
        db.close()


def test_a_big_articles_snapshots_between_full_ones_hold_only_what_changed(big_article: ledger.Ledger) -> None:
    led = big_article
    top = led.store.article_version("big")
    led.categories()  # the views catch up: snapshots on the way
    with ledger.open(led.path) as fresh:
        for version in range(1, top + 1):
            fresh.article("big", version)  # every version read once leaves every snapshot due
        kinds = _snapshot_kinds(fresh, "big")
        assert set(kinds.values()) == {"full", "part"}, kinds
        assert all(v % (SNAPSHOT_EVERY if kind == "full" else SNAPSHOT_EVERY // 2) == 0 for v, kind in kinds.items())
        db = sqlite3.connect(led.path / VIEWS_FILE)
        sizes = dict(db.execute("SELECT version, length(state) FROM snapshots WHERE article = 'big'").fetchall())
        db.close()
        assert max(sizes[v] for v, kind in kinds.items() if kind == "part") < min(sizes[v] for v, kind in kinds.items() if kind == "full") / 10
    with ledger.open(led.path) as fresh:
        for version in range(1, top + 1):
            expected = fold(led.store.read_article("big", 1, version)).view()
            assert fresh.article("big", version) == expected, version


def test_a_parts_body_is_the_text_it_was_made_from_whatever_the_edits() -> None:
    rng = random.Random(7)
    pieces = ["a", "b", "\n", "cc ", "d\n", "\r", "\u2028", "é"]
    for _ in range(3000):
        old = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        new = list(old)
        for _ in range(rng.randint(0, 4)):
            at = rng.randint(0, len(new))
            new[at:at + rng.randint(0, 5)] = rng.choices(["x", "\n", "a", "\r"], k=rng.randint(0, 4))
        base = ArticleState("a")
        base.body = old
        part = loads(dumps([0, "", "a", 1, "", _body_runs(old, "".join(new)), 0, [], [], {}, False, "", "", 1]))
        assert state_from_list(_from_part(base, part) or []).body == "".join(new), (old, new)


def _reseal(led: ledger.Ledger, version: int, change: Callable[[list[Any]], None]) -> None:
    db = sqlite3.connect(led.path / VIEWS_FILE)
    blob, record_hash = db.execute("SELECT state, hash FROM snapshots WHERE article = 'big' AND version = ?", (version,)).fetchone()
    values = loads(blob)
    change(values)
    marked = dumps(values)
    db.execute("UPDATE snapshots SET state = ?, digest = ? WHERE article = 'big' AND version = ?", (marked, _digest(record_hash, marked), version))
    db.commit()
    db.close()


def test_a_part_is_used_only_on_the_whole_snapshot_it_was_made_on(big_article: ledger.Ledger, caplog: pytest.LogCaptureFixture) -> None:
    led = big_article
    led.categories()
    kinds = _snapshot_kinds(led, "big")
    part = next(v for v, kind in kinds.items() if kind == "part")
    db = sqlite3.connect(led.path / VIEWS_FILE)
    (blob,) = db.execute("SELECT state FROM snapshots WHERE article = 'big' AND version = ?", (part,)).fetchone()
    db.close()
    base = loads(blob)[0]
    expected = fold(led.store.read_article("big", 1, part + 1)).view()

    def title(values: list[Any]) -> None:
        values[4] = "From the part"

    _reseal(led, part, title)  # a read that starts from the part shows its title
    with ledger.open(led.path) as fresh:
        assert fresh.article("big", part + 1).title == "From the part"
    # The whole snapshot under it changed (not the digest the part names), then gone: the part
    # is passed over.
    for statement in ("UPDATE snapshots SET digest = 'x'", "DELETE FROM snapshots"):
        db = sqlite3.connect(led.path / VIEWS_FILE)
        db.execute(f"{statement} WHERE article = 'big' AND version = ?", (base,))
        db.commit()
        db.close()
        with ledger.open(led.path) as fresh:
            assert fresh.article("big", part + 1) == expected
        assert f"the snapshot of 'big' at version {part} does not match the log" in caplog.text
        caplog.clear()

    def malformed(values: list[Any]) -> None:
        values[5] = 5  # not runs of text

    later = next(v for v, kind in kinds.items() if kind == "part" and v > part)
    _reseal(led, later, malformed)
    with ledger.open(led.path) as fresh:
        assert fresh.article("big", later + 1) == fold(led.store.read_article("big", 1, later + 1)).view()


def test_reads_and_appends_go_on_while_another_connection_holds_the_views(long_article: ledger.Ledger) -> None:
    led = long_article
    led.categories()
    blocker = sqlite3.connect(led.path / VIEWS_FILE, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # as a long rebuild in another process would
    try:
        with ledger.open(led.path) as other:
            assert other.article("long", SNAPSHOT_EVERY + 3).body == f"v{SNAPSHOT_EVERY + 3}\n"
            other.append([{"type": "ArticleEdited", "article": "long", "data": {"body": "later\n"}}])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert led.article("long").body == "later\n"
