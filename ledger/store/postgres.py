"""`PostgresEventStore`: the same ledger kept in a PostgreSQL database (psycopg 3, its pool).

Selected by a store URL (`postgresql://...`). The records are the file store's sealed lines,
byte for byte (`ledger.codec`), one row each, with the columns reads look them up by beside
them; so an export of either store imports into the other with the same head hash.

* **positions in commit order, without gaps**: one row, `ledger_head`, holds the last position
  and its hash. An append locks it (`SELECT ... FOR UPDATE`) first, takes its positions and its
  records' `prev` from it, inserts, moves it on, and commits: the lock is let go only when the
  transaction has committed, so appends commit one after another in position order, and a
  reader never sees a position while a smaller one may still commit. (A sequence would hand out
  numbers that commit out of order or roll back: the gaps and skips Marten's readers met.)
  The lock covers only the append's own two round trips; reads never wait for it.
* **atomic, checked, idempotent**: one transaction per append, whatever articles it names; the
  articles' versions are read under the lock, so expected versions are checked against what is
  committed; event ids are a unique key, and a re-sent append returns its first result.
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

import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql
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

SCHEMA_VERSION = 1
"""The version of the tables this ledger reads and writes."""

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
_LISTEN_TIMEOUT = 1.0


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
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[-1] if lines else type(exc).__name__
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
    if "role" in lowered and "does not exist" in lowered:
        return StoreConnectionError(f"{where}: {detail}")
    if any(word in lowered for word in ("invalid port", "invalid uri", "invalid connection option", "invalid integer value", "invalid sslmode")):
        return _unusable(url, detail)
    if any(word in lowered for word in (
        "connection refused", "no such file or directory", "could not translate host", "failed to resolve host", "timeout expired",
        "could not connect", "network is unreachable",
    )):
        return StoreConnectionError(f"{where}: cannot reach the PostgreSQL server ({detail})")
    return StoreConnectionError(f"{where}: {detail}")


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


def _schema_of(conn: psycopg.Connection[Any]) -> tuple[int, str] | None:
    """The schema's version and the store's id, None when the database holds no ledger."""
    found = conn.execute("SELECT to_regclass('ledger_schema') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return None
    row = conn.execute("SELECT version, store_id FROM ledger_schema").fetchone()
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
                found = _schema_of(conn)
                if found is None:
                    conn.execute("INSERT INTO ledger_schema (version, store_id) VALUES (0, %s)", (str(uuid.uuid4()),))
                    found = (0, cast("tuple[int, str]", _schema_of(conn))[1])
                version, store_id = found
                _check_version(url, version)
                for target, script in MIGRATIONS:
                    if target > version:
                        conn.execute(cast("Any", script))
                        conn.execute("UPDATE ledger_schema SET version = %s", (target,))
                return store_id
        except psycopg.OperationalError as exc:
            raise _lost(url, exc, "creating the schema") from None


def schema_exists(url: str) -> bool:
    """Whether the database at `url` holds a ledger's tables."""
    with _connect(url) as conn:
        return _schema_of(conn) is not None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "_"


