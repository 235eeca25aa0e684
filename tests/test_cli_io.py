"""export, import, stats and time options: the Python API and the CLI, in-process and as processes."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from ledger_cli.group import LedgerGroup
from ledger_cli.output import TIME

import ledger
from ledger import codec
from ledger.times import parse_when
from tests.conftest import drain_terminal, run_ledger
from tests.helpers import cli

LOG = "events.jsonl"


def fill(led: ledger.Ledger) -> None:
    """Several appends of two articles, with actors, reasons and times of their own."""
    led.append([
        {"type": "ArticleCreated", "article": "deir-ez-zor", "actor": "ann", "reason": "first report", "occurred_at": "2017-09-05T16:05:00Z",
         "data": {"title": "Deir ez-Zor", "body": "Troops reached the city.\n", "categories": ["syria"]}},
        {"type": "ArticleCreated", "article": "harbour", "occurred_at": "2017-09-05T17:00:00Z",
         "data": {"title": "Harbour bridge closed", "body": "The bridge is closed.\n"}},
    ])
    led.append([{"type": "ArticleEdited", "article": "deir-ez-zor", "actor": "bob", "reason": "more detail", "occurred_at": "2017-09-05T18:00:00Z",
                 "data": {"body": "Troops reached the city on Tuesday.\n"}}])
    led.append([{"type": "UpdateBlockAdded", "article": "deir-ez-zor", "occurred_at": "2017-09-06T09:00:00Z",
                 "data": {"heading": "Update from Al Masdar News:", "text": "\nThe siege is broken.\n"}}])
    led.append([{"type": "CategoriesChanged", "article": "harbour", "data": {"added": ["transport", "city"]}}])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = ledger.init(tmp_path / "source")
    with ledger.open(root) as led:
        fill(led)
    return root


def head_of(store: Path) -> ledger.Head:
    with ledger.open(store) as led:
        return led.head()


# --- export --------------------------------------------------------------------------------


def test_export_writes_the_sealed_records_exactly(source: Path, tmp_path: Path) -> None:
    log = (source / LOG).read_bytes()
    result = cli("export", store=source)
    assert result.exit_code == 0
    assert result.stdout_bytes == log
    target = tmp_path / "out.jsonl"
    result = cli("export", "-o", str(target), store=source)
    assert (result.exit_code, result.output) == (0, f"exported 5 events to {target}\n")
    assert target.read_bytes() == log
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_of_one_article_and_of_an_unknown_one(source: Path) -> None:
    result = cli("export", "--article", "harbour", store=source)
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout_bytes.splitlines()]
    assert [(r["pos"], r["article"], r["version"], r["type"]) for r in records] == [
        (2, "harbour", 1, "ArticleCreated"), (5, "harbour", 2, "CategoriesChanged")]
    result = cli("export", "--article", "nope", store=source)
    assert (result.exit_code, result.stderr) == (4, "error: article 'nope' is not in the log\n")


def test_export_of_a_damaged_log_is_refused(source: Path) -> None:
    data = bytearray((source / LOG).read_bytes())
    at = data.index(b"Troops")
    data[at] = ord("t")
    (source / LOG).write_bytes(bytes(data))
    with ledger.open(source, recover=False) as led, pytest.raises(ledger.CorruptStoreError, match="does not match its checksum"):
        list(led.export())


# --- import --------------------------------------------------------------------------------


def test_export_then_import_into_an_empty_store_gives_the_same_head_hash(source: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    assert cli("export", "-o", str(dump), store=source).exit_code == 0
    copy = ledger.init(tmp_path / "copy")
    expected = head_of(source)
    result = cli("import", str(dump), store=copy)
    assert result.exit_code == 0, result.output
    assert result.output == f"imported 5 events (exact)\nhead position 5, hash {expected.hash}\n"
    verified = json.loads(cli("verify", "--format", "json", store=copy).output)
    assert (verified["ok"], verified["head_position"], verified["head_hash"]) == (True, 5, expected.hash)
    assert (copy / LOG).read_bytes() == (source / LOG).read_bytes()
    with ledger.open(source) as a, ledger.open(copy) as b:
        assert [e.to_json_dict() for e in a.events()] == [e.to_json_dict() for e in b.events()]
        assert a.article("deir-ez-zor") == b.article("deir-ez-zor")
    # Again: everything is there already (exit 0 since issue 14 point 5), nothing changes.
    again = cli("import", str(dump), store=copy)
    assert (again.exit_code, again.stdout, again.stderr) == (0, f"already recorded: all 5 events of {dump} are in the store; nothing imported\n", "")
    with ledger.open(copy) as led:
        assert led.import_file(dump).model_dump(include={"mode", "read", "imported", "skipped"}) == {"mode": "exact", "read": 5, "imported": 0, "skipped": 5}
    assert (copy / LOG).read_bytes() == (source / LOG).read_bytes()


def test_import_brings_an_older_copy_up_to_date(source: Path, tmp_path: Path) -> None:
    copy = ledger.init(tmp_path / "copy")
    with ledger.open(source) as led:
        first = list(led.export())
    with ledger.open(copy) as led:
        assert led.import_records(first[:3]).imported == 3
    with ledger.open(source) as led:
        led.append([{"type": "ArticleWithdrawn", "article": "harbour", "reason": "legal"}])
        everything = list(led.export())
    with ledger.open(copy) as led:
        result = led.import_records(everything)
    assert (result.mode, result.read, result.imported, result.skipped) == ("exact", 6, 3, 3)
    assert result.head == head_of(source)


def test_import_of_an_article_into_another_store_reappends_it(source: Path, tmp_path: Path) -> None:
    other = ledger.init(tmp_path / "other")
    with ledger.open(other) as led:
        led.append([{"type": "ArticleCreated", "article": "elsewhere", "data": {"title": "Elsewhere"}}])
    dump = tmp_path / "deir.jsonl"
    dump.write_bytes(cli("export", "--article", "deir-ez-zor", store=source).stdout_bytes)
    before = (other / LOG).read_bytes()
    refused = cli("import", str(dump), store=other)
    assert (refused.exit_code, refused.stderr) == (3, (
        f"error: {dump}:2: position 3 follows position 1 (records missing, as in an --article export); "
        "only a whole piece of this log is imported as it is (--reappend appends anything else anew)\n"))
    assert (other / LOG).read_bytes() == before
    result = cli("import", "--reappend", str(dump), "--format", "json", store=other)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {k: report[k] for k in ("mode", "read", "imported", "skipped")} == {"mode": "reappended", "read": 3, "imported": 3, "skipped": 0}
    assert report["head"]["position"] == 4
    with ledger.open(source) as a, ledger.open(other) as b:
        before = list(a.events(article="deir-ez-zor"))
        after = list(b.events(article="deir-ez-zor"))
        kept = ("id", "article", "version", "type", "occurred_at", "actor", "reason", "data")
        assert [e.model_dump(include=set(kept)) for e in after] == [e.model_dump(include=set(kept)) for e in before]
        assert [e.position for e in after] == [2, 3, 4]
        assert b.article("deir-ez-zor").model_dump(exclude={"position"}) == a.article("deir-ez-zor").model_dump(exclude={"position"})
        assert b.verify().ok
    # Run again: the event ids are there, so nothing is appended.
    again = cli("import", "--reappend", str(dump), store=other)
    assert (again.exit_code, again.stdout, again.stderr) == (0, f"already recorded: all 3 events of {dump} are in the store; nothing imported\n", "")


def test_import_that_conflicts_appends_nothing(source: Path, tmp_path: Path) -> None:
    other = ledger.init(tmp_path / "other")
    with ledger.open(other) as led:
        led.append([{"type": "ArticleCreated", "article": "elsewhere", "data": {"title": "Elsewhere"}}])
        led.append([{"type": "ArticleCreated", "article": "harbour", "data": {"title": "Another harbour"}}])
    before = (other / LOG).read_bytes()
    dump = tmp_path / "all.jsonl"
    dump.write_bytes(cli("export", store=source).stdout_bytes)
    refused = cli("import", str(dump), store=other)
    assert (refused.exit_code, refused.stderr) == (3, (
        f"error: {dump}: does not continue this store's log (head position 2): the store has other events; "
        "only a whole piece of this log is imported as it is (--reappend appends anything else anew)\n"))
    result = cli("import", "--reappend", str(dump), store=other)
    # deir-ez-zor would import fine; harbour exists already: nothing at all is appended.
    assert (result.exit_code, result.stderr) == (5, f"error: {dump}:2: article 'harbour' already exists (version 1)\n")
    assert (other / LOG).read_bytes() == before


def test_reappending_a_diverged_history_is_refused_with_its_line(tmp_path: Path) -> None:
    # Two copies of one store edit the same article differently; importing one copy's edit into
    # the other re-appends it, and its patch does not fit the other copy's text.
    first = ledger.init(tmp_path / "first")
    with ledger.open(first) as led:
        led.append([{"type": "ArticleCreated", "article": "x", "data": {"title": "T", "body": "Short body here."}, "id": "c1"}])
    second = tmp_path / "second"
    shutil.copytree(first, second)
    with ledger.open(first) as led:
        led.append([{"type": "ArticleEdited", "article": "x", "data": {"patch": [[10, 16, "text that is here now."]]}, "id": "e1"}])
    with ledger.open(second) as led:
        led.append([{"type": "ArticleEdited", "article": "x", "data": {"body": "Tiny"}, "id": "e2"}])
    before = (second / LOG).read_bytes()
    dump = tmp_path / "first.jsonl"
    dump.write_bytes(cli("export", store=first).stdout_bytes)
    result = cli("import", "--reappend", str(dump), store=second)
    # Its patch was made against the first copy's version 1 text, and this copy is at version 2.
    assert (result.exit_code, result.stderr) == (
        3, f"error: {dump}:2: version 2 of 'x' would be version 3 here: this store's history of 'x' differs from the file's\n"
    )
    assert (second / LOG).read_bytes() == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: [*lines[:2], lines[2].replace(b"Tuesday", b"Monday"), *lines[3:]], ":3: record does not match its checksum"),
        (lambda lines: [*lines[:1], b"not json at all\n", *lines[1:]], ":2: record is not valid JSON"),
        (lambda lines: [*lines[:1], b'{"type": "ArticleCreated"}\n'], ":2: record has no hash"),
    ],
    ids=["tampered", "not-json", "plain-event"],
)
def test_bad_import_files_append_nothing(source: Path, tmp_path: Path, damage: object, message: str) -> None:
    lines = (source / LOG).read_bytes().splitlines(keepends=True)
    dump = tmp_path / "bad.jsonl"
    dump.write_bytes(b"".join(damage(lines)))  # type: ignore[operator]
    copy = ledger.init(tmp_path / "copy")
    result = cli("import", str(dump), store=copy)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: {dump}{message}") and result.stderr.count("\n") == 1
    assert (copy / LOG).read_bytes() == b""


def _resealed(lines: list[bytes], change: Callable[[dict[str, Any]], None]) -> bytes:
    """The log with `change` made to its second record and every record sealed again, so the
    hash chain is intact: only the import's own checks can refuse it."""
    out, prev = [], codec.GENESIS_HASH
    for number, line in enumerate(lines, 1):
        record = codec.decode(line.rstrip(b"\n"))
        del record["hash"]
        if number == 2:
            change(record)
        sealed, prev = codec.seal(record, prev)
        out.append(sealed)
    return b"".join(out)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(type="Bogus"), ":2: unknown event type 'Bogus'"),
        (lambda r: r["data"].update(title=""), ":2: ArticleCreated: title"),
        (lambda r: r.update(version=2), ":2: version 2 of 'harbour' where 1 comes next"),
        (lambda r: r.update(type="ArticleWithdrawn", schema=1, data={}), ":2: ArticleWithdrawn at version 1 of 'harbour'"),
        (lambda r: r.update(actor=5), ":2: record field 'actor' is not text"),
    ],
    ids=["unknown-type", "bad-data", "version-gap", "no-create", "actor-not-text"],
)
def test_sealed_but_invalid_records_are_refused(source: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str) -> None:
    dump = tmp_path / "forged.jsonl"
    dump.write_bytes(_resealed((source / LOG).read_bytes().splitlines(keepends=True), change))
    copy = ledger.init(tmp_path / "copy")
    result = cli("import", str(dump), store=copy)
    assert result.exit_code == 3, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert (copy / LOG).read_bytes() == b""


