"""The log's bytes: one JSON record per line, each sealed with a SHA-256 hash chained to the last.

This is the only module that imports orjson. A record line is the record's JSON object, whose
`prev` field is the hash of the record before it, with `"hash":"<sha256 of the object>"` spliced
in as its last field. Because the hash is over the exact bytes before the splice, checking a
line needs no re-serialisation: cut the last 76 bytes, close the brace, hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
"""The `prev` of the first record of every log."""

_HASH_TAIL = len(b',"hash":"') + 64 + len(b'"}')
_HASH_PREFIX = b',"hash":"'


class RecordError(ValueError):
    """A line that is not a sealed record: bad JSON, missing or wrong hash."""


def dumps(value: Any) -> bytes:
    """Serialise any JSON value (pydantic models' dumps included) to compact bytes."""
    return orjson.dumps(value)


def dumps_pretty(value: Any) -> bytes:
    """Serialise with indentation, for people."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes or text. Raises `ValueError` (orjson.JSONDecodeError) on bad input."""
    return orjson.loads(data)


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
    return line[-66:-2].decode("ascii")


def check(line: bytes) -> str:
    """Check a sealed line's hash against its bytes; returns the hash or raises `RecordError`."""
    claimed = hash_of(line)
    if line[-2:] != b'"}':
        raise RecordError("record has no hash")
    body = line[:-_HASH_TAIL] + b"}"
    if hashlib.sha256(body).hexdigest() != claimed:
        raise RecordError("record does not match its checksum")
    return claimed


def decode(line: bytes) -> dict[str, Any]:
    """Parse a line into its record dict (no hash check: see `check`)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"record is not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise RecordError("record is not a JSON object")
    return record
