"""`verify` of the file store: every line of the log checked (JSON, checksum, hash chain,
gap-free positions, versions, appends closed), each problem named by its position, with the
line and byte where it is in the message."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ledger import codec
from ledger.store.contract import Problem, VerifyReport
from ledger.store.logfile import lines


def _problem(*, line: int, position: int | None, offset: int, message: str) -> Problem:
    """A problem `verify` found, saying where in the log file it is (line and byte), and the
    position when the line holds one (not past the end of the log, nor in a line whose `pos`
    is no number)."""
    where = f"line {line}, position {position}, byte {offset}" if position is not None else f"line {line}, byte {offset}"
    return Problem(position=position, message=f"{where}: {message}")


def verify_log(
    fd: int, progress: Callable[[int, int], None] | None, committed_but_missing: Callable[[int], str | None]
) -> VerifyReport:
    """`FileEventStore.verify` of the log read through `fd`; `committed_but_missing(size)` says
    what the index saw committed that the log no longer holds. Checks every line: JSON, checksum, hash chain, gap-free positions, versions, appends closed.

    A damaged line is one problem (its line, byte offset and the position it holds), not also
    a broken link or a version gap for the records after it: what follows a damaged line is
    checked against what it claims, so each further problem is a defect of its own.
    """
    size = os.fstat(fd).st_size
    problems: list[Problem] = []
    prev: str | None = codec.GENESIS_HASH
    position = 0
    versions: dict[str, int] = {}
    in_append: dict[str, int] = {}
    # Every event id seen: an id recorded twice is damage the chain alone does not show.
    ids: set[str] = set()
    # Articles whose next record may follow a damaged one: their version cannot be checked
    # exactly, only that it does not go back.
    unsure: set[str] | None = None
    events = 0
    # What the complete appends hold: a torn one's records are not the log's.
    committed_events = committed_articles = 0
    committed_end = 0
    committed_hash = codec.GENESIS_HASH
    committed_pos = 0
    checked_end = 0
    line_no = 0
    for offset, line in lines(fd, 0, size):
        line_no += 1
        checked_end = offset + len(line)
        try:
            record = codec.decode(line)
            digest = codec.check(line[:-1])
        except codec.RecordError as exc:
            position += 1
            problems.append(_problem(line=line_no, position=position, offset=offset, message=str(exc)))
            prev, unsure = None, set()
            in_append.clear()
            committed_end = checked_end
            if len(problems) >= 100:
                break
            continue
        events += 1
        pos = record.get("pos")
        if pos != position + 1 and not (unsure is not None and isinstance(pos, int) and pos > position):
            problems.append(_problem(line=line_no, position=pos if isinstance(pos, int) else None, offset=offset,
                                    message=f"expected position {position + 1}, found {pos!r}"))
        position = pos if isinstance(pos, int) else position + 1
        if prev is not None and record.get("prev") != prev:
            problems.append(_problem(line=line_no, position=position, offset=offset,
                                    message="hash chain broken: prev does not match the record before"))
        prev = digest
        event_id = record.get("id")
        if isinstance(event_id, str):
            if event_id in ids:
                problems.append(_problem(line=line_no, position=position, offset=offset,
                                        message=f"event id {event_id!r} was already recorded by an earlier record"))
            ids.add(event_id)
        # Either may be missing or of any type in a damaged record.
        article: Any = record.get("article")
        version: Any = record.get("version")
        known = versions.get(article, 0) if isinstance(article, str) else 0
        if not isinstance(article, str):
            # A record sealed again with a list or an object for its article (unhashable).
            problems.append(_problem(line=line_no, position=position, offset=offset, message="record field 'article' is missing or not text"))
        elif unsure is not None and article not in unsure and article not in in_append:
            unsure.add(article)
            if not isinstance(version, int) or version < max(known, 1):
                problems.append(_problem(line=line_no, position=position, offset=offset,
                                        message=f"version {version!r} of {article!r} follows version {known}"))
        elif article in in_append:
            if version != in_append[article]:
                problems.append(_problem(line=line_no, position=position, offset=offset,
                                        message=f"version {version!r} of {article!r} inside an append of version {in_append[article]}"))
        elif version != known + 1:
            problems.append(_problem(line=line_no, position=position, offset=offset,
                                    message=f"version {version!r} of {article!r} follows version {known}"))
        if isinstance(article, str) and isinstance(version, int):
            versions[article] = version
            in_append[article] = version
        if record.get("end"):
            in_append.clear()
            committed_end, committed_hash, committed_pos = checked_end, digest, position
            committed_events, committed_articles = events, len(versions)
        if progress is not None and line_no % 10000 == 0:
            progress(checked_end, size)
        if len(problems) >= 100:
            break
    if progress is not None:
        progress(size, size)
    if not problems:
        missing = committed_but_missing(size)
        if missing is not None:
            problems.append(_problem(line=line_no + 1, position=None, offset=size, message=missing))
            committed_end = size
    return VerifyReport(
        ok=not problems,
        events=events if problems else committed_events,
        articles=len(versions) if problems else committed_articles,
        head_position=committed_pos,
        head_hash=committed_hash,
        log_bytes=size,
        torn_tail_bytes=size - committed_end if len(problems) < 100 else 0,
        problems=problems,
    )
