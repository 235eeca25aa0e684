"""Hostile runs against the files beside the log: a damaged, edited or deleted index, snapshot or
lock, and a log cut or rewritten after the fact. The log is the only truth: whatever happens to
the caches, the worst allowed is a rebuild, a slower answer or a clear error, never a wrong
answer with exit 0 and never a damaged log. Every finding of the hostile run goes here.

Real stores, real CLI processes, the index and views edited with SQLite as a person would."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger import codec
from ledger.catalog import VIEWS_FILE, _digest
from ledger.projections import SNAPSHOT_EVERY
from ledger.store import INDEX_FILE, LOG_FILE
from tests.conftest import run_ledger


def _created(article: str, title: str, body: str, categories: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"title": title, "body": body}
    if categories:
        data["categories"] = categories
    return {"type": "ArticleCreated", "article": article, "data": data}


def _edited(article: str, body: str) -> dict[str, Any]:
    return {"type": "ArticleEdited", "article": article, "data": {"body": body}}


def _sql(path: Path, statement: str, *args: Any) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def _ten_events(store: Path) -> None:
    """Ten events in ten appends: a1 (created in 'x', then edits) and a2."""
    with ledger.open(store) as led:
        led.append([_created("a1", "A one", "one\n", ["x"])])
        led.append([_created("a2", "A two", "two\n")])
        for n in range(8):
            led.append([_edited("a1" if n % 2 else "a2", f"text {n}\n")])
        led.head()  # the index has seen all ten


def _verify_ok(store: Path) -> None:
    result = run_ledger("verify", store=store)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"ok"), result.stdout


def _caches_deleted(store: Path) -> None:
    for name in (INDEX_FILE, VIEWS_FILE):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store / name}{suffix}").unlink(missing_ok=True)


# --- 1. a damaged index never makes the writer damage the log -----------------------------


@pytest.mark.slow
def test_index_head_set_back_does_not_make_the_writer_reuse_positions(store_dir: Path) -> None:
    _ten_events(store_dir)
    _sql(store_dir / INDEX_FILE, "UPDATE meta SET value = 3 WHERE key = 'position'")
    line = b'{"type": "ArticleCreated", "article": "b", "data": {"title": "B"}}\n'
    result = run_ledger("append", "-", store=store_dir, input=line)
    assert result.returncode == 0, result.stderr
    assert b"rebuilding it from the log" in result.stderr
    records = [codec.decode(line) for line in (store_dir / LOG_FILE).read_bytes().splitlines()]
    assert [r["pos"] for r in records] == list(range(1, 12))
    _verify_ok(store_dir)
    _caches_deleted(store_dir)
    assert run_ledger("show", "b", store=store_dir).returncode == 0


@pytest.mark.slow
def test_index_row_moved_to_another_article_is_not_shown_as_its_history(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([_created("a1", "A one", "one\n")])
        led.append([_created("a2", "A two", "two\n", ["x"])])
        led.append([{"type": "CategoriesChanged", "article": "a2", "data": {"added": ["y"]}}])
        want = run_ledger("history", "a1", store=store_dir).stdout
    # The index now claims a2's category change is version 2 of a1.
    _sql(store_dir / INDEX_FILE, "UPDATE events SET article = 'a1', version = 2 WHERE pos = 3")
    _sql(store_dir / INDEX_FILE, "UPDATE articles SET version = 2 WHERE article = 'a1'")
    result = run_ledger("history", "a1", store=store_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == want
    assert b"categories" not in result.stdout


@pytest.mark.slow
def test_index_row_deleted_does_not_drop_a_version_from_show(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([_created("a1", "A one", "one\n")])
        led.append([{"type": "CategoriesChanged", "article": "a1", "data": {"added": ["x"]}}])
        led.append([_edited("a1", "one, edited\n")])
    want = run_ledger("show", "a1", store=store_dir).stdout
    assert b"Categories: x" in want
    _sql(store_dir / INDEX_FILE, "DELETE FROM events WHERE pos = 2")
    result = run_ledger("show", "a1", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr


@pytest.mark.slow
def test_index_version_of_an_article_set_back_does_not_make_the_writer_repeat_it(store_dir: Path) -> None:
    _ten_events(store_dir)
    # Consistent with itself: the article's last two rows and its version are gone.
    _sql(store_dir / INDEX_FILE, "UPDATE articles SET version = 3 WHERE article = 'a1'")
    result = run_ledger("append", "-", store=store_dir, input=b'{"type": "ArticleEdited", "article": "a1", "data": {"body": "new\\n"}}\n')
    assert result.returncode == 0, result.stderr
    records = [codec.decode(line) for line in (store_dir / LOG_FILE).read_bytes().splitlines()]
    assert [r["version"] for r in records if r["article"] == "a1"] == [1, 2, 3, 4, 5, 6]
    _verify_ok(store_dir)


# --- 2. a damaged snapshot is never shown or written into the log -------------------------


def _long_article(store: Path, versions: int) -> list[str]:
    bodies = [f"Paragraph one.\n\nVersion {v} of the story.\n" for v in range(1, versions + 1)]
    with ledger.open(store) as led:
        led.append([_created("long", "Long", bodies[0])])
        for body in bodies[1:]:
            led.append([_edited("long", body)])
        led.article("long", versions - 1)  # folds past the snapshot versions and keeps them
    return bodies


def _ingest_one_more_line_and_check_the_log(store_dir: Path, tmp_path: Path, body: str) -> None:
    """Ingest the article `long` (last body `body`) plus one line; then, from the log alone (the
    caches deleted), it must say the true text plus that line and nothing of an edited snapshot."""
    draft = tmp_path / "long.txt"
    draft.write_text(f"Long\n\n{body}One more line.\n")
    result = run_ledger("ingest", "--article", "long", str(draft), store=store_dir)
    assert result.returncode == 0, result.stderr
    _caches_deleted(store_dir)
    _verify_ok(store_dir)
    now = run_ledger("show", "long", store=store_dir)
    assert now.returncode == 0, now.stderr
    assert b"Paragraph one." in now.stdout and b"One more line." in now.stdout
    assert b"EVIL" not in now.stdout and b"EDITED" not in now.stdout


@pytest.mark.slow
def test_edited_snapshot_is_not_shown_nor_used_to_prepare_an_append(store_dir: Path, tmp_path: Path) -> None:
    bodies = _long_article(store_dir, SNAPSHOT_EVERY + 8)
    db = sqlite3.connect(store_dir / VIEWS_FILE)
    (blob,) = db.execute("SELECT state FROM snapshots WHERE article = 'long' AND version = ?", (SNAPSHOT_EVERY,)).fetchone()
    db.execute(
        "UPDATE snapshots SET state = ? WHERE article = 'long' AND version = ?",
        (blob.replace(b"Paragraph one.", b"Paragraph EDITED."), SNAPSHOT_EVERY),
    )
    db.commit()
    db.close()
    shown = run_ledger("show", "long", str(SNAPSHOT_EVERY + 2), store=store_dir)
    assert shown.returncode == 0, shown.stderr
    assert b"Paragraph one." in shown.stdout and b"EDITED" not in shown.stdout
    assert b"does not match the log" in shown.stderr
    # An ingest of the true draft plus a line records a patch against the true text.
    _ingest_one_more_line_and_check_the_log(store_dir, tmp_path, bodies[-1])


# --- 3. deleting files beside the log never breaks mutual exclusion -----------------------

WRITER = textwrap.dedent(
    """
    import sys
    import ledger
    store, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with ledger.open(store) as led:
        led.append([{"type": "ArticleCreated", "article": name, "data": {"title": name}}])
        print("ready", flush=True)
        for n in range(count):
            led.append([{"type": "ArticleEdited", "article": name, "data": {"body": f"{name} {n}\\n"}}])
    print("done", flush=True)
    """
)


@pytest.mark.slow
def test_writers_stay_exclusive_while_the_lock_file_is_deleted(store_dir: Path) -> None:
    # One long-running writer; meanwhile the old lock file is deleted and new writers start,
    # each opening the store afresh (with a lock file, they locked a new file of that name).
    count = 400
    long_running = subprocess.Popen([sys.executable, "-c", WRITER, str(store_dir), "w", str(count)], stdout=subprocess.PIPE)
    try:
        assert long_running.stdout is not None and long_running.stdout.readline() == b"ready\n"
        started = 0
        while long_running.poll() is None and started < 40:
            (store_dir / "lock").unlink(missing_ok=True)
            line = f'{{"type": "ArticleCreated", "article": "c{started}", "data": {{"title": "C"}}}}\n'.encode()
            result = run_ledger("append", "-", store=store_dir, input=line)
            assert result.returncode == 0, result.stderr
            started += 1
    finally:
        long_running.wait(timeout=120)
    assert long_running.returncode == 0
    assert started > 0, "the long-running writer finished before any other writer started"
    records = [codec.decode(line) for line in (store_dir / LOG_FILE).read_bytes().splitlines()]
    assert [r["pos"] for r in records] == list(range(1, count + 1 + started + 1))
    assert [r["version"] for r in records if r["article"] == "w"] == list(range(1, count + 2))
    _verify_ok(store_dir)


def test_a_log_replaced_under_an_open_writer_is_an_error_not_an_append(store_dir: Path) -> None:
    _ten_events(store_dir)
    with ledger.open(store_dir) as led:
        led.article("a1")
        copy = (store_dir / LOG_FILE).read_bytes()
        (store_dir / LOG_FILE).unlink()
        (store_dir / LOG_FILE).write_bytes(copy)
        with pytest.raises(ledger.CorruptStoreError, match="deleted or replaced"):
            led.append([_edited("a1", "lost?\n")])
    assert (store_dir / LOG_FILE).read_bytes() == copy


# --- 4. committed events that vanish are damage, never a torn tail -------------------------


@pytest.mark.slow
def test_committed_events_cut_from_the_log_are_reported_and_nothing_is_cut(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        for n in range(4):
            led.append([_created(f"a{n}", "T", "b\n")])
        led.append([_created("b1", "T", "b\n"), _created("b2", "T", "b\n")])  # positions 5-6, one append
    log = store_dir / LOG_FILE
    os.truncate(log, log.stat().st_size - 5)
    cut = log.read_bytes()
    verify = run_ledger("verify", store=store_dir)
    assert verify.returncode == 8, verify.stdout + verify.stderr
    assert b"positions up to 6" in verify.stdout + verify.stderr
    for args in (("show", "b1"), ("append", "-")):
        result = run_ledger(*args, store=store_dir, input=b'{"type": "ArticleCreated", "article": "c", "data": {"title": "C"}}\n')
        assert result.returncode == 8, result.stderr
        assert result.stderr.count(b"\n") == 1 and b"truncated after the fact" in result.stderr
    assert log.read_bytes() == cut


@pytest.mark.slow
def test_a_record_rewritten_after_it_was_written_is_damage(store_dir: Path) -> None:
    _ten_events(store_dir)
    original = (store_dir / LOG_FILE).read_bytes().splitlines(keepends=True)
    lines = list(original)
    # Position 3 rewritten and sealed again with a recomputed hash: its own checksum holds.
    record = codec.decode(lines[2])
    record.pop("hash")
    prev = record.pop("prev")
    # The same length (one character of its id), so every other record stays where it was.
    record["id"] = record["id"][:-1] + ("1" if record["id"][-1] == "0" else "0")
    lines[2], _ = codec.seal(record, prev)
    assert len(lines[2]) == len(original[2])
    (store_dir / LOG_FILE).write_bytes(b"".join(lines))
    result = run_ledger("history", record["article"], store=store_dir)
    assert result.returncode == 8, result.stderr
    assert b"position 4 does not chain" in result.stderr or b"position 3 was changed after it was written" in result.stderr
    # The last record rewritten the same way: the index's head says otherwise.
    record = codec.decode(lines[-1])
    record.pop("hash")
    prev = record.pop("prev")
    record["actor"] = "someone else"
    lines[-1], _ = codec.seal(record, prev)
    lines[2] = original[2]
    (store_dir / LOG_FILE).write_bytes(b"".join(lines))
    result = run_ledger("show", "a1", store=store_dir)
    assert result.returncode == 8 and b"no longer the record committed there" in result.stderr, result.stderr


@pytest.mark.slow
def test_index_row_deleted_inside_a_version_does_not_hide_its_event(store_dir: Path, tmp_path: Path) -> None:
    # A version of two events (an edit and an update block, as an ingest writes): deleting the
    # block's row left it out of `show`, and the next ingest added the block a second time.
    with ledger.open(store_dir) as led:
        led.append([_created("hb", "Bridge", "Closed.\n")])
        led.append([_edited("hb", "Closed today.\n"),
                    {"type": "UpdateBlockAdded", "article": "hb", "data": {"heading": "Update:", "text": "\nOpen at 6.\n"}}])
        led.append([_created("other", "Other", "Other.\n")])  # the deleted row is not the index's head
        led.head()
    want = run_ledger("show", "hb", store=store_dir).stdout
    assert b"Open at 6." in want
    _sql(store_dir / INDEX_FILE, "DELETE FROM events WHERE pos = 3")
    result = run_ledger("show", "hb", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr
    draft = tmp_path / "hb.txt"
    draft.write_bytes(want.replace(b"Closed today.", b"Closed today, open tonight."))
    assert run_ledger("ingest", "--article", "hb", str(draft), store=store_dir).returncode == 0
    _caches_deleted(store_dir)
    now = run_ledger("show", "hb", store=store_dir).stdout
    assert now.count(b"Open at 6.") == 1 and b"open tonight" in now


@pytest.mark.slow
def test_index_times_edited_do_not_change_what_as_of_shows(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([{**_created("a", "Version one", "1\n"), "occurred_at": "2024-03-05T08:00:00Z"}])
        led.append([{**_edited("a", "2\n"), "occurred_at": "2024-03-05T11:00:00Z"}])
        led.append([{**_edited("a", "3\n"), "occurred_at": "2024-03-05T18:00:00Z"}])
        led.head()
    want = run_ledger("show", "a", "--at", "2024-03-05T12:00Z", store=store_dir).stdout
    assert want.endswith(b"2\n") or b"\n2\n" in want
    _sql(store_dir / INDEX_FILE, "UPDATE events SET occurred_at = '2024-03-05T09:00:00.000000Z' WHERE pos = 3")
    result = run_ledger("show", "a", "--at", "2024-03-05T12:00Z", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr


@pytest.mark.slow
def test_index_version_raised_is_rebuilt_and_answered_the_first_time(store_dir: Path) -> None:
    _ten_events(store_dir)
    want = run_ledger("show", "a1", store=store_dir).stdout
    _sql(store_dir / INDEX_FILE, "UPDATE events SET version = 9 WHERE pos = 10")
    result = run_ledger("show", "a1", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr


def test_a_forged_snapshot_never_becomes_a_patch_in_the_log(store_dir: Path, tmp_path: Path) -> None:
    # Edited and sealed again the way ledger seals it (the digest has no key): `show` of an old
    # version may start from it, but an append is always prepared from the log alone.
    bodies = _long_article(store_dir, SNAPSHOT_EVERY + 5)
    db = sqlite3.connect(store_dir / VIEWS_FILE)
    (blob, record_hash) = db.execute(
        "SELECT state, hash FROM snapshots WHERE article = 'long' AND version = ?", (SNAPSHOT_EVERY,)
    ).fetchone()
    forged = blob.replace(b"Paragraph one.", b"EVIL BODY.")
    db.execute("UPDATE snapshots SET state = ?, digest = ? WHERE article = 'long' AND version = ?",
               (forged, _digest(record_hash, forged), SNAPSHOT_EVERY))
    db.commit()
    db.close()
    _ingest_one_more_line_and_check_the_log(store_dir, tmp_path, bodies[-1])


@pytest.mark.slow
def test_a_views_checkpoint_moved_back_is_rebuilt_not_called_a_corrupt_log(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([_created("a", "A", "a\n")])
        led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "\nOne.\n"}}])
        led.append([{"type": "UpdateBlockRemoved", "article": "a", "data": {"index": 0}}])
        led.append([_created("b", "B", "b\n")])
    want = run_ledger("timeline", store=store_dir).stdout
    # The checkpoint says position 2, with position 2's true hash; the rows are those of position 4.
    second = codec.decode((store_dir / LOG_FILE).read_bytes().splitlines()[1])
    _sql(store_dir / VIEWS_FILE, "UPDATE meta SET value = 2 WHERE key = 'position'")
    _sql(store_dir / VIEWS_FILE, "UPDATE meta SET value = ? WHERE key = 'hash'", second["hash"])
    result = run_ledger("timeline", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr
    assert b"did not match the log" in result.stderr


@pytest.mark.parametrize("position", [0, -1])
def test_a_views_checkpoint_set_back_to_nothing_is_rebuilt_not_folded_twice(store_dir: Path, position: int) -> None:
    # Folded again on top of the rows already there, every category counted twice, silently.
    _ten_events(store_dir)
    want = [run_ledger(*args, store=store_dir).stdout for args in (("categories",), ("categories", "--article", "a1"))]
    _sql(store_dir / VIEWS_FILE, "UPDATE meta SET value = ? WHERE key = 'position'", position)
    result = run_ledger("categories", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want[0]), result.stderr
    assert b"views do not match the log, rebuilding them" in result.stderr
    assert run_ledger("categories", "--article", "a1", store=store_dir).stdout == want[1]


@pytest.mark.parametrize("index", [True, False], ids=["index-kept", "index-deleted"])
def test_records_a_cache_saw_that_are_zeros_now_are_damage_not_a_torn_tail(store_dir: Path, index: bool) -> None:
    # A tail of complete appends zeroed (a disk fault) looks like a crash mid-write; with the index
    # deleted nothing else knew, and the next read cut eight committed records as unfinished.
    _ten_events(store_dir)
    run_ledger("categories", store=store_dir)  # the views stand at position 10
    log = store_dir / LOG_FILE
    data = bytearray(log.read_bytes())
    start = data.index(b"\n") + 20
    data[start:] = bytes(len(data) - start)
    log.write_bytes(bytes(data))
    if not index:
        (store_dir / INDEX_FILE).unlink()
    for args in (("categories",), ("append", "-"), ("verify",)):
        result = run_ledger(*args, store=store_dir, input=b'{"type": "ArticleCreated", "article": "c", "data": {"title": "C"}}\n')
        assert result.returncode == 8, (args, result.stdout, result.stderr)
        assert log.read_bytes() == bytes(data)
    # Nor does a writer opened without recovery cut it when it first appends.
    with ledger.open(store_dir, recover=False) as led, pytest.raises(ledger.CorruptStoreError):
        led.append([_created("c", "C", "c\n")])
    assert log.read_bytes() == bytes(data)
    # The views file gone (another store's, or a power cut mid-append): the tail is cut as unfinished.
    if not index:
        assert b"views.sqlite stood at position 10" in result.stderr
        (store_dir / VIEWS_FILE).unlink()
        assert run_ledger("categories", store=store_dir).returncode == 0
        assert log.stat().st_size == data.index(b"\n") + 1


@pytest.mark.slow
def test_a_views_row_naming_a_version_not_in_the_log_is_rebuilt_not_a_traceback(store_dir: Path) -> None:
    _ten_events(store_dir)
    want = run_ledger("timeline", store=store_dir).stdout
    _sql(store_dir / VIEWS_FILE, "UPDATE changes SET article = 'ghost' WHERE position = 4")
    result = run_ledger("timeline", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr
    assert b"which is not in the log; rebuilding them" in result.stderr


def test_debug_notes_are_not_called_warnings(store_dir: Path) -> None:
    # With --debug every note of the library was printed as "warning:".
    _ten_events(store_dir)
    run_ledger("search", "text", store=store_dir)
    _sql(store_dir / "text.sqlite", "UPDATE versions SET rows = x'0301'")
    result = run_ledger("--debug", "search", "text", store=store_dir)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 0 and len(lines) == 2, lines
    assert lines[0].startswith("warning: ") and "rebuilding it from the log" in lines[0]
    assert lines[1].startswith("debug: the row's error: "), lines


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE stretches SET entries = x'0500'",
        "UPDATE versions SET rows = x'0301'",
        "UPDATE open_lines SET lines = CAST(lines || x'02' AS BLOB)",
        # Text where bytes were written.
        "UPDATE open_lines SET lines = 'abc'",
    ],
    ids=["stretches", "versions", "open-lines", "open-lines-text"],
)
def test_a_text_index_row_that_does_not_read_is_rebuilt_not_a_traceback(store_dir: Path, tmp_path: Path, statement: str) -> None:
    _ten_events(store_dir)
    commands = [("search", "text"), ("blame", "a1", "5"), ("search", "more text")]
    run_ledger(*commands[0], store=store_dir)
    # The same store untouched beside it, for the answers.
    pristine = tmp_path / "pristine"
    shutil.copytree(store_dir, pristine)
    _sql(store_dir / "text.sqlite", statement)
    with ledger.open(store_dir) as led:
        led.append([_edited("a1", "text 8\nmore text\n")])
    # The same log under the pristine caches, which catch up on the first read.
    shutil.copy2(store_dir / LOG_FILE, pristine / LOG_FILE)
    want = [run_ledger(*command, store=pristine).stdout for command in commands]
    got = [run_ledger(*command, store=store_dir) for command in commands]
    assert [(r.returncode, r.stdout) for r in got] == [(0, w) for w in want], [r.stderr for r in got]
    assert b"Traceback" not in b"".join(r.stderr for r in got)
    assert b"does not read as it was written; rebuilding it from the log" in got[0].stderr


def test_a_damaged_text_index_row_read_while_folding_is_not_called_a_corrupt_log(store_dir: Path) -> None:
    # 40 articles: the first row of stretches (64) is full, the next one holds the rest. The
    # edit folded next closes a stretch of the first row, which is damaged.
    with ledger.open(store_dir) as led:
        led.append([_created(f"a{n:02}", f"Title {n}", f"body {n}\n") for n in range(40)])
        led.search("body")
    _sql(store_dir / "text.sqlite", "UPDATE stretches SET entries = x'0500' WHERE block = 0")
    with ledger.open(store_dir) as led:
        led.append([_edited("a00", "body changed\n")])
    result = run_ledger("search", "body changed", store=store_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"a00") == 1
    assert b"does not read as it was written; rebuilding it from the log" in result.stderr


def test_a_resealed_log_whose_actor_is_not_text_is_named_not_a_traceback(store_dir: Path) -> None:
    _ten_events(store_dir)
    # The whole chain sealed again, the second record's actor a number: every hash holds.
    lines, prev = [], codec.GENESIS_HASH
    for number, line in enumerate((store_dir / LOG_FILE).read_bytes().splitlines(keepends=True), 1):
        record = codec.decode(line)
        record.pop("hash")
        record.pop("prev", None)
        # Beside actors that are text, as most are.
        record["actor"] = 5 if number == 2 else "desk"
        sealed, prev = codec.seal(record, prev)
        lines.append(sealed)
    (store_dir / LOG_FILE).write_bytes(b"".join(lines))
    _caches_deleted(store_dir)
    result = run_ledger("search", "text", store=store_dir)
    assert result.returncode == 8, result.stderr
    assert b"log position 2: this ArticleCreated does not fit its type (its actor or reason is not text)" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.slow
def test_verify_finds_an_event_id_recorded_twice(store_dir: Path) -> None:
    # Sealed with an intact chain, as a writer misled by an edited index row would write it.
    with ledger.open(store_dir) as led:
        led.append([{**_created("a", "A", "a\n"), "id": "blk-1"}])
        led.append([_created("b", "B", "b\n")])
    lines = (store_dir / LOG_FILE).read_bytes().splitlines(keepends=True)
    second = codec.decode(lines[1])
    second.pop("hash")
    prev = second.pop("prev")
    second["id"] = "blk-1"
    lines[1], _ = codec.seal(second, prev)
    (store_dir / LOG_FILE).write_bytes(b"".join(lines))
    (store_dir / INDEX_FILE).unlink()
    result = run_ledger("verify", store=store_dir)
    assert result.returncode == 8, result.stdout
    assert b"event id 'blk-1' was already recorded" in result.stderr


@pytest.mark.slow
def test_a_log_that_is_a_folder_is_named_so(store_dir: Path) -> None:
    (store_dir / LOG_FILE).unlink()
    (store_dir / LOG_FILE).mkdir()
    result = run_ledger("verify", store=store_dir)
    assert result.returncode == 8
    assert result.stderr.endswith(b"events.jsonl: the log is not a regular file\n"), result.stderr


@pytest.mark.slow
def test_an_error_naming_a_file_with_a_line_break_stays_one_line(store_dir: Path, tmp_path: Path) -> None:
    draft = tmp_path / "new\nline.txt"
    draft.write_bytes(b"\xff\xfe not a draft")
    result = run_ledger("ingest", str(draft), store=store_dir)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count(b"\n") == 1 and b"new\\nline.txt" in result.stderr, result.stderr


@pytest.mark.slow
def test_an_index_head_that_is_not_a_number_is_rebuilt(store_dir: Path) -> None:
    _ten_events(store_dir)
    want = run_ledger("show", "a1", store=store_dir).stdout
    _sql(store_dir / INDEX_FILE, "UPDATE meta SET value = 'abc' WHERE key = 'offset'")
    result = run_ledger("show", "a1", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr
    assert b"its head is not readable; rebuilding it from the log" in result.stderr


def test_a_store_path_that_is_a_file_or_holds_a_marker_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a store\n")
    (tmp_path / "odd" / "LEDGER").mkdir(parents=True)
    for store, message in (
        (tmp_path / "afile", f"error: {tmp_path / 'afile'}: not a folder, so no ledger store (give the store's folder)\n"),
        (tmp_path / "odd", f"error: {tmp_path / 'odd' / 'LEDGER'}: a folder where the store's marker file should be\n"),
    ):
        for command in (("head",), ("history", "x")):
            done = run_ledger(*command, store=store)
            assert (done.returncode, done.stderr.decode()) == (6 if store.name == "afile" else 8, message)


def _forge(store_dir: Path, position: int, change: Any) -> None:
    """Change the record at `position` and seal it and every line after it again, as someone
    writing around ledger would: the hash chain holds, the record is not one ledger writes."""
    lines = (store_dir / LOG_FILE).read_bytes().splitlines()
    records = [codec.decode(line) for line in lines]
    change(records[position - 1])
    prev = records[position - 2]["hash"] if position > 1 else codec.GENESIS_HASH
    out = lines[: position - 1]
    for record in records[position - 1 :]:
        record.pop("hash")
        record.pop("prev")
        line, prev = codec.seal(record, prev)
        out.append(line.rstrip(b"\n"))
    (store_dir / LOG_FILE).write_bytes(b"\n".join(out) + b"\n")
    _caches_deleted(store_dir)


def _no_title(record: dict[str, Any]) -> None:
    del record["data"]["title"]


def _patch_past_the_end(record: dict[str, Any]) -> None:
    record["data"]["patch"] = [[50, 60, "x"]]


def _no_such_block(record: dict[str, Any]) -> None:
    record["type"], record["data"] = "UpdateBlockEdited", {"index": 7, "heading": "Update:"}


def _categories_a_number(record: dict[str, Any]) -> None:
    record["data"]["categories"] = 5


@pytest.mark.parametrize(
    ("position", "change", "words"),
    [
        (1, _no_title, "log position 1: this ArticleCreated does not fit its type (it has no 'title')"),
        (3, _patch_past_the_end, "log position 3: this ArticleEdited does not fit its type (patch operation [50, 60] does not fit"),
        (2, _no_such_block, "log position 2: "),
        (1, _categories_a_number, "log position 1: this ArticleCreated does not fit its type (its data is not of its type's shape)"),
    ],
)
def test_a_record_sealed_again_that_ledger_would_not_write_is_named_by_every_reader(store_dir: Path, position: int, change: Any, words: str) -> None:
    with ledger.open(store_dir) as led:
        led.append([_created("a", "A", "one\n", ["news"])])
        led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "more"}}])
        led.append([{"type": "ArticleEdited", "article": "a", "data": {"patch": [[0, 3, "two"]]}}])
    _forge(store_dir, position, change)
    log = (store_dir / LOG_FILE).read_bytes()
    for command in (["show", "a"], ["history", "a"], ["diff", "a", "1", "3"], ["categories"], ["blame", "a"], ["search", "one"], ["replay"]):
        done = run_ledger(*command, store=store_dir)
        err = done.stderr.decode()
        if command == ["categories"] and position == 3:
            assert done.returncode == 0, err  # the views fold no patches: the listing stands
            continue
        assert done.returncode == 8 and words in err and err.count("\n") == 1 and "Traceback" not in err, (command, err)
    assert (store_dir / LOG_FILE).read_bytes() == log


def test_init_where_no_store_can_be_made_is_one_line(tmp_path: Path) -> None:
    # The hostile run: `ledger --store FILE/sub init` (a path through a file) and a folder name
    # longer than the system allows ended in a NotADirectoryError / OSError traceback, exit 1.
    (tmp_path / "afile").write_text("not a store\n")
    for store, reason in (
        (tmp_path / "afile" / "sub", "Not a directory"),
        (tmp_path / ("a" * 300) / "sub", "File name too long"),
    ):
        done = run_ledger("init", store=store)
        assert done.returncode == 6, done.stderr
        line = done.stderr.decode()
        assert line.startswith(f"error: {store}: cannot create a store there: {reason}"), line
        assert line.count("\n") == 1, line


def _zero_table_page(database: Path, table: str) -> None:
    """Overwrite the first page of `table` with zeros, as a bad sector or a torn copy would: the
    file still opens, and only a query that reads that table finds it malformed."""
    db = sqlite3.connect(database)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        db.close()
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\0" * page_size)


@pytest.mark.parametrize(("table", "command"), [("feed", ["updated", "--since", "2000-01-01"]), ("category_counts", ["categories"])])
def test_views_with_a_damaged_page_are_rebuilt_by_the_read_that_finds_it(store_dir: Path, table: str, command: list[str]) -> None:
    # The hostile run: a zeroed page of views.sqlite passed the catch-up (which reads only the
    # checkpoint) and stopped the read that reached it: exit 6, "the store's index or views failed".
    _ten_events(store_dir)
    with ledger.open(store_dir) as led:
        led.append([{"type": "UpdateBlockAdded", "article": "a1", "data": {"heading": "Update:", "text": "\nMore.\n"}}])
    want = run_ledger(*command, store=store_dir)
    assert want.returncode == 0, want.stderr
    log = (store_dir / LOG_FILE).read_bytes()
    _zero_table_page(store_dir / VIEWS_FILE, table)
    result = run_ledger(*command, store=store_dir)
    assert (result.returncode, result.stdout) == (0, want.stdout), result.stderr
    assert b"damaged views (database disk image is malformed), rebuilding them from the log" in result.stderr
    assert run_ledger(*command, store=store_dir).stderr == b""  # rebuilt once, for good
    assert (store_dir / LOG_FILE).read_bytes() == log


def test_replay_rebuilds_views_with_a_damaged_page(store_dir: Path) -> None:
    # The hostile run: `ledger replay`, the command that rebuilds the views, failed on them
    # (exit 6, "database disk image is malformed") instead of starting from a new file.
    _ten_events(store_dir)
    want = run_ledger("categories", store=store_dir).stdout
    _zero_table_page(store_dir / VIEWS_FILE, "category_counts")
    result = run_ledger("replay", store=store_dir)
    assert result.returncode == 0, result.stderr
    assert b"damaged views" in result.stderr
    assert run_ledger("categories", store=store_dir).stdout == want
    _verify_ok(store_dir)


@pytest.mark.parametrize(
    ("table", "column", "value", "command"),
    [
        ("articles", "categories", "", ["articles"]),
        ("articles", "authors", "[", ["articles", "--author", "ana"]),
        ("articles", "updated_at", 5, ["articles", "--format", "json"]),
        ("feed", "occurred_at", "yesterday", ["updated", "--since", "2000-01-01"]),
        ("category_counts", "count", "many", ["categories"]),
        ("memberships", "entered_at", "noon", ["categories", "--article", "a1"]),
        ("memberships", "entered_version", "one", ["categories", "x"]),
    ],
)
def test_a_views_row_of_the_wrong_kind_is_rebuilt_not_a_traceback(store_dir: Path, table: str, column: str, value: Any,
                                                                   command: list[str]) -> None:
    # The hostile run: `UPDATE articles SET categories = ''` in views.sqlite made `ledger articles`
    # die with an orjson.JSONDecodeError traceback (exit 1); SQLite itself sees no fault there.
    _ten_events(store_dir)
    with ledger.open(store_dir) as led:
        led.append([{"type": "UpdateBlockAdded", "article": "a1", "data": {"heading": "Update:", "text": "\nMore.\n"}}])
    want = run_ledger(*command, store=store_dir)
    assert want.returncode == 0, want.stderr
    _sql(store_dir / VIEWS_FILE, f"UPDATE {table} SET {column} = ?", value)
    result = run_ledger(*command, store=store_dir)
    assert (result.returncode, result.stdout) == (0, want.stdout), result.stderr
    assert result.stderr.endswith(b"the views hold a row that cannot be read; rebuilding them from the log\n"), result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("table", "command"),
    [
        *((table, command) for table in ("events", "events_article")
          for command in (["append", "-"], ["replay"], ["show", "a1"], ["export", "--article", "a1"])),
        # The table of each article's latest version: read by a replay, and by a writer's start.
        ("articles", ["append", "-"]),
        ("articles", ["replay"]),
    ],
    ids=lambda value: value if isinstance(value, str) else value[0],
)
def test_an_index_with_a_damaged_page_is_rebuilt_by_the_command_that_finds_it(store_dir: Path, table: str, command: list[str]) -> None:
    # The hostile run: a zeroed page of index.sqlite (its head still readable) stopped appends,
    # reads and even `ledger replay` (blamed on text.sqlite) with exit 6, "database disk image is
    # malformed", instead of the rebuild that a damaged cache gets.
    _ten_events(store_dir)
    want = run_ledger(*command, store=store_dir, input=b"") if command[0] != "append" else None
    log = (store_dir / LOG_FILE).read_bytes()
    _zero_table_page(store_dir / INDEX_FILE, table)
    line = b'{"type": "ArticleCreated", "article": "b", "data": {"title": "B"}}\n'
    result = run_ledger(*command, store=store_dir, input=line)
    assert result.returncode == 0, result.stderr
    assert b"index.sqlite: damaged (database disk image is malformed); rebuilding it from the log" in result.stderr, result.stderr
    if want is not None:
        assert result.stdout == want.stdout or command[0] == "replay"
        assert (store_dir / LOG_FILE).read_bytes() == log
    _verify_ok(store_dir)


def test_views_with_a_damaged_snapshots_page_still_show_every_version(store_dir: Path) -> None:
    # The hostile run: a zeroed page of the snapshots table stopped `ledger show` with exit 6.
    with ledger.open(store_dir) as led:
        led.append([_created("a", "A", "v0\n")])
        for n in range(1, SNAPSHOT_EVERY + 5):
            led.append([_edited("a", f"v{n}\n")])
    want = [run_ledger("show", "a", str(v), store=store_dir).stdout for v in (SNAPSHOT_EVERY + 2, SNAPSHOT_EVERY + 5)]
    _zero_table_page(store_dir / VIEWS_FILE, "snapshots")
    got = [run_ledger("show", "a", str(v), store=store_dir) for v in (SNAPSHOT_EVERY + 2, SNAPSHOT_EVERY + 5)]
    assert [(r.returncode, r.stdout) for r in got] == [(0, w) for w in want], [r.stderr for r in got]
    assert b"damaged views (database disk image is malformed)" in got[0].stderr


def test_replay_of_an_indexed_record_changed_since_reports_its_checksum(store_dir: Path) -> None:
    # The hostile run: one bit flipped in an indexed record ("article" became "art)cle") made
    # `ledger replay`, which trusts records the index checked once, die with KeyError: 'article'.
    _ten_events(store_dir)
    log = (store_dir / LOG_FILE).read_bytes()
    lines = log.splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"article":', b'"art)cle":', 1)
    (store_dir / LOG_FILE).write_bytes(b"".join(lines))
    result = run_ledger("replay", store=store_dir)
    assert result.returncode == 8, result.stderr
    offset = sum(map(len, lines[:4]))
    assert result.stderr.decode() == f"error: {store_dir / LOG_FILE}: position 5 (line at byte {offset}): record does not match its checksum\n"


def test_a_record_changed_and_sealed_again_that_no_append_writes_is_reported_by_replay(store_dir: Path) -> None:
    # A record whose data is text, not an object, sealed again with the rest of the chain: its
    # hash matches, so only the fold finds it (an AttributeError traceback before).
    _ten_events(store_dir)
    _forge(store_dir, 5, lambda record: record.update(data="text"))  # the caches go too
    result = run_ledger("replay", store=store_dir)
    assert result.returncode == 8, result.stderr
    assert result.stderr.decode() == (
        "error: log position 5: this ArticleEdited does not fit its type (its data is not of its type's shape),"
        " yet matches its hash (it was changed and sealed again: no append writes it)\n"
    )


def test_verify_of_a_log_cut_at_a_line_end_names_no_python_none(store_dir: Path) -> None:
    # The hostile run: `ledger verify` of a log that lost its last line after the index saw it
    # printed "problem: line 11, position None, byte ...": Python's None, where no position is.
    _ten_events(store_dir)
    lines = (store_dir / LOG_FILE).read_bytes().splitlines(keepends=True)
    (store_dir / LOG_FILE).write_bytes(b"".join(lines[:-1]))
    result = run_ledger("verify", store=store_dir)
    assert result.returncode == 8, result.stderr
    assert result.stderr.decode().startswith(f"problem: line 10, byte {sum(map(len, lines[:-1]))}: the log ends at byte"), result.stderr
    assert b"None" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("cache", "table", "command"),
    [
        ("views.sqlite", "category_counts", ["categories"]),
        ("views.sqlite", "meta", ["categories"]),
        ("views.sqlite", "articles", ["updated", "--since", "2000-01-01"]),
        ("views.sqlite", "changes", ["timeline"]),
        ("text.sqlite", "articles", ["search", "text"]),
        ("text.sqlite", "versions", ["blame", "a1"]),
    ],
)
def test_a_cache_with_a_table_dropped_is_rebuilt_not_refilled_beside_the_rest(store_dir: Path, cache: str, table: str,
                                                                              command: list[str]) -> None:
    # The hostile run: `DROP TABLE category_counts` in views.sqlite made `ledger categories`
    # answer "no categories" with exit 0 (CREATE TABLE IF NOT EXISTS made it again, empty, beside
    # the other tables' rows), and a table dropped from text.sqlite made search die with KeyError.
    _ten_events(store_dir)
    with ledger.open(store_dir) as led:
        led.append([{"type": "UpdateBlockAdded", "article": "a1", "data": {"heading": "Update:", "text": "\nMore.\n"}}])
    want = run_ledger(*command, store=store_dir)
    assert want.returncode == 0 and want.stdout, want.stderr
    _sql(store_dir / cache, f"DROP TABLE {table}")
    result = run_ledger(*command, store=store_dir)
    assert (result.returncode, result.stdout) == (0, want.stdout), result.stderr
    assert f"its table {table} is missing".encode() in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda line: line[:40] + b"\xff" + line[41:], "byte 0xff at column 41 is not UTF-8"),
        (lambda line: b"\n" + line, "an empty line"),
        (lambda line: b"\xef\xbb\xbf" + line, "it starts with a byte order mark"),
        (lambda line: line.replace(b'"', b"'", 1), "unexpected character, expected a string key at column 2"),
    ],
    ids=["not-utf8", "blank", "bom", "quote"],
)
def test_a_log_line_that_is_not_json_is_named_in_plain_words(store_dir: Path, damage: Any, problem: str) -> None:
    # The hostile run: a byte 0xff in a log line was "record is not valid JSON (str is not valid
    # UTF-8: surrogates not allowed)" (orjson's words: there was no surrogate), a blank line
    # "(input data is empty)".
    _ten_events(store_dir)
    lines = (store_dir / LOG_FILE).read_bytes().splitlines(keepends=True)
    offset = sum(map(len, lines[:4]))
    lines[4] = damage(lines[4])
    (store_dir / LOG_FILE).write_bytes(b"".join(lines))
    checked = run_ledger("verify", store=store_dir)
    assert checked.returncode == 8, checked.stderr
    assert checked.stderr.decode().splitlines()[0] == f"problem: line 5, position 5, byte {offset}: record is not valid JSON ({problem})"
    _caches_deleted(store_dir)  # a line put in or made longer moves the record the index saw last
    read = run_ledger("log", store=store_dir)
    assert read.returncode == 8, read.stderr
    assert read.stderr.decode() == f"error: {store_dir / LOG_FILE}: position 5 (line at byte {offset}): record is not valid JSON ({problem})\n"


@pytest.mark.parametrize(
    ("name", "command", "code", "message"),
    [
        (LOG_FILE, ["show", "a1"], 8, b"events.jsonl: the log is not a regular file"),
        ("LEDGER", ["show", "a1"], 8, b"LEDGER: not a ledger marker file"),
        (INDEX_FILE, ["show", "a1"], 0, b"index.sqlite: unreadable index, rebuilding it from the log"),
        (VIEWS_FILE, ["articles"], 0, b"views.sqlite: unreadable views (views.sqlite is not a regular file), rebuilding them from the log"),
        ("text.sqlite", ["search", "text"], 0, b""),
    ],
)
def test_a_fifo_where_a_store_file_goes_is_no_hang(store_dir: Path, name: str, command: list[str], code: int, message: bytes) -> None:
    # The hostile run: a FIFO named events.jsonl, LEDGER, index.sqlite or views.sqlite made every
    # command wait for ever for a writer to the FIFO (opening it, or SQLite reading it).
    _ten_events(store_dir)
    want = run_ledger(*command, store=store_dir).stdout
    (store_dir / name).unlink()
    os.mkfifo(store_dir / name)
    result = run_ledger(*command, store=store_dir, timeout=60)
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr
    if code == 0:
        assert result.stdout == want


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE events SET article = 'gone'", b"it lists 'a1' at version 5 but holds none of its records"),
        # a2's latest record (position 9; not the head, which the index checks on open).
        ("DELETE FROM events WHERE pos = (SELECT MAX(pos) FROM events WHERE article = 'a2')",
         b"its latest record of 'a2' is not the version it lists"),
    ],
    ids=["article-changed", "latest-row-lost"],
)
def test_index_rows_that_lost_an_articles_records_are_rebuilt(store_dir: Path, statement: str, problem: bytes) -> None:
    # The hostile run: with the article column of index.sqlite's events changed, `ledger blame
    # live` said "article 'live' is not in the log (did you mean 'live'?)", exit 4; with rows
    # lost, `ledger timeline --article` listed an older version as the latest, exit 0. Each row
    # read matched the log: the index's table of latest versions is the witness that disagrees.
    _ten_events(store_dir)
    article = "a2" if "a2" in statement else "a1"
    want = run_ledger("timeline", "--article", article, store=store_dir).stdout
    _sql(store_dir / INDEX_FILE, statement)
    result = run_ledger("timeline", "--article", article, store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr
    assert problem + b"; rebuilding it from the log" in result.stderr, result.stderr


def test_the_indexs_table_of_latest_versions_with_values_of_another_kind_is_rebuilt(store_dir: Path) -> None:
    # The hostile run: a blob where an article's name goes in index.sqlite's `articles` made the
    # text index's rebuild (`ledger replay`, which sorts the store's articles) die with
    # "TypeError: '<' not supported between instances of 'bytes' and 'str'".
    _ten_events(store_dir)
    with ledger.open(store_dir) as led:
        want = led.store.articles()
    _sql(store_dir / INDEX_FILE, "UPDATE articles SET article = X'0001' WHERE article = 'a1'")
    with ledger.open(store_dir) as led:
        assert led.store.articles() == want == {"a1": 5, "a2": 5}


@pytest.mark.parametrize("article", [{"a": 1}, ["a1"], None], ids=["object", "list", "null"])
def test_verify_of_a_record_sealed_again_with_an_article_that_is_not_text(store_dir: Path, article: Any) -> None:
    # The hostile run: a record sealed again with an object for its article made `ledger verify`
    # die with "TypeError: unhashable type: 'dict'" instead of naming the record.
    _ten_events(store_dir)
    _forge(store_dir, 5, lambda record: record.update(article=article))
    lines = (store_dir / LOG_FILE).read_bytes().splitlines(keepends=True)
    result = run_ledger("verify", store=store_dir)
    assert result.returncode == 8, result.stderr
    offset = sum(map(len, lines[:4]))
    assert result.stderr.decode().splitlines()[0] == f"problem: line 5, position 5, byte {offset}: record field 'article' is missing or not text"


@pytest.mark.parametrize("change", ["length = -1", "offset = -1", "length = 0"])
def test_an_index_row_placing_no_line_is_rebuilt_not_a_traceback_or_a_corrupt_log(store_dir: Path, change: str) -> None:
    # A negative place raised OSError from pread; no length read as a line of the log cut short.
    _ten_events(store_dir)
    want = run_ledger("history", "a2", store=store_dir).stdout  # position 3 is a2's version 2
    _sql(store_dir / INDEX_FILE, f"UPDATE events SET {change} WHERE pos = 3")
    result = run_ledger("history", "a2", store=store_dir)
    assert (result.returncode, result.stdout) == (0, want), result.stderr
    assert b"rebuilding it from the log" in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.parametrize("cache", [INDEX_FILE, VIEWS_FILE, "text.sqlite"])
def test_a_cache_whose_schema_names_are_not_text_is_rebuilt_not_a_traceback(store_dir: Path, cache: str) -> None:
    # One byte in the page where SQLite keeps its schema made its own message undecodable:
    # Python raised UnicodeDecodeError, and every command failed, verify included.
    _ten_events(store_dir)
    commands = (("verify",), ("show", "a1"), ("categories",), ("search", "text"))
    want = [run_ledger(*args, store=store_dir).stdout for args in commands]
    path = store_dir / cache
    raw = bytearray(path.read_bytes())
    at = raw.index(b"sqlite_autoindex_meta_1", 0, 4096)
    raw[at + 2] = 0xF3
    path.write_bytes(bytes(raw))
    log = (store_dir / LOG_FILE).read_bytes()
    for args, expected in zip(commands, want, strict=True):
        result = run_ledger(*args, store=store_dir)
        assert (result.returncode, b"Traceback" in result.stderr) == (0, False), (args, result.stderr)
        if args != ("verify",):
            assert result.stdout == expected, args
    assert (store_dir / LOG_FILE).read_bytes() == log


@pytest.mark.parametrize("cache", [INDEX_FILE, VIEWS_FILE, "text.sqlite"])
def test_a_folder_where_a_cache_goes_is_named_as_one(store_dir: Path, cache: str) -> None:
    # It was "cannot be written (a read-only store?)", and for the text index nothing at all.
    _ten_events(store_dir)
    commands = (("search", "text"), ("categories",))
    want = [run_ledger(*args, store=store_dir).stdout for args in commands]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store_dir / cache}{suffix}").unlink(missing_ok=True)
    (store_dir / cache).mkdir()
    results = [run_ledger(*args, store=store_dir) for args in commands]
    assert [(result.returncode, result.stdout) for result in results] == [(0, out) for out in want]
    assert f"{store_dir / cache}: is a folder, not the cache's file".encode() in b"".join(result.stderr for result in results)
    # A rebuild of views that could not be kept said so only in a warning, and exited 0. (The
    # log's index is not a view: kept in memory, it leaves the rebuilt views saved.)
    replayed = run_ledger("replay", store=store_dir)
    assert (replayed.returncode, b"is a folder" in replayed.stderr) == (0 if cache == INDEX_FILE else 6, True), replayed.stderr
    assert replayed.stdout.startswith(b"replayed 10 events of 2 articles")
    assert cache == INDEX_FILE or replayed.stderr.endswith(b"error: the views were rebuilt in memory only, as their files cannot be written (see the warning above): the next command builds them again\n")


def test_a_cache_deleted_while_another_process_has_it_open_is_rebuilt_once(store_dir: Path) -> None:
    # Its -wal and -shm stay while that process runs: every other command called the new file
    # unwritable ("is the disk full?") and kept the views in memory, run after run.
    _ten_events(store_dir)
    with ledger.open(store_dir) as held:
        held.categories()
        held.search("text")
        want = [run_ledger(*command, store=store_dir).stdout for command in (("categories",), ("search", "text"))]
        for name in (VIEWS_FILE, "text.sqlite"):
            (store_dir / name).unlink()
        first = [run_ledger(*command, store=store_dir) for command in (("categories",), ("search", "text"))]
        again = [run_ledger(*command, store=store_dir) for command in (("categories",), ("search", "text"))]
        assert [(r.returncode, r.stdout) for r in first + again] == [(0, out) for out in want + want]
        said = b"".join(r.stderr for r in first)
        assert b"rebuilding" in said and b"is the disk full" not in said, said
        assert b"in memory" not in said, said
        assert [r.stderr for r in again] == [b"", b""]
        assert [c.name for c in held.categories()] == ["x"]
