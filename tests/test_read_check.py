"""`read(check=False)`, the replays' read: it trusts the SHA-256 of lines the index already
checked, and still checks everything else (JSON, positions, the chain's links, unindexed lines)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ledger
from ledger import codec
from ledger.errors import CorruptStoreError
from ledger.store import FileEventStore, logfile


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


def test_a_read_that_races_an_append_and_sees_zeros_reads_those_bytes_again(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Linux can show another process's appended bytes as zeros for a moment (about once in
    # 50,000 reads in tests/test_group_commit.py); here the first read of the last chunk does.
    _fill(store_dir, appends=400)
    data = (store_dir / "events.jsonl").read_bytes()
    real = os.pread
    raced: list[int] = []

    def pread(fd: int, length: int, offset: int) -> bytes:
        chunk = real(fd, length, offset)
        if offset + length == len(data) and not raced:
            raced.append(offset)
            return chunk[: length // 2] + bytes(length - length // 2)
        return chunk

    monkeypatch.setattr(logfile.os, "pread", pread)
    fd = os.open(store_dir / "events.jsonl", os.O_RDONLY)
    try:
        read = b"".join(b"".join(lines) for _, lines in logfile.chunks(fd, 0, len(data)))
    finally:
        os.close(fd)
    assert raced and read == data


def test_zeros_that_stay_are_damage_and_cost_a_read_at_most_a_tenth_of_a_second(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store_dir, appends=400)
    lines = _lines(store_dir)
    for n in range(100, 700):  # many chunks of zeros, each line's newline kept
        lines[n] = bytes(len(lines[n]) - 1) + b"\n"
    _write(store_dir, lines)
    waited: list[float] = []
    monkeypatch.setattr(logfile.time, "sleep", waited.append)
    with ledger.open(store_dir, create=False) as led, pytest.raises(CorruptStoreError, match="position 101"):
        list(led.store.read())
    assert 0 < sum(waited) <= 0.1 + 1e-9


def _damaged_lines() -> list[bytes]:
    """Sealed lines (no newline), then lines damaged in each way a check must catch."""
    good = [codec.seal({"pos": n, "type": "ArticleEdited", "article": "a", "data": {"body": body}}, "0" * 64)[0].rstrip(b"\n")
            for n, body in enumerate(["x", "é€🙂 \"q\" \\", "y" * 3000], 1)]
    line = good[0]
    return [
        *good,
        line.replace(b'"x"', b'"z"'),  # the body changed
        line[:-3] + (b"0" if line[-3:-2] != b"0" else b"1") + line[-2:],  # the claimed hash changed
        line[:-66] + line[-66:-2].upper() + line[-2:],  # the hash in capitals
        line.replace(b',"hash":"', b',"hsh":"'),
        line[:-2] + b'"]',
        line[:-2],
        line[-77:], line[-76:], line[-75:], b"", b"{}",
        line[:-66] + "é".encode() * 32 + line[-2:],  # bytes that are not ASCII where the hash is
        line[:-1] + b',"hash":"' + b"0" * 64 + b'"}',  # a second "hash" key after the sealed one
    ]


def test_every_kind_of_damaged_line_is_refused_alike_by_both_checks() -> None:
    # `check` (verify, export) and `decode_lines` (reads) must agree, and raise only their own
    # errors: a line with bytes that are not ASCII where its hash goes raised UnicodeDecodeError.
    lines = _damaged_lines()
    for index, line in enumerate(lines):
        try:
            codec.check(line)
            one = "ok"
        except codec.RecordError as exc:
            one = str(exc)
        try:
            codec.decode_lines([line + b"\n"])
            many = "ok"
        except codec.LineError as exc:
            many = str(exc)
        if one == "ok" or many == "ok":
            assert index < 3 and one == many == "ok", line
        else:
            # `check` reads no JSON: a line that is not JSON is refused by its hash there.
            assert many.startswith("record is not valid JSON") or one == many, (line, one, many)
