"""`ledger init / append / log / verify`: exact output and exit codes, and bad input that gets one
clear line on stderr, its documented exit code, and leaves the log byte for byte as it was."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import ledger
from ledger import codec
from ledger.store import INDEX_FILE, LOG_FILE, MARKER_FILE
from tests.conftest import run_ledger
from tests.helpers import cli

CREATE = b'{"type": "ArticleCreated", "article": "deir-ez-zor", "id": "evt-1", "actor": "ana", "reason": "first report", "occurred_at": "2017-09-05T16:05:00Z", "data": {"title": "Deir ez-Zor", "body": "Troops arrived.", "categories": ["latest"]}}\n'
UPDATE = (
    b'{"type": "UpdateBlockAdded", "article": "deir-ez-zor", "data": {"heading": "Update from Al Masdar News:", "text": "\\nThe road is open."}}\n'
    b'{"type": "ArticleCreated", "article": "raqqa", "data": {"title": "Raqqa"}}\n'
)


@pytest.fixture
def store(store_dir: Path) -> Path:
    """A store holding two appends (positions 1, and 2-3)."""
    assert cli("append", "-", input=CREATE, store=store_dir).exit_code == 0
    assert cli("append", "-", input=UPDATE, store=store_dir).exit_code == 0
    return store_dir


def test_init_creates_a_store_and_is_harmless_again(tmp_path: Path) -> None:
    target = tmp_path / "newsroom"
    first = cli("init", store=target)
    assert (first.exit_code, first.stdout) == (0, f"initialised store {target}\n")
    assert sorted(p.name for p in target.iterdir()) == [MARKER_FILE, LOG_FILE]
    marker = (target / MARKER_FILE).read_bytes()
    again = cli("init", store=target)
    # Issue 14 point 5: it said "initialised store" again.
    assert (again.exit_code, again.stdout) == (0, f"store already exists at {target}\n")
    assert (target / MARKER_FILE).read_bytes() == marker


def test_append_prints_what_it_recorded(store_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(CREATE)
    result = cli("append", str(source), store=store_dir)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "recorded 1 event at position 1: deir-ez-zor v1\n", "")
    result = cli("append", "-", input=b"\n" + UPDATE + b"\n", store=store_dir)  # blank lines are skipped
    assert (result.exit_code, result.stdout) == (0, "recorded 2 events at positions 2-3: deir-ez-zor v2, raqqa v1\n")
    again = cli("append", str(source), store=store_dir)
    assert (again.exit_code, again.stdout) == (0, "recorded 1 event at position 1: deir-ez-zor v1 (already recorded: nothing appended)\n")
    as_json = codec.loads(cli("append", "--format", "json", str(source), store=store_dir).stdout)
    assert as_json["duplicate"] is True and as_json["versions"] == {"deir-ez-zor": 1} and as_json["event_ids"] == ["evt-1"]
    assert as_json["occurred_at"] == {"deir-ez-zor": "2017-09-05T16:05:00Z"}


def test_log_json_has_the_documented_fields(store: Path) -> None:
    result = cli("log", "--format", "json", store=store)
    assert result.exit_code == 0
    events = [codec.loads(line) for line in result.stdout.splitlines()]
    assert [(e["position"], e["article"], e["version"], e["type"]) for e in events] == [
        (1, "deir-ez-zor", 1, "ArticleCreated"), (2, "deir-ez-zor", 2, "UpdateBlockAdded"), (3, "raqqa", 1, "ArticleCreated"),
    ]
    first = events[0]
    assert set(first) >= {"position", "id", "article", "version", "type", "recorded_at", "occurred_at", "actor", "reason", "data"}
    assert (first["id"], first["actor"], first["reason"], first["occurred_at"]) == ("evt-1", "ana", "first report", "2017-09-05T16:05:00.000000Z")
    assert first["data"] == {"title": "Deir ez-Zor", "body": "Troops arrived.", "categories": ["latest"], "metadata": {}}
    assert events[1]["data"] == {"heading": "Update from Al Masdar News:", "text": "\nThe road is open.", "index": None}
    assert events[1]["actor"] is None and events[1]["recorded_at"] == events[2]["recorded_at"]


@pytest.mark.parametrize(
    ("args", "positions"),
    [
        (["--article", "deir-ez-zor"], [1, 2]),
        (["--type", "ArticleCreated"], [1, 3]),
        (["--from", "2"], [2, 3]),
        (["--limit", "1"], [1]),
        (["--from", "2", "--type", "ArticleCreated", "--limit", "5"], [3]),
        (["--from", "9"], []),
    ],
)
def test_log_filters(store: Path, args: list[str], positions: list[int]) -> None:
    result = cli("log", "--format", "json", *args, store=store)
    assert result.exit_code == 0
    assert [codec.loads(line)["position"] for line in result.stdout.splitlines()] == positions


def test_log_text_lists_events(store: Path) -> None:
    result = cli("log", store=store)
    assert result.exit_code == 0
    rows = result.stdout.splitlines()
    assert rows[0].split()[:4] == ["pos", "article", "ver", "type"]
    assert [row.split()[:4] for row in rows[1:] if row.strip() and row.split()[0].isdigit()] == [
        ["1", "deir-ez-zor", "1", "ArticleCreated"], ["2", "deir-ez-zor", "2", "UpdateBlockAdded"], ["3", "raqqa", "1", "ArticleCreated"],
    ]


def test_counts_of_one_are_singular(store_dir: Path) -> None:
    # Issue 14 point 7: "ok: 5 events, 1 articles", "recorded 1 event at positions 11-11".
    line = '{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x"}}\n'
    assert cli("append", "-", store=store_dir, input=line).stdout == "recorded 1 event at position 1: a v1\n"
    assert cli("verify", store=store_dir).stdout.startswith("ok: 1 event, 1 article, head position 1\n")
    assert cli("replay", store=store_dir).stdout.startswith("replayed 1 event of 1 article to position 1 in ")


def test_verify_prints_the_head_hash(store: Path) -> None:
    last = (store / LOG_FILE).read_bytes().splitlines()[-1]
    result = cli("verify", store=store)
    assert result.exit_code == 0
    assert result.stdout == f"ok: 3 events, 2 articles, head position 3\nhead hash {codec.hash_of(last)}\n"
    report = codec.loads(cli("verify", "--format", "json", store=store).stdout)
    assert (report["ok"], report["head_hash"], report["problems"]) == (True, codec.hash_of(last), [])


# --- bad input: one line, its exit code, the log unchanged -----------------------------------

BAD_INPUT = [
    ("malformed JSON", CREATE + b'{"type": "ArticleCreated", "article": "b"\n', 3, r"^error: in\.jsonl:2: malformed JSON \("),
    ("not an object", b"[1, 2]\n", 3, r"^error: in\.jsonl:1: expected a JSON object, got a list$"),
    ("unknown type", b'{"type": "ArticleDeleted", "article": "b", "data": {}}\n', 3, r"^error: in\.jsonl:1: type: unknown event type 'ArticleDeleted' \(expected 'ArticleCreated', "),
    ("missing field", b'{"type": "ArticleCreated", "article": "b", "data": {"body": "x"}}\n', 3,
     r"^error: in\.jsonl:1: ArticleCreated: title: missing field$"),
    ("missing envelope field", b'{"type": "ArticleCreated", "data": {"title": "T"}}\n', 3, r"^error: in\.jsonl:1: article: missing field$"),
    ("extra field", b'{"type": "ArticleCreated", "article": "b", "data": {"title": "T"}, "colour": "red"}\n', 3,
     r"^error: in\.jsonl:1: colour: unknown field \(expected one of type, article, data, id, actor, reason, occurred_at, expected_version\)$"),
    ("extra data field", CREATE.replace(b"evt-1", b"evt-9").replace(b"deir-ez-zor", b"c") + b'{"type": "ArticleCreated", "article": "b", "data": {"title": "T", "subtitle": "S"}}\n', 3,
     r"^error: in\.jsonl:2: ArticleCreated: subtitle: unknown field \(expected one of title, body, categories, metadata\)$"),
    ("invalid id", b'{"type": "ArticleCreated", "article": "../etc/passwd", "data": {"title": "T"}}\n', 3,
     r"^error: in\.jsonl:1: article: .*'\.\./etc/passwd' is not a slug"),
    ("naive time", b'{"type": "ArticleCreated", "article": "b", "occurred_at": "2017-09-05T16:05:00", "data": {"title": "T"}}\n', 3,
     r"^error: in\.jsonl:1: occurred_at: .*needs a time zone"),
    ("edit of a missing article", b'{"type": "ArticleEdited", "article": "nobody", "data": {"body": "x"}}\n', 4,
     r"^error: in\.jsonl:1: article 'nobody' does not exist"),
    ("version conflict", b'{"type": "ArticleEdited", "article": "raqqa", "expected_version": 7, "data": {"body": "x"}}\n', 5,
     r"^error: in\.jsonl:1: article 'raqqa' is at version 1, not the expected 7; nothing appended$"),
    ("created twice", b'{"type": "ArticleCreated", "article": "raqqa", "data": {"title": "T"}}\n', 5, r"^error: in\.jsonl:1: article 'raqqa' already exists"),
    ("partly known ids", b'{"type": "ArticleCreated", "article": "new", "id": "new-1", "data": {"title": "T"}}\n'
     b'{"type": "ArticleEdited", "article": "deir-ez-zor", "id": "evt-1", "data": {"body": "x"}}\n', 5, r"^error: 1 of 2 event ids are already in the log"),
    ("nothing to do", b'{"type": "ArticleEdited", "article": "deir-ez-zor", "data": {"body": "Troops arrived."}}\n', 9,
     r"^error: in\.jsonl:1: ArticleEdited changes nothing in 'deir-ez-zor'$"),
    ("no events", b"\n\n", 9, r"^error: nothing to append: no events given$"),
]


@pytest.mark.parametrize(("what", "payload", "code", "message"), BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input(store: Path, tmp_path: Path, what: str, payload: bytes, code: int, message: str) -> None:
    before = (store / LOG_FILE).read_bytes()
    source = tmp_path / "in.jsonl"
    source.write_bytes(payload)
    result = cli("append", str(source), store=store)
    stderr = result.stderr.replace(str(tmp_path) + os.sep, "")
    assert result.exit_code == code, stderr
    assert stderr.count("\n") == 1, stderr
    assert re.search(message, stderr.rstrip("\n")), stderr
    assert result.stdout == ""
    assert (store / LOG_FILE).read_bytes() == before


@pytest.fixture
def held_lock(store: Path) -> Iterator[None]:
    # flock locks belong to an open file description: this one conflicts with the CLI's own.
    fd = os.open(store / LOG_FILE, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


def test_locked_store(store: Path, held_lock: None) -> None:
    before = (store / LOG_FILE).read_bytes()
    result = cli("--lock-timeout", "0.2", "append", "-", input=UPDATE.replace(b"raqqa", b"homs"), store=store)
    assert (result.exit_code, result.stderr) == (7, f"error: {store}: locked by another writer for more than 0.2s\n")
    assert (store / LOG_FILE).read_bytes() == before


def _damage(store: Path) -> tuple[bytes, int]:
    """Flip a byte in the middle record and drop the index, as after copying a store without it."""
    data = bytearray((store / LOG_FILE).read_bytes())
    start = data.index(b"\n") + 1
    data[start + 100] ^= 0x01
    (store / LOG_FILE).write_bytes(bytes(data))
    for suffix in ("", "-wal", "-shm"):
        Path(str(store / INDEX_FILE) + suffix).unlink(missing_ok=True)
    return bytes(data), start


@pytest.mark.parametrize("args", [["append", "-"], ["log"], ["log", "--article", "raqqa"]])
def test_corrupt_store(store: Path, args: list[str]) -> None:
    damaged, start = _damage(store)
    result = cli(*args, input=UPDATE.replace(b"raqqa", b"homs"), store=store)
    assert result.exit_code == 8
    assert result.stderr == f"error: {store / LOG_FILE}: position 2 (line at byte {start}): record does not match its checksum\n"
    assert (store / LOG_FILE).read_bytes() == damaged


def test_verify_reports_the_damaged_record(store: Path) -> None:
    damaged, start = _damage(store)
    result = cli("verify", store=store)
    assert result.exit_code == 8
    assert result.stderr == f"problem: line 2, position 2, byte {start}: record does not match its checksum\n"
    assert result.stdout.startswith("1 problem: 2 events, 2 articles, head position 3\n")
    assert (store / LOG_FILE).read_bytes() == damaged


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        (lambda root: None, 6, "no ledger store here (run `ledger init`)"),
        (lambda root: (root.mkdir(), (root / MARKER_FILE).write_text("hello")), 8, "not a ledger marker file"),
    ],
    ids=["no store", "not a marker"],
)
def test_missing_or_foreign_store(tmp_path: Path, setup: object, code: int, message: str) -> None:
    root = tmp_path / "nothing"
    setup(root)  # type: ignore[operator]
    result = cli("log", store=root)
    assert result.exit_code == code and result.stderr.count("\n") == 1 and message in result.stderr


# --- as a real process -------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_session_as_real_processes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert run_ledger("init", store=root).stdout == f"initialised store {root}\n".encode()
    done = run_ledger("append", "-", store=root, input=CREATE + UPDATE)
    assert (done.returncode, done.stdout) == (0, b"recorded 3 events at positions 1-3: deir-ez-zor v1, raqqa v1\n")
    before = (root / LOG_FILE).read_bytes()
    bad = run_ledger("append", "-", store=root, input=b'{"type": "ArticleCreated", "article": "x"}\n{oops\n')
    assert bad.returncode == 3
    assert bad.stderr.startswith(b"error: <stdin>:2: malformed JSON (") and bad.stderr.count(b"\n") == 1
    assert b"Traceback" not in bad.stderr
    assert (root / LOG_FILE).read_bytes() == before
    log = run_ledger("log", "--format", "json", "--limit", "1", store=root)
    assert codec.loads(log.stdout)["id"] == "evt-1"
    env_store = run_ledger("verify", env={"LEDGER_STORE": str(root)})
    assert env_store.returncode == 0 and env_store.stdout.startswith(b"ok: 3 events, 2 articles, head position 3\nhead hash ")
    with ledger.open(root) as led:
        assert led.head().hash.encode() in env_store.stdout


def test_schema_prints_the_json_schema_of_the_append_input() -> None:
    one = cli("schema", "UpdateBlockAdded")
    assert one.exit_code == 0
    doc = codec.loads(one.stdout)
    assert doc["title"] == "UpdateBlockAdded"
    assert set(doc["properties"]["data"]["properties"]) == {"heading", "text", "index"}
    every = codec.loads(cli("schema").stdout)
    assert [one["properties"]["type"]["const"] for one in every["oneOf"]] == list(ledger.EVENT_TYPES)
    unknown = cli("schema", "Nope")
    assert unknown.exit_code == 3
    assert unknown.stderr.startswith("error: unknown event type 'Nope' (known: ArticleCreated, ")
    assert unknown.stderr.count("\n") == 1
