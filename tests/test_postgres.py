"""The ledger on PostgreSQL, beyond the contract suite (which runs on it too): many writer
processes and a follower, a row changed by hand, a backend ended mid-append, bad configuration,
export and import both ways, and a second host with a fresh views cache. Every test runs against
a real server (a throw-away cluster, or `$LEDGER_TEST_POSTGRES`); none can be had: skipped."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

import ledger
import ledger.application
from ledger.events import NewRecord, format_time
from ledger.store.logfile import seal_append
from ledger.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresEventStore, init_schema, redact
from ledger.textindex import TextIndex
from tests import pgserver
from tests.conftest import CORPUS, run_ledger
from tests.helpers import corpus_versions, ingest_corpus_version

pytestmark = pytest.mark.postgres

DEADLINE = 120.0


def wait_for(check: Callable[[], bool], what: str) -> None:
    """Poll `check` until it holds, failing after `DEADLINE` (never a fixed sleep)."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def rec(article: str, kind: str = "ArticleWithdrawn", *, id: str | None = None, **data: Any) -> NewRecord:
    return NewRecord(id=id or str(uuid.uuid4()), article=article, type=kind, data=dict(data), explicit_id=id is not None)


def cli(url: str, *args: str, cache: Path | None = None, input: bytes | None = None) -> tuple[int, str, str]:
    env = {"LEDGER_CACHE_DIR": str(cache)} if cache is not None else None
    done = run_ledger("--store", url, *args, input=input, env=env)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


# --- many writers, one follower ----------------------------------------------------------------


def _writer(url: str, name: str, appends: int) -> None:
    store = PostgresEventStore(url)
    try:
        for n in range(appends):
            store.append([rec(name, n=n), rec("shared", writer=name, n=n)])
    finally:
        store.close()


@pytest.mark.slow
def test_writer_processes_and_a_follower_see_every_position_once_in_order(pg_url: str) -> None:
    names, appends = [f"p{i}" for i in range(4)], 60
    total = 2 * len(names) * appends
    seen: list[int] = []
    failures: list[BaseException] = []
    with ledger.open(pg_url) as led:
        def follow() -> None:
            try:
                for event in led.follow(after=0, poll=0.5):
                    seen.append(event.position)
                    if len(seen) == total:
                        return
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        context = multiprocessing.get_context("spawn")
        writers = [context.Process(target=_writer, args=(pg_url, name, appends)) for name in names]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(DEADLINE)
            assert writer.exitcode == 0, f"a writer process failed or hung (exit code {writer.exitcode})"
        follower.join(DEADLINE)
        assert not follower.is_alive() and failures == []
        assert seen == list(range(1, total + 1))
        records = list(led.store.read())
        for name in names:
            assert [r["data"]["n"] for r in records if r["article"] == name] == list(range(appends))
        assert led.verify().ok


def test_a_follower_is_woken_by_an_append_and_survives_a_dropped_connection(pg_url: str) -> None:
    with ledger.open(pg_url) as led, ledger.open(pg_url) as writer:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "one"}}])
        seen: list[int] = []
        stream = led.follow(poll=30)  # a long poll: only a notification wakes it soon
        thread = threading.Thread(target=lambda: seen.extend(e.position for e in _take(stream, 2)), daemon=True)
        thread.start()
        wait_for(lambda: _listeners(pg_url) == 1, "the follower to listen")
        writer.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "two"}}])
        wait_for(lambda: seen == [2], "the follower to see position 2")
        # The listening connection is ended by the server: the follower listens again and
        # catches up from its position (the append may land while it has no listener).
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND datname = current_database()")
        writer.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "three"}}])
        thread.join(DEADLINE)
        assert seen == [2, 3]


