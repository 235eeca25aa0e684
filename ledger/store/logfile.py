"""The file store's log on disk: its folder's layout (`init_store`, the marker file) and the
reading of its lines (complete lines a chunk at a time, committed appends, checked records).

The log is one file of sealed JSON lines (see `ledger.codec`); the last record of each append
carries `"end":true`, and only records up to the last `end` are committed.
"""

from __future__ import annotations

import io
import os
import stat
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import codec
from ledger.errors import CorruptStoreError, InvalidEventError, StoreError, StoreNotFoundError
from ledger.events import SCHEMA_VERSIONS, NewRecord, upcast
from ledger.store.contract import RecordOrder, check_envelope
from ledger.store.index import Sealed

LOG_FILE = "events.jsonl"
MARKER_FILE = "LEDGER"
FORMAT_VERSION = 1
# Reads go 64 KB (about 100 records) at a time: a chunk's records are parsed together, and at this
# size they are still in the CPU's cache when used (4 MB chunks made a full read 1.5-2x slower). A
# reader that wants only a few records parses only a few too.
_CHUNK = 64 * 1024
# Waits before reading again a chunk that holds a NUL byte (see `_pread`): 0.1 s in all.
_NUL_WAITS = (0.0, 0.001, 0.009, 0.09)


@dataclass
class Scan:
    """Committed records read from a byte range, and where the committed part ends."""

    records: list[Sealed]
    end: int


def init_store(path: str | os.PathLike[str]) -> Path:
    """Create an empty store at `path` (a folder); harmless if one is already there."""
    root = Path(path)
    marker = root / MARKER_FILE
    try:
        if marker.exists():
            read_marker(root)
            return root
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root}: exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        (root / LOG_FILE).touch()
        tmp = root / (MARKER_FILE + ".tmp")
        tmp.write_bytes(codec.dumps({"format": "ledger", "version": FORMAT_VERSION, "store_id": str(uuid.uuid4())}) + b"\n")
        os.replace(tmp, marker)
        fsync_dir(root)
    except OSError as exc:
        # A path through a file, a name too long, a folder that cannot be written: the
        # system's reason, with the path it names (a parent folder, or the store's own file).
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(root) else ""
        raise StoreError(f"{root}: cannot create a store there: {exc.strerror or exc}{where}") from None
    return root


def _read_regular(path: Path) -> bytes:
    """The bytes of the file at `path`; `ValueError` when it is no regular file (opened without
    blocking: reading a FIFO there would wait for a writer for ever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(path) if stat.S_ISDIR(os.fstat(fd).st_mode) else ValueError(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def read_marker(root: Path) -> dict[str, Any]:
    """The store's marker file (`LEDGER`), checked to be one this ledger reads."""
    try:
        marker = codec.loads(_read_regular(root / MARKER_FILE))
    except FileNotFoundError:
        raise StoreNotFoundError(f"{root}: no ledger store here (run `ledger init`)") from None
    except NotADirectoryError:
        raise StoreNotFoundError(f"{root}: not a folder, so no ledger store (give the store's folder)") from None
    except IsADirectoryError:
        raise CorruptStoreError(f"{root / MARKER_FILE}: a folder where the store's marker file should be") from None
    except OSError as exc:
        raise StoreError(f"{root / MARKER_FILE}: cannot be read ({exc.strerror or exc})") from None
    except ValueError:
        raise CorruptStoreError(f"{root / MARKER_FILE}: not a ledger marker file") from None
    if not isinstance(marker, dict) or marker.get("format") != "ledger":
        raise CorruptStoreError(f"{root / MARKER_FILE}: not a ledger marker file")
    if marker.get("version") != FORMAT_VERSION:
        raise StoreError(f"{root}: store format {marker.get('version')} is not supported (this ledger reads {FORMAT_VERSION})")
    return marker


def fsync_dir(root: Path) -> None:
    """Make a rename or a new file in `root` durable."""
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def offset_in(base: int, lines: list[bytes], index: int) -> int:
    """Byte offset of `lines[index]`, the lines of a chunk read from byte `base` (for messages)."""
    return base + sum(len(line) for line in lines[:index])


