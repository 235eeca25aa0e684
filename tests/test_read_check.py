"""`read(check=False)`, the replays' read: it trusts the SHA-256 of lines the index already
checked, and still checks everything else (JSON, positions, the chain's links, unindexed lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ledger
from ledger import codec
from ledger.errors import CorruptStoreError
from ledger.store import FileEventStore


def _fill(store_dir: Path, appends: int = 30) -> None:
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "story", "data": {"title": "Story", "body": "First body."}}])
        for n in range(appends):
            led.append([
                {"type": "ArticleEdited", "article": "story", "data": {"body": f"Body number {n}."}},
                {"type": "UpdateBlockAdded", "article": "story", "data": {"heading": f"Update {n}:", "text": "\nMore."}},
            ])
        led.head()  # index everything


def _lines(store_dir: Path) -> list[bytes]:
    return (store_dir / "events.jsonl").read_bytes().splitlines(keepends=True)


def _write(store_dir: Path, lines: list[bytes]) -> None:
    (store_dir / "events.jsonl").write_bytes(b"".join(lines))


def test_same_records_with_and_without_the_hash_check(store_dir: Path) -> None:
    _fill(store_dir, appends=400)  # more than one 64 KB chunk
    with ledger.open(store_dir) as led:
        checked = list(led.store.read())
        trusted = list(led.store.read(check=False))
        assert trusted == checked
        assert [r["pos"] for r in trusted] == list(range(1, 802))
        assert [r["pos"] for r in led.store.read(100, 203, check=False)] == list(range(101, 204))


def test_a_changed_byte_in_an_indexed_record_is_left_to_verify(store_dir: Path) -> None:
    _fill(store_dir)
    lines = _lines(store_dir)
    assert b'"heading":"Update 7:"' in lines[16]
    lines[16] = lines[16].replace(b"Update 7:", b"Update 8:")
    _write(store_dir, lines)
    with ledger.open(store_dir) as led:
        with pytest.raises(CorruptStoreError, match=r"position 17 .*does not match its checksum"):
            list(led.store.read())
        assert len(list(led.store.read(check=False))) == len(lines)
        report = led.verify()
        assert not report.ok and report.problems[0].position == 17


def test_a_broken_link_is_found_without_the_hash_check(store_dir: Path) -> None:
    _fill(store_dir)
    lines = _lines(store_dir)
    record = codec.decode(lines[20].rstrip(b"\n"))
    del record["hash"]
    # Sealed again: the line matches its own checksum, but no longer chains to line 20.
    lines[20], _ = codec.seal(record, "f" * 64)
    _write(store_dir, lines)
    with ledger.open(store_dir) as led:
        for check in (True, False):
            with pytest.raises(CorruptStoreError, match=r"position 21 .*hash chain broken"):
                list(led.store.read(check=check))


def test_a_position_gap_is_found_without_the_hash_check(store_dir: Path) -> None:
    _fill(store_dir)
    lines = _lines(store_dir)
    del lines[10]
    _write(store_dir, lines)
    store = FileEventStore(store_dir)
    try:
        with pytest.raises(CorruptStoreError, match="expected position 11 at byte"):
            list(store.read(check=False))
    finally:
        store.close()


def test_lines_the_index_has_not_taken_are_hash_checked(store_dir: Path) -> None:
    _fill(store_dir)
    reader = FileEventStore(store_dir)
    try:
        reader.recover()  # indexes the log as it is now
        with ledger.open(store_dir) as writer:
            writer.append([{"type": "ArticleEdited", "article": "story", "data": {"title": "A new title"}}])
        lines = _lines(store_dir)
        lines[-1] = lines[-1].replace(b"A new title", b"A bad title")
        _write(store_dir, lines)
        with pytest.raises(CorruptStoreError, match=f"position {len(lines)} .*does not match its checksum"):
            list(reader.read(check=False))
    finally:
        reader.close()