def _end_other_backends(url: str) -> int:
    """End every other connection to the test database (as a server restart would); how many."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_reads_and_a_follower_go_on_when_every_connection_is_ended(pg_url: str) -> None:
    with ledger.open(pg_url) as led, ledger.open(pg_url) as writer:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "one"}}])
        # Several idle connections in the pool, all to be broken at once.
        threads = [threading.Thread(target=lambda: [led.store.head() for _ in range(20)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        assert _end_other_backends(pg_url) >= 2
        assert led.store.head().position == 1
        seen: list[int] = []
        stream = led.follow(poll=0.5)
        follower = threading.Thread(target=lambda: seen.extend(e.position for e in _take(stream, 2)), daemon=True)
        follower.start()
        wait_for(lambda: _listeners(pg_url) == 1, "the follower to listen")
        _end_other_backends(pg_url)
        writer.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "two"}}])
        wait_for(lambda: seen == [2], "the follower to see position 2")
        _end_other_backends(pg_url)
        writer.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "three"}}])
        follower.join(DEADLINE)
        assert seen == [2, 3]


def _take(stream: Iterator[Any], n: int) -> Iterator[Any]:
    for i, item in enumerate(stream, 1):
        yield item
        if i == n:
            return


def _listeners(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND datname = current_database()").fetchone()
        return int(row[0]) if row else 0


# --- tampering and broken connections ------------------------------------------------------------


def test_verify_reports_a_row_changed_by_hand(pg_url: str) -> None:
    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "Night", "body": "Night market"}}])
        led.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "Night market returns"}}])
        assert led.verify().ok
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE ledger_events SET line = convert_to(replace(convert_from(line, 'UTF8'), 'returns', 'closes'), 'UTF8') WHERE pos = 2")
    code, out, err = cli(pg_url, "verify")
    assert code == 8 and "position 2" in err and "checksum" in err, (out, err)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE ledger_events SET line = convert_to(replace(convert_from(line, 'UTF8'), 'closes', 'returns'), 'UTF8') WHERE pos = 2")
        conn.execute("UPDATE ledger_events SET article = 'b' WHERE pos = 2")
    code, out, err = cli(pg_url, "verify")
    assert code == 8 and "columns do not match" in err, (out, err)


def test_verify_while_another_process_appends_is_ok(pg_url: str) -> None:
    # It read past the head it began with, into rows committed meanwhile, and called that a
    # head that does not match the log (exit 8 on a sound store).
    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "Night", "body": "Night market"}}])
        appended: list[int] = []

        def append_meanwhile(done: int, total: int) -> None:
            if not appended:
                line = json.dumps({"type": "ArticleEdited", "article": "a", "data": {"body": f"edit at {time.time()}"}}).encode() + b"\n"
                appended.append(cli(pg_url, "append", "-", input=line)[0])

        report = led.verify(progress=append_meanwhile)
        assert appended == [0]
        assert (report.ok, report.events, report.head_position, report.problems) == (True, 1, 1, []), report
        assert led.verify().head_position == 2


def test_an_exact_import_holds_other_writers_off_from_its_first_batch_to_its_last(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each batch committed on its own, letting other writers in between batches (the import then
    # failed half done).
    from tests.helpers import import_in_batches_trying_another_writer

    code, err = import_in_batches_trying_another_writer(pg_url, monkeypatch, tmp_path)
    assert code == 7 and "another writer held the log" in err, err
    with ledger.open(pg_url) as led:
        assert led.verify().ok and [(e.article, e.version) for e in led.events()] == [("a", 1), ("a", 2), ("a", 3), ("a", 4)]


def test_a_read_of_an_article_refuses_rows_changed_or_removed_by_hand(pg_url: str) -> None:
    store = PostgresEventStore(pg_url)
    try:
        store.append([rec("a", "ArticleCreated", title="A", body="a")])
        for n in range(3):
            store.append([rec("a", "ArticleEdited", body=f"a{n}")])
        assert [r["version"] for r in store.read_article("a")] == [1, 2, 3, 4]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            # The row says version 9, its (sealed) line says 3.
            conn.execute("UPDATE ledger_events SET version = 9 WHERE pos = 3")
            with pytest.raises(ledger.CorruptStoreError, match="the row of position 3 does not match its record"):
                store.read_article("a")
            conn.execute("UPDATE ledger_events SET version = 3 WHERE pos = 3")
            conn.execute("DELETE FROM ledger_events WHERE pos = 2")
            with pytest.raises(ledger.CorruptStoreError, match="version 2 of 'a' is missing"):
                store.read_article("a")
            assert [r["version"] for r in store.read_article("a", 3)] == [3, 4]
    finally:
        store.close()


@pytest.mark.parametrize("damage", ["body", "hash cut off", "second hash"])
def test_reads_refuse_a_line_changed_by_hand_with_the_file_stores_words(pg_url: str, damage: str) -> None:
    store = PostgresEventStore(pg_url)
    try:
        store.append([rec("a", "ArticleCreated", title="A", body="night")])
        store.append([rec("a", "ArticleEdited", body="night market")])
        store.append([rec("a", "ArticleEdited", body="night market returns")])
        change = {
            "body": "convert_to(replace(convert_from(line, 'UTF8'), 'market', 'murket'), 'UTF8')",
            "hash cut off": "substring(line FROM 1 FOR length(line) - 75) || '\\x7d'::bytea",
            "second hash": "substring(line FROM 1 FOR length(line) - 1) || convert_to(',\"hash\":\"' || repeat('0', 64) || '\"}', 'UTF8')",
        }[damage]
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"UPDATE ledger_events SET line = {change} WHERE pos = 2")
        words = "record has no hash" if damage == "hash cut off" else "record does not match its checksum"
        with pytest.raises(ledger.CorruptStoreError, match=f"position 2: {words}$"):
            list(store.read())
        with pytest.raises(ledger.CorruptStoreError, match=f"position 2: {words}$"):
            store.read_article("a")
        assert [r["version"] for r in store.read_article("a", 3)] == [3]
    finally:
        store.close()


def test_a_backend_ended_mid_append_leaves_nothing_and_the_append_can_be_sent_again(pg_url: str) -> None:
    store = PostgresEventStore(pg_url)
    try:
        store.append([rec("a", "ArticleCreated")])
        head = store.head()
        # Another session inserts a row with one of the append's ids and keeps its transaction
        # open: the append's insert waits on that id's unique key, mid-append, holding the head.
        blocker = psycopg.connect(pg_url)
        blocker.execute("INSERT INTO ledger_events VALUES (1000000, 'evt-2', 'z', 1, '', '', '', true, '')")
        failures: list[BaseException] = []

        def append() -> None:
            try:
                store.append([rec("a", id="evt-1"), rec("b", "ArticleCreated", id="evt-2")])
            except BaseException as exc:  # checked below
                failures.append(exc)

        thread = threading.Thread(target=append)
        thread.start()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            def stuck() -> list[tuple[Any, ...]]:
                return admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%%ledger_append%%'"
                ).fetchall()

            wait_for(lambda: bool(stuck()), "the append to wait mid-way")
            admin.execute("SELECT pg_terminate_backend(%s)", (stuck()[0][0],))
        thread.join(DEADLINE)
        blocker.rollback()
        blocker.close()
        assert len(failures) == 1 and isinstance(failures[0], ledger.StoreConnectionError), failures
        assert "whole or not at all" in str(failures[0])
        assert store.head() == head and store.lookup_ids(["evt-1", "evt-2"]) == {}
        assert store.verify().ok
        done = store.append([rec("a", id="evt-1"), rec("b", "ArticleCreated", id="evt-2")])
        assert (done.first_position, done.last_position, done.duplicate) == (2, 3, False)
        assert store.verify().ok
    finally:
        store.close()


@pytest.mark.slow
def test_an_append_that_queued_for_the_lock_shares_a_flush_and_is_durable_when_it_returns() -> None:
    # A server of its own, with fsync on and a WAL writer that sleeps 10 s, so that a commit
    # that did not wait for the flush stays in the server's memory: stopped as by a crash, the
    # server would lose it. An append that waited for the lock commits that way (letting the
    # lock go before the flush) and must return only after a second commit has flushed it.
    from ledger.store.postgres import _APPEND_LOCK

    try:
        cluster = pgserver.start(durable=True)
    except pgserver.Unavailable as exc:
        pytest.skip(f"PostgreSQL tests: {exc}")
    try:
        if cluster.external is not None:
            pytest.skip("needs a server of its own to stop as by a crash ($LEDGER_TEST_POSTGRES names one)")
        url = cluster.url(cluster.create_database())
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            admin.execute("SELECT pg_reload_conf()")
            admin.execute("CREATE EXTENSION pg_walinspect")
        init_schema(url)
        store = PostgresEventStore(url)
        results: list[Any] = []
        try:
            store.append([rec("a", "ArticleCreated", title="A", body="a")])
            with psycopg.connect(url, autocommit=True) as holder, psycopg.connect(url, autocommit=True) as admin:
                holder.execute("SELECT pg_advisory_lock(%s)", (_APPEND_LOCK,))
                before = admin.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
                thread = threading.Thread(target=lambda: results.append(store.append([rec("a", "ArticleEdited", body="queued")])))
                thread.start()
                wait_for(
                    lambda: bool(admin.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE 'CALL ledger_append_grouped%%'"
                    ).fetchall()),
                    "the append to queue for the lock",
                )
                holder.execute("SELECT pg_advisory_unlock(%s)", (_APPEND_LOCK,))
                thread.join(DEADLINE)
                assert len(results) == 1 and results[0].versions == {"a": 2}
                flushed = admin.execute("SELECT pg_current_wal_flush_lsn() > %s::pg_lsn", before).fetchone()
                assert flushed == (True,), "the append returned before its commit was flushed"
                # What was flushed: the append's commit, then the second transaction's WAL record
                # and commit.
                kinds = [row[0] for row in admin.execute(
                    "SELECT resource_manager || ' ' || record_type FROM pg_get_wal_records_info(%s, pg_current_wal_flush_lsn()) "
                    "WHERE resource_manager IN ('Transaction', 'LogicalMessage')", before,
                ).fetchall()]
                message = kinds.index("LogicalMessage MESSAGE") if "LogicalMessage MESSAGE" in kinds else -1
                assert message > 0 and "Transaction COMMIT" in kinds[:message] and "Transaction COMMIT" in kinds[message + 1 :], kinds
        finally:
            store.close()
        cluster.crash()
        cluster.start_again()
        store = PostgresEventStore(url)
        try:
            assert store.head().position == results[0].last_position == 2
            assert [r["data"] for r in store.read(after=1)] == [{"body": "queued"}] and store.verify().ok
        finally:
            store.close()
    finally:
        cluster.stop()


# --- appends sealed in the server, an older schema ------------------------------------------------


def test_arrays_made_for_the_server_arrive_as_psycopg_would_send_them(pg_url: str) -> None:
    # An append's columns go as arrays this module writes in PostgreSQL's binary format.
    from ledger.store.postgres import _BOOL, _BYTEA, _INT4, _INT8, _TEXT, _array

    cases: list[tuple[int, str, list[Any]]] = [
        (_TEXT, "text", ["", "a", "é€🙂", "x" * 5000, '"quoted" \\ back,slash {}']),
        (_INT4, "integer", [0, 1, -1, 2**31 - 1, -(2**31)]),
        (_INT8, "bigint", [0, 2**62, -(2**63)]),
        (_BOOL, "boolean", [True, False, True]),
        (_BYTEA, "bytea", [b"", b"\x00\xff\n", b"{" * 3000]),
    ]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        from ledger.store.postgres import _Array, _ArrayDumper

        conn.adapters.register_dumper(_Array, _ArrayDumper)
        for element, name, items in cases:
            for chosen in (items, items[:1], []):
                mine, theirs = conn.execute(f"SELECT %b::{name}[], %s::{name}[]", (_array(element, chosen), chosen)).fetchone() or (None, None)
                assert mine == theirs == chosen, (name, chosen)


def test_a_client_encoding_other_than_utf8_still_records_the_articles_names(pg_cluster: pgserver.Cluster, pg_url: str) -> None:
    # The client encoding is the URL's (or PGCLIENTENCODING's), else the database's; the arrays
    # an append and an import send are UTF-8, whatever the connection's encoding.
    latin1 = pg_url + ("&" if "?" in pg_url else "?") + "client_encoding=LATIN1"
    store = PostgresEventStore(latin1)
    try:
        store.append([rec("café", "ArticleCreated", title="C", body="c")])
        store.append([rec("café", "ArticleEdited", title="D")])
        assert [r["version"] for r in store.read_article("café")] == [1, 2]
        assert store.articles() == {"café": 2} and store.verify().ok
        lines = list(store.raw_lines())
    finally:
        store.close()
    name = f"latin1_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        other_url = pg_cluster.url(name)
        init_schema(other_url)
        other = PostgresEventStore(other_url)
        try:
            other.append_raw(lines)
            assert [r["version"] for r in other.read_article("café")] == [1, 2] and other.verify().ok
        finally:
            other.close()
        for url in (pg_url, other_url):
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT DISTINCT article FROM ledger_events").fetchall() == [("café",)]
    finally:
        pg_cluster.drop_database(name)


def test_the_server_seals_each_line_as_the_file_store_would(pg_url: str) -> None:
    store = PostgresEventStore(pg_url)
    try:
        store.append([
            rec("a", "ArticleCreated", title="Ünïcödé — “quotes” \u2028 \\ \"x\"", body="日本語 🎉", ratio=0.1, big=10**18),
            NewRecord(id="given", article="b", type="ArticleCreated", data={"title": "B", "body": "b"}, actor="ed", reason="why\n", explicit_id=True),
        ])
        store.append([NewRecord(id=str(uuid.uuid4()), article="c", type="ArticleCreated", data={"title": "C", "body": "c"}, occurred_at="2026-01-02T03:04:05.000006Z")])
        lines = list(store.raw_lines())
        records = list(store.read())
    finally:
        store.close()
    # Each append sealed again by the file store's sealing, from what its rows say: the very
    # same bytes.
    position, prev, start = 0, "0" * 64, 0
    for end in [i + 1 for i, record in enumerate(records) if record.get("end")]:
        append = records[start:end]
        again, _ = seal_append(
            [NewRecord(id=r["id"], article=r["article"], type=r["type"], data=r["data"], actor=r.get("actor"), reason=r.get("reason")) for r in append],
            {r["article"]: r["version"] for r in append}, {r["article"]: r["occurred_at"] for r in append}, append[0]["recorded_at"], position, prev, 0,
        )
        assert again == lines[start:end]
        position, prev, start = end, append[-1]["hash"], end
    assert start == len(lines) == 3


def _v1_store(url: str, appends: int) -> None:
    """A ledger at schema 1 in `url` (its tables as version 1 made them), holding `appends`
    appends of two records each, sealed as that version sealed them."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("DROP TABLE IF EXISTS ledger_events")
        conn.execute("DROP PROCEDURE IF EXISTS ledger_append_grouped")
        conn.execute("DROP FUNCTION IF EXISTS ledger_append")
        conn.execute("UPDATE ledger_schema SET version = 1")
        conn.execute(MIGRATIONS[0][1])
        position, prev, now = 0, "0" * 64, "2026-12-01T00:00:00.000000Z"
        for n in range(appends):
            records = [rec(f"a{n}", "ArticleCreated", title="T", body="x"), rec("shared", "ArticleCreated" if n == 0 else "ArticleEdited", body=str(n))]
            versions = {f"a{n}": 1, "shared": n + 1}
            lines, sealed = seal_append(records, versions, dict.fromkeys(versions, now), now, position, prev, 0)
            for (_, _, out, digest), line in zip(sealed, lines, strict=True):
                conn.execute(
                    "INSERT INTO ledger_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (out["pos"], out["id"], out["article"], out["version"], out["occurred_at"], out["recorded_at"], digest, bool(out.get("end")), line.rstrip(b"\n")),
                )
                position, prev = out["pos"], digest
        conn.execute("UPDATE ledger_head SET position = %s, hash = %s, recorded_at = %s", (position, prev, now))


