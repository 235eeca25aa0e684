"""`PostgresEventStore`: the same ledger kept in a PostgreSQL database (psycopg 3, its pool).

Selected by a store URL (`postgresql://...`). The records are the file store's sealed lines,
byte for byte (`ledger.codec`), one row each, with the columns reads look them up by beside
them; so an export of either store imports into the other with the same head hash.

* **positions in commit order, without gaps**: an append is one call of the server-side
  function `ledger_append` (schema 2): it takes a transaction-scoped advisory lock, reads the
  head (the last row), checks the articles' versions and the event ids, seals the records
  (positions after the head's, each `prev` the hash before it: the file store's lines, the
  client having made each record's JSON), inserts them and notifies; the statement commits and
  only then is the lock let go. So appends commit one after another in position order, and a
  reader never sees a position while a smaller one may still commit. (A sequence would hand
  out numbers that commit out of order or roll back: the gaps and skips Marten's readers met.)
  The lock is held inside the server only, for no client round trip; reads never wait for it.
* **the flush shared between processes**: appends go as a call of the procedure
  `ledger_append_grouped` (schema 3). One that finds the lock taken (writers are queueing)
  commits without waiting for the disk, letting the lock go as soon as its commit record is
  written, and returns after a second, synchronous commit of the same session has flushed it:
  the queued writers' flushes are PostgreSQL's group commit, not one after another under the
  lock. A lone writer holds the lock to its synchronous commit, as before. Either way an append
  is durable when it returns; a reader may see one a flush earlier (as a file store's reader may
  read a line before its writer's `fdatasync` returns).
* **atomic, checked, idempotent**: one transaction per append, whatever articles it names. The
  client sends the versions it assumes the articles are at (those it last saw: `_known`), the
  function checks them under the lock and writes nothing when one moved on, and the client
  checks and seals again; after `_OPTIMISTIC_CALLS` misses it takes the lock in a transaction
  and reads the versions under it. Event ids are a unique key, and a re-sent append returns
  its first result.
* **tamper evident**: `verify` reads every row and checks each line's hash, the chain, the
  positions, the versions and that the row's columns say what its line says.
* **woken, not polled**: an append notifies (`pg_notify`) at commit; `wait` listens on a
  connection of its own and re-reads the head after each wake or timeout, so a lost
  notification or a dropped connection costs a delay, never an event.
* **versioned schema**: `ledger_schema` holds the schema's version and the store's id;
  `init` applies `MIGRATIONS` under an advisory lock, so two `ledger init` at once are safe.
* **views in a local cache**: `cache_dir` is a folder under `$LEDGER_CACHE_DIR` (else
  ~/.cache/ledger) named by server, database and store id; the views there are checked against
  the log's head like the file store's (see docs/postgresql.md for why).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import select
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg_pool import ConnectionPool, PoolTimeout

from ledger import codec
from ledger.errors import (
    CorruptStoreError,
    DuplicateEventError,
    InvalidEventError,
    LedgerError,
    NothingToDoError,
    StoreConnectionError,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    VersionConflictError,
)
from ledger.events import SCHEMA_VERSIONS, NewRecord, format_time, parse_time, upcast
from ledger.store.contract import (
    AppendResult,
    EventStore,
    Head,
    Problem,
    RecordOrder,
    StoredRecord,
    VerifyReport,
    new_versions,
    original_result,
)
from ledger.store.groups import Accepted, GroupCommit, Pending, answer, fail
from ledger.store.logfile import check_continuation, import_label, open_sealed, seal_append

log = logging.getLogger("ledger")
# The pool logs each broken or refused connection as a warning, which Python's last-resort
# handler prints to stderr: every failure reaches users as one `StoreConnectionError` line instead.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

ENV_CACHE = "LEDGER_CACHE_DIR"

SCHEMA_VERSION = 3
"""The version of the tables this ledger reads and writes."""

# The key of the advisory lock an append holds from reading the head to its commit (appends'
# positions are handed out one transaction at a time: see the module).
_APPEND_LOCK = 7810759523990372353  # 0x6C65646765720001, "ledger" 0 1; written out in migration 2

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE ledger_head (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            position bigint NOT NULL,
            hash text NOT NULL,
            recorded_at text NOT NULL
        );
        INSERT INTO ledger_head VALUES (true, 0, '0000000000000000000000000000000000000000000000000000000000000000', '');
        CREATE TABLE ledger_events (
            pos bigint PRIMARY KEY,
            id text NOT NULL UNIQUE,
            article text NOT NULL,
            version integer NOT NULL,
            occurred_at text NOT NULL,
            recorded_at text NOT NULL,
            hash text NOT NULL,
            closes boolean NOT NULL,
            line bytea NOT NULL
        );
        CREATE INDEX ledger_events_article ON ledger_events (article, version);
        """,
    ),
    (
        2,
        # Appends take positions in the server, in one call: the head is the last row (no head
        # row to lock and update: less WAL per append), the lock an advisory one held only
        # inside the server, from reading the head to the commit.
        """
        DROP TABLE ledger_head;
        CREATE FUNCTION ledger_append(
            p_channel text, p_recorded text, p_articles text[], p_assumed integer[], p_lookup text[],
            p_ids text[], p_article text[], p_version integer[], p_occurred text[], p_closes boolean[], p_middle bytea[],
            OUT status text, OUT first_pos bigint, OUT detail jsonb, OUT recorded text
        ) LANGUAGE plpgsql
        -- Plan each statement once per session: left to choose, the server planned them again
        -- on every call (most of the call's CPU).
        SET plan_cache_mode = force_generic_plan
        AS $fn$
        -- Seal and insert the records of `p_ids`..`p_middle` (each record's JSON between its
        -- position and its `prev`, made by the client, recorded at `p_recorded`) after the
        -- head, if the articles are at the versions the client assumed (`p_assumed`) and none
        -- of `p_lookup` is recorded: status 'ok', the first position, and the time they were
        -- recorded at. Otherwise insert nothing and say why: status 'versions' (detail: each
        -- article not at its assumed version -> [version, occurred_at]) or 'ids' (id -> [pos,
        -- article, version]), with the head's time.
        DECLARE
            head_pos bigint;
            prev text;
            was bytea;
            now_is bytea;
            cur_version integer;
            cur_occurred text;
            n integer := cardinality(p_ids);
            body bytea;
            digest text;
            hashes text[] := '{}';
            lines bytea[] := '{}';
        BEGIN
            PERFORM pg_advisory_xact_lock(7810759523990372353);
            -- Read after the lock is granted: in READ COMMITTED each statement of this function
            -- sees what the lock's previous holder committed.
            SELECT e.pos, e.hash, e.recorded_at INTO head_pos, prev, recorded FROM ledger_events e ORDER BY e.pos DESC LIMIT 1;
            IF head_pos IS NULL THEN
                head_pos := 0;
                prev := '0000000000000000000000000000000000000000000000000000000000000000';
                recorded := '';
            END IF;
            IF cardinality(p_lookup) > 0 THEN
                SELECT jsonb_object_agg(e.id, jsonb_build_array(e.pos, e.article, e.version)) INTO detail
                FROM ledger_events e WHERE e.id = ANY(p_lookup);
                IF detail IS NOT NULL THEN
                    status := 'ids';
                    RETURN;
                END IF;
            END IF;
            FOR j IN 1..cardinality(p_articles) LOOP
                -- One step down the (article, version) index per article.
                SELECT e.version, e.occurred_at INTO cur_version, cur_occurred FROM ledger_events e WHERE e.article = p_articles[j] ORDER BY e.version DESC LIMIT 1;
                IF coalesce(cur_version, 0) <> p_assumed[j] THEN
                    detail := coalesce(detail, '{}'::jsonb) || jsonb_build_object(p_articles[j], jsonb_build_array(coalesce(cur_version, 0), cur_occurred));
                END IF;
            END LOOP;
            IF detail IS NOT NULL THEN
                status := 'versions';
                RETURN;
            END IF;
            IF p_recorded COLLATE "C" >= recorded COLLATE "C" THEN
                recorded := p_recorded;
            ELSE
                -- Another append committed meanwhile at a later time (the client's clock was
                -- read before this one waited for the lock): recorded times never go back, so
                -- this one is recorded at the head's time, and so are the times that were the
                -- client's clock. Times are text of one length; in a record's JSON the first
                -- `"recorded_at":"` is the envelope's (a string's quotes are escaped), and
                -- `"occurred_at":"` is either the envelope's or not there as `p_recorded`.
                FOR k IN 1..2 LOOP
                    was := convert_to(CASE k WHEN 1 THEN '"recorded_at":"' ELSE '"occurred_at":"' END || p_recorded || '"', 'UTF8');
                    now_is := convert_to(CASE k WHEN 1 THEN '"recorded_at":"' ELSE '"occurred_at":"' END || recorded || '"', 'UTF8');
                    FOR i IN 1..n LOOP
                        IF k = 1 OR p_occurred[i] = p_recorded THEN
                            p_middle[i] := overlay(p_middle[i] PLACING now_is FROM position(was IN p_middle[i]) FOR length(was));
                        END IF;
                    END LOOP;
                END LOOP;
                FOR i IN 1..n LOOP
                    IF p_occurred[i] = p_recorded THEN
                        p_occurred[i] := recorded;
                    END IF;
                END LOOP;
            END IF;
            FOR i IN 1..n LOOP
                body := convert_to('{"pos":' || (head_pos + i)::text || ',', 'UTF8') || p_middle[i] || convert_to(',"prev":"' || prev || '"}', 'UTF8');
                digest := encode(sha256(body), 'hex');
                hashes[i] := digest;
                lines[i] := substring(body FROM 1 FOR length(body) - 1) || convert_to(',"hash":"' || digest || '"}', 'UTF8');
                prev := digest;
            END LOOP;
            INSERT INTO ledger_events (pos, id, article, version, occurred_at, recorded_at, hash, closes, line)
            SELECT head_pos + g.i, p_ids[g.i], p_article[g.i], p_version[g.i], p_occurred[g.i], recorded, hashes[g.i], p_closes[g.i], lines[g.i]
            FROM generate_series(1, n) AS g(i);
            PERFORM pg_notify(p_channel, (head_pos + n)::text);
            status := 'ok';
            first_pos := head_pos + 1;
        END
        $fn$;
        """,
    ),
    (
        3,
        # Writer processes share the commit's flush instead of taking turns at it under the lock.
        """
        CREATE PROCEDURE ledger_append_grouped(
            p_channel text, p_recorded text, p_articles text[], p_assumed integer[], p_lookup text[],
            p_ids text[], p_article text[], p_version integer[], p_occurred text[], p_closes boolean[], p_middle bytea[],
            INOUT status text DEFAULT NULL, INOUT first_pos bigint DEFAULT NULL, INOUT detail jsonb DEFAULT NULL, INOUT recorded text DEFAULT NULL
        ) LANGUAGE plpgsql
        AS $fn$
        -- `ledger_append` as one call that commits (CALL it outside a transaction block). When
        -- another append held the lock on arrival, writers are queueing for it: the append then
        -- commits asynchronously, so the lock is let go when the commit record is written, not
        -- after the disk's flush (the next holder's head is this append: positions stay in
        -- commit order), and the call returns only after a second transaction, which writes a
        -- WAL record, has committed synchronously: its flush covers the append's commit record,
        -- and the backends waiting together share one flush. Found free, the lock is simply
        -- held to the synchronous commit (one writer pays for no second transaction).
        DECLARE
            alone boolean := pg_try_advisory_xact_lock(7810759523990372353);
        BEGIN
            SELECT a.status, a.first_pos, a.detail, a.recorded INTO status, first_pos, detail, recorded
            FROM ledger_append(p_channel, p_recorded, p_articles, p_assumed, p_lookup, p_ids, p_article, p_version, p_occurred, p_closes, p_middle) a;
            IF status = 'ok' AND NOT alone THEN
                PERFORM set_config('synchronous_commit', 'off', true);
                COMMIT;
                PERFORM pg_logical_emit_message(true, 'ledger.flush', '');
            END IF;
        END
        $fn$;
        """,
    ),
]
"""Each schema version's SQL, applied in order by `init_schema` to bring an older schema up."""