def test_import_from_stdin(source: Path, tmp_path: Path) -> None:
    copy = ledger.init(tmp_path / "copy")
    result = cli("import", "-", store=copy, input=(source / LOG).read_bytes())
    assert result.exit_code == 0, result.output
    assert head_of(copy) == head_of(source)


def test_import_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    copy = ledger.init(tmp_path / "copy")
    result = cli("import", str(tmp_path / "missing.jsonl"), store=copy)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# --- stats ---------------------------------------------------------------------------------


def test_stats_text_and_json(source: Path) -> None:
    head = head_of(source)
    size = (source / LOG).stat().st_size
    result = cli("stats", store=source)
    assert result.exit_code == 0
    assert result.output == (
        "events         5\n"
        "articles       2\n"
        "versions       5\n"
        "categories     3\n"
        "withdrawn      0\n"
        f"log size       {size:,} bytes\n"
        "head position  5\n"
        f"head hash      {head.hash}\n"
    )
    with ledger.open(source) as led:
        led.append([{"type": "ArticleWithdrawn", "article": "harbour"}])
    stats = json.loads(cli("stats", "--format", "json", store=source).output)
    assert stats == {
        # A withdrawn article leaves its categories: only deir-ez-zor's is left.
        "events": 6, "articles": 2, "versions": 6, "categories": 1, "withdrawn": 1,
        "log_bytes": (source / LOG).stat().st_size, "head_position": 6, "head_hash": head_of(source).hash,
    }