def chunks(fd: int, start: int, stop: int) -> Iterator[tuple[int, list[bytes]]]:
    """The complete lines in `start..stop`, each ending in its newline, a chunk at a time,
    each list with the offset of its first line; a last line without its newline is not
    complete and is left out."""
    offset = start
    pending = b""
    # Pieces of a line longer than a chunk: joined once its end is read, not copied again
    # with every chunk (that made reading a 50 MB record quadratic).
    pieces: list[bytes] = []
    waits = iter(_NUL_WAITS)
    while offset < stop:
        chunk = _pread(fd, min(_CHUNK, stop - offset), offset, waits)
        if not chunk:
            break
        offset += len(chunk)
        if b"\n" not in chunk:
            pieces.append(chunk)
            continue
        if pieces:
            pending += b"".join(pieces)
            pieces = []
        base = offset - len(chunk) - len(pending)
        data = pending + chunk if pending else chunk
        # readlines finds line ends with memchr; bytes.split tests byte by byte and took 0.7
        # of the 6.5 µs a replayed event costs (readlines: 0.13).
        lines = io.BytesIO(data).readlines()
        pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        yield base, lines

def _pread(fd: int, length: int, offset: int, waits: Iterator[float]) -> bytes:
    """`length` bytes at `offset`, read again while they hold a NUL byte, as long as `waits`
    (the read's budget of waits, shared by its chunks) lasts.

    A reader racing another process's append can see the new bytes as zeros for a moment
    (the file's size grows before the copied page is visible to it: seen here about once in
    50,000 reads of a log eight threads were appending to). The log's lines never hold a NUL
    (JSON escapes it), so zeros are either that race, gone when read again, or damage, which
    the caller reports as before, at most 0.1 s later however much of the log is zeros."""
    chunk = os.pread(fd, length, offset)
    while b"\0" in chunk:
        wait = next(waits, None)
        if wait is None:
            break
        time.sleep(wait)
        chunk = os.pread(fd, length, offset)
    return chunk


