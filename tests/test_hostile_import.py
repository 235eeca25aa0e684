"""Hostile exports and anchors: files made from a real export to look importable, and logs
rewritten by someone who can recompute hashes. Every future bad import file or anchor goes here.

Each hostile file is built from a real `ledger export` of a real store, then changed the way
an attacker or an accident would: a body edited and its line sealed again, the last line cut,
two appends swapped, the whole tail sealed again. Imports are real processes (`run_ledger`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger import codec
from tests.conftest import run_ledger

LOG = "events.jsonl"


def fill(led: ledger.Ledger) -> None:
    """Six records in four appends: [deir v1, harbour v1], [deir v2], [deir v3 (two records)], [harbour v2]."""
    led.append([
        {"type": "ArticleCreated", "article": "deir-ez-zor", "occurred_at": "2017-09-05T16:05:00Z",
         "data": {"title": "Deir ez-Zor", "body": "Troops reached the city.\n", "categories": ["syria"]}},
        {"type": "ArticleCreated", "article": "harbour", "occurred_at": "2017-09-05T17:00:00Z",
         "data": {"title": "Harbour bridge closed", "body": "The bridge is closed.\n"}},
    ])
    led.append([{"type": "ArticleEdited", "article": "deir-ez-zor", "occurred_at": "2017-09-05T18:00:00Z",
                 "data": {"body": "Troops reached the city on Tuesday.\n"}}])
    led.append([
        {"type": "UpdateBlockAdded", "article": "deir-ez-zor", "occurred_at": "2017-09-06T09:00:00Z",
         "data": {"heading": "Update from Al Masdar News:", "text": "\nThe siege is broken.\n"}},
        {"type": "CategoriesChanged", "article": "deir-ez-zor", "occurred_at": "2017-09-06T09:00:00Z", "data": {"added": ["war"]}},
    ])
    led.append([{"type": "CategoriesChanged", "article": "harbour", "data": {"added": ["transport"]}}])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = ledger.init(tmp_path / "source")
    with ledger.open(root) as led:
        fill(led)
    return root


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return ledger.init(tmp_path / "copy")


def exported(store: Path, article: str | None = None) -> list[bytes]:
    """The lines of a real export of `store` (what `ledger export` writes; in-process, to spare
    the busy CI cores a process per test)."""
    with ledger.open(store) as led:
        return list(led.export(article))


def record(line: bytes) -> dict[str, Any]:
    return codec.decode(line.rstrip(b"\n"))


def reseal(line: bytes, change: Callable[[dict[str, Any]], None], prev: str | None = None) -> tuple[bytes, str]:
    """`line` changed by `change` and sealed again (chained to `prev`, else to the prev it had):
    its own checksum is right, as an attacker who can run SHA-256 would make it."""
    fields = record(line)
    del fields["hash"]
    change(fields)
    return codec.seal(fields, fields["prev"] if prev is None else prev)


def reseal_from(lines: list[bytes], index: int, change: Callable[[dict[str, Any]], None]) -> list[bytes]:
    """`lines` with record `index` (0-based) changed and it and every record after it sealed
    again, so every checksum and the whole hash chain hold: a rewritten history."""
    out = lines[:index]
    prev = record(lines[index])["prev"]
    for number, line in enumerate(lines[index:]):
        sealed, prev = reseal(line, change if number == 0 else (lambda fields: None), prev)
        out.append(sealed)
    return out


def edit_body(fields: dict[str, Any]) -> None:
    fields["data"]["patch"] = [[0, 6, "Rebels"]]


def import_(store: Path, lines: list[bytes], tmp_path: Path, *args: str) -> tuple[Path, Any]:
    dump = tmp_path / "hostile.jsonl"
    dump.write_bytes(b"".join(lines))
    return dump, run_ledger("import", *args, str(dump), store=store)


def one_line_error(result: Any, code: int) -> str:
    """The error of a refused command: one line, no traceback, the documented code (after any
    warning about caches rebuilt from a log changed behind the store's back)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.decode().splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines[:-1]) and lines[-1].startswith("error: "), lines
    return lines[-1]


# --- point 5: an import is exact or refused -------------------------------------------------


@pytest.mark.parametrize("reappend", [False, True], ids=["default", "reappend"])
def test_a_record_edited_and_sealed_again_is_refused(source: Path, copy: Path, tmp_path: Path, reappend: bool) -> None:
    lines = exported(source)
    assert record(lines[2])["type"] == "ArticleEdited"
    lines[2] = reseal(lines[2], edit_body)[0]  # its own checksum holds; the next record's prev does not
    dump, result = import_(copy, lines, tmp_path, *(["--reappend"] if reappend else []))
    assert one_line_error(result, 3) == (
        f"error: {dump}:4: hash chain broken: its prev is not the hash of the record before it in the log")
    assert (copy / LOG).read_bytes() == b""


@pytest.mark.parametrize("reappend", [False, True], ids=["default", "reappend"])
def test_an_export_cut_inside_its_last_append_is_refused(source: Path, copy: Path, tmp_path: Path, reappend: bool) -> None:
    lines = exported(source)[:-2]  # the last append, and the last record of the one before
    assert not record(lines[-1]).get("end")
    dump, result = import_(copy, lines, tmp_path, *(["--reappend"] if reappend else []))
    assert one_line_error(result, 3).startswith(
        f'error: {dump}:4: the file ends inside an append (its last record has no "end"): it was cut short')
    assert (copy / LOG).read_bytes() == b""


def test_an_article_export_cut_inside_its_last_append_is_refused_even_when_reappended(source: Path, copy: Path, tmp_path: Path) -> None:
    lines = exported(source, "deir-ez-zor")
    assert len(lines) == 4
    dump, result = import_(copy, lines[:-1], tmp_path, "--reappend")
    assert one_line_error(result, 3).startswith(f'error: {dump}:3: the file ends inside an append')
    assert (copy / LOG).read_bytes() == b""


def test_two_appends_swapped_are_refused(source: Path, copy: Path, tmp_path: Path) -> None:
    lines = exported(source)
    # Appends [deir v2] and [deir v3] (lines 3 and 4-5) change places.
    swapped = lines[:2] + lines[3:5] + lines[2:3] + lines[5:]
    dump, result = import_(copy, swapped, tmp_path)
    assert one_line_error(result, 3) == (
        f"error: {dump}:3: position 4 follows position 2 (records missing, as in an --article export); "
        "only a whole piece of this log is imported as it is (--reappend appends anything else anew)")
    assert (copy / LOG).read_bytes() == b""
    # Appended anew, deir's version 3 would come before its version 2: refused too.
    dump, result = import_(copy, swapped, tmp_path, "--reappend")
    assert one_line_error(result, 3) == (
        f"error: {dump}:3: version 3 of 'deir-ez-zor' would be version 2 here: this store's history of 'deir-ez-zor' differs from the file's")
    assert (copy / LOG).read_bytes() == b""


def test_an_article_export_edited_where_its_records_were_neighbours_is_refused_when_reappended(source: Path, copy: Path, tmp_path: Path) -> None:
    # deir's records sit at positions 1, 3, 4, 5: 3-4-5 still chain inside the article export.
    lines = exported(source, "deir-ez-zor")
    lines[1] = reseal(lines[1], edit_body)[0]
    dump, result = import_(copy, lines, tmp_path, "--reappend")
    assert one_line_error(result, 3) == f"error: {dump}:3: hash chain broken: its prev is not the hash of the record before it in the log"
    assert (copy / LOG).read_bytes() == b""


def test_an_article_export_needs_reappend_and_says_so(source: Path, copy: Path, tmp_path: Path) -> None:
    _dump, result = import_(copy, exported(source, "deir-ez-zor"), tmp_path)
    assert "--article export" in one_line_error(result, 3) and "--reappend" in result.stderr.decode()
    assert (copy / LOG).read_bytes() == b""
    _, result = import_(copy, exported(source, "deir-ez-zor"), tmp_path, "--reappend", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mode"] == "reappended"


def test_a_first_record_that_does_not_start_a_log_is_refused(source: Path, copy: Path, tmp_path: Path) -> None:
    lines = exported(source)
    lines[0] = reseal(lines[0], lambda fields: None, prev="1" * 64)[0]
    dump, result = import_(copy, lines, tmp_path)
    assert one_line_error(result, 3) == f"error: {dump}:1: hash chain broken: its prev is not the hash of the record before it in the log"


@pytest.mark.parametrize("pos", [0, -1, True])
def test_a_record_whose_position_is_not_one_is_refused(source: Path, copy: Path, tmp_path: Path, pos: object) -> None:
    lines = reseal_from(exported(source), 0, lambda fields: fields.update(pos=pos))
    with ledger.open(copy) as led, pytest.raises(ledger.InvalidEventError) as raised:
        led.import_records(lines, name="forged.jsonl", reappend=True)
    assert str(raised.value) == "forged.jsonl:1: record field 'pos' is not a position (1, 2, 3 ...)"
    assert (copy / LOG).read_bytes() == b""


def test_the_rest_of_a_log_imports_exactly_only_where_it_continues_the_head(source: Path, copy: Path, tmp_path: Path) -> None:
    lines = exported(source)
    # Into an empty store the tail continues nothing.
    dump, result = import_(copy, lines[2:], tmp_path)
    assert one_line_error(result, 3).startswith(f"error: {dump}:1: starts at position 3 without continuing this store's log (head position 0)")
    # Into a copy that holds the first append it continues the head: appended exactly.
    with ledger.open(copy) as led:
        assert led.import_records(lines[:2]).mode == "exact"
    _, result = import_(copy, lines[2:], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (copy / LOG).read_bytes() == (source / LOG).read_bytes()


def test_an_older_export_into_a_newer_copy_is_already_recorded(source: Path, copy: Path, tmp_path: Path) -> None:
    # Issue 14 point 5: an import run again was an error (exit 9); a re-send is now harmless.
    lines = exported(source)
    with ledger.open(copy) as led:
        led.import_records(lines)
    dump, result = import_(copy, lines[:3], tmp_path)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout.decode() == f"already recorded: all 3 events of {dump} are in the store; nothing imported\n"
    # Importing the same whole export again is recognised too.
    dump, result = import_(copy, lines, tmp_path)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout.decode() == f"already recorded: all 6 events of {dump} are in the store; nothing imported\n"
    assert (copy / LOG).read_bytes() == (source / LOG).read_bytes()


def test_another_stores_export_into_a_store_with_events_needs_reappend(source: Path, tmp_path: Path) -> None:
    other = ledger.init(tmp_path / "other")
    with ledger.open(other) as led:
        led.append([{"type": "ArticleCreated", "article": "elsewhere", "data": {"title": "Elsewhere"}}])
    before = (other / LOG).read_bytes()
    dump, result = import_(other, exported(source), tmp_path)
    assert one_line_error(result, 3) == (
        f"error: {dump}: does not continue this store's log (head position 1): the store has other events; "
        "only a whole piece of this log is imported as it is (--reappend appends anything else anew)")
    assert (other / LOG).read_bytes() == before
    _, result = import_(other, exported(source), tmp_path, "--reappend")
    assert result.returncode == 0, result.stderr
    with ledger.open(source) as a, ledger.open(other) as b:
        assert [(e.id, e.article, e.version) for e in b.events(after=1)] == [(e.id, e.article, e.version) for e in a.events()]
        # One append of the file is one append here: deir v1 and harbour v1 are still one.
        assert [(e.position, e.article, e.version) for e in b.events(after=1, limit=2)] == [(2, "deir-ez-zor", 1), (3, "harbour", 1)]
        assert b.verify().ok


# --- point 6: anchoring a head ---------------------------------------------------------------


def head_of(store: Path) -> str:
    """The anchor `ledger head` prints (see the test below), from the library."""
    with ledger.open(store) as led:
        head = led.head()
    return f"{head.hash}@{head.position}"


@pytest.mark.slow
def test_head_prints_hash_at_position_in_text_and_json(source: Path, copy: Path) -> None:
    last = record((source / LOG).read_bytes().splitlines()[-1])
    result = run_ledger("head", store=source)
    assert (result.returncode, result.stdout.decode()) == (0, f"{last['hash']}@6\n")
    assert head_of(source) == f"{last['hash']}@6"
    result = run_ledger("head", "--format", "json", store=source)
    assert json.loads(result.stdout) == {"position": 6, "hash": last["hash"]}
    assert run_ledger("head", store=copy).stdout.decode() == f"{codec.GENESIS_HASH}@0\n"


@pytest.mark.slow
def test_verify_head_passes_while_the_log_extends_the_anchor(source: Path) -> None:
    anchor = head_of(source)
    with ledger.open(source) as led:
        led.append([{"type": "ArticleWithdrawn", "article": "harbour", "reason": "legal"}])
    for given in (anchor, anchor.split("@")[0]):
        result = run_ledger("verify", "--head", given, store=source)
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().splitlines()[-1] == f"extends head {anchor}"
    report = json.loads(run_ledger("verify", "--head", anchor, "--format", "json", store=source).stdout)
    assert report["ok"] and report["anchor"] == {"position": 6, "hash": anchor.split("@")[0]}


def drop_caches(store: Path) -> None:
    """Delete the caches beside the log, as someone covering a rewrite would."""
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "views.sqlite", "views.sqlite-wal", "views.sqlite-shm"):
        (store / name).unlink(missing_ok=True)


@pytest.mark.slow
def test_a_resealed_last_record_passes_verify_but_not_verify_head(source: Path) -> None:
    anchor = head_of(source)
    lines = (source / LOG).read_bytes().splitlines(keepends=True)
    lines[-1] = reseal(lines[-1], lambda fields: fields["data"].update(added=["sport"]))[0]
    (source / LOG).write_bytes(b"".join(lines))
    # The index saw the record that was committed there: it says so while it is there.
    witnessed = run_ledger("verify", store=source)
    assert witnessed.returncode == 8, witnessed.stderr
    assert b"were committed" in witnessed.stderr or b"committed there" in witnessed.stderr
    drop_caches(source)  # a rewriter who deletes the caches too
    plain = run_ledger("verify", store=source)
    assert plain.returncode == 0, plain.stderr  # the chain alone cannot tell
    assert f"head hash {record(lines[-1])['hash']}" in plain.stdout.decode()
    result = run_ledger("verify", "--head", anchor, store=source)
    assert one_line_error(result, 8) == (
        f"error: the log no longer extends head {anchor}: the record at position 6 has hash {record(lines[-1])['hash']} (history rewritten)")
    result = run_ledger("verify", "--head", anchor.split("@")[0], store=source)
    assert "no record has that hash" in one_line_error(result, 8)


@pytest.mark.slow
def test_an_earlier_record_rewritten_and_the_rest_resealed_fails_verify_head(source: Path) -> None:
    with ledger.open(source) as led:
        old = led.head()
        led.append([{"type": "ArticleWithdrawn", "article": "harbour"}])
    anchor = f"{old.hash}@{old.position}"
    lines = reseal_from((source / LOG).read_bytes().splitlines(keepends=True), 2, edit_body)
    (source / LOG).write_bytes(b"".join(lines))
    assert run_ledger("verify", store=source).returncode == 8  # the index witnessed the old head
    drop_caches(source)
    assert run_ledger("verify", store=source).returncode == 0
    assert "(history rewritten)" in one_line_error(run_ledger("verify", "--head", anchor, store=source), 8)


@pytest.mark.slow
def test_a_log_cut_before_the_anchor_fails_verify_head(source: Path) -> None:
    anchor = head_of(source)
    lines = (source / LOG).read_bytes().splitlines(keepends=True)
    (source / LOG).write_bytes(b"".join(lines[:-1]))  # a whole append gone: still a sound log
    drop_caches(source)
    assert run_ledger("verify", store=source).returncode == 0
    assert one_line_error(run_ledger("verify", "--head", anchor, store=source), 8) == (
        f"error: the log no longer extends head {anchor}: it ends at position 5 (records removed)")


@pytest.mark.slow
def test_an_import_of_a_resealed_export_is_caught_by_the_sources_anchor(source: Path, copy: Path, tmp_path: Path) -> None:
    # The last record of an export, changed and sealed again, leaves an intact chain: the
    # import cannot tell, the head published by the source can.
    anchor = head_of(source)
    lines = exported(source)
    lines[-1] = reseal(lines[-1], lambda fields: fields["data"].update(added=["sport"]))[0]
    _, result = import_(copy, lines, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(history rewritten)" in one_line_error(run_ledger("verify", "--head", anchor, store=copy), 8)


@pytest.mark.parametrize("given", ["abc", "z" * 64, "a" * 64 + "@", "a" * 64 + "@-1", "a" * 64 + "@1.5", "a" * 64 + "@²"])
def test_a_head_that_is_not_one_is_invalid_input(led: ledger.Ledger, given: str) -> None:
    expected = f"head {given!r}: expected HASH or HASH@POSITION as `ledger head` prints it (a 64-digit hex hash, a position from 0)"
    with pytest.raises(ledger.InvalidInputError) as raised:
        led.verify(head=given)
    assert str(raised.value) == expected


def test_the_empty_logs_head_is_extended_by_every_log(source: Path) -> None:
    with ledger.open(source) as led:
        for given in (f"{codec.GENESIS_HASH}@0", codec.GENESIS_HASH):
            assert led.verify(head=given).anchor == ledger.Head(position=0, hash=codec.GENESIS_HASH)
        with pytest.raises(ledger.InvalidInputError, match="position 0 is the empty log"):
            led.verify(head="a" * 64 + "@0")


@pytest.mark.slow
def test_a_head_that_is_not_one_is_exit_3(store_dir: Path) -> None:
    result = run_ledger("verify", "--head", "abc@1", store=store_dir)
    assert one_line_error(result, 3).startswith("error: head 'abc@1': expected HASH or HASH@POSITION")


# --- exports of a tampered log -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("article", [None, "deir-ez-zor"], ids=["whole", "article"])
def test_a_log_record_edited_and_sealed_again_is_not_exported(source: Path, tmp_path: Path, article: str | None) -> None:
    head_of(source)  # the index takes every record (checking each once)
    lines = (source / LOG).read_bytes().splitlines(keepends=True)
    # deir v3 at position 4, of the same length, so the index still fits the log.
    lines[3] = reseal(lines[3], lambda fields: fields["data"].update(heading="Update from Al Masdar Newz:"))[0]
    (source / LOG).write_bytes(b"".join(lines))
    target = tmp_path / "out.jsonl"
    result = run_ledger("export", *(["--article", article] if article else []), "-o", str(target), store=source)
    assert one_line_error(result, 8) == f"error: {source / LOG}: position 5 does not chain to the record before it (hash chain broken)"
    assert not target.exists()


# --- crafted files: a correct hash chain around content `append` would never have written ---------

T1, T2 = "2017-09-05T16:05:00.000000Z", "2017-09-05T17:00:00.000000Z"


def crafted(*changes: dict[str, Any], start: int = 1, prev: str = codec.GENESIS_HASH) -> list[bytes]:
    """One sealed record per append, each a valid `ArticleCreated` of `x` (body "B") changed by its
    `changes`, chained from `prev` at position `start`: only the import's content checks can
    refuse them."""
    lines = []
    for pos, change in enumerate(changes, start):
        fields: dict[str, Any] = {"pos": pos, "id": f"ev-{pos}", "article": "x", "version": 1, "type": "ArticleCreated",
                                  "schema": 2, "recorded_at": T1, "occurred_at": T1, "data": {"title": "X", "body": "B"}, "end": True}
        fields.update(change)
        line, prev = codec.seal(fields, prev)
        lines.append(line)
    return lines


def rewritten(line: bytes, old: bytes, new: bytes) -> bytes:
    """`line` with `old` replaced by `new` and its hash made right again, as `codec.seal` makes it:
    for JSON that `seal` cannot write (an integer beyond 64 bits, a key twice)."""
    body = line[: -len(',"hash":"') - 64 - len(b'"}\n')] + b"}"
    body = body.replace(old, new)
    return body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'


EDIT = {"type": "ArticleEdited", "version": 2, "recorded_at": T2, "occurred_at": T2, "schema": 1}
CRAFTED: dict[str, tuple[Callable[[], list[bytes]], int, str]] = {
    "patch-out-of-text": (lambda: crafted({}, {**EDIT, "data": {"patch": [[100, 200, "zz"]]}}), 3, ":2: ArticleEdited: patch: "),
    "same-event-id": (lambda: crafted({}, {"id": "ev-1", "article": "y"}), 3, ":2: event id 'ev-1' is given twice (first at "),
    "article-id-a-path": (lambda: crafted({"article": "../../etc"}), 3, ":1: article: "),
    "draft-layout-not-a-layout": (lambda: crafted({"data": {"title": "X", "metadata": {"_draft": {"evil": [1, 2, 3]}}}}), 3,
                                  ":1: ArticleCreated: metadata._draft: unknown key 'evil'"),
    "reserved-metadata-key": (lambda: crafted({"data": {"title": "X", "metadata": {"title": "Other"}}}), 3,
                              ":1: ArticleCreated: metadata key 'title' is reserved"),
    "integer-beyond-64-bits": (lambda: [rewritten(crafted({"data": {"title": "X", "metadata": {"n": 7}}})[0], b'"n":7', b'"n":1180591620717411303424')],
                               3, ":1: integer 1180591620717411303424 is beyond 64 bits"),
    "key-given-twice": (lambda: [rewritten(crafted({})[0], b'"title":"X"', b'"title":"X","title":"Y"')], 3,
                        ":1: key 'title' is given twice in one object"),
    "occurred-in-2099": (lambda: crafted({"occurred_at": "2099-01-01T00:00:00.000000Z"}), 3, ":1: occurred_at 2099-01-01T00:00:00.000000Z of 'x' is out of order"),
    "recorded-in-2099": (lambda: crafted({"occurred_at": "2099-01-01T00:00:00.000000Z", "recorded_at": "2099-01-01T00:00:00.000000Z"}), 3,
                         ":1: recorded_at 2099-01-01T00:00:00.000000Z is in the future"),
    "unknown-schema": (lambda: crafted({"schema": 99}), 3, ":1: schema 99 of ArticleCreated is not one this ledger knows (1 to 2)"),
    # The hostile run: a schema as text or null reached the upcast, a TypeError traceback.
    "schema-as-text": (lambda: crafted({}, {**EDIT, "schema": "1", "data": {"title": "Y"}}), 3,
                       ':2: schema "1" of ArticleEdited is not one this ledger knows (1 to 1)'),
    "schema-null": (lambda: crafted({"schema": None}), 3, ":1: schema null of ArticleCreated is not one this ledger knows (1 to 2)"),
    "unknown-field": (lambda: crafted({"evil": 1}), 3, ":1: unknown record field 'evil'"),
    "recorded-at-backwards": (lambda: crafted({"recorded_at": T2, "occurred_at": T1}, {"article": "y", "recorded_at": T1}), 3,
                              f":2: recorded_at {T1} is earlier than the record before it ({T2})"),
    "actor-null": (lambda: crafted({"actor": None}), 3, ":1: record field 'actor' is null"),
    "version-as-true": (lambda: crafted({"version": True}), 3, ":1: record field 'version' is not a whole number"),
    # (It was "is missing or not a int", and a time of another form only "is not a log time".)
    "version-as-text": (lambda: crafted({"version": "1"}), 3, ":1: record field 'version' is missing or not a whole number"),
    "occurred-at-of-another-form": (lambda: crafted({"occurred_at": "2017-09-05 16:05"}), 3,
                                    ":1: occurred_at '2017-09-05 16:05' is not a log time (e.g. 2017-09-05T16:05:00.000000Z)"),
    "edit-while-withdrawn": (lambda: crafted({}, {**EDIT, "type": "ArticleWithdrawn", "data": {}},
                                             {**EDIT, "version": 3, "data": {"title": "Y"}}), 5, ":3: article 'x' is withdrawn"),
    "no-such-block": (lambda: crafted({}, {**EDIT, "type": "UpdateBlockRemoved", "data": {"index": 0}}), 3,
                      ":2: UpdateBlockRemoved: 'x' has no update block 0 (it has 0)"),
    "edit-that-changes-nothing": (lambda: crafted({}, {**EDIT, "data": {"title": "X"}}), 3, ":2: ArticleEdited changes nothing in 'x'"),
}


@pytest.mark.parametrize("case", CRAFTED)
@pytest.mark.parametrize("reappend", [False, True], ids=["exact", "reappend"])
def test_a_crafted_file_with_a_sound_chain_is_refused_into_an_empty_store(copy: Path, case: str, reappend: bool) -> None:
    make, code, message = CRAFTED[case]
    with ledger.open(copy) as led, pytest.raises(ledger.LedgerError) as raised:
        led.import_records(make(), name="crafted.jsonl", reappend=reappend)
    assert raised.value.exit_code == code and str(raised.value).startswith(f"crafted.jsonl{message}"), str(raised.value)
    assert "\n" not in str(raised.value)
    assert (copy / LOG).read_bytes() == b""


def test_a_patch_that_does_not_fit_is_refused_as_a_process_and_verify_stays_ok(copy: Path, tmp_path: Path) -> None:
    dump, result = import_(copy, crafted({}, {**EDIT, "data": {"patch": [[100, 200, "zz"]]}}), tmp_path)
    assert one_line_error(result, 3).startswith(f"error: {dump}:2: ArticleEdited: patch: ")
    assert (copy / LOG).read_bytes() == b""


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"data": {"patch": [[100, 200, "zz"]]}}, 3, ":1: ArticleEdited: patch: "),
        ({"id": "live-1", "data": {"title": "Y"}}, 5, ":1: event id 'live-1' is already in this store (position 1)"),
        ({"version": 1, "type": "ArticleCreated", "schema": 2, "data": {"title": "Again"}}, 3, ":1: version 1 of 'x' where 2 comes next"),
        ({"occurred_at": "2017-09-05T15:00:00.000000Z", "data": {"title": "Y"}}, 3, ":1: occurred_at 2017-09-05T15:00:00.000000Z of 'x' is out of order"),
        ({"recorded_at": T2, "data": {"title": "Y"}}, 3, f":1: recorded_at {T2} is earlier than the record before it ("),
    ],
    ids=["patch-out-of-text", "id-in-the-store", "created-twice", "occurred-at-backwards", "recorded-at-backwards"],
)
def test_a_crafted_record_continuing_a_live_stores_head_is_checked_against_its_articles(
    copy: Path, change: dict[str, Any], code: int, message: str
) -> None:
    with ledger.open(copy) as led:
        led.append([{"type": "ArticleCreated", "article": "x", "id": "live-1", "occurred_at": T1, "data": {"title": "X", "body": "B"}}])
        head = led.head()
        # The head's own recorded_at (now): a continuation of it is recorded no earlier.
        recorded = next(led.events()).recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        before = (copy / LOG).read_bytes()
        with pytest.raises(ledger.LedgerError) as raised:
            led.import_records(crafted({**EDIT, "recorded_at": recorded, **change}, start=2, prev=head.hash), name="crafted.jsonl")
    assert raised.value.exit_code == code and str(raised.value).startswith(f"crafted.jsonl{message}"), str(raised.value)
    assert (copy / LOG).read_bytes() == before