def test_an_older_schema_is_migrated_by_init_and_its_log_goes_on(pg_url: str, tmp_path: Path) -> None:
    _v1_store(pg_url, 3)
    code, _, err = cli(pg_url, "head", cache=tmp_path)
    assert code == 6 and "schema is version 1, older than this ledger's" in err and "ledger init" in err
    init_schema(pg_url)
    init_schema(pg_url)  # again: nothing to do
    store = PostgresEventStore(pg_url)
    try:
        head = store.head()
        assert head.position == 6 and store.verify().ok
        done = store.append([rec("shared", body="after")], {"shared": 3})
        assert (done.first_position, done.versions) == (7, {"shared": 4})
        assert [r["prev"] for r in store.read(after=6)] == [head.hash]
        assert store.verify().ok
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM ledger_schema").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT to_regclass('ledger_head')").fetchone() == (None,)


def test_an_import_refused_inside_exclusive_leaves_the_block_usable(pg_url: str) -> None:
    # Its insert failing (an id already in the store) left the block's transaction aborted: the
    # next statement in it was psycopg's InFailedSqlTransaction, not a ledger answer.
    store = PostgresEventStore(pg_url)
    try:
        store.append([rec("a", "ArticleCreated", id="taken", title="A", body="a")])
        head = store.head()
        now = "2026-01-01T00:00:00.000000Z"
        lines, _ = seal_append([rec("b", "ArticleCreated", id="taken", title="B", body="b")], {"b": 1}, {"b": now}, "2099-01-01T00:00:00.000000Z",
                               head.position, head.hash, 0)
        with store.exclusive():
            with pytest.raises(ledger.InvalidEventError, match="already in the store"):
                store.append_raw(lines)
            assert store.head() == head
            store.append([rec("c", "ArticleCreated", title="C", body="c")])
        assert store.head().position == head.position + 1 and store.verify().ok
    finally:
        store.close()