# The key of the advisory lock `init` holds while it creates or migrates the schema.
_INIT_LOCK = 0x6C6564676572  # "ledger"
_PAGE = 2000
# Each article's latest version and its time: one backward step in the (article, version) index
# per article (`DISTINCT ON` or `max()` over `= ANY(...)` read every version of the article, so
# an append slowed down as its article grew).
_LATEST = (
    "SELECT a.article, e.version, e.occurred_at FROM UNNEST(%s::text[]) AS a(article) CROSS JOIN LATERAL "
    "(SELECT version, occurred_at FROM ledger_events WHERE article = a.article ORDER BY version DESC LIMIT 1) AS e"
)
_HEAD = "SELECT pos, hash, recorded_at FROM ledger_events ORDER BY pos DESC LIMIT 1"
_APPEND = "SELECT status, first_pos, detail, recorded FROM ledger_append(%s, %s, %b, %b, %b, %b, %b, %b, %b, %b, %b)"
# The same outside a transaction block, committed by the call, its flush shared with other
# processes' appends when they queue for the lock (migration 3).
_APPEND_GROUPED = "CALL ledger_append_grouped(%s, %s, %b, %b, %b, %b, %b, %b, %b, %b, %b)"
# What a sealed line has after the record's JSON (`seal_append`): `,"prev":"<64>","hash":"<64>"}\n`.
_SEAL_TAIL = len(b',"prev":"') + 64 + len(b'","hash":"') + 64 + len(b'"}\n')
# How many times an append is sent on the articles' versions it assumed before it reads them
# under the lock (another process's appends to the same articles moved them on meanwhile).
_OPTIMISTIC_CALLS = 2
# The most articles whose latest version and time a store remembers between appends.
_KNOWN_ARTICLES = 10000
_LISTEN_TIMEOUT = 1.0
# How long the pool keeps trying to connect, waits doubling from 1 s, before it leaves it to the
# next read (seconds).
_RECONNECT_WINDOW = 10.0
# How long one wait for a pooled connection lasts before it asks again (seconds): asking is what
# makes the pool try to connect again once a window has passed without an answer, so a read
# waiting through a longer outage goes on soon after the server is back, not at its timeout.
_ASK_AGAIN = 2.0


class _Array(bytes):
    """A one-dimensional array already in PostgreSQL's binary format (`_array`), sent as it is.
    psycopg's own array dumping walks each list in Python to find its items' type: about half
    of a 1-event append's CPU in this process went there."""