def test_a_crafted_record_that_fits_a_live_stores_article_is_imported_exactly(copy: Path) -> None:
    with ledger.open(copy) as led:
        led.append([{"type": "ArticleCreated", "article": "x", "id": "live-1", "occurred_at": T1, "data": {"title": "X", "body": "B"}}])
        recorded = next(led.events()).recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines = crafted({**EDIT, "recorded_at": recorded, "data": {"patch": [[0, 1, "Bee"]]}}, start=2, prev=led.head().hash)
        assert led.import_records(lines, name="crafted.jsonl").mode == "exact"
        assert led.article("x").body == "Bee" and led.verify().ok
    assert (copy / LOG).read_bytes().endswith(lines[0])


def test_a_reappended_integer_beyond_64_bits_is_refused_not_rounded(copy: Path, tmp_path: Path) -> None:
    with ledger.open(copy) as led:
        led.append([{"type": "ArticleCreated", "article": "other", "data": {"title": "Other"}}])
    before = (copy / LOG).read_bytes()
    line = crafted({"data": {"title": "X", "metadata": {"n": 7}}})[0]
    dump, result = import_(copy, [rewritten(line, b'"n":7', b'"n":1180591620717411303424')], tmp_path, "--reappend")
    assert one_line_error(result, 3) == (
        f"error: {dump}:1: integer 1180591620717411303424 is beyond 64 bits (the log keeps integers from -2**63 to 2**63-1)")
    assert (copy / LOG).read_bytes() == before


def test_what_the_log_once_took_is_imported_and_restored_again(tmp_path: Path) -> None:
    # A rule made narrower for new events once refused old exports and restores of old versions
    # (a title with U+2028 or U+0085): what a record held stays valid, or it needs a new schema.
    odd = "Breaking\u2028news\u0085 and\u2029more\x85"
    source = ledger.init(tmp_path / "source")
    with ledger.open(source) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": odd, "categories": [odd]}, "actor": odd, "reason": odd}])
        led.append([{"type": "UpdateBlockAdded", "article": "a", "data": {"heading": odd}}])
        led.append([{"type": "ArticleEdited", "article": "a", "data": {"title": "Plain"}}])
        lines = list(led.export())
    copy = ledger.init(tmp_path / "copy")
    with ledger.open(copy) as led:
        assert led.import_records(lines, name="old.jsonl").imported == 3
        led.restore("a", 2)
        assert led.article("a").title == odd and led.article("a").blocks[0].heading == odd