def test_an_append_after_a_later_recorded_time_is_recorded_at_that_time(pg_url: str) -> None:
    # Another host's clock runs ahead: its append is recorded in the future of this one's.
    later = "2099-01-01T00:00:00.000000Z"
    lines, _ = seal_append([rec("a", "ArticleCreated", title="A", body="a")], {"a": 1}, {"a": "2026-01-01T00:00:00.000000Z"}, later, 0, "0" * 64, 0)
    store = PostgresEventStore(pg_url)
    try:
        store.append_raw(lines)
        given = "2026-02-03T04:05:06.000007Z"
        done = store.append([rec("a"), NewRecord(id=str(uuid.uuid4()), article="b", type="ArticleCreated", data={"title": "B", "body": "b"}, occurred_at=given)])
        assert format_time(done.recorded_at) == later
        assert {a: format_time(t) for a, t in done.occurred_at.items()} == {"a": later, "b": given}
        records = list(store.read(after=1))
        assert [(r["recorded_at"], r["occurred_at"]) for r in records] == [(later, later), (later, given)]
        assert store.version_times("a")[-1] == (2, later, later)
        assert store.verify().ok
    finally:
        store.close()


def test_an_append_to_an_article_last_changed_at_a_later_recorded_time(pg_url: str) -> None:
    # Another host's clock runs ahead and it changed the article last: an append that gives no
    # time is recorded at that later time, as when another article was changed last (above).
    later = "2099-01-01T00:00:00.000000Z"
    lines, _ = seal_append([rec("a", "ArticleCreated", title="A", body="a")], {"a": 1}, {"a": later}, later, 0, "0" * 64, 0)
    store = PostgresEventStore(pg_url)
    try:
        store.append_raw(lines)
        done = store.append([rec("a")])
        assert format_time(done.recorded_at) == later and done.versions == {"a": 2}
        assert store.verify().ok
    finally:
        store.close()

def test_the_lock_key_is_the_one_migrations_2_and_3_take() -> None:
    from ledger.store.postgres import _APPEND_LOCK

    assert f"pg_advisory_xact_lock({_APPEND_LOCK})" in MIGRATIONS[1][1]
    assert f"pg_try_advisory_xact_lock({_APPEND_LOCK})" in MIGRATIONS[2][1]


