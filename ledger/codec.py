"""The log's bytes: one JSON record per line, each sealed with a SHA-256 hash chained to the last.

This is the only module that imports orjson. A record line is the record's JSON object, whose
`prev` field is the hash of the record before it, with `"hash":"<sha256 of the object>"` spliced
in as its last field. Because the hash is over the exact bytes before the splice, checking a
line needs no re-serialisation: cut the last 76 bytes, close the brace, hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import orjson

from ledger.errors import CorruptStoreError

GENESIS_HASH = "0" * 64
"""The `prev` of the first record of every log."""

_HASH_PREFIX = b',"hash":"'
_HASH_TAIL = len(_HASH_PREFIX) + 64 + len(b'"}')


class RecordError(CorruptStoreError):
    """A line that is not a sealed record: bad JSON, missing or wrong hash. Callers that read
    outside input (imports) turn it into an `InvalidEventError` naming the file and line."""


def dumps(value: Any) -> bytes:
    """Serialise any JSON value (pydantic models' dumps included) to compact bytes."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text. Raises `ValueError` (orjson.JSONDecodeError) on bad input."""
    return orjson.loads(data)


class InputJsonError(ValueError):
    """User JSON that parses but would not be kept as written (see `loads_input`). So that a
    caller can name the line of a longer file: for JSON that does not parse, `problem` says what
    is wrong without the place and `position` where (an offset in the text); for a refused value,
    `subject` is the key given twice or the number as written."""

    def __init__(self, message: str, problem: str | None = None, position: int | None = None, subject: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.position = position
        self.subject = subject


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InputJsonError(f"key {key!r} is given twice in one object", subject=key)
            seen.add(key)
    return value


def _integer(text: str) -> int:
    if len(text) > 20 or not _INT64_MIN <= (value := int(text)) <= _INT64_MAX:
        raise InputJsonError(f"integer {text[:40]} is beyond 64 bits (the log keeps integers from -2**63 to 2**63-1)", subject=text)
    return value


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputJsonError(f"number {text[:40]} is too large for a 64-bit float", subject=text)
    return value


def _constant(name: str) -> Any:
    raise InputJsonError(f"{name} is not a JSON number", subject=name)


_INPUT_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_integer, parse_float=_number, parse_constant=_constant)


def loads_input(data: bytes | str) -> Any:
    """Parse JSON typed or sent by a user, refusing what a lenient parser would silently change:
    a key given twice (the last would win), integers beyond 64 bits (they would become floats),
    NaN and Infinity, numbers too large for a float. Raises `InputJsonError` for those and for
    text that is not JSON, with a message in plain words.

    The log's own lines are read with `loads` (orjson, fast): they were written by `seal`.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InputJsonError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at byte {exc.start + 1}): expected JSON as UTF-8 text") from None
    try:
        return _INPUT_DECODER.decode(text)
    except RecursionError:
        raise InputJsonError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        # (json's own words for a control character end in "at": the column follows here.)
        words = f"{exc.msg[0].lower()}{exc.msg[1:]}".removesuffix(" at")
        hint = ""
        if words == "invalid control character" and exc.pos < len(text):
            words += f" U+{ord(text[exc.pos]):04X}"
            hint = f"; write it as the escape \\u{ord(text[exc.pos]):04x}"
        if text.startswith("\ufeff"):
            words = problem = "it starts with a byte order mark; save it as UTF-8 without one"
        elif exc.pos >= len(text.rstrip()):
            problem = "the line ends before the JSON does"
        else:
            problem = f"{words} at column {exc.pos + 1}{hint}"
        raise InputJsonError(f"malformed JSON ({problem})", words, exc.pos) from None


def seal(record: dict[str, Any], prev_hash: str) -> tuple[bytes, str]:
    """Encode `record` chained to `prev_hash`: returns the line (ending in a newline) and its hash."""
    record["prev"] = prev_hash
    body = orjson.dumps(record)
    digest = hashlib.sha256(body).hexdigest()
    return body[:-1] + _HASH_PREFIX + digest.encode("ascii") + b'"}\n', digest


def hash_of(line: bytes) -> str:
    """The hash a sealed line claims (without checking it). `line` has no trailing newline."""
    if len(line) < _HASH_TAIL or line[-_HASH_TAIL:-66] != _HASH_PREFIX:
        raise RecordError("record has no hash")
    # Bytes that are not ASCII cannot be a hash: the caller's comparison fails on them.
    return line[-66:-2].decode("ascii", "replace")


def check(line: bytes) -> str:
    """Check a sealed line's hash against its bytes; returns the hash or raises `RecordError`."""
    claimed = hash_of(line)
    if line[-2:] != b'"}':
        raise RecordError("record has no hash")
    body = line[:-_HASH_TAIL] + b"}"
    if hashlib.sha256(body).hexdigest() != claimed:
        raise RecordError("record does not match its checksum")
    return claimed


def _not_json(line: bytes, exc: orjson.JSONDecodeError) -> str:
    """Why a log line is not JSON, in plain words and with its column: orjson's message says
    "str is not valid UTF-8: surrogates not allowed" of any byte that is not UTF-8."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        problem = f"byte 0x{line[bad.start]:02x} at column {bad.start + 1} is not UTF-8"
    else:
        if not line.strip():
            problem = "an empty line"
        elif line.startswith(b"\xef\xbb\xbf"):
            problem = "it starts with a byte order mark"
        else:
            problem = f"{exc.msg} at column {exc.pos + 1}"
    return f"record is not valid JSON ({problem})"


class LineError(RecordError):
    """A bad line among several (`decode_lines`): `index` is its place in the list given."""

    def __init__(self, index: int, message: str, records: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.index = index
        self.records = records
        """The records of the lines before it."""


def decode_lines(lines: list[bytes], check_from: int = 0) -> list[dict[str, Any]]:
    """Parse sealed lines, each ending in its newline, into their record dicts, in one pass.

    Every record must be a JSON object with a `hash` field (the hash the line claims). Lines from
    `lines[check_from]` on are also checked against their hash, as `check` does; those before it
    are trusted (lines the caller already checked once). The checks and messages are those of
    `decode` then `check`; the first bad line raises `LineError` with its index and the
    records before it. This is the read path's inner loop, so it is written with locals rather
    than calls to `decode` and `check`.
    """
    records: list[dict[str, Any]] = []
    append = records.append
    parse = orjson.loads
    sha256 = hashlib.sha256
    # Offsets from the line's end, past its newline.
    tail = _HASH_TAIL + 1
    prefix = _HASH_PREFIX
    for index, line in enumerate(lines):
        try:
            record = parse(line)
        except orjson.JSONDecodeError as exc:
            raise LineError(index, _not_json(line, exc), records) from None
        if not isinstance(record, dict):
            raise LineError(index, "record is not a JSON object", records)
        if index >= check_from:
            if len(line) < tail or line[-tail:-67] != prefix or line[-3:] != b'"}\n':
                raise LineError(index, "record has no hash", records)
            digest = sha256(line[:-tail] + b"}").hexdigest()
            # The parsed `hash` is the claimed text too (unless a second "hash" key hides it).
            if digest.encode("ascii") != line[-67:-3] or record.get("hash") != digest:
                raise LineError(index, "record does not match its checksum", records)
        elif not isinstance(record.get("hash"), str):
            raise LineError(index, "record has no hash", records)
        append(record)
    return records


def decode(line: bytes) -> dict[str, Any]:
    """Parse a line into its record dict (no hash check: see `check`)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordError(_not_json(line, exc)) from None
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    return record