class _ArrayDumper(Dumper):
    """Sends an `_Array` as it is (its element type is the server function's parameter's)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return cast("bytes", obj)


_ARRAY_HEAD = struct.Struct("!iiiii")
_EMPTY_ARRAY = struct.Struct("!iii")
_ITEM = struct.Struct("!i")
_INT_ITEM = struct.Struct("!ii")
_BIGINT_ITEM = struct.Struct("!iq")
# The element types (pg_type oids) of the arrays an append or an import sends.
_TEXT, _INT4, _INT8, _BOOL, _BYTEA = 25, 23, 20, 16, 17


def _explicit_ids(group: Sequence[Pending]) -> list[str]:
    """The event ids of the appends of `group` that named an id of theirs (those a re-sent append
    can be found by: the others' ids are new)."""
    return [eid for p in group if any(r.explicit_id for r in p.records) for eid in p.ids]


def _array(element: int, items: Sequence[Any]) -> _Array:
    """`items` as a PostgreSQL array of `element` (text: str, int4 and int8: int, bool, bytea: bytes) in
    binary format: a header (dimensions, no NULLs, element type, length, lower bound 1), then
    each item's length and bytes. Text goes as UTF-8: for connections whose client encoding is
    UTF8 (the pool's: `configure`)."""
    if not items:
        return _Array(_EMPTY_ARRAY.pack(0, 0, element))
    head = _ARRAY_HEAD.pack(1, 0, element, len(items), 1)
    if element == _INT4:
        return _Array(head + b"".join([_INT_ITEM.pack(4, item) for item in items]))
    if element == _INT8:
        return _Array(head + b"".join([_BIGINT_ITEM.pack(8, item) for item in items]))
    if element == _BOOL:
        return _Array(head + b"".join([b"\0\0\0\1\1" if item else b"\0\0\0\1\0" for item in items]))
    raw = [item.encode() for item in items] if element == _TEXT else items
    parts = [head]
    for item in raw:
        parts += (_ITEM.pack(len(item)), item)
    return _Array(b"".join(parts))


def _undo(conn: psycopg.Connection[Any]) -> None:
    """Roll back the transaction an error left open on `conn`, unless the connection is gone."""
    if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


def redact(url: str) -> str:
    """`url` without its password (for messages)."""
    scheme, sep, rest = url.partition("://")
    first_at = rest.find("@")
    if sep and first_at >= 0:
        # The password may hold `@`, `/` or `?` itself: it runs to the last `@` before the path.
        path = rest.find("/", first_at)
        host_at = rest.rfind("@", 0, path if path >= 0 else len(rest))
        user, colon, _ = rest[:host_at].partition(":")
        if colon:
            url = f"{scheme}://{user}:***{rest[host_at:]}"
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


def _connection_problem(url: str, exc: Exception) -> StoreError:
    """One line saying why the server at `url` cannot be used (`StoreConnectionError`), or why
    `url` itself is not one to use (`StoreError`: nothing a retry would mend)."""
    text = str(exc).strip()
    # libpq's message runs over lines whose last alone may say nothing ("before or while
    # processing the request."): all of them, on one line.
    detail = " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__
    lowered = text.lower()
    where = redact(url)
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        user = re.search(r'for user "([^"]*)"', text)
        who = f" of user {user.group(1)!r}" if user else ""
        return StoreConnectionError(f"{where}: the server refused the login{who} (wrong password?)")
    if "does not exist" in lowered and "database" in lowered:
        name = re.search(r'database "([^"]*)" does not exist', text)
        which = f" {name.group(1)!r}" if name else ""
        return StoreConnectionError(f"{where}: database{which} does not exist on the server (create it, then run `ledger init`)")
    if "permission denied for database" in lowered:
        # A role without CONNECT on the database: a grant mends it, never a retry.
        return StoreError(f"{where}: the server refused: {detail} (grant the role CONNECT on the database)")
    if "role" in lowered and "does not exist" in lowered:
        return StoreConnectionError(f"{where}: {detail}")
    if any(word in lowered for word in ("invalid port", "invalid uri", "invalid connection option", "invalid integer value", "invalid sslmode")):
        return _unusable(url, detail)
    if any(word in lowered for word in (
        "connection refused", "no such file or directory", "could not translate host", "failed to resolve host", "timeout expired",
        "could not connect", "network is unreachable", "the database system is", "server closed the connection",
    )):
        return StoreConnectionError(f"{where}: cannot reach the PostgreSQL server ({detail})")
    return StoreConnectionError(f"{where}: {detail}")


def _refused(url: str, exc: psycopg.Error) -> StoreError:
    """One line for what the server refused to let this role do, or where: a missing privilege
    or schema (`StoreError`: nothing a retry would mend)."""
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    why = (
        "the role lacks a privilege: `ledger init` needs CREATE in the schema, appends INSERT and EXECUTE, reads SELECT"
        if isinstance(exc, psycopg.errors.InsufficientPrivilege)
        else "the schema named by search_path must exist: create it first"
    )
    return StoreError(f"{redact(url)}: the server refused: {detail} ({why})")


# Errors that say the role or the URL may not do what ledger asks, whoever tries again.
_REFUSALS = (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidSchemaName)


class _NoConnectionError(StoreConnectionError):
    """The pool had no connection to give within its timeout (the server is down or refuses):
    unlike a connection found broken, not worth a second try at once."""


def _lost(url: str, exc: Exception, doing: str) -> StoreConnectionError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return StoreConnectionError(f"{redact(url)}: lost the connection to the server while {doing} ({detail})")


def _connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    options: dict[str, Any] = {"autocommit": True, **kwargs}
    if "connect_timeout" not in url:
        options["connect_timeout"] = 10
    try:
        return psycopg.connect(url, **options)
    except psycopg.OperationalError as exc:
        raise _connection_problem(url, exc) from None
    except psycopg.ProgrammingError as exc:
        raise _unusable(url, str(exc)) from None


def _unusable(url: str, detail: str) -> StoreError:
    return StoreError(f"{redact(url)}: not a usable PostgreSQL URL ({' '.join(detail.split()).removeprefix('connection is bad: ')})")


def _schema_of(conn: psycopg.Connection[Any], url: str) -> tuple[int, str] | None:
    """The schema's version and the store's id, None when the database holds no ledger; a role
    that may not read it, or a search_path naming no schema, is the server's refusal (a
    `StoreError` saying so, not a traceback nor "no ledger store here")."""
    try:
        found = conn.execute("SELECT to_regclass('ledger_schema') IS NOT NULL, current_schema() IS NOT NULL").fetchone()
        if found is not None and not found[1]:
            raise StoreError(f"{redact(url)}: no schema of the server's search_path exists (the schema named by search_path must exist: create it first)")
        if not found or not found[0]:
            return None
        row = conn.execute("SELECT version, store_id FROM ledger_schema").fetchone()
    except _REFUSALS as exc:
        raise _refused(url, exc) from None
    if row is None:
        return None
    return int(row[0]), str(row[1])


def _check_version(url: str, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{redact(url)}: the ledger schema is version {version}, newer than this ledger's {SCHEMA_VERSION}; upgrade ledger to use it"
        )


def init_schema(url: str) -> str:
    """Create the ledger's tables in the database at `url`, or migrate them to `SCHEMA_VERSION`
    (harmless when they are up to date); returns the store's id. Runs under an advisory lock, so
    that several `init` at once create them once."""
    with _connect(url) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS ledger_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL, store_id text NOT NULL)")
                found = _schema_of(conn, url)
                if found is None:
                    conn.execute("INSERT INTO ledger_schema (version, store_id) VALUES (0, %s)", (str(uuid.uuid4()),))
                    found = (0, cast("tuple[int, str]", _schema_of(conn, url))[1])
                version, store_id = found
                _check_version(url, version)
                for target, script in MIGRATIONS:
                    if target > version:
                        conn.execute(cast("Any", script))
                        conn.execute("UPDATE ledger_schema SET version = %s", (target,))
                return store_id
        except _REFUSALS as exc:
            raise _refused(url, exc) from None
        except psycopg.OperationalError as exc:
            raise _lost(url, exc, "creating the schema") from None