@pytest.mark.parametrize("optimistic", [2, 0])
def test_appends_on_versions_another_process_moved_on(pg_url: str, optimistic: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # With 0 calls on the versions last seen, every append goes the locked way at once.
    monkeypatch.setattr("ledger.store.postgres._OPTIMISTIC_CALLS", optimistic)
    one, two = PostgresEventStore(pg_url), PostgresEventStore(pg_url)
    try:
        assert one.append([rec("x", "ArticleCreated")]).versions == {"x": 1}
        assert two.append([rec("x")]).versions == {"x": 2}  # `one` still thinks x is at 1
        assert one.append([rec("x"), rec("y", "ArticleCreated")]).versions == {"x": 3, "y": 1}
        assert two.append([rec("x")], {"x": 3}).versions == {"x": 4}  # expected above what it saw
        with pytest.raises(ledger.VersionConflictError, match="at version 4, not the expected 3"):
            one.append([rec("x")], {"x": 3})
        with pytest.raises(ledger.VersionConflictError, match="at version 4, not the expected 9"):
            one.append([rec("x")], {"x": 9})
        first = two.append([rec("z", "ArticleCreated", id="once")])
        again = one.append([rec("z", "ArticleCreated", id="once")])
        assert again.duplicate and again.first_position == first.first_position
        assert one.head() == two.head() and one.head().position == 6 and one.verify().ok
    finally:
        one.close()
        two.close()


def test_a_resent_append_grouped_with_a_new_one_fails_neither(pg_url: str) -> None:
    # Threads' appends that wait for one in flight go out together: a re-sent append (its ids
    # recorded) in that group returns its first result, and the new append beside it is recorded.
    from ledger.store.postgres import _APPEND_LOCK

    store = PostgresEventStore(pg_url)
    holder = psycopg.connect(pg_url, autocommit=True)
    try:
        first = store.append([rec("a", "ArticleCreated", id="once", title="A")])
        results: dict[str, Any] = {}

        def append(name: str, records: list[NewRecord]) -> None:
            try:
                results[name] = store.append(records)
            except ledger.LedgerError as exc:
                results[name] = exc

        # Another writer holds the appends' lock: this process's first append waits in the
        # server for it, and the two made meanwhile queue for the next group.
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
        threads = [threading.Thread(target=append, args=("lead", [rec("c", "ArticleCreated", title="C")]))]
        threads[0].start()
        wait_for(
            lambda: holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone() == (1,),
            "the first append to wait for the lock",
        )
        threads += [
            threading.Thread(target=append, args=("resent", [rec("a", "ArticleCreated", id="once", title="A")])),
            threading.Thread(target=append, args=("new", [rec("b", "ArticleCreated", title="B")])),
        ]
        for thread in threads[1:]:
            thread.start()
        wait_for(lambda: len(store._groups._queue) == 2, "both appends to queue for the next group")
        holder.execute("COMMIT")
        for thread in threads:
            thread.join(DEADLINE)
        assert results["resent"].duplicate and results["resent"].first_position == first.first_position
        assert results["new"].versions == {"b": 1}
        assert store.head().position == 3 and store.verify().ok
    finally:
        holder.close()
        store.close()

def test_a_read_of_many_pages_and_one_left_early(pg_url: str) -> None:
    store = PostgresEventStore(pg_url)
    try:
        for n in range(45):
            store.append([rec(f"a{n}", "ArticleCreated", body="x" * 50)] + [rec(f"a{n}", body=str(i)) for i in range(99)])
        assert [r["pos"] for r in store.read()] == list(range(1, 4501))
        assert [r["pos"] for r in store.read(after=1000, to=3500, check=False)] == list(range(1001, 3501))
        for _ in range(5):
            reading = store.read()
            assert next(reading)["pos"] == 1
            reading.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DELETE FROM ledger_events WHERE pos = 3000")
        with pytest.raises(ledger.CorruptStoreError, match="position 3000"):
            list(store.read())
    finally:
        store.close()


# --- bad configuration -----------------------------------------------------------------------------


def test_bad_configuration_is_one_clear_line(pg_url: str, pg_cluster: pgserver.Cluster, tmp_path: Path) -> None:
    if pg_cluster.external is not None:
        pytest.skip("needs a throw-away cluster (a known password and a free port)")
    database = pg_url.split("/")[3].split("?")[0]
    cases = {
        "unreachable": (f"postgresql://ledger@127.0.0.1:{pgserver._free_port()}/{database}", 10, "cannot reach the PostgreSQL server"),
        "wrong password": (pg_cluster.tcp_url(database, "not-the-password"), 10, "refused the login of user 'ledger' (wrong password?)"),
        "missing database": (pg_cluster.url("no_such_db"), 10, "database 'no_such_db' does not exist"),
        "no ledger yet": (pg_cluster.url(pg_cluster.create_database()), 6, "no ledger store in this database (run `ledger init`)"),
        "bad port": (f"postgresql://ledger@127.0.0.1:99999/{database}", 6, 'not a usable PostgreSQL URL (invalid port number: "99999")'),
        "unknown parameter": (f"postgresql://ledger@127.0.0.1/{database}?bogus=1", 6, 'not a usable PostgreSQL URL (invalid URI query parameter: "bogus")'),
    }
    for what, (url, exit_code, phrase) in cases.items():
        code, out, err = cli(url, "show", "a", cache=tmp_path)
        assert (code, out) == (exit_code, ""), (what, code, out, err)
        assert err.count("\n") == 1 and phrase in err, (what, err)
        assert "not-the-password" not in err
    # The right password over TCP works.
    assert cli(pg_cluster.tcp_url(database), "head", cache=tmp_path)[0] == 0


def test_a_newer_schema_is_refused_and_init_is_safe_to_run_at_once(pg_url: str, pg_cluster: pgserver.Cluster, tmp_path: Path) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE ledger_schema SET version = %s", (SCHEMA_VERSION + 1,))
    code, _, err = cli(pg_url, "head", cache=tmp_path)
    assert code == 6 and f"schema is version {SCHEMA_VERSION + 1}, newer than this ledger's {SCHEMA_VERSION}" in err
    code, _, err = cli(pg_url, "init", cache=tmp_path)
    assert code == 6 and "newer" in err
    assert [version for version, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    # `init` from nothing, many at once: one schema, one store id.
    fresh = pg_cluster.url(pg_cluster.create_database())
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(init_schema(fresh))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert len(ids) == 4 and len(set(ids)) == 1
    assert cli(fresh, "init", cache=tmp_path)[1].startswith("store already exists")


# --- export and import, and a second host ----------------------------------------------------------


@pytest.fixture
def corpus_store(tmp_path: Path, corpus: Path) -> tuple[Path, list[str]]:
    """A file store holding the first 12 articles of the real corpus, every version."""
    root = Path(ledger.init(tmp_path / "file-store"))
    with ledger.open(root) as led, led.bulk():
        names = list(dict.fromkeys(ingest_corpus_version(led, version).article for version in corpus_versions(CORPUS, 12)))
    return root, names


def test_export_import_round_trips_between_file_and_postgres(corpus_store: tuple[Path, list[str]], pg_url: str, tmp_path: Path) -> None:
    root, _ = corpus_store
    exported = tmp_path / "from-file.jsonl"
    code, _, err = cli(str(root), "export", "-o", str(exported))
    assert code == 0, err
    code, out, err = cli(pg_url, "import", str(exported), cache=tmp_path / "cache")
    assert code == 0 and "(exact)" in out, (out, err)
    again = tmp_path / "from-pg.jsonl"
    assert cli(pg_url, "export", "-o", str(again), cache=tmp_path / "cache")[0] == 0
    assert again.read_bytes() == exported.read_bytes()
    heads = {cli(str(root), "head")[1], cli(pg_url, "head", cache=tmp_path / "cache")[1]}
    assert len(heads) == 1
    # And back: PostgreSQL -> a new file store, byte for byte, the same head hash.
    copy = Path(ledger.init(tmp_path / "copy"))
    assert cli(str(copy), "import", str(again))[0] == 0
    assert cli(str(copy), "head")[1] in heads
    third = tmp_path / "from-copy.jsonl"
    assert cli(str(copy), "export", "-o", str(third))[0] == 0
    assert third.read_bytes() == exported.read_bytes()
    code, out, _ = cli(pg_url, "verify", cache=tmp_path / "cache")
    assert code == 0 and cli(str(root), "head")[1].split("@")[0] in out


def test_a_second_host_with_a_fresh_cache_answers_the_same(corpus_store: tuple[Path, list[str]], pg_url: str, tmp_path: Path) -> None:
    root, names = corpus_store
    with ledger.open(root) as source, ledger.open(pg_url) as target:
        target.import_records(list(source.export()))
        categories = sorted({c.name for c in source.categories()})
    questions = [
        *(("show", name) for name in names[:2]),
        *(("history", name) for name in names[:2]),
        ("show", names[0], "1"),
        ("categories",),
        ("categories", categories[0]),
        ("updated", "--since", "2015-01-01"),
        ("search", "release"),
        ("stats",),
    ]
    for question in questions:
        want = cli(str(root), *question, "--format", "json")
        first = cli(pg_url, *question, "--format", "json", cache=tmp_path / "host-1")
        second = cli(pg_url, *question, "--format", "json", cache=tmp_path / "host-2")
        assert want[0] == 0, (question, want)
        if question == ("stats",):
            # The log's size in bytes is a file store's.
            want = (want[0], json.dumps({**json.loads(want[1]), "log_bytes": 0}) + "\n", want[2])
            first = (first[0], json.dumps(json.loads(first[1])) + "\n", first[2])
            second = (second[0], json.dumps(json.loads(second[1])) + "\n", second[2])
        assert first == second == want, question
    # Each host keeps its views in its own cache, one folder per store.
    for host in ("host-1", "host-2"):
        folders = list((tmp_path / host).iterdir())
        assert len(folders) == 1 and (folders[0] / "views.sqlite").exists()
    # A cache that fell behind (another host appended) catches up from the log.
    with ledger.open(pg_url) as target:
        target.withdraw(names[0], reason="test")
    withdrawn = cli(pg_url, "articles", "--withdrawn", "--format", "json", cache=tmp_path / "host-1")[1]
    assert [json.loads(line)["article"] for line in withdrawn.splitlines()] == [names[0]]



def test_two_databases_whose_long_names_begin_alike_keep_their_own_caches(
    pg_cluster: pgserver.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Folder names are cut for people to read: the whole server, port and database (hashed) and
    # the store's id keep two stores apart, so a watcher's manifest is never another store's.
    monkeypatch.setenv("LEDGER_CACHE_DIR", str(tmp_path))
    names = [pg_cluster.create_database("newsroom_production_east_region_with_a_long_name") for _ in range(2)]
    folders = []
    for name in names:
        init_schema(pg_cluster.url(name))
        with ledger.open(pg_cluster.url(name)) as led:
            led.append([{"type": "ArticleCreated", "article": name, "data": {"title": "T"}}])
            assert [a.article for a in led.articles()] == [name]
            assert led.store.cache_dir is not None
            folders.append(led.store.cache_dir)
    assert folders[0] != folders[1]
    assert all(folder.name.startswith("pg-") and "newsroom_production" in folder.name for folder in folders), folders
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(folder.name for folder in folders)
    for name in names:
        pg_cluster.drop_database(name)


def test_a_replay_rebuilds_the_text_index_in_a_child_from_the_url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The child finds the store by its URL, password and all (given on its stdin), and the
    # cache folder by the same environment: it answers as the replaying process would.
    monkeypatch.setattr(ledger.application, "TEXT_CHILD_EVENTS", 0)
    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "T", "body": "the storm hit\n"}}])
        led.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "the storm left\n"}}])
        before = [(h.appeared_version, h.vanished_version) for h in led.search("storm hit")]
        assert before == [(1, 2)]
        assert led.path is None and led.store.cache_dir is not None
        text = led.store.cache_dir / "text.sqlite"
        generation = _text_generation(text)
        monkeypatch.setattr(TextIndex, "rebuild", lambda self, progress=None: pytest.fail("rebuilt in the replaying process"))
        stats = led.replay()
        assert (stats.events, stats.position) == (2, 2)
        assert _text_generation(text) != generation
        assert [(h.appeared_version, h.vanished_version) for h in led.search("storm hit")] == before


