"""`ledger ingest` and `ledger watch` as real processes: exact output, exit codes, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_ledger
from tests.helpers import interruptible

REVISIONS = ROOT / "examples" / "revisions" / "harbour-bridge-closure"
DRAFTS = ROOT / "examples" / "drafts"


@pytest.mark.slow
def test_ingest_revisions_and_show_them_back(store_dir: Path) -> None:
    for number in (1, 2, 3):
        done = run_ledger("ingest", str(REVISIONS / f"v{number}.txt"), "--article", "harbour-bridge-closure",
                          "--at", f"2024-03-0{number}T09:00:00Z", "--actor", "Desk", "--reason", f"revision {number}", store=store_dir)
        assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == (
        f"updated harbour-bridge-closure v3 ({REVISIONS / 'v3.txt'}): edited title, "
        "added update block 'UPDATE (6:40 P.M.):', categories +weather\n"
    )
    for number in (1, 2, 3):
        shown = run_ledger("show", "harbour-bridge-closure", str(number), store=store_dir)
        assert shown.stdout == (REVISIONS / f"v{number}.txt").read_bytes()
    log = [json.loads(line) for line in run_ledger("log", "--format", "json", store=store_dir).stdout.splitlines()]
    assert {(e["version"], e["actor"], e["reason"], e["occurred_at"][:19]) for e in log} == {
        (n, "Desk", f"revision {n}", f"2024-03-0{n}T09:00:00") for n in (1, 2, 3)
    }


@pytest.mark.slow
def test_ingest_a_folder_as_json(store_dir: Path) -> None:
    done = run_ledger("ingest", str(DRAFTS), "--format", "json", store=store_dir)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["article"], r["status"], r["version"]) for r in results] == [
        ("library-late-opening", "created", 1), ("night-market-returns", "created", 1)]
    assert results[1]["changes"] == ["ArticleCreated", "UpdateBlockAdded"]
    again = run_ledger("ingest", str(DRAFTS / "night-market-returns.md"), store=store_dir)
    assert again.stdout.decode() == f"unchanged night-market-returns v1 ({DRAFTS / 'night-market-returns.md'}): unchanged\n"
    shown = run_ledger("show", "night-market-returns", store=store_dir)
    assert shown.stdout == (DRAFTS / "night-market-returns.md").read_bytes()


@pytest.mark.slow
def test_a_bad_draft_exits_3_and_appends_nothing(store_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: T\nauthor: [x\n---\n")
    done = run_ledger("ingest", str(DRAFTS / "library-late-opening.txt"), str(bad), store=store_dir)
    assert done.returncode == 3
    assert done.stdout == b""
    assert done.stderr.decode() == f"error: {bad}:3: broken front matter: a list '[' is not closed\n"
    assert run_ledger("log", "--format", "json", store=store_dir).stdout == b""


@pytest.mark.slow
def test_ingest_usage_errors(store_dir: Path, tmp_path: Path) -> None:
    assert run_ledger("ingest", store=store_dir).returncode == 2
    assert run_ledger("ingest", str(tmp_path / "missing.txt"), store=store_dir).returncode == 2
    done = run_ledger("ingest", str(DRAFTS), "-a", "x", store=store_dir)
    assert (done.returncode, done.stderr.decode()) == (3, "error: an article id can be given for one draft only, not 2\n")
    late = run_ledger("ingest", str(DRAFTS / "library-late-opening.txt"), "--at", "yesterday-ish", store=store_dir)
    assert late.returncode == 3 and late.stderr.startswith(b"error: ledger ingest: --at: cannot read time"), late.stderr
    assert run_ledger("log", "--format", "json", store=store_dir).stdout == b""


@pytest.mark.slow
def test_ingest_of_a_folder_is_all_or_nothing(store_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a1.txt").write_text("A1\n\nFirst.\n")
    assert run_ledger("ingest", str(folder), "--at", "2018-01-01", store=store_dir).returncode == 0
    (folder / "0new.txt").write_text("New\n\nBrand new.\n")
    (folder / "a1.txt").write_text("A1\n\nFirst, edited.\n")
    before = run_ledger("log", store=store_dir).stdout
    done = run_ledger("ingest", str(folder), "--at", "2017-01-01", store=store_dir)
    assert (done.returncode, done.stdout) == (3, b"")
    assert b"'a1'" in done.stderr and b"earlier than" in done.stderr
    assert run_ledger("log", store=store_dir).stdout == before  # 0new was not recorded either
    done = run_ledger("ingest", str(folder), "--at", "2019-01-01", store=store_dir)
    assert done.stdout.decode() == (
        f"created 0new v1 ({folder / '0new.txt'}): created\n"
        f"updated a1 v2 ({folder / 'a1.txt'}): edited body\n"
    )


def wait_until_shown(store: Path, article: str) -> None:
    deadline = time.monotonic() + 60
    while run_ledger("show", article, store=store).returncode != 0:
        assert time.monotonic() < deadline, f"{article} was not ingested within 60 s"
        time.sleep(0.1)


def test_names_a_terminal_would_act_on_are_written_out(store_dir: Path, tmp_path: Path) -> None:
    # An escape sequence in a file name reached the terminal raw, in errors and in results.
    bad = tmp_path / "e\x1b[2Jx.txt"
    bad.write_text("T\n")
    refused = run_ledger("ingest", str(bad), store=store_dir)
    assert refused.returncode == 3 and b"\x1b" not in refused.stderr, refused.stderr
    assert refused.stderr.decode().startswith(f"error: {tmp_path}/e\\x1b[2Jx.txt:1: the file name cannot be the article id")
    taken = run_ledger("ingest", "--article", "good", str(bad), store=store_dir)
    assert taken.returncode == 0 and taken.stdout.decode() == f"created good v1 ({tmp_path}/e\\x1b[2Jx.txt): created\n", taken


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_watch_as_a_process_stopped_by_a_signal(store_dir: Path, tmp_path: Path, stop: signal.Signals) -> None:
    folder = tmp_path / "drafts"
    folder.mkdir()
    (folder / "early.txt").write_text("Early\n\nWritten before the watcher started.\n")
    # A name no article id can be, with a line break and an escape sequence in it.
    (folder / "bad\x1b[2J\nname.txt").write_text("Bad\n")
    command = [str(Path(sys.executable).with_name("ledger")), "--store", str(store_dir), "watch", str(folder), "--reason", "from the folder"]
    process = subprocess.Popen(interruptible(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_until_shown(store_dir, "early")
        (folder / "late.txt").write_text("Late\n\nWritten while it runs.\n\nCategories: news")
        wait_until_shown(store_dir, "late")
    finally:
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = out.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:2]] == [
        f"created early v1 ({folder / 'early.txt'}): created",
        f"created late v1 ({folder / 'late.txt'}): created",
    ]
    text = err.decode()
    assert text.startswith(f"watching {folder} (inotify) into {store_dir}; Ctrl-C or SIGTERM stops\n")
    assert text.endswith("stopped\n")
    # Its error is one line, the name written out: the terminal printed it raw, over two lines.
    assert "\x1b" not in text and text.count("\n") == 3, text
    assert f"error: {folder}/bad\\x1b[2J\\nname.txt:1: the file name cannot be the article id" in text, text
    assert run_ledger("show", "late", store=store_dir).stdout == (folder / "late.txt").read_bytes()
    log = [json.loads(line) for line in run_ledger("log", "--format", "json", store=store_dir).stdout.splitlines()]
    assert [(e["article"], e["reason"]) for e in log] == [("early", "from the folder"), ("late", "from the folder")]


def test_texts_a_terminal_would_act_on_are_written_out_in_tables(store_dir: Path) -> None:
    # A title may hold a C1 control (U+009B starts an escape sequence on some terminals) and an
    # actor a mark that reorders what follows: tables print them as escapes, JSON as they are.
    event = {"type": "ArticleCreated", "article": "q", "data": {"title": "T\u009b2J \u2028x"}, "actor": "a\u202eb"}
    assert run_ledger("append", "-", store=store_dir, input=json.dumps(event).encode() + b"\n").returncode == 0
    listed = run_ledger("articles", store=store_dir).stdout.decode()
    logged = run_ledger("log", store=store_dir).stdout.decode()
    assert "T\\x9b2J \\u2028x" in listed and "\u009b" not in listed and "\u2028" not in listed
    assert "a\\u202eb" in logged and "\u202e" not in logged
    raw = json.loads(run_ledger("articles", "--format", "json", store=store_dir).stdout)
    assert raw["title"] == "T\u009b2J \u2028x"