def schema_exists(url: str) -> bool:
    """Whether the database at `url` holds a ledger's tables."""
    with _connect(url) as conn:
        return _schema_of(conn, url) is not None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "_"


def cache_base() -> Path:
    """Where caches of server stores go: `$LEDGER_CACHE_DIR`, else `$XDG_CACHE_HOME/ledger`, else
    ~/.cache/ledger."""
    configured = os.environ.get(ENV_CACHE)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ledger"


class PostgresEventStore(EventStore):
    """An `EventStore` in a PostgreSQL database (see the module). `url` is a libpq URL;
    `lock_timeout` bounds how long an append waits for another writer's (`StoreLockedError`);
    `pool_size` is the most connections this process opens for its threads."""

    root = None

    def __init__(self, url: str, *, lock_timeout: float = 10.0, pool_size: int = 8) -> None:
        self.url = url
        self.lock_timeout = lock_timeout
        with _connect(url) as conn:
            found = _schema_of(conn, url)
            if found is None:
                raise StoreNotFoundError(f"{redact(url)}: no ledger store in this database (run `ledger init`)")
            version, self.store_id = found
            _check_version(url, version)
            if version < SCHEMA_VERSION:
                raise StoreError(f"{redact(url)}: the ledger schema is version {version}, older than this ledger's {SCHEMA_VERSION}; run `ledger init` to migrate it")
            info = conn.info
            self._identity = f"{info.host}-{info.port}-{info.dbname}"
        self.channel = "ledger_" + self.store_id.replace("-", "")
        timeout_ms = 0 if math.isinf(lock_timeout) else max(1, int(lock_timeout * 1000))

        def configure(conn: psycopg.Connection[Any]) -> None:
            # A writer that stops mid-append (killed, hung) must not hold the head for ever.
            conn.execute(f"SET lock_timeout = {timeout_ms}")
            conn.execute("SET idle_in_transaction_session_timeout = 60000")
            # `ledger_append` reads the head after taking the lock: each statement must see
            # what the lock's previous holder committed, whatever the server's default.
            conn.execute("SET default_transaction_isolation = 'read committed'")
            # `_array` writes text as UTF-8, which the server reads in the client's encoding:
            # the URL or PGCLIENTENCODING may set another one (psycopg's own dumping followed it).
            conn.execute("SET client_encoding = 'UTF8'")
            conn.adapters.register_dumper(_Array, _ArrayDumper)

        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs={"autocommit": True, "connect_timeout": 10},
            configure=configure, open=False, name="ledger", timeout=max(30.0, lock_timeout if not math.isinf(lock_timeout) else 30.0),
            # The pool tries to connect again with waits that double, for this long; then the
            # next read starts again at once. Its default, five minutes, left the first read
            # after a server's restart waiting for an attempt up to a minute or two away.
            reconnect_timeout=_RECONNECT_WINDOW,
        )
        self._pool.open(wait=False)
        self._exclusive = threading.local()
        self._groups = GroupCommit(self._lead)
        # Each article's latest version and its time as last seen (by an append or a read of
        # versions): what an append assumes, and `ledger_append` checks, to need one call.
        self._known: dict[str, tuple[int, str]] = {}
        self._listener: psycopg.Connection[Any] | None = None
        # Whether `wait` found the server gone (and said so) and has not seen it answer since.
        self._unreachable = False
        self._listening = threading.Lock()
        self._closed = False

    # --- connections ---------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The server's URL without its password."""
        return redact(self.url)

    @property
    def cache_dir(self) -> Path | None:
        """The local folder of this store's views (see the module)."""
        # The server, port and database for people, cut to a readable length; the whole of them
        # (hashed) and the store's id for uniqueness: two databases whose long names begin
        # alike once shared a folder, and a watcher took one store's manifest for the other's.
        whole = hashlib.sha256(self._identity.encode("utf-8")).hexdigest()[:12]
        folder = cache_base() / f"{_safe(f'pg-{self._identity}')[:60]}-{whole}-{self.store_id}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # The views are a cache: without a folder for them they are built in memory.
            log.warning("%s: cannot make the views' cache folder (%s); keeping the views in memory (set %s)", folder, exc.strerror or exc, ENV_CACHE)
            return None
        return folder

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool, as `ConnectionPool.connection` gives it (its transaction
        ended on the way out), asked for again every `_ASK_AGAIN` seconds up to the pool's
        timeout (`PoolTimeout` then)."""
        deadline = time.monotonic() + self._pool.timeout
        while True:
            try:
                conn = self._pool.getconn(timeout=max(0.01, min(_ASK_AGAIN, deadline - time.monotonic())))
                break
            except PoolTimeout:
                if time.monotonic() >= deadline:
                    raise
        # (A wait that timed out stays in psycopg_pool's queue until a connection is handed out,
        # so after an outage the pool may grow to its largest size once: idle ones close later.)
        try:
            with conn:
                yield conn
        finally:
            self._pool.putconn(conn)

    @contextmanager
    def _conn(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a connection lost meanwhile becomes `StoreConnectionError`."""
        owned = getattr(self._exclusive, "conn", None)
        if owned is not None:
            yield owned
            return
        try:
            with self._pooled() as conn:
                yield conn
        except PoolTimeout:
            raise _NoConnectionError(f"{redact(self.url)}: no connection to the server could be had while {doing}") from None
        except _REFUSALS as exc:
            raise _refused(self.url, exc) from None
        except psycopg.OperationalError as exc:
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise
            raise _lost(self.url, exc, doing) from None

    def _query(self, doing: str, query: Any, params: Any = None, *, binary: bool = False) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement. A connection found broken (the server restarted, a
        backend was ended) is replaced and the statement sent once more: reads are safe to repeat."""
        for attempt in (1, 2):
            try:
                # Binary results for the lines: bytea as it is, not as hex text twice its size.
                with self._conn(doing) as conn, conn.cursor(binary=binary) as cursor:
                    return cursor.execute(query, params).fetchall()
            except StoreConnectionError as exc:
                # A pool that found no connection in its whole timeout would only make the
                # caller wait as long again (a page of `serve` took a minute to say 503).
                if attempt == 2 or isinstance(exc, _NoConnectionError) or getattr(self._exclusive, "conn", None) is not None:
                    raise
                # Every idle connection of the pool may be broken alike (a server restart):
                # drop them all, so the second try opens a fresh one.
                self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    # --- reading ---------------------------------------------------------------------------------

    def head(self) -> Head:
        """The last committed position and its hash (one indexed row)."""
        rows = self._query("reading the head", _HEAD)
        return Head(position=int(rows[0][0]), hash=str(rows[0][1])) if rows else Head(position=0, hash=codec.GENESIS_HASH)

    def read(self, after: int = 0, to: int | None = None, *, check: bool = True) -> Iterator[StoredRecord]:
        """Every committed record with `after < pos <= to` (to the head when read starts), in
        pages, each line checked against its hash (with `check`), its position and the chain."""
        if to is None:
            to = self.head().position
        expected = after + 1
        prev: str | None = codec.GENESIS_HASH if after == 0 else None
        schemas = SCHEMA_VERSIONS
        for rows in self._pages(expected, to):
            if not rows:
                if self.head().position < expected:
                    return  # `to` is past the head
                raise CorruptStoreError(f"{redact(self.url)}: position {expected} is missing from the log", position=expected)
            lines = [row[0] for row in rows]
            try:
                # One cast per page, not a call per record (the loop below is the read's cost).
                records = cast("list[StoredRecord]", codec.decode_lines(lines, 0 if check else len(lines)))
            except codec.LineError as exc:
                raise CorruptStoreError(f"{redact(self.url)}: position {expected + exc.index}: {exc}", position=expected + exc.index) from None
            for record in records:
                if record.get("pos") != expected:
                    raise CorruptStoreError(f"{redact(self.url)}: expected position {expected}, found {record.get('pos')!r}", position=expected)
                if prev is not None and record.get("prev") != prev:
                    raise CorruptStoreError(
                        f"{redact(self.url)}: position {expected} does not chain to the record before it (hash chain broken)", position=expected
                    )
                prev = record["hash"]
                expected += 1
                if record.get("schema", 1) != schemas.get(record["type"], 1):
                    upcast(cast("dict[str, Any]", record))
                yield record

    def _pages(self, first: int, to: int) -> Iterator[list[tuple[Any, ...]]]:
        """The lines of positions `first..to`, each ending in its newline (added by the server),
        in pages of `_PAGE` (an empty page where the rows ran out). A read of more than one page
        has them fetched by a thread of its own, the next page while the caller checks and
        parses this one: the server's time (and the wait for it, which frees the GIL) overlaps
        the caller's. Its first page is a small one, so that the caller starts soon."""
        query = "SELECT line || '\\x0a'::bytea FROM ledger_events WHERE pos >= %s AND pos <= %s ORDER BY pos LIMIT %s"
        if to - first < _PAGE or getattr(self._exclusive, "conn", None) is not None:
            # One page, or inside `exclusive`, whose reads must go through its connection.
            while first <= to:
                rows = self._query("reading the log", query, (first, to, _PAGE), binary=True)
                yield rows
                if not rows:
                    return
                first += len(rows)
            return
        pages: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(item: list[tuple[Any, ...]] | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def fetch(start: int) -> None:
            try:
                size = _PAGE // 8
                while start <= to:
                    rows = self._query("reading the log", query, (start, to, size), binary=True)
                    size = _PAGE
                    if not put(rows) or not rows:
                        return
                    start += len(rows)
                put(None)
            except BaseException as exc:  # raised again in the reading thread
                put(exc)

        threading.Thread(target=fetch, args=(first,), name="ledger-read-ahead", daemon=True).start()
        try:
            while True:
                item = pages.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                if not item:
                    return
        finally:
            # The caller stopped early (or failed): the fetching thread ends after its query.
            stop.set()

    def read_article(self, article: str, from_version: int = 1, to_version: int | None = None) -> list[StoredRecord]:
        """One article's records of versions `from_version..to_version`, each hash-checked."""
        top = to_version if to_version is not None else 1 << 31
        rows = self._query(
            "reading an article",
            "SELECT pos, version, line || '\\x0a'::bytea FROM ledger_events WHERE article = %s AND version >= %s AND version <= %s",
            (article, from_version, min(top, (1 << 31) - 1)),
            binary=True,
        )
        # Sorted here, not by the server: it would sort the whole rows (lines and all) after
        # fetching them from the heap in position order already, most of the query's time.
        rows.sort(key=itemgetter(0))
        try:
            records = codec.decode_lines([line for _, _, line in rows])
        except codec.LineError as exc:
            pos = rows[exc.index][0]
            raise CorruptStoreError(f"{redact(self.url)}: position {pos}: {exc}", position=pos) from None
        # One pass over the records (the read of an old version is this loop and the decoding).
        expected = max(from_version, 1)
        schemas = SCHEMA_VERSIONS
        for (pos, version, _), record in zip(rows, records, strict=True):
            if record.get("pos") != pos or record.get("article") != article or record.get("version") != version:
                raise CorruptStoreError(f"{redact(self.url)}: the row of position {pos} does not match its record", position=pos)
            if version != expected and version != expected - 1:
                raise CorruptStoreError(f"{redact(self.url)}: version {expected} of {article!r} is missing", position=pos)
            expected = version + 1
            if record.get("schema", 1) != schemas.get(record["type"], 1):
                upcast(record)
        return cast("list[StoredRecord]", records)

    def article_version(self, article: str) -> int:
        """The article's current version (0 when it has no events)."""
        return self.article_versions((article,))[article]

    def article_versions(self, articles: Iterable[str]) -> dict[str, int]:
        """The current version of each of `articles` (0 for those with none), in one query."""
        wanted = list(dict.fromkeys(articles))
        rows = self._query(
            "reading versions", _LATEST, (wanted,)
        )
        self._remember({article: (0, "") for article in wanted} | {str(article): (int(version), str(occurred)) for article, version, occurred in rows})
        found = {str(article): int(version) for article, version, _ in rows}
        return {article: found.get(article, 0) for article in wanted}

    def _remember(self, states: Mapping[str, tuple[int, str]]) -> None:
        if len(self._known) + len(states) > _KNOWN_ARTICLES:
            self._known.clear()
        self._known.update(states)

    def articles(self) -> dict[str, int]:
        """Every article with its current version."""
        rows = self._query("listing articles", "SELECT article, max(version) FROM ledger_events GROUP BY article ORDER BY article")
        return {str(article): int(version) for article, version in rows}

    def version_at(self, article: str, when: str) -> int:
        """The article's last version that occurred at or before `when` (0 if none)."""
        # Times never go back within an article: the newest version at or before `when` is found
        # walking the (article, version) index down from the top.
        rows = self._query(
            "reading versions",
            "SELECT version FROM ledger_events WHERE article = %s AND occurred_at <= %s ORDER BY version DESC LIMIT 1",
            (article, when),
        )
        return int(rows[0][0]) if rows else 0

    def version_times(self, article: str) -> list[tuple[int, str, str]]:
        """`(version, occurred_at, recorded_at)` of each version of the article."""
        rows = self._query(
            "reading versions",
            "SELECT version, min(occurred_at), min(recorded_at) FROM ledger_events WHERE article = %s GROUP BY version ORDER BY version",
            (article,),
        )
        return [(int(v), str(o), str(r)) for v, o, r in rows]

    def lookup_ids(self, ids: Sequence[str]) -> dict[str, tuple[int, str, int]]:
        """`id -> (position, article, version)` for those of `ids` already recorded."""
        rows = self._query("looking up event ids", "SELECT id, pos, article, version FROM ledger_events WHERE id = ANY(%s)", (list(ids),))
        return {str(eid): (int(pos), str(article), int(version)) for eid, pos, article, version in rows}

    def find_append(self, ids: Sequence[str]) -> AppendResult | None:
        """The original result of an append whose event ids are all `ids` (see `EventStore`)."""
        return self._original(ids, self.lookup_ids(ids), None)

    def _original(self, ids: Sequence[str], found: Mapping[str, tuple[int, str, int]], conn: psycopg.Connection[Any] | None) -> AppendResult | None:
        query = "SELECT article, occurred_at, recorded_at FROM ledger_events WHERE pos >= %s AND pos <= %s"

        def times(first: int, last: int) -> list[tuple[Any, ...]]:
            return conn.execute(query, (first, last)).fetchall() if conn is not None else self._query("looking up event ids", query, (first, last))

        return original_result(ids, found, times)

    def raw_lines(self, article: str | None = None) -> Iterator[bytes]:
        """The sealed record lines exactly as stored, each ending in a newline (for `export`),
        checked against their hashes."""
        to = self.head().position
        after = 0
        while after < to:
            if article is None:
                query = "SELECT pos, line FROM ledger_events WHERE pos > %s AND pos <= %s ORDER BY pos LIMIT %s"
                params: tuple[Any, ...] = (after, to, _PAGE)
            else:
                query = "SELECT pos, line FROM ledger_events WHERE article = %s AND pos > %s AND pos <= %s ORDER BY pos LIMIT %s"
                params = (article, after, to, _PAGE)
            rows = self._query("exporting", query, params, binary=True)
            if not rows and article is not None:
                return
            if not rows:
                raise CorruptStoreError(f"{redact(self.url)}: position {after + 1} is missing from the log", position=after + 1)
            for pos, line in rows:
                body = bytes(line)
                try:
                    codec.check(body)
                except codec.RecordError as exc:
                    raise CorruptStoreError(f"{redact(self.url)}: position {pos}: {exc}", position=pos) from None
                after = int(pos)
                yield body + b"\n"

    # --- writing ---------------------------------------------------------------------------------

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the head's lock for the block (see `EventStore`): reads inside stay current until
        the block's own append, which commits with the block."""
        if getattr(self._exclusive, "conn", None) is not None:
            yield
            return
        try:
            with self._pooled() as conn:
                try:
                    conn.execute("BEGIN")
                    self._lock_head(conn)
                    self._exclusive.conn = conn
                    try:
                        yield
                    finally:
                        self._exclusive.conn = None
                    conn.execute("COMMIT")
                except BaseException:
                    _undo(conn)
                    # The block's appends are undone: the versions they moved are not the log's.
                    self._known.clear()
                    raise
        except psycopg.errors.LockNotAvailable:
            raise StoreLockedError(f"{redact(self.url)}: another writer held the log for more than {self.lock_timeout} s") from None
        except _REFUSALS as exc:
            raise _refused(self.url, exc) from None
        except psycopg.OperationalError as exc:
            raise _lost(self.url, exc, "holding the log") from None
        except PoolTimeout:
            raise StoreConnectionError(f"{redact(self.url)}: no connection to the server could be had") from None

    def _lock_head(self, conn: psycopg.Connection[Any]) -> tuple[int, str, str]:
        """Take the appends' lock in `conn`'s transaction (until it ends); the head after it."""
        with conn.pipeline():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
            row = conn.execute(_HEAD).fetchone()
        return (int(row[0]), str(row[1]), str(row[2])) if row else (0, codec.GENESIS_HASH, "")

    def append(self, records: Sequence[NewRecord], expected_versions: Mapping[str, int] | None = None) -> AppendResult:
        """Append atomically (see `EventStore.append` and the module): one call of the server's
        `ledger_append_grouped`, which takes the appends' lock, checks, seals, inserts and commits
        (sharing the commit's flush with other processes' appends when they queue for the lock).

        Group commit: appends that threads of this process make while another thread's append is
        in flight wait for it, then go out together in one call (each still checked on its own:
        one refused does not fail the others), so threads share the round trip and the commit's
        flush instead of queueing for the lock one by one.

        A connection that breaks before the append was sent is replaced and the append sent
        again; one that breaks later raises `StoreConnectionError` (the append was recorded
        whole or not at all: send it again with the same ids to know)."""
        pending = Pending.of(records, expected_versions)
        owned = getattr(self._exclusive, "conn", None)
        if owned is not None:
            owned.execute("SAVEPOINT ledger_append")
            try:
                self._commit_group(owned, [pending], locked=True)
            except BaseException:
                if not owned.broken:
                    owned.execute("ROLLBACK TO SAVEPOINT ledger_append")
                raise
            owned.execute("RELEASE SAVEPOINT ledger_append")
            return pending.outcome()
        return self._groups.append(pending)

    def _lead(self, group: list[Pending]) -> list[Pending]:
        """Commit `group` in one transaction; each append gets its result or its own error.
        Returns the appends held back for the next group (an id also given by an earlier one)."""
        deferred: list[Pending] = []
        try:
            for attempt in (1, 2):
                sent = [False]
                try:
                    with self._pooled() as conn:
                        try:
                            deferred = self._commit_group(conn, group, locked=False, sent=sent)
                        except BaseException:
                            _undo(conn)
                            raise
                    break
                except psycopg.OperationalError as exc:
                    if attempt == 1 and not sent[0] and not isinstance(exc, psycopg.errors.LockNotAvailable):
                        # Every idle connection may be broken alike (a server restart): the
                        # second try must not take another of them.
                        self._pool.check()
                        continue
                    raise
        except BaseException as exc:
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                error: BaseException = StoreLockedError(f"{redact(self.url)}: another writer held the log for more than {self.lock_timeout} s; nothing appended")
            elif isinstance(exc, psycopg.errors.UniqueViolation):
                # Impossible under the appends' lock, unless the table was written around it.
                error = DuplicateEventError("an event id of this append was recorded meanwhile by a write that bypassed the ledger; nothing appended")
            elif isinstance(exc, psycopg.OperationalError):
                error = _lost(self.url, exc, "appending; the append was recorded whole or not at all")
            elif isinstance(exc, PoolTimeout):
                error = StoreConnectionError(f"{redact(self.url)}: no connection to the server could be had; nothing appended")
            elif isinstance(exc, _REFUSALS):
                error = _refused(self.url, exc)
            else:
                error = exc
            fail(group, error)
            return []
        return deferred

    def _commit_group(self, conn: psycopg.Connection[Any], group: list[Pending], *, locked: bool, sent: list[bool] | None = None) -> list[Pending]:
        """Check, seal and write the appends of `group` on `conn` (inside `exclusive`, `locked`:
        the transaction and the lock are the caller's, and it commits); returns those held back
        for the next group.

        First as single calls, on the versions the articles were last seen at (`_known`; read
        first, outside any lock, for articles not seen yet): `ledger_append` checks them under
        the lock and writes nothing when one moved on. After `_OPTIMISTIC_CALLS` such misses
        (other processes appending to the same articles), in a transaction that takes the lock
        and reads the versions under it first, so that the append cannot miss again."""
        if locked:
            return cast("list[Pending]", self._send_group(conn, group, exact=True, sent=sent))
        deferred = self._send_group(conn, group, exact=False, sent=sent)
        if deferred is None:
            conn.execute("BEGIN")
            deferred = cast("list[Pending]", self._send_group(conn, group, exact=True, sent=sent))
            conn.execute("COMMIT")
        return deferred

    def _send_group(self, conn: psycopg.Connection[Any], group: list[Pending], *, exact: bool, sent: list[bool] | None) -> list[Pending] | None:
        """`_commit_group`'s calls: with `exact`, in the caller's transaction, under the lock it
        takes here; else on the versions last seen, None when they kept moving on."""
        articles = list(dict.fromkeys([*(r.article for p in group for r in p.records), *(a for p in group for a in (p.expected or {}))]))
        explicit = _explicit_ids(group)
        last_recorded = ""
        if exact:
            with conn.pipeline():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                state_cur = conn.execute(_LATEST, (articles,))
                head_cur = conn.execute(_HEAD)
                rows = state_cur.fetchall()
                head_row = head_cur.fetchone()
            state = {a: (0, "") for a in articles} | {str(a): (int(v), str(o)) for a, v, o in rows}
            last_recorded = str(head_row[2]) if head_row else ""
        else:
            state = {a: self._known[a] for a in articles if a in self._known}
            # An expected version above the one last seen may be the current one: read it.
            stale = [a for a in articles if a not in state or any((p.expected or {}).get(a, -1) > state[a][0] for p in group)]
            if stale:
                rows = conn.execute(_LATEST, (stale,)).fetchall()
                state |= {a: (0, "") for a in stale} | {str(a): (int(v), str(o)) for a, v, o in rows}
            elif select.select([conn.pgconn.socket], [], [], 0)[0]:
                # Something came on an idle connection: the server may have ended it. Find out
                # while the append can still be sent again without doubt.
                conn.execute("")
            # The head was recorded no earlier than these articles' last versions occurred: a
            # clock behind them (another host's runs ahead) is moved on to them, as under the
            # lock, not taken for an append that occurred before its article's last version.
            last_recorded = max((o for _, o in state.values()), default="")
        if sent is not None:
            sent[0] = True
        moment = datetime.now(UTC)
        now = format_time(moment)
        if now < last_recorded:
            # The clock went back (or another host's runs ahead): recorded times never do.
            now, moment = last_recorded, parse_time(last_recorded)
        live = list(group)
        for _ in range(3 if exact else _OPTIMISTIC_CALLS):
            done, deferred, columns = self._seal(live, state, now)
            if not done:
                return deferred
            ids, names, numbers, times_column, closes, middles = columns
            row = conn.execute(_APPEND if exact else _APPEND_GROUPED, (
                self.channel, now, _array(_TEXT, articles), _array(_INT4, [state[a][0] for a in articles]), _array(_TEXT, explicit),
                _array(_TEXT, ids), _array(_TEXT, names), _array(_INT4, numbers), _array(_TEXT, times_column), _array(_BOOL, closes), _array(_BYTEA, middles),
            )).fetchone()
            status, first, detail, last_recorded = cast("tuple[str, Any, Any, str]", row)
            if status == "ok":
                if last_recorded != now:
                    # Recorded at the head's time, later than this process's clock said.
                    done = [(pending, new, {a: last_recorded if t == now else t for a, t in times.items()}, offset) for pending, new, times, offset in done]
                    now, moment = last_recorded, parse_time(last_recorded)
                answer([(pending, new, times, int(first) + offset) for pending, new, times, offset in done], now, moment)
                self._remember({a: (v, times[a]) for _, new, times, _ in done for a, v in new.items()})
                return deferred
            if status == "versions":
                # Others appended meanwhile, at times this append's must not precede.
                moment = datetime.now(UTC)
                now = format_time(moment)
                if now < last_recorded:
                    now, moment = last_recorded, parse_time(last_recorded)
                moved = {str(a): (int(v), str(o or "")) for a, (v, o) in detail.items()}
                state |= moved
                self._remember(moved)
            elif status == "ids":
                found = {str(eid): (int(p), str(a), int(v)) for eid, (p, a, v) in detail.items()}
                for pending in live:
                    hits = {eid: found[eid] for eid in pending.ids if eid in found}
                    if hits:
                        try:
                            pending.result = self._original(pending.ids, hits, conn)
                        except LedgerError as exc:
                            pending.error = exc
                live = [pending for pending in live if not pending.finished]
                # Only the ids of those left are looked for again: the found ones would be
                # found at every call, and the others refused till the calls ran out.
                explicit = _explicit_ids(live)
            else:
                raise CorruptStoreError(f"{redact(self.url)}: ledger_append answered {status!r}")
        if exact:
            raise StoreError(f"{redact(self.url)}: the append kept being refused under the lock (was the table written around the ledger?)")
        for pending in live:
            pending.result = pending.error = None
        return None

    def _seal(self, group: list[Pending], state: Mapping[str, tuple[int, str]], now: str) -> tuple[list[Accepted], list[Pending], list[list[Any]]]:
        """Check each append of `group` on the articles' `state` (version, occurred_at) and
        make its records' lines but for their positions and chain (`ledger_append` adds them);
        returns the accepted appends (with the offset of each one's first record), those held
        back for the next group, and the columns to send."""
        versions = {a: v for a, (v, _) in state.items()}
        occurred = {a: o for a, (_, o) in state.items() if o}
        columns: list[list[Any]] = [[], [], [], [], [], []]
        ids, names, numbers, times_column, closes, middles = columns
        done: list[Accepted] = []
        deferred: list[Pending] = []
        group_ids: set[str] = set()
        for pending in group:
            pending.result = pending.error = None
            if not group_ids.isdisjoint(pending.ids):
                deferred.append(pending)
                continue
            try:
                for article, wanted in (pending.expected or {}).items():
                    if versions.get(article, 0) != wanted:
                        raise VersionConflictError(
                            f"article {article!r} is at version {versions.get(article, 0)}, not the expected {wanted}; nothing appended",
                            article=article, expected=wanted, actual=versions.get(article, 0),
                        )
                new, times = new_versions(pending.records, versions, occurred, now)
            except LedgerError as exc:
                pending.error = exc
                continue
            # The file store's sealing makes the lines: what lies between a line's position and
            # its `prev` is the record's own JSON, the same whatever the chain.
            lines, _ = seal_append(pending.records, new, times, now, 0, codec.GENESIS_HASH, 0)
            done.append((pending, new, times, len(ids)))
            for record, line in zip(pending.records, lines, strict=True):
                ids.append(record.id)
                names.append(record.article)
                numbers.append(new[record.article])
                times_column.append(times[record.article])
                closes.append(False)
                middles.append(line[line.index(b",") + 1 : -_SEAL_TAIL])
            closes[-1] = True
            versions.update(new)
            occurred.update(times)
            group_ids.update(pending.ids)
        return done, deferred, columns

    def _insert(self, conn: psycopg.Connection[Any], sealed: Sequence[tuple[dict[str, Any], str, bytes]], head: int) -> None:
        """Insert sealed records (an import's) and notify the followers (delivered when the
        transaction commits). The arrays go in binary, made here (`_array`)."""
        with conn.pipeline():
            conn.execute(
                """
                INSERT INTO ledger_events (pos, id, article, version, occurred_at, recorded_at, hash, closes, line)
                SELECT * FROM UNNEST(%b::bigint[], %b::text[], %b::text[], %b::integer[], %b::text[], %b::text[], %b::text[], %b::boolean[], %b::bytea[])
                """,
                (
                    _array(_INT8, [r["pos"] for r, _, _ in sealed]), _array(_TEXT, [r["id"] for r, _, _ in sealed]),
                    _array(_TEXT, [r["article"] for r, _, _ in sealed]), _array(_INT4, [r["version"] for r, _, _ in sealed]),
                    _array(_TEXT, [r["occurred_at"] for r, _, _ in sealed]), _array(_TEXT, [r["recorded_at"] for r, _, _ in sealed]),
                    _array(_TEXT, [digest for _, digest, _ in sealed]), _array(_BOOL, [bool(r.get("end")) for r, _, _ in sealed]),
                    _array(_BYTEA, [line.rstrip(b"\n") for _, _, line in sealed]),
                ),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(head)))

    def append_raw(self, lines: Sequence[bytes], labels: Sequence[str] | None = None) -> Head:
        """Append already sealed record lines as they are (for `import`): they must continue the
        positions and the chain and pass `RecordOrder`; all is checked before anything is written."""
        if not lines:
            raise NothingToDoError("nothing to import")
        decoded = [open_sealed(line, import_label(labels, n)) for n, line in enumerate(lines, 1)]
        articles = list(dict.fromkeys(str(r.get("article")) for r, _, _ in decoded))
        # Inside `exclusive` the block's transaction holds the lock: committing here would let
        # other writers in between an import's batches (the block commits them all). A batch
        # refused there is undone to its savepoint, as an append is, leaving the block usable.
        owned = getattr(self._exclusive, "conn", None) is not None
        try:
            with self._conn("importing") as conn:
                conn.execute("SAVEPOINT ledger_import" if owned else "BEGIN")
                try:
                    position, prev, recorded = self._lock_head(conn)
                    state = conn.execute(
                        _LATEST,
                        (articles,),
                    ).fetchall()
                    order = RecordOrder({str(a): int(v) for a, v, _ in state}, {str(a): str(o) for a, _, o in state})
                    position, prev, _ = check_continuation(decoded, labels, order, position, prev, recorded)
                    self._insert(conn, decoded, position)
                    conn.execute("RELEASE SAVEPOINT ledger_import" if owned else "COMMIT")
                except BaseException:
                    if not owned:
                        _undo(conn)
                    elif not conn.broken:
                        conn.execute("ROLLBACK TO SAVEPOINT ledger_import")
                    raise
        except psycopg.errors.LockNotAvailable:
            raise StoreLockedError(f"{redact(self.url)}: another writer held the log for more than {self.lock_timeout} s; nothing imported") from None
        except psycopg.errors.UniqueViolation:
            raise InvalidEventError("an event id of the import is already in the store; nothing imported") from None
        return Head(position=position, hash=prev)

    # --- following -------------------------------------------------------------------------------

    def wait(self, position: int, timeout: float) -> int:
        """Wait until the head passes `position` or `timeout` seconds pass; returns the head's
        position. Woken by the appends' notifications; the head is read again after each wake
        and at least every second, so a lost notification or connection only delays."""
        deadline = time.monotonic() + timeout
        if not self._listening.acquire(blocking=False):
            # Another thread of this process is listening: this one polls.
            return super().wait(position, timeout)
        try:
            while True:
                listener = self._listen()
                try:
                    head = self.head().position
                except StoreConnectionError as exc:
                    # The server restarted or ended this process's connections: following goes
                    # on, polling until it answers again, and then catches up from `position`.
                    # Said once, so that a follower's silence is not taken for a quiet log.
                    if not self._unreachable:
                        log.warning("%s; waiting for the server to answer again", exc)
                        self._unreachable = True
                    self._drop_listener()
                    listener, head = None, position
                else:
                    if self._unreachable:
                        log.warning("%s: the server answers again", redact(self.url))
                        self._unreachable = False
                remaining = deadline - time.monotonic()
                if head > position or remaining <= 0:
                    return head
                pause = min(remaining, _LISTEN_TIMEOUT)
                if listener is None:
                    time.sleep(min(pause, 0.2))
                    continue
                try:
                    for _ in listener.notifies(timeout=pause, stop_after=1):
                        pass
                except psycopg.OperationalError as exc:
                    log.debug("%s: the listening connection broke (%s); reconnecting", redact(self.url), exc)
                    self._drop_listener()
        finally:
            self._listening.release()

    def _listen(self) -> psycopg.Connection[Any] | None:
        if self._listener is not None and not self._listener.closed and not self._listener.broken:
            return self._listener
        self._drop_listener()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            log.debug("%s: cannot listen for appends (%s); polling", redact(self.url), exc)
            return None
        self._listener = conn
        return conn

    def _drop_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except psycopg.Error as exc:
                log.debug("closing the listener: %s", exc)
            self._listener = None

    # --- verification ------------------------------------------------------------------------------

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """Check every row up to the last one committed when it starts: the line's hash, its
        position (and the row's), the chain, versions, appends closed, event ids once, the row's
        columns against its line, and that the last row closes an append. Appends committed
        meanwhile are left for the next verify (they were read past, and called a head that
        had moved)."""
        problems: list[Problem] = []
        total_row = self._query("verifying", "SELECT count(*), coalesce(max(pos), 0) FROM ledger_events")[0]
        total, top = int(total_row[0]), int(total_row[1])
        prev: str | None = codec.GENESIS_HASH
        position = 0
        versions: dict[str, int] = {}
        in_append: dict[str, int] = {}
        events = 0
        committed_pos, committed_hash = 0, codec.GENESIS_HASH
        after = -(1 << 62)
        done = 0

        def problem(pos: int | None, message: str) -> None:
            problems.append(Problem(position=pos, message=f"position {pos}: {message}"))

        while len(problems) < 100:
            rows = self._query(
                "verifying",
                "SELECT pos, id, article, version, occurred_at, recorded_at, hash, closes, line FROM ledger_events"
                " WHERE pos > %s AND pos <= %s ORDER BY pos LIMIT %s",
                (after, top, _PAGE),
                binary=True,
            )
            if not rows:
                break
            for pos, eid, article, version, occurred, recorded, digest_col, closes, line in rows:
                after = int(pos)
                done += 1
                body = bytes(line)
                position += 1
                try:
                    digest = codec.check(body)
                    record = codec.decode(body)
                except codec.RecordError as exc:
                    problem(position, str(exc))
                    prev = None
                    in_append.clear()
                    continue
                events += 1
                if pos != position or record.get("pos") != position:
                    problem(position, f"expected position {position}, found {record.get('pos')!r} (row {pos})")
                    position = record["pos"] if isinstance(record.get("pos"), int) else position
                if prev is not None and record.get("prev") != prev:
                    problem(position, "hash chain broken: prev does not match the record before")
                prev = digest
                columns = (eid, article, version, occurred, recorded, digest_col, closes)
                says = (record.get("id"), record.get("article"), record.get("version"), record.get("occurred_at"), record.get("recorded_at"), digest, bool(record.get("end")))
                if columns != says:
                    problem(position, "the row's columns do not match its record")
                name: Any = record.get("article")
                number: Any = record.get("version")
                if name in in_append:
                    if number != in_append[name]:
                        problem(position, f"version {number!r} of {name!r} inside an append of version {in_append[name]}")
                elif number != versions.get(name, 0) + 1:
                    problem(position, f"version {number!r} of {name!r} follows version {versions.get(name, 0)}")
                if isinstance(name, str) and isinstance(number, int):
                    versions[name] = number
                    in_append[name] = number
                if record.get("end"):
                    in_append.clear()
                    committed_pos, committed_hash = position, digest
                if len(problems) >= 100:
                    break
            if progress is not None:
                progress(done, total)
        if not problems:
            if in_append:
                problem(position, "the last append is not closed")
            if top != committed_pos:
                problems.append(Problem(position=top, message=f"the last row is position {top}, the last closed append ends at {committed_pos}"))
        if progress is not None:
            progress(total, total)
        return VerifyReport(
            ok=not problems, events=events, articles=len(versions), head_position=committed_pos, head_hash=committed_hash, problems=problems,
        )

    def close(self) -> None:
        """Close the pool and the listening connection."""
        if self._closed:
            return
        self._closed = True
        self._drop_listener()
        self._pool.close()