def test_stats_of_an_empty_store(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        stats = led.stats()
    assert stats == ledger.Stats(events=0, articles=0, versions=0, categories=0, withdrawn=0, log_bytes=0, head_position=0, head_hash="0" * 64)


# --- as real processes -----------------------------------------------------------------------


@pytest.mark.slow
def test_export_import_and_stats_as_processes(source: Path, tmp_path: Path) -> None:
    exported = run_ledger("export", store=source)
    assert exported.returncode == 0 and exported.stderr == b""
    copy = tmp_path / "copy"
    assert run_ledger("init", store=copy).returncode == 0
    imported = run_ledger("import", "-", "--format", "json", store=copy, input=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    # On a pipe there is no progress bar: stderr stays empty.
    assert imported.stderr == b""
    assert json.loads(imported.stdout)["head"] == head_of(source).model_dump()
    stats = run_ledger("stats", "--format", "json", store=copy)
    assert stats.returncode == 0 and json.loads(stats.stdout)["head_hash"] == head_of(source).hash


def on_terminal_stderr(args: list[str]) -> tuple[int, bytes, bytes]:
    """Run `ledger ARGS` with stderr on a pseudo-terminal: exit code, stdout, and the screen."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("ledger")), *args],
            stdout=subprocess.PIPE, stderr=terminal, env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(terminal)
        # Read the terminal first: a full terminal buffer would otherwise block the process.
        screen = drain_terminal(controller)
        out, _ = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return process.returncode, out, screen


def test_import_and_verify_show_a_progress_bar_on_a_terminal(source: Path, tmp_path: Path) -> None:
    copy = ledger.init(tmp_path / "copy")
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes((source / LOG).read_bytes())
    code, out, screen = on_terminal_stderr(["--store", str(copy), "import", str(dump)])
    assert code == 0
    assert out.startswith(b"imported 5 events (exact)")
    assert b"importing" in screen and b"100%" in screen
    code, out, screen = on_terminal_stderr(["--store", str(copy), "verify"])
    assert code == 0 and out.startswith(b"ok: 5 events")
    assert b"verifying" in screen and b"100%" in screen


# --- times -----------------------------------------------------------------------------------


def _time_command() -> click.Group:
    @click.group(cls=LedgerGroup)
    def group() -> None:
        """A group like `ledger`'s, to try the time type on its own."""

    @group.command()
    @click.option("--since", type=TIME, required=True)
    def since(since: str) -> None:
        click.echo(parse_when(since).isoformat())

    return group


def test_time_param_reads_iso_8601_and_ages() -> None:
    group = _time_command()
    runner = CliRunner()
    assert runner.invoke(group, ["since", "--since", "2017-09-05T16:05:00Z"]).output == "2017-09-05T16:05:00+00:00\n"
    assert runner.invoke(group, ["since", "--since", "2017-09-05T18:05:00+02:00"]).output == "2017-09-05T16:05:00+00:00\n"
    assert runner.invoke(group, ["since", "--since", "2017-09-05"]).output == "2017-09-05T00:00:00+00:00\n"
    before = datetime.now(UTC)
    moment = datetime.fromisoformat(runner.invoke(group, ["since", "--since", "2h"]).output.strip())
    after = datetime.now(UTC)
    assert before - timedelta(hours=2) <= moment <= after - timedelta(hours=2)


def test_a_bad_time_is_invalid_input_naming_the_option() -> None:
    result = CliRunner().invoke(_time_command(), ["since", "--since", "yesterday"])
    assert result.exit_code == 3
    assert result.stderr.startswith("error: group since: --since: cannot read time 'yesterday': use ISO 8601"), result.stderr
    assert result.stderr.count("\n") == 1
