"""The view commands through click's CliRunner (exact output and exit codes) and one real process."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ledger_cli.main import main

import ledger
from ledger.codec import loads
from ledger.rendering import render
from tests.conftest import drain_terminal, run_ledger
from tests.helpers import build_newsroom


@pytest.fixture
def store(store_dir: Path) -> Path:
    with ledger.open(store_dir) as led:
        build_newsroom(led)
    return store_dir


def run(store: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--store", str(store), *args], env={"NO_COLOR": "1"})


def json_lines(result: Result) -> list[dict]:
    return [loads(line) for line in result.stdout_bytes.splitlines()]


def test_show_prints_exactly_the_rendered_bytes(store: Path) -> None:
    with ledger.open(store) as led:
        expected = {v: render(led.article("bridge", v)).encode() for v in (1, 3, 7)}
    for version in (1, 3):
        result = run(store, "show", "bridge", str(version))
        assert (result.exit_code, result.stdout_bytes) == (0, expected[version])
    assert run(store, "show", "bridge").stdout_bytes == expected[7]
    assert run(store, "show", "bridge", "--at", "2017-09-05T12:00:00.000000Z").stdout_bytes == render_at(store, 4)


def render_at(store: Path, version: int) -> bytes:
    with ledger.open(store) as led:
        return render(led.article("bridge", version)).encode()


def test_show_json(store: Path) -> None:
    result = run(store, "show", "bridge", "2", "--format", "json")
    assert result.exit_code == 0
    (doc,) = json_lines(result)
    assert set(doc) == {"article", "version", "title", "body", "blocks", "categories", "metadata", "authors", "withdrawn", "created_at", "updated_at", "position", "text"}
    assert (doc["article"], doc["version"], doc["body"], doc["created_at"], doc["updated_at"]) == ("bridge", 2, "The bridge is closed until Friday.\n", "2017-09-05T10:00:00.000000Z", "2017-09-05T11:00:00.000000Z")
    assert doc["text"].encode() == render_at(store, 2)


def test_show_errors_and_exit_codes(store: Path) -> None:
    missing = run(store, "show", "nope")
    assert (missing.exit_code, missing.stderr) == (4, "error: article 'nope' is not in the log\n")
    assert run(store, "show", "bridge", "9").exit_code == 4
    before = run(store, "show", "bridge", "--at", "2017-09-05T09:00Z")
    assert before.exit_code == 4
    assert "did not exist yet" in before.stderr
    assert run(store, "show", "bridge", "--at", "not a time").exit_code == 3
    # The library says it (one place): invalid input, exit 3, not a usage error of the CLI's own.
    both = run(store, "show", "bridge", "1", "--at", "2h")
    assert (both.exit_code, both.stderr) == (3, "error: give a version or a time, not both\n")


def test_show_withdrawn_article_notes_it(store: Path) -> None:
    result = run(store, "show", "bridge", "5")
    assert result.exit_code == 0
    assert result.stderr == "note: bridge is withdrawn at version 5\n"
    assert result.stdout_bytes == render_at(store, 5)


def test_history(store: Path) -> None:
    result = run(store, "history", "bridge", "--format", "json")
    assert result.exit_code == 0
    docs = json_lines(result)
    assert [d["version"] for d in docs] == [1, 2, 3, 4, 5, 6, 7]
    assert docs[3]["changes"] == ["categories changed"]
    assert {d["article"] for d in docs} == {"bridge"}
    assert set(docs[0]) == {
        "article", "version", "position", "occurred_at", "recorded_at", "actor", "reason", "changes", "categories_added",
        "categories_removed", "headings", "events", "size", "withdrawn",
    }
    text = run(store, "history", "bridge").stdout
    assert text.splitlines()[0].split() == ["ver", "occurred", "actor", "changes", "bytes", "reason"]
    assert "+roads" in text and "-traffic" in text
    assert run(store, "history", "nope").exit_code == 4


def test_diff_plain_when_piped(store: Path) -> None:
    result = run(store, "diff", "storm")
    assert result.exit_code == 0
    with ledger.open(store) as led:
        assert result.stdout == led.diff("storm").text
    assert result.stdout.startswith("--- storm v2\n+++ storm v3\n@@ -")
    assert "\n-Storm warning\n+Storm hits\n" in result.stdout
    words = run(store, "diff", "bridge", "1", "2", "--words")
    assert "closed{+ until Friday+}." in words.stdout
    doc = json_lines(run(store, "diff", "bridge", "1", "2", "--format", "json"))[0]
    assert (doc["from_version"], doc["to_version"], doc["words"]) == (1, 2, False)
    assert {"op": "+", "text": "The bridge is closed until Friday.", "newline": True} in doc["hunks"][0]["lines"]
    assert run(store, "diff", "bridge", "1", "12").exit_code == 4
    # FROM alone is FROM against the latest, as `diff --help` says.
    alone = json_lines(run(store, "diff", "storm", "1", "--format", "json"))[0]
    assert (alone["from_version"], alone["to_version"]) == (1, 3)


def test_categories(store: Path) -> None:
    assert json_lines(run(store, "categories", "--format", "json")) == [
        {"name": "local", "count": 1}, {"name": "roads", "count": 1}, {"name": "weather", "count": 1},
    ]
    assert json_lines(run(store, "categories", "--at", "2017-09-05T13:30Z", "--format", "json")) == [{"name": "weather", "count": 1}]
    assert json_lines(run(store, "categories", "traffic", "--at", "2017-09-05T11:00Z", "--format", "json")) == [
        {"article": "bridge", "title": "Bridge closed", "entered_at": "2017-09-05T10:00:00.000000Z", "entered_version": 1},
    ]
    listing = run(store, "categories", "roads").stdout
    assert listing.splitlines()[0].split() == ["article", "title", "entered"]
    text = run(store, "categories").stdout
    assert [line.split() for line in text.splitlines()] == [["category", "articles"], ["local", "1"], ["roads", "1"], ["weather", "1"]]
    # A category left empty at that time lists nothing; one no article was ever in is a typo.
    assert run(store, "categories", "traffic", "--at", "2017-09-05T09:00Z", "--format", "json").stdout == ""
    for args in (["categories", "road"], ["categories", "road", "--history"], ["articles", "--category", "road"]):
        typo = run(store, *args)
        assert (typo.exit_code, typo.stdout, typo.stderr) == (4, "", "error: no article was ever in category 'road' (did you mean 'roads'?)\n")
    assert run(store, "categories", "zzz").stderr == "error: no article was ever in category 'zzz'\n"


def test_updated(store: Path) -> None:
    docs = json_lines(run(store, "updated", "--since", "2017-09-05T12:00Z", "--format", "json"))
    assert [(d["article"], d["last_update_at"]) for d in docs] == [("storm", "2017-09-05T12:30:00.000000Z"), ("bridge", "2017-09-05T12:00:00.000000Z")]
    assert docs[1]["blocks"] == [{"heading": "Update from Council:", "added_version": 3, "added_at": "2017-09-05T12:00:00.000000Z"}]
    assert run(store, "updated").exit_code == 2


def test_timeline(store: Path) -> None:
    docs = json_lines(run(store, "timeline", "--article", "bridge", "--limit", "2", "--format", "json"))
    assert [(d["version"], d["changes"]) for d in docs] == [(7, ["metadata changed"]), (6, ["restored"])]
    docs = json_lines(run(store, "timeline", "--since", "2017-09-05T12:00Z", "--until", "2017-09-05T13:00Z", "--format", "json"))
    assert [(d["article"], d["version"]) for d in docs] == [("bridge", 5), ("storm", 2), ("bridge", 4), ("bridge", 3)]
    missing = run(store, "timeline", "--article", "nosuch")
    assert (missing.exit_code, missing.stdout, missing.stderr) == (4, "", "error: article 'nosuch' is not in the log\n")


def test_categories_of_an_article(store: Path) -> None:
    docs = json_lines(run(store, "categories", "--article", "bridge", "--format", "json"))
    assert docs == [
        {"article": "bridge", "category": "local", "entered_version": 1, "entered_at": "2017-09-05T10:00:00.000000Z",
         "left_version": None, "left_at": None, "withdrawn": False},
        {"article": "bridge", "category": "traffic", "entered_version": 1, "entered_at": "2017-09-05T10:00:00.000000Z",
         "left_version": 4, "left_at": "2017-09-05T12:00:00.000000Z", "withdrawn": False},
        {"article": "bridge", "category": "roads", "entered_version": 4, "entered_at": "2017-09-05T12:00:00.000000Z",
         "left_version": None, "left_at": None, "withdrawn": False},
    ]
    text = run(store, "categories", "--article", "bridge").stdout
    # Times are local: compare the parts that do not depend on the time zone.
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["category", "entered", "ver", "left", "ver"]
    assert [(row[0], row[4], row[8:]) for row in rows[1:]] == [("local", "1", []), ("traffic", "1", ["4"]), ("roads", "4", [])]
    assert run(store, "categories", "--article", "nosuch").exit_code == 4
    assert run(store, "categories", "roads", "--article", "bridge").exit_code == 2


def test_every_article_ever_in_a_category(store: Path) -> None:
    # The bridge left `traffic` at version 4: not in it now, but its stint is listed.
    assert run(store, "categories", "traffic").stdout.splitlines()[1:] == []
    docs = json_lines(run(store, "categories", "traffic", "--history", "--format", "json"))
    assert docs == [{"article": "bridge", "category": "traffic", "entered_version": 1, "entered_at": "2017-09-05T10:00:00.000000Z",
                     "left_version": 4, "left_at": "2017-09-05T12:00:00.000000Z", "withdrawn": False}]
    rows = [line.split() for line in run(store, "categories", "traffic", "--history").stdout.splitlines()]
    assert rows[0] == ["article", "entered", "ver", "left", "ver"]
    assert (rows[1][0], rows[1][4], rows[1][8]) == ("bridge", "1", "4")
    # A withdrawn article is still in its categories, but not listed there: its stint says so.
    withdrawn = CliRunner().invoke(main, ["--store", str(store), "append", "-"], input='{"type": "ArticleWithdrawn", "article": "bridge"}\n')
    assert withdrawn.exit_code == 0, withdrawn.stderr
    rows = [line.split() for line in run(store, "categories", "roads", "--history").stdout.splitlines()]
    assert (rows[1][0], rows[1][4], rows[1][-1]) == ("bridge", "4", "withdrawn")
    assert run(store, "categories", "--history").exit_code == 2
    assert run(store, "categories", "traffic", "--history", "--at", "2017-09-05").exit_code == 2


def test_restore(store: Path) -> None:
    result = run(store, "restore", "bridge", "2", "--actor", "eve", "--reason", "revert")
    assert (result.exit_code, result.stdout) == (0, "restored bridge to version 2 as version 8\n")
    assert run(store, "show", "bridge").stdout_bytes == render_at(store, 2)
    again = run(store, "restore", "bridge", "2")
    assert again.exit_code == 9


def test_replay(store: Path) -> None:
    doc = json_lines(run(store, "replay", "--format", "json"))[0]
    assert set(doc) == {"events", "articles", "position", "seconds", "events_per_second", "saved"}
    assert (doc["events"], doc["articles"], doc["position"], doc["saved"]) == (10, 2, 10, True)
    text = run(store, "replay", "--to", "4").stdout
    assert text.startswith("replayed 4 events of 2 articles to position 4 in ")
    assert text.endswith(" events/s)\n")


@pytest.mark.slow
def test_show_as_a_real_process_gives_back_the_draft_bytes(store: Path, tmp_path: Path) -> None:
    done = run_ledger("show", "bridge", "3", store=store)
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_at(store, 3)
    missing = run_ledger("history", "nope", store=store)
    assert (missing.returncode, missing.stdout) == (4, b"")


def test_articles_table_and_json(store: Path) -> None:
    text = run(store, "articles")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["updated", "article", "ver", "title"]
    assert [line.split()[3] for line in lines[1:]] == ["storm", "bridge"]  # after date, time and zone
    docs = json_lines(run(store, "articles", "--format", "json"))
    assert docs[0] == {
        "article": "storm", "title": "Storm hits", "version": 3, "updated_at": "2017-09-05T16:00:00.000000Z",
        "categories": ["weather"], "authors": [], "withdrawn": False,
    }
    assert [d["article"] for d in json_lines(run(store, "articles", "-c", "roads", "--format", "json"))] == ["bridge"]
    assert [d["article"] for d in json_lines(run(store, "articles", "--since", "2017-09-05T15:30Z", "--format", "json"))] == ["storm"]
    assert run(store, "articles", "--withdrawn").stdout.splitlines()[1:] == []


def test_articles_by_author_and_show_json_carry_the_authors_however_drafts_name_them(store_dir: Path, tmp_path: Path) -> None:
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    (drafts / "quay.md").write_text("---\ntitle: Night market\nauthor: Ana Lima\n---\n\nStalls open.\n", encoding="utf-8")
    (drafts / "pier.md").write_text(
        '+++\ntitle = "Pier"\nauthors = ["Jonas Ferreira"]\n\n[extra]\nauthor = "Ana Lima"\n+++\n\nThe pier.\n', encoding="utf-8"
    )
    (drafts / "rain.md").write_text('{\n  "title": "Rain", "params": {"author": "Jonas Ferreira"}\n}\n\nRain.\n', encoding="utf-8")
    assert run(store_dir, "init").exit_code == 0
    assert run(store_dir, "ingest", str(drafts)).exit_code == 0
    by_ana = json_lines(run(store_dir, "articles", "--author", "ana lima", "--format", "json"))
    assert sorted((d["article"], tuple(d["authors"])) for d in by_ana) == [("pier", ("Jonas Ferreira", "Ana Lima")), ("quay", ("Ana Lima",))]
    assert sorted(d["article"] for d in json_lines(run(store_dir, "articles", "-a", "Jonas Ferreira", "--format", "json"))) == ["pier", "rain"]
    assert json_lines(run(store_dir, "articles", "--author", "Ana", "--format", "json")) == []
    table = run(store_dir, "articles", "--author", "Jonas Ferreira").stdout.splitlines()
    assert table[0].split() == ["updated", "article", "ver", "title", "categories", "authors", "withdrawn"]
    assert any("Jonas Ferreira, Ana Lima" in line for line in table[1:])
    (shown,) = json_lines(run(store_dir, "show", "pier", "--format", "json"))
    assert shown["authors"] == ["Jonas Ferreira", "Ana Lima"]
    assert shown["metadata"]["authors"] == ["Jonas Ferreira"] and shown["metadata"]["extra"] == {"author": "Ana Lima"}


def test_withdraw_then_articles_and_restore(store: Path) -> None:
    result = run(store, "withdraw", "bridge", "--actor", "eve", "--reason", "legal")
    assert (result.exit_code, result.stdout) == (0, "withdrew bridge as version 8\n")
    assert [d["article"] for d in json_lines(run(store, "articles", "--withdrawn", "--format", "json"))] == ["bridge"]
    assert [d["article"] for d in json_lines(run(store, "articles", "--live", "--format", "json"))] == ["storm"]
    again = run(store, "withdraw", "bridge", "--format", "json")
    assert (again.exit_code, again.stderr) == (5, "error: article 'bridge' is already withdrawn\n")
    back = run(store, "restore", "bridge", "7")
    assert back.exit_code == 0
    assert json_lines(run(store, "articles", "--withdrawn", "--format", "json")) == []


def test_withdraw_json_and_an_unknown_article_suggests_close_ids(store: Path) -> None:
    doc = json_lines(run(store, "withdraw", "storm", "--format", "json"))[0]
    assert doc["versions"] == {"storm": 4}
    for args in (("withdraw", "brigde"), ("show", "brigde"), ("history", "brigde")):
        result = run(store, *args)
        assert (result.exit_code, result.stderr) == (4, "error: article 'brigde' is not in the log (did you mean 'bridge'?)\n")


# --- pages of the long listings (issue 16) ---------------------------------------------------------


@pytest.fixture
def many(store_dir: Path) -> Path:
    """53 articles created in one append (one moment: the log orders them, the last first), each
    given an update block in a second one."""
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": f"a{n:02}", "occurred_at": "2017-09-05T10:00:00Z", "data": {"title": f"T{n}"}} for n in range(53)])
        led.append([{"type": "UpdateBlockAdded", "article": f"a{n:02}", "occurred_at": "2017-09-05T11:00:00Z", "data": {"heading": f"U{n}:"}} for n in range(53)])
    return store_dir


def newest_first(*numbers: int) -> list[str]:
    return [f"a{n:02}" for n in numbers]


def on_terminal(*args: str) -> tuple[int, bytes, bytes]:
    """Run `ledger ARGS` with stdout on a pseudo-terminal and stderr piped: (exit code, what the
    terminal showed, stderr)."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("ledger")), *args],
            stdout=terminal, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )
        os.close(terminal)
        screen = drain_terminal(controller)
        _, err = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return process.returncode, screen, err