def _text_generation(path: Path) -> object:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    finally:
        db.close()

def test_the_store_url_comes_from_the_environment(pg_url: str, tmp_path: Path) -> None:
    env = {"LEDGER_STORE": pg_url, "LEDGER_CACHE_DIR": str(tmp_path)}
    done = run_ledger("append", "-", input=b'{"type": "ArticleCreated", "article": "a", "data": {"title": "T", "body": "x"}}\n', env=env)
    assert done.returncode == 0, done.stderr
    with ledger.open(pg_url) as led:
        assert led.head().position == 1
    assert os.environ.get("LEDGER_STORE") != pg_url


def test_exclusive_holds_off_other_writers_until_its_append_commits(pg_url: str) -> None:
    one, two = PostgresEventStore(pg_url, lock_timeout=0.2), PostgresEventStore(pg_url, lock_timeout=0.2)
    try:
        with one.exclusive():
            assert one.article_version("a") == 0
            with pytest.raises(ledger.StoreLockedError):
                two.append([rec("b", "ArticleCreated")])
            one.append([rec("a", "ArticleCreated")])
            with pytest.raises(ledger.VersionConflictError):
                one.append([rec("a")], {"a": 0})
        assert two.head().position == 1 and two.article_versions(["a", "b"]) == {"a": 1, "b": 0}
        assert two.append([rec("b", "ArticleCreated")]).first_position == 2
    finally:
        one.close()
        two.close()