def lines(fd: int, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
    """Complete lines in `start..stop`, each ending in its newline, with their offsets (see
    `chunks`)."""
    for base, batch in chunks(fd, start, stop):
        offset = base
        for line in batch:
            yield offset, line
            offset += len(line)

def scan(fd: int, log_path: Path, start: int, stop: int, position: int, prev_hash: str) -> Scan:
    """Read and hash-check committed records in `start..stop`; stop before an uncommitted
    tail (a crash mid-append leaves only that). A damaged complete line is damage, never a
    crash: raise `CorruptStoreError`."""
    records: list[Sealed] = []
    pending: list[Sealed] = []
    end = start
    for base, lines in chunks(fd, start, stop):
        bad: codec.LineError | None = None
        try:
            decoded = codec.decode_lines(lines)
        except codec.LineError as exc:
            decoded, bad = exc.records, exc
        offset = base
        for line, record in zip(lines, decoded, strict=False):
            position += 1
            if record.get("pos") != position:
                raise CorruptStoreError(
                    f"{log_path}: expected position {position} at byte {offset}, found {record.get('pos')!r}",
                    position=position,
                )
            if record.get("prev") != prev_hash:
                raise CorruptStoreError(
                    f"{log_path}: position {position} does not chain to the record before it (hash chain broken)",
                    position=position,
                )
            prev_hash = record["hash"]
            length = len(line)
            pending.append((offset, length, record, prev_hash))
            offset += length
            if record.get("end"):
                records.extend(pending)
                pending = []
                end = offset
        if bad is not None:
            raise CorruptStoreError(
                f"{log_path}: position {position + 1} (line at byte {offset}): {bad}", position=position + 1
            )
    return Scan(records=records, end=end)


def read_batches(
    fd: int, log_path: Path, start: int, expected: int, after: int, to: int | None, trusted: int
) -> Iterator[list[dict[str, Any]]]:
    """The records of `FileEventStore.read` (`after < pos <= to`, reading from byte `start`, where
    position `expected` is; lines ending at or before byte `trusted` were hash-checked when the
    index took them), as lists of records (whole appends), chunk by chunk: the per-line work is one
    `codec.decode_lines` call per chunk plus one loop with locals, no generator per line."""
    stop = os.fstat(fd).st_size
    schemas = SCHEMA_VERSIONS
    # The first record read from the middle of the log is chained to whatever it claims.
    prev: str | None = codec.GENESIS_HASH if start == 0 else None
    out: list[dict[str, Any]] = []
    committed = 0
    for base, lines in chunks(fd, start, stop):
        check_from = 0
        if base < trusted:
            end = base
            for line in lines:
                end += len(line)
                if end > trusted:
                    break
                check_from += 1
        bad: codec.LineError | None = None
        try:
            records = codec.decode_lines(lines, check_from)
        except codec.LineError as exc:
            records, bad = exc.records, exc
        done = False
        for index, record in enumerate(records):
            pos = record.get("pos")
            if pos != expected:
                raise CorruptStoreError(
                    f"{log_path}: expected position {expected} at byte {offset_in(base, lines, index)}, found {pos!r}",
                    position=expected,
                )
            if prev is not None and record.get("prev") != prev:
                raise CorruptStoreError(
                    f"{log_path}: position {expected} (byte {offset_in(base, lines, index)}) does not chain to the "
                    "record before it (hash chain broken)",
                    position=expected,
                )
            prev = record["hash"]
            expected += 1
            if record.get("schema", 1) != schemas.get(record["type"], 1):
                upcast(record)
            if to is not None and pos > to and len(out) == committed:
                done = True
                break
            if pos > after and (to is None or pos <= to):
                out.append(record)
            if record.get("end"):
                # Only a closed append is committed: its records are handed out together.
                committed = len(out)
                if to is not None and pos >= to:
                    done = True
                    break
        if committed:
            yield out[:committed]
            del out[:committed]
            committed = 0
        if done:
            return
        if bad is not None:
            raise CorruptStoreError(
                f"{log_path}: position {expected} (line at byte {offset_in(base, lines, bad.index)}): {bad}",
                position=expected,
            )


def seal_append(
    records: Sequence[NewRecord], versions: Mapping[str, int], occurred: Mapping[str, str], now: str, position: int,
    prev: str, offset: int,
) -> tuple[list[bytes], list[Sealed]]:
    """The sealed lines of one append (and each as the index takes it), continuing a log that
    ends at `position` with hash `prev`, at byte `offset`: each record's envelope (`versions`
    and `occurred` as `new_versions` gave them, recorded at `now`), chained, the last one
    closing the append with `"end":true`."""
    lines: list[bytes] = []
    sealed: list[Sealed] = []
    last = len(records) - 1
    for i, record in enumerate(records):
        position += 1
        out: dict[str, Any] = {
            "pos": position,
            "id": record.id,
            "article": record.article,
            "version": versions[record.article],
            "type": record.type,
            "schema": SCHEMA_VERSIONS[record.type],
            "recorded_at": now,
            "occurred_at": occurred[record.article],
        }
        if record.actor is not None:
            out["actor"] = record.actor
        if record.reason is not None:
            out["reason"] = record.reason
        out["data"] = record.data
        if i == last:
            out["end"] = True
        line, prev = codec.seal(out, prev)
        lines.append(line)
        sealed.append((offset, len(line), out, prev))
        offset += len(line)
    return lines, sealed


def open_sealed(line: bytes, where: str) -> tuple[dict[str, Any], str, bytes]:
    """A sealed record line given to an import: its record, its hash and the line without its
    newline. Raises `InvalidEventError` naming `where` when the line is not a sealed record or
    its hash does not match."""
    body = line.rstrip(b"\n")
    try:
        digest = codec.check(body)
        record = codec.decode(body)
    except codec.RecordError as exc:
        raise InvalidEventError(f"{where}: {exc}") from None
    return record, digest, body


def import_label(labels: Sequence[str] | None, n: int) -> str:
    """What names the `n`th line of an import in errors: its label, by default `record N`."""
    return labels[n - 1] if labels is not None else f"record {n}"


def check_continuation(
    decoded: Sequence[tuple[dict[str, Any], str, bytes]], labels: Sequence[str] | None, order: RecordOrder, position: int, prev: str, recorded: str
) -> tuple[int, str, str]:
    """Check that the import's records (`open_sealed` of each line) continue a log whose head is
    `position` with hash `prev`, pass `order`, and end by closing an append; returns the head
    they make and the latest `recorded_at` (at least `recorded`). Raises `InvalidEventError`."""
    for n, (record, digest, _) in enumerate(decoded, 1):
        where = import_label(labels, n)
        position += 1
        check_envelope(record, where)
        if record.get("pos") != position or record.get("prev") != prev:
            raise InvalidEventError(f"{where}: does not continue this log at position {position}")
        order.check(record, where)
        recorded = max(recorded, record["recorded_at"])
        prev = digest
    if not decoded[-1][0].get("end"):
        raise InvalidEventError("the last record does not close an append")
    return position, prev, recorded