def test_articles_and_updated_print_every_row_when_piped(many: Path) -> None:
    for command in (["articles"], ["updated", "--since", "2017-09-05"]):
        result = run(many, *command, "--format", "json")
        assert (result.exit_code, result.stderr) == (0, "")
        assert [d["article"] for d in json_lines(result)] == newest_first(*range(52, -1, -1))
    process = run_ledger("articles", store=many)
    assert (process.returncode, process.stderr) == (0, b"")
    assert len(process.stdout.splitlines()) == 1 + 53


def test_articles_and_updated_limit_and_offset(many: Path) -> None:
    page = run(many, "articles", "--limit", "3", "--offset", "50", "--format", "json")
    assert (page.exit_code, [d["article"] for d in json_lines(page)], page.stderr) == (0, newest_first(2, 1, 0), "")
    assert [d["article"] for d in json_lines(run(many, "articles", "-n", "2", "--format", "json"))] == newest_first(52, 51)
    feed = run(many, "updated", "--since", "2017-09-05", "-n", "2", "--offset", "1", "--format", "json")
    assert [(d["article"], [b["heading"] for b in d["blocks"]]) for d in json_lines(feed)] == [("a51", ["U51:"]), ("a50", ["U50:"])]
    past = run(many, "articles", "--offset", "53")
    assert (past.exit_code, past.stdout.splitlines()[1:], past.stderr) == (0, [], "note: nothing from --offset 53 on: there are 53 articles in all\n")
    assert json_lines(run(many, "updated", "--since", "2017-09-05", "--offset", "99", "--format", "json")) == []