def test_an_exclusive_block_rolled_back_leaves_no_versions_remembered(pg_url: str) -> None:
    # Inside the block the append is made but not committed: the versions it moved must not be
    # taken for the articles' own once the block is undone.
    store = PostgresEventStore(pg_url)
    try:
        with pytest.raises(RuntimeError), store.exclusive():
            store.append([rec("a", "ArticleCreated")])
            raise RuntimeError("undo")
        assert store.head().position == 0
        assert store.append([rec("a", "ArticleCreated")], {"a": 0}).first_position == 1
    finally:
        store.close()


def test_ledgers_in_threads_editing_one_article_all_land(pg_url: str) -> None:
    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "start"}}])
    failures: list[BaseException] = []

    def edit(name: str) -> None:
        try:
            with ledger.open(pg_url) as mine:
                for n in range(8):
                    mine.append([{"type": "ArticleEdited", "article": "a", "data": {"body": f"{name} {n}"}}])
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=edit, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert failures == []
    with ledger.open(pg_url) as led:
        assert led.current_version("a") == 25 and led.verify().ok


def test_views_go_to_memory_when_the_cache_folder_cannot_be_made(pg_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    cli(pg_url, "append", "-", input=b'{"type": "ArticleCreated", "article": "a", "data": {"title": "T", "body": "x"}}\n', cache=tmp_path)
    code, out, err = cli(pg_url, "articles", "--format", "json", cache=blocker)
    assert code == 0 and json.loads(out)["article"] == "a", (out, err)
    assert "keeping the views in memory" in err


@pytest.mark.parametrize("password", ["p@ss", "se/cret", "se?cret", "plain"])
def test_messages_never_show_a_password_whatever_it_holds(password: str) -> None:
    shown = redact(f"postgresql://ledger:{password}@127.0.0.1:5432/newsroom?password={password}")
    assert password not in shown
    assert shown == "postgresql://ledger:***@127.0.0.1:5432/newsroom?password=***"


@pytest.mark.slow
def test_the_viewer_answers_503_with_one_line_while_the_database_refuses_connections(pg_url: str) -> None:
    from tests.web_support import Site

    name = pg_url.rsplit("/", 1)[1].split("?")[0]
    maintenance = pg_url.replace(f"/{name}", "/postgres", 1)

    def allow(yes: bool) -> None:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(name), sql.SQL("true" if yes else "false")))
            if not yes:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "one"}}])
        with Site(led) as served:
            allow(False)
            try:
                page = httpx.get(served.url + "/a/a/history", timeout=DEADLINE)
            finally:
                allow(True)
            assert page.status_code == 503, page.status_code
            assert "could be had" in page.text or "lost the connection" in page.text, page.text[:300]
            assert httpx.get(served.url + "/a/a/history", timeout=DEADLINE).status_code == 200


# --- watching into a server store ---------------------------------------------------------------


def test_a_draft_deleted_while_no_watcher_ran_is_withdrawn_on_restart(pg_url: str, tmp_path: Path) -> None:
    """The watch manifest is kept for a server store too (in its local cache folder): without it
    a restarted watcher could not tell that a draft it had ingested was deleted meanwhile."""
    from tests.helpers import story

    drafts = tmp_path / "drafts"
    drafts.mkdir()
    (drafts / "a.txt").write_text(story(1))
    (drafts / "b.txt").write_text(story(2))
    with ledger.open(pg_url) as led:
        with ledger.watch(led, drafts, withdraw_on_delete=True) as first:
            wait_for(lambda: led.store.articles() == {"a": 1, "b": 1} and first.pending() == 0, "a and b ingested")
        (drafts / "a.txt").unlink()
        with ledger.watch(led, drafts, withdraw_on_delete=True):
            wait_for(lambda: led.article("a").withdrawn, "a withdrawn by the restarted watcher")
        assert not led.article("b").withdrawn


@pytest.mark.slow
def test_a_read_waits_out_the_pool_timeout_once_while_the_database_refuses_connections(pg_url: str) -> None:
    """A connection found broken is replaced and the read sent again; but when the pool could
    not get any connection within its timeout, trying again only doubled the wait (each read
    of `serve` or a watcher took a minute to fail instead of the pool's 30 s)."""
    from ledger.errors import StoreConnectionError

    store = PostgresEventStore(pg_url)
    try:
        store.head()
        waits: list[int] = []
        pooled = store._pooled

        def counted() -> Any:
            waits.append(1)
            return pooled()

        store._pooled = counted  # type: ignore[method-assign]
        _allow_connections(pg_url, False)
        try:
            for _ in range(2):  # the first finds the pool's connection broken, the second none at all
                with pytest.raises(StoreConnectionError, match="could be had"):
                    store.head()
        finally:
            _allow_connections(pg_url, True)
        # The broken connection's read is sent again once; a wait that found none is not.
        assert len(waits) == 3, waits
        store.head()
    finally:
        store.close()


