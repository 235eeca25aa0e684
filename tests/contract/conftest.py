"""The implementations the store contract runs against, each as a factory that makes fresh
stores, opens more handles on one store (also from another process: factories pickle) and
tampers with a stored record in its own way, so the contract tests stay generic.

`LEDGER_CONTRACT_STORES` (comma-separated names) chooses the implementations; by default every
real one. The deliberately broken ones are chosen only by name: `test_broken_stores.py` runs the
suite against them to prove the suite catches what they break.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger import codec
from ledger.events import NewRecord
from ledger.store import LOG_FILE, AppendResult, EventStore, FileEventStore


@dataclass(frozen=True)
class FileStoreFactory:
    """Stores kept in a folder (`FileEventStore`)."""

    root: Path
    store_class: type[FileEventStore] = FileEventStore

    def open(self) -> EventStore:
        """Another handle on the same store (what another process or thread would open)."""
        return self.store_class(self.root)

    def tamper(self, kind: str, position: int) -> None:
        """Change the stored record at `position` behind the store's back, sealed again so that
        only the chain can tell (`change`); take it out (`remove`); or swap it with the record
        after it (`reorder`). Stores on it should be closed first."""
        path = self.root / LOG_FILE
        lines = path.read_bytes().splitlines(keepends=True)
        index = position - 1
        if kind == "change":
            record = codec.decode(lines[index])
            record.pop("hash", None)
            record["data"] = {**record["data"], "tampered": True}
            lines[index], _ = codec.seal(record, record.pop("prev"))
        elif kind == "remove":
            del lines[index]
        elif kind == "reorder":
            lines[index], lines[index + 1] = lines[index + 1], lines[index]
        else:
            raise ValueError(kind)
        path.write_bytes(b"".join(lines))


@dataclass(frozen=True)
class PostgresStoreFactory:
    """Stores in a PostgreSQL database (`PostgresEventStore`), named by their URL."""

    url: str

    def open(self) -> EventStore:
        """Another handle on the same store (what another process or thread would open)."""
        from ledger.store.postgres import PostgresEventStore

        return PostgresEventStore(self.url)

    def tamper(self, kind: str, position: int) -> None:
        """As `FileStoreFactory.tamper`, by hand in the table: change the record's line (sealed
        again) and columns, delete its row, or swap its row with the next one's."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            if kind == "change":
                row = conn.execute("SELECT line FROM ledger_events WHERE pos = %s", (position,)).fetchone()
                assert row is not None
                record = codec.decode(bytes(row[0]))
                record.pop("hash", None)
                record["data"] = {**record["data"], "tampered": True}
                line, digest = codec.seal(record, record.pop("prev"))
                conn.execute("UPDATE ledger_events SET line = %s, hash = %s WHERE pos = %s", (line.rstrip(b"\n"), digest, position))
            elif kind == "remove":
                conn.execute("DELETE FROM ledger_events WHERE pos = %s", (position,))
            elif kind == "reorder":
                conn.execute("UPDATE ledger_events SET pos = -pos WHERE pos IN (%s, %s)", (position, position + 1))
                conn.execute("UPDATE ledger_events SET pos = CASE pos WHEN %s THEN %s ELSE %s END WHERE pos < 0",
                             (-position, position + 1, position))
            else:
                raise ValueError(kind)


class SkipsVersionCheck(FileEventStore):
    """Broken on purpose: appends whatever version an article is at."""

    def append(self, records: Sequence[NewRecord], expected_versions: Mapping[str, int] | None = None) -> AppendResult:
        return super().append(records, None)


class ForgetsIds(FileEventStore):
    """Broken on purpose: a re-sent append is appended again."""

    def find_append(self, ids: Sequence[str]) -> AppendResult | None:
        return None


class VerifiesNothing(FileEventStore):
    """Broken on purpose: `verify` finds nothing wrong."""

    def verify(self, progress: Any = None) -> ledger.VerifyReport:
        report = super().verify(progress)
        return report.model_copy(update={"ok": True, "problems": []})


IMPLEMENTATIONS: dict[str, type[FileEventStore] | None] = {"file": FileEventStore, "postgres": None}
BROKEN: dict[str, type[FileEventStore]] = {
    "skips-version-check": SkipsVersionCheck,
    "forgets-ids": ForgetsIds,
    "verifies-nothing": VerifiesNothing,
}


def _chosen() -> list[Any]:
    names = os.environ.get("LEDGER_CONTRACT_STORES", "")
    chosen = [n.strip() for n in names.split(",") if n.strip()] or list(IMPLEMENTATIONS)
    # The PostgreSQL runs need a server: marked, and skipped with the reason when none can be had.
    return [pytest.param(name, marks=pytest.mark.postgres) if name == "postgres" else name for name in chosen]


@pytest.fixture(params=_chosen())
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileStoreFactory | PostgresStoreFactory]:
    """A factory for one fresh, empty store of each implementation."""
    name: str = request.param
    if name == "postgres":
        yield PostgresStoreFactory(request.getfixturevalue("pg_url"))
        return
    store_class = IMPLEMENTATIONS.get(name) or BROKEN[name]
    yield FileStoreFactory(ledger.init(tmp_path / "store"), store_class)


@pytest.fixture
def store(store_factory: FileStoreFactory | PostgresStoreFactory) -> Iterator[EventStore]:
    """An open handle on the fresh store, closed after the test."""
    opened = store_factory.open()
    try:
        yield opened
    finally:
        opened.close()