def cache_base() -> Path:
    """Where caches of server stores go: `$LEDGER_CACHE_DIR`, else ~/.cache/ledger."""
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
            found = _schema_of(conn)
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

        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs={"autocommit": True, "connect_timeout": 10},
            configure=configure, open=False, name="ledger", timeout=max(30.0, lock_timeout if not math.isinf(lock_timeout) else 30.0),
        )
        self._pool.open(wait=False)
        self._exclusive = threading.local()
        self._groups = GroupCommit(self._lead)
        self._listener: psycopg.Connection[Any] | None = None
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
        folder = cache_base() / _safe(f"pg-{self._identity}-{self.store_id}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # The views are a cache: without a folder for them they are built in memory.
            log.warning("%s: cannot make the views' cache folder (%s); keeping the views in memory (set %s)", folder, exc.strerror or exc, ENV_CACHE)
            return None
        return folder

    @contextmanager
    def _conn(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a connection lost meanwhile becomes `StoreConnectionError`."""
        owned = getattr(self._exclusive, "conn", None)
        if owned is not None:
            yield owned
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreConnectionError(f"{redact(self.url)}: no connection to the server could be had while {doing}") from None
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
            except StoreConnectionError:
                if attempt == 2 or getattr(self._exclusive, "conn", None) is not None:
                    raise
                # Every idle connection of the pool may be broken alike (a server restart):
                # drop them all, so the second try opens a fresh one.
                self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    # --- reading ---------------------------------------------------------------------------------

    def head(self) -> Head:
        """The last committed position and its hash (one indexed row)."""
        row = self._query("reading the head", "SELECT position, hash FROM ledger_head")[0]
        return Head(position=int(row[0]), hash=str(row[1]))

    def read(self, after: int = 0, to: int | None = None, *, check: bool = True) -> Iterator[StoredRecord]:
        """Every committed record with `after < pos <= to` (to the head when read starts), in
        pages, each line checked against its hash (with `check`), its position and the chain."""
        if to is None:
            to = self.head().position
        expected = after + 1
        prev: str | None = codec.GENESIS_HASH if after == 0 else None
        schemas = SCHEMA_VERSIONS
        while expected <= to:
            rows = self._query(
                "reading the log", "SELECT line FROM ledger_events WHERE pos >= %s AND pos <= %s ORDER BY pos LIMIT %s", (expected, to, _PAGE),
                binary=True,
            )
            if not rows:
                if self.head().position < expected:
                    return  # `to` is past the head
                raise CorruptStoreError(f"{redact(self.url)}: position {expected} is missing from the log", position=expected)
            lines = [bytes(row[0]) + b"\n" for row in rows]
            try:
                records = codec.decode_lines(lines, 0 if check else len(lines))
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
                    upcast(record)
                yield cast("StoredRecord", record)

    def _article_lines(self, article: str, low: int, high: int) -> list[dict[str, Any]]:
        rows = self._query(
            "reading an article",
            "SELECT pos, version, line FROM ledger_events WHERE article = %s AND version >= %s AND version <= %s ORDER BY pos",
            (article, low, high),
            binary=True,
        )
        try:
            records = codec.decode_lines([bytes(line) + b"\n" for _, _, line in rows])
        except codec.LineError as exc:
            pos = rows[exc.index][0]
            raise CorruptStoreError(f"{redact(self.url)}: position {pos}: {exc}", position=pos) from None
        for (pos, version, _), record in zip(rows, records, strict=True):
            if (record.get("pos"), record.get("article"), record.get("version")) != (pos, article, version):
                raise CorruptStoreError(f"{redact(self.url)}: the row of position {pos} does not match its record", position=pos)
        return records

    def read_article(self, article: str, from_version: int = 1, to_version: int | None = None) -> list[StoredRecord]:
        """One article's records of versions `from_version..to_version`, each hash-checked."""
        top = to_version if to_version is not None else 1 << 31
        records = self._article_lines(article, from_version, min(top, (1 << 31) - 1))
        expected = max(from_version, 1)
        for record in records:
            if record["version"] not in (expected - 1, expected):
                raise CorruptStoreError(f"{redact(self.url)}: version {expected} of {article!r} is missing", position=record["pos"])
            expected = record["version"] + 1
        return [cast("StoredRecord", upcast(record)) for record in records]

    def article_version(self, article: str) -> int:
        """The article's current version (0 when it has no events)."""
        return self.article_versions((article,))[article]

    def article_versions(self, articles: Iterable[str]) -> dict[str, int]:
        """The current version of each of `articles` (0 for those with none), in one query."""
        wanted = list(dict.fromkeys(articles))
        rows = self._query(
            "reading versions", _LATEST, (wanted,)
        )
        found = {str(article): int(version) for article, version, _ in rows}
        return {article: found.get(article, 0) for article in wanted}

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
            with self._pool.connection() as conn:
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
                    raise
        except psycopg.errors.LockNotAvailable:
            raise StoreLockedError(f"{redact(self.url)}: another writer held the log for more than {self.lock_timeout} s") from None
        except psycopg.OperationalError as exc:
            raise _lost(self.url, exc, "holding the log") from None
        except PoolTimeout:
            raise StoreConnectionError(f"{redact(self.url)}: no connection to the server could be had") from None

    def _lock_head(self, conn: psycopg.Connection[Any]) -> tuple[int, str, str]:
        row = conn.execute("SELECT position, hash, recorded_at FROM ledger_head FOR UPDATE").fetchone()
        if row is None:
            raise CorruptStoreError(f"{redact(self.url)}: the ledger_head row is missing")
        return int(row[0]), str(row[1]), str(row[2])

    def append(self, records: Sequence[NewRecord], expected_versions: Mapping[str, int] | None = None) -> AppendResult:
        """Append atomically (see `EventStore.append` and the module): one transaction under the
        head's lock, two round trips.

        Group commit: appends that threads of this process make while another thread's append is
        in flight wait for it, then go out together in one transaction (each still checked on
        its own: one refused does not fail the others), so threads share round trips and the
        commit's flush instead of queueing for the head's lock one by one.

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
                    with self._pool.connection() as conn:
                        try:
                            deferred = self._commit_group(conn, group, locked=False, sent=sent)
                        except BaseException:
                            _undo(conn)
                            raise
                    break
                except psycopg.OperationalError as exc:
                    if attempt == 1 and not sent[0] and not isinstance(exc, psycopg.errors.LockNotAvailable):
                        continue
                    raise
        except BaseException as exc:
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                error: BaseException = StoreLockedError(f"{redact(self.url)}: another writer held the log for more than {self.lock_timeout} s; nothing appended")
            elif isinstance(exc, psycopg.errors.UniqueViolation):
                # Impossible under the head's lock, unless the table was written around it.
                error = DuplicateEventError("an event id of this append was recorded meanwhile by a write that bypassed the ledger; nothing appended")
            elif isinstance(exc, psycopg.OperationalError):
                error = _lost(self.url, exc, "appending; the append was recorded whole or not at all")
            elif isinstance(exc, PoolTimeout):
                error = StoreConnectionError(f"{redact(self.url)}: no connection to the server could be had; nothing appended")
            else:
                error = exc
            fail(group, error)
            return []
        return deferred

    def _commit_group(self, conn: psycopg.Connection[Any], group: list[Pending], *, locked: bool, sent: list[bool] | None = None) -> list[Pending]:
        """Check, seal and write the appends of `group` in one transaction on `conn` (inside
        `exclusive`, `locked`: the transaction and the head's lock are the caller's, and it
        commits); returns those held back for the next group."""
        for pending in group:
            pending.result = pending.error = None
        articles = list(dict.fromkeys(record.article for pending in group for record in pending.records))
        explicit = [eid for pending in group if any(r.explicit_id for r in pending.records) for eid in pending.ids]
        with conn.pipeline():
            if not locked:
                conn.execute("BEGIN")
            # Inside `exclusive` the head is locked already.
            head_cur = conn.execute("SELECT position, hash, recorded_at FROM ledger_head" + ("" if locked else " FOR UPDATE"))
            state_cur = conn.execute(
                _LATEST,
                (articles,),
            )
            ids_cur = conn.execute("SELECT id, pos, article, version FROM ledger_events WHERE id = ANY(%s)", (explicit,)) if explicit else None
            head_row = head_cur.fetchone()
            if head_row is None:
                raise CorruptStoreError(f"{redact(self.url)}: the ledger_head row is missing")
            position, prev, last_recorded = int(head_row[0]), str(head_row[1]), str(head_row[2])
            state = state_cur.fetchall()
            recorded_ids = {str(e): (int(p), str(a), int(v)) for e, p, a, v in ids_cur.fetchall()} if ids_cur is not None else {}
        if sent is not None:
            # The head is locked: from here on the appends may reach the server.
            sent[0] = True
        versions: dict[str, int] = {str(a): int(v) for a, v, _ in state}
        occurred: dict[str, str] = {str(a): str(o) for a, _, o in state}
        moment = datetime.now(UTC)
        now = format_time(moment)
        if now < last_recorded:
            # The clock went back (or another host's runs ahead): recorded times never do.
            now, moment = last_recorded, parse_time(last_recorded)
        rows: list[tuple[dict[str, Any], str, bytes]] = []
        done: list[Accepted] = []
        deferred: list[Pending] = []
        group_ids: set[str] = set()
        for pending in group:
            if not group_ids.isdisjoint(pending.ids):
                deferred.append(pending)
                continue
            try:
                found = {eid: recorded_ids[eid] for eid in pending.ids if eid in recorded_ids}
                if found:
                    pending.result = self._original(pending.ids, found, conn)
                    continue
                for article, wanted in (pending.expected or {}).items():
                    current = versions.get(article, 0) if article in versions or article in articles else self._version_in(conn, article)
                    if current != wanted:
                        raise VersionConflictError(f"article {article!r} is at version {current}, not the expected {wanted}; nothing appended")
                new, times = new_versions(pending.records, versions, occurred, now)
            except LedgerError as exc:
                pending.error = exc
                continue
            lines, sealed = seal_append(pending.records, new, times, now, position, prev, 0)
            done.append((pending, new, times, position + 1))
            rows.extend((entry[2], entry[3], line) for entry, line in zip(sealed, lines, strict=True))
            position, prev = position + len(lines), sealed[-1][3]
            versions.update(new)
            occurred.update(times)
            group_ids.update(pending.ids)
        with conn.pipeline():
            if rows:
                self._insert(conn, rows, now, prev, position)
            if not locked:
                conn.execute("COMMIT")
        answer(done, now, moment)
        return deferred

    def _version_in(self, conn: psycopg.Connection[Any], article: str) -> int:
        row = conn.execute("SELECT max(version) FROM ledger_events WHERE article = %s", (article,)).fetchone()
        return int(row[0] or 0) if row else 0

    def _insert(self, conn: psycopg.Connection[Any], sealed: list[tuple[dict[str, Any], str, bytes]], recorded_at: str, head_hash: str, head: int) -> None:
        """Insert sealed records and move the head on, in one statement that also notifies the
        followers (delivered when the transaction commits). The arrays go in binary (`%b`):
        psycopg escapes text arrays with a regular expression per item, a third of an append's
        CPU."""
        conn.execute(
            """
            WITH added AS (
                INSERT INTO ledger_events (pos, id, article, version, occurred_at, recorded_at, hash, closes, line)
                SELECT * FROM UNNEST(%b::bigint[], %b::text[], %b::text[], %b::integer[], %b::text[], %b::text[], %b::text[], %b::boolean[], %b::bytea[])
            )
            UPDATE ledger_head SET position = %s, hash = %s, recorded_at = greatest(recorded_at, %s)
            RETURNING pg_notify(%s, %s)
            """,
            (
                [r["pos"] for r, _, _ in sealed], [r["id"] for r, _, _ in sealed], [r["article"] for r, _, _ in sealed],
                [r["version"] for r, _, _ in sealed], [r["occurred_at"] for r, _, _ in sealed], [r["recorded_at"] for r, _, _ in sealed],
                [digest for _, digest, _ in sealed], [bool(r.get("end")) for r, _, _ in sealed], [line.rstrip(b"\n") for _, _, line in sealed],
                head, head_hash, recorded_at, self.channel, str(head),
            ),
        )

    def append_raw(self, lines: Sequence[bytes], labels: Sequence[str] | None = None) -> Head:
        """Append already sealed record lines as they are (for `import`): they must continue the
        positions and the chain and pass `RecordOrder`; all is checked before anything is written."""
        if not lines:
            raise NothingToDoError("nothing to import")
        decoded = [open_sealed(line, import_label(labels, n)) for n, line in enumerate(lines, 1)]
        articles = list(dict.fromkeys(str(r.get("article")) for r, _, _ in decoded))
        try:
            with self._conn("importing") as conn:
                conn.execute("BEGIN")
                try:
                    position, prev, recorded = self._lock_head(conn)
                    state = conn.execute(
                        _LATEST,
                        (articles,),
                    ).fetchall()
                    order = RecordOrder({str(a): int(v) for a, v, _ in state}, {str(a): str(o) for a, _, o in state})
                    position, prev, recorded = check_continuation(decoded, labels, order, position, prev, recorded)
                    self._insert(conn, decoded, recorded, prev, position)
                    conn.execute("COMMIT")
                except BaseException:
                    _undo(conn)
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
                    log.debug("%s", exc)
                    self._drop_listener()
                    listener, head = None, position
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
        """Check every row: the line's hash, its position (and the row's), the chain, versions,
        appends closed, event ids once, the row's columns against its line, and the head row
        against the last record."""
        problems: list[Problem] = []
        head = self.head()
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
                "SELECT pos, id, article, version, occurred_at, recorded_at, hash, closes, line FROM ledger_events WHERE pos > %s ORDER BY pos LIMIT %s",
                (after, _PAGE),
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
            if (head.position, head.hash) != (committed_pos, committed_hash) or top != committed_pos:
                problems.append(Problem(position=head.position, message=f"the head row says position {head.position}, the log ends at {committed_pos}"))
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