@pytest.mark.slow
def test_the_first_read_after_a_long_outage_connects_at_once(pg_url: str) -> None:
    """The pool's attempts to connect wait longer and longer (1, 2, 4 ... s): with its default
    of trying for five minutes, the first read after an outage of a minute waited for an attempt
    due a minute later, past the pool's 30 s, and failed (a newsroom's database restarted: the
    viewer answered 503 for half a minute more)."""
    from ledger.errors import StoreConnectionError

    store = PostgresEventStore(pg_url)
    try:
        store.head()
        _allow_connections(pg_url, False)
        try:
            for _ in range(2):  # an outage of about a minute, reads failing meanwhile
                with pytest.raises(StoreConnectionError, match="could be had"):
                    store.head()
            # Past the attempt due about 63 s after the first (its time varies by a tenth).
            time.sleep(10)
        finally:
            _allow_connections(pg_url, True)
        assert store.head().position == 0  # not a wait for an attempt a minute away, and a timeout
    finally:
        store.close()


def _allow_connections(pg_url: str, yes: bool) -> None:
    """Let the database take connections again, or refuse them and end those it has (an outage
    of the server as the store sees it, without stopping the cluster the other tests share)."""
    name = pg_url.rsplit("/", 1)[1].split("?")[0]
    maintenance = pg_url.replace(f"/{name}", "/postgres", 1)
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(name), sql.SQL("true" if yes else "false")))
        if not yes:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@pytest.mark.slow
def test_a_read_waiting_through_an_outage_longer_than_the_reconnect_window_goes_on_when_the_server_is_back(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trial: a read begun during a 12 s outage waited the pool's whole 30 s and failed, 19 s
    # after the server was back: once its reconnect window had passed the pool tried no more.
    import ledger.store.postgres as postgres

    monkeypatch.setattr(postgres, "_RECONNECT_WINDOW", 0.5)
    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "one"}}])
        store = led.store
        assert isinstance(store, PostgresEventStore)
        gave_up = threading.Event()
        store._pool._reconnect_failed = lambda pool: gave_up.set()
        outcome: list[object] = []
        _allow_connections(pg_url, False)
        try:
            reader = threading.Thread(target=lambda: outcome.append(_try(store.head)), daemon=True)
            reader.start()
            wait_for(gave_up.is_set, "the pool to give up reconnecting")
        finally:
            _allow_connections(pg_url, True)
        reader.join(DEADLINE)
        assert len(outcome) == 1 and isinstance(outcome[0], ledger.Head) and outcome[0].position == 1, outcome


def _try(call: Callable[[], object]) -> object:
    try:
        return call()
    except ledger.LedgerError as exc:
        return exc


@pytest.mark.slow
def test_log_follow_says_once_that_the_server_is_gone_and_once_that_it_is_back(pg_url: str, tmp_path: Path) -> None:
    # A follower that printed nothing through an outage looked like one following a quiet log.
    with ledger.open(pg_url) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "one"}}])
    command = [str(Path(sys.executable).with_name("ledger")), "--store", pg_url, "log", "--follow", "--limit", "1"]
    env = {**os.environ, "NO_COLOR": "1", "LEDGER_CACHE_DIR": str(tmp_path)}
    follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.extend(follower.stderr or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: _listeners(pg_url) == 1, "the follower to listen")
        _allow_connections(pg_url, False)
        try:
            wait_for(lambda: any(b"waiting for the server to answer again" in line for line in errors), "the follower to say the server is gone")
        finally:
            _allow_connections(pg_url, True)
        with ledger.open(pg_url) as led:
            led.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "two"}}])
        # Not `communicate`: it would read stderr too, taking lines from the thread above.
        follower.wait(DEADLINE)
        out = follower.stdout.read() if follower.stdout else b""
    finally:
        follower.kill()
    reader.join(DEADLINE)
    assert follower.returncode == 0 and b"a" in out and b"ArticleEdited" in out, (out, errors)
    said = [line.decode() for line in errors]
    assert len(said) == 2, said
    # What it found is "no connection ... could be had" or "lost the connection", as the pool
    # had it then.
    assert said[0].startswith("warning: ") and "waiting for the server to answer again" in said[0] and "ledger-test-password" not in said[0]
    assert said[1].rstrip().endswith(": the server answers again"), said


@pytest.mark.postgres
def test_a_role_or_schema_the_server_refuses_is_one_line(pg_url: str, pg_cluster: pgserver.Cluster) -> None:
    # A role granted only SELECT that appended, and a search_path naming no schema, ended in
    # psycopg tracebacks with exit 1.
    if pg_cluster.external is not None:
        pytest.skip("makes a role of its own: only on a cluster of the tests' own")
    role = f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        reader = pg_url.replace(f"postgresql://{pgserver.USER}@", f"postgresql://{role}@", 1)
        assert reader != pg_url
        # No right on the tables at all: opening the store read the schema table, a traceback.
        for command in (("head",), ("init",)):
            bare = run_ledger(*command, store=reader)
            assert bare.returncode == 6 and bare.stderr.count(b"\n") == 1, bare.stderr
            assert b"the server refused: permission denied for table ledger_schema" in bare.stderr, bare.stderr
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
        assert run_ledger("head", store=reader).returncode == 0  # reading needs no more
        appended = run_ledger("append", "-", store=reader, input=b'{"type": "ArticleCreated", "article": "a", "data": {"title": "T"}}\n')
        assert appended.returncode == 6 and appended.stderr.count(b"\n") == 1, appended.stderr
        assert b"the server refused: permission denied" in appended.stderr and b"the role lacks a privilege" in appended.stderr
        nowhere = pg_url + ("&" if "?" in pg_url else "?") + "options=-csearch_path%3Dnosuch"
        made = run_ledger("init", store=nowhere)
        assert made.returncode == 6 and made.stderr.count(b"\n") == 1, made.stderr
        assert b"the schema named by search_path must exist" in made.stderr
        # A read said "no ledger store in this database (run `ledger init`)".
        read = run_ledger("stats", store=nowhere)
        assert read.returncode == 6 and b"the schema named by search_path must exist" in read.stderr, read.stderr
        # Without CONNECT on the database: a grant mends it, so it is not "cannot reach" (10).
        with psycopg.connect(pg_url, autocommit=True) as conn:
            database = sql.Identifier(conn.info.dbname)
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(database))
        try:
            shut = run_ledger("head", store=reader)
        finally:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO PUBLIC").format(database))
        assert shut.returncode == 6 and shut.stderr.count(b"\n") == 1, shut.stderr
        assert b"permission denied for database" in shut.stderr and b"grant the role CONNECT" in shut.stderr
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