@pytest.mark.parametrize("command", [["articles"], ["updated", "--since", "2017-09-05"], ["timeline"], ["log"]])
def test_a_limit_of_zero_or_a_negative_offset_is_a_usage_error(many: Path, command: list[str]) -> None:
    # (`timeline` and `log` took --limit 0 and printed nothing, where the listings refused it.)
    zero = run(many, *command, "--limit", "0")
    assert (zero.exit_code, zero.stdout) == (2, "")
    assert zero.stderr == f"error: ledger {command[0]}: --limit / -n: 0 is too small (expected 1 or more)\n"
    if command[0] in ("articles", "updated"):
        assert run(many, *command, "--offset", "-1").exit_code == 2


def test_on_a_terminal_a_page_of_50_then_a_note_saying_how_to_see_the_rest(many: Path) -> None:
    code, screen, err = on_terminal("--store", str(many), "articles")
    rows = screen.decode().splitlines()[1:]
    assert (code, len(rows), rows[0].split()[3], rows[-1].split()[3]) == (0, 50, "a52", "a03")
    assert err == b"note: 3 more articles: --offset 50 for the next page, --limit N for longer pages, or pipe the output for all\n"
    code, screen, err = on_terminal("--store", str(many), "articles", "--offset", "50")
    assert (code, [row.split()[3] for row in screen.decode().splitlines()[1:]], err) == (0, newest_first(2, 1, 0), b"")
    code, screen, err = on_terminal("--store", str(many), "updated", "--since", "2017-09-05", "--limit", "52", "--format", "json")
    assert (code, len(screen.splitlines()), err) == (0, 52, b"note: 1 more article: --offset 52 for the next page, --limit N for longer pages, or pipe the output for all\n")


def test_ids_are_never_cut_short_on_a_narrow_terminal(store_dir: Path, tmp_path: Path) -> None:
    draft = tmp_path / "night-market-returns-to-quay-street.txt"
    draft.write_text("Night market returns to Quay Street after two years away\n\nText.\n", encoding="utf-8")
    assert run_ledger("ingest", str(draft), store=store_dir).returncode == 0
    for command in (("articles",), ("search", "night market")):
        done = run_ledger(*command, store=store_dir, env={"COLUMNS": "60"})
        assert done.returncode == 0, done.stderr
        assert "night-market-returns-to-quay-street" in done.stdout.decode(), done.stdout.decode()


def test_an_offset_past_the_end_says_how_many_there_are(store_dir: Path, tmp_path: Path) -> None:
    draft = tmp_path / "story.txt"
    draft.write_text("Story\n\nText.\n", encoding="utf-8")
    assert run_ledger("ingest", str(draft), store=store_dir).returncode == 0
    done = run_ledger("articles", "--offset", "5", store=store_dir)
    assert done.returncode == 0
    assert done.stderr.decode() == "note: nothing from --offset 5 on: there is 1 article in all\n"
    assert run_ledger("articles", "--offset", "0", store=store_dir).stderr == b""
