"""What every command shares: documented exit codes, one-line errors, help with examples,
colour only on a terminal, shell completion."""

from __future__ import annotations

import json
import os
import pty
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from ledger_cli.group import COMMAND_GROUPS, LedgerGroup
from ledger_cli.main import main
from ledger_cli.output import table

import ledger
from tests.conftest import drain_terminal, run_ledger
from tests.helpers import cli, created, edited, interruptible, jsonl

LEDGER = str(Path(sys.executable).with_name("ledger"))
ANSI = b"\x1b["


def plain_env() -> dict[str, str]:
    """The environment with no colour setting at all (NO_COLOR, FORCE_COLOR removed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    return env


def on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run `ledger ARGS` with stdout and stderr on a pseudo-terminal; its exit code and screen."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([LEDGER, *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env)
        os.close(terminal)
        screen = drain_terminal(controller)
        return process.wait(timeout=60), screen
    finally:
        os.close(controller)


# --- exit codes (docs/cli.md "Exit codes") -------------------------------------------------


def test_exit_1_other_ledger_error() -> None:
    @click.group(cls=LedgerGroup)
    def group() -> None:
        """A group like `ledger`'s."""

    @group.command()
    def fail() -> None:
        raise ledger.LedgerError("something else went wrong")

    result = CliRunner().invoke(group, ["fail"])
    assert (result.exit_code, result.stderr) == (1, "error: something else went wrong\n")


@pytest.mark.parametrize("args", [["no-such-command"], ["log", "--no-such-option"], ["log", "--format", "xml"], ["log", "--from", "0"]])
def test_exit_2_usage_error(store_dir: Path, args: list[str]) -> None:
    result = cli("--store", str(store_dir), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ledger") and result.stderr.count("\n") == 1, result.stderr


def test_exit_3_invalid_input(store_dir: Path) -> None:
    result = cli("--store", str(store_dir), "append", "-", input=b'{"type": "ArticleCreated", "article": "a", "data": {"title": "T"}}\n{"type": \n')
    assert (result.exit_code, result.stderr) == (3, "error: <stdin>:2: malformed JSON (the line ends before the JSON does)\n")
    assert (store_dir / "events.jsonl").read_bytes() == b""


def test_exit_4_not_found(store_dir: Path) -> None:
    result = cli("--store", str(store_dir), "log", "--article", "nope")
    assert (result.exit_code, result.stderr) == (4, "error: article 'nope' is not in the log\n")


def test_exit_5_conflict(store_dir: Path) -> None:
    assert cli("--store", str(store_dir), "append", "-", input=jsonl(created("a"))).exit_code == 0
    result = cli("--store", str(store_dir), "append", "-", input=jsonl(created("a", "Again")))
    assert (result.exit_code, result.stderr) == (5, "error: <stdin>:1: article 'a' already exists (version 1)\n")


def test_exit_6_no_store(tmp_path: Path) -> None:
    result = cli("--store", str(tmp_path / "nothing-here"), "log")
    assert (result.exit_code, result.stderr) == (6, f"error: {tmp_path / 'nothing-here'}: no ledger store here (run `ledger init`)\n")


@pytest.mark.slow
def test_exit_7_locked_by_another_process(store_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({str(store_dir / 'events.jsonl')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        result = run_ledger("--lock-timeout", "0.2", "append", "-", store=store_dir, input=jsonl(created("a")))
        env_result = run_ledger("append", "-", store=store_dir, input=jsonl(created("a")), env={"LEDGER_LOCK_TIMEOUT": "0"})
    finally:
        holder.communicate(b"", timeout=30)
    assert (result.returncode, result.stderr) == (7, f"error: {store_dir}: locked by another writer for more than 0.2s\n".encode())
    assert env_result.returncode == 7
    assert (store_dir / "events.jsonl").read_bytes() == b""
    # Once the other writer is gone, the same append goes through.
    assert run_ledger("append", "-", store=store_dir, input=jsonl(created("a"))).returncode == 0


def test_exit_8_corrupt_store(store_dir: Path) -> None:
    for article in ("a", "b", "c"):
        assert cli("--store", str(store_dir), "append", "-", input=jsonl(created(article, "Title " + article))).exit_code == 0
    log = store_dir / "events.jsonl"
    data = bytearray(log.read_bytes())
    data[data.index(b"Title b") + 6] = ord("B")  # one byte, inside the second record
    log.write_bytes(bytes(data))
    result = cli("--store", str(store_dir), "verify")
    assert result.exit_code == 8
    assert result.stderr.startswith("problem: line 2, position 2, byte ") and result.stderr.endswith("record does not match its checksum\n")
    result = cli("--store", str(store_dir), "log")
    assert result.exit_code == 8
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "position 2" in result.stderr


def test_exit_9_nothing_to_do(store_dir: Path) -> None:
    assert cli("--store", str(store_dir), "append", "-", input=jsonl(created("a"))).exit_code == 0
    same = jsonl(edited("a", "Body."))
    result = cli("--store", str(store_dir), "append", "-", input=same)
    assert (result.exit_code, result.stderr) == (9, "error: <stdin>:1: ArticleEdited changes nothing in 'a'\n")


@pytest.mark.slow
def test_exit_130_on_ctrl_c_of_log_follow(store_dir: Path) -> None:
    assert run_ledger("append", "-", store=store_dir, input=jsonl(created("old"))).returncode == 0
    process = subprocess.Popen(
        interruptible([LEDGER, "--store", str(store_dir), "log", "--follow", "--format", "json"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"},
    )
    lines: queue.Queue[bytes] = queue.Queue()
    try:
        assert process.stdout is not None
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
        # It prints what is appended after it started: append until it shows something.
        first: bytes | None = None
        for number in range(1, 21):
            assert run_ledger("append", "-", store=store_dir, input=jsonl(created(f"new{number}"))).returncode == 0
            try:
                first = lines.get(timeout=1.0)
                break
            except queue.Empty:
                continue
        assert first is not None, "ledger log --follow printed nothing"
        event = json.loads(first)
        assert event["article"].startswith("new") and event["type"] == "ArticleCreated" and event["position"] >= 2
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert process.stderr is not None
        assert b"Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_exit_141_quietly_when_the_reader_goes_away(store_dir: Path) -> None:
    events = jsonl(*(created(f"article-{n}", "x" * 200) for n in range(300)))
    assert run_ledger("append", "-", store=store_dir, input=events).returncode == 0
    process = subprocess.Popen([LEDGER, "--store", str(store_dir), "log", "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["position"] == 1
    process.stdout.close()  # like `| head -1`: the reader has what it wanted
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b""


# --- errors ------------------------------------------------------------------------------


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    quiet = run_ledger("log", store=tmp_path / "missing")
    loud = run_ledger("--debug", "log", store=tmp_path / "missing")
    assert quiet.returncode == 6 and b"Traceback" not in quiet.stderr and quiet.stderr.count(b"\n") == 1
    assert b"Traceback" in loud.stderr and b"StoreNotFoundError" in loud.stderr
    assert loud.returncode == 6


def test_ledger_alone_still_prints_its_help() -> None:
    # click's "no arguments: help" is a usage error too; it must not become a one-line error.
    result = cli()
    assert result.exit_code == 2 and result.stderr.startswith("Usage: ledger [OPTIONS] COMMAND") and "Write commands:" in result.stderr


def test_debug_keeps_the_documented_exit_code(store_dir: Path) -> None:
    # Issue 14 point 2: `ledger --debug show nope` exited 1 (the traceback's), not 4.
    result = cli("--store", str(store_dir), "--debug", "show", "nope")
    assert result.exit_code == 4
    assert "Traceback" in result.stderr and "ArticleNotFoundError: article 'nope' is not in the log" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "nothere.txt"], "ledger ingest: PATHS...: path 'nothere.txt' does not exist"),
        (["show", "--formt", "json", "a"], "ledger show: no such option '--formt'; did you mean '--format'?"),
        (["shw", "a"], "ledger: no such command 'shw'; did you mean 'show'?"),
        (["show"], "ledger show: missing argument 'ARTICLE'"),
        (["log", "--format", "xml"], "ledger log: --format: 'xml' is not one of 'text', 'json'"),
        (["show", "a", "abc"], "ledger show: [VERSION]: 'abc' is not a whole number (expected 1 or more)"),
        (["show", "a", "0"], "ledger show: [VERSION]: 0 is too small (expected 1 or more)"),
        (["diff", "a", "1", "x"], "ledger diff: [TO]: 'x' is not a whole number (expected 0 or more)"),
        (["log", "--limit", "99999999999999999999"],
         "ledger log: --limit / -n: 99999999999999999999 is beyond 64 bits (expected at most 9,223,372,036,854,775,807, the largest the log holds)"),
        (["--lock-timeout", "nan", "log"], "ledger: --lock-timeout: 'nan' is not a number of seconds, such as 2.5"),
        (["--lock-timeout", "abc", "log"], "ledger: --lock-timeout: 'abc' is not a number of seconds, such as 2.5"),
        (["--lock-timeout", "-1", "log"], "ledger: --lock-timeout: -1 is too small (expected 0 or more seconds)"),
        (["show", "a", "--store", "elsewhere"], "ledger show: --store is an option of ledger itself: put it before the command (ledger --store DIR show ...)"),
        (["history", "a", "--debug"], "ledger history: --debug is an option of ledger itself: put it before the command (ledger --debug history ...)"),
        (["show", "a", "--version", "3"], "ledger show: no such option '--version': a version is an argument here (ledger show ARTICLE [VERSION])"),
        (["diff", "a", "--version", "3"], "ledger diff: no such option '--version': a version is an argument here (ledger diff ARTICLE [FROM] [TO])"),
        (["--format", "json", "show", "a"], "ledger: --format is an option of the command, not of ledger itself: put it after the command (ledger COMMAND --format ...)"),
    ],
    ids=["missing-path", "misspelt-option", "misspelt-command", "missing-argument", "bad-choice", "not-a-number", "too-small",
         "positional", "beyond-64-bits", "global-option", "seconds-not-a-number", "seconds-too-small", "store-after-command", "flag-after-command",
         "show-version-option", "diff-version-option", "command-option-before-command"],
)
def test_usage_errors_are_one_line_like_every_error(store_dir: Path, args: list[str], message: str) -> None:
    # Issue 14 points 2 and 3: click printed three lines ("Usage: ...", "Try ...", "Error: ...")
    # and "'abc' is not a valid integer range"; the exit code stays 2.
    result = cli("--store", str(store_dir), *args)
    assert (result.exit_code, result.stderr) == (2, f"error: {message}\n")


# --- help --------------------------------------------------------------------------------


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `group`, nested groups included, as registered now."""
    found: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


def test_commands_are_registered() -> None:
    names = {path[0] for path in all_commands(main)}
    assert {"init", "append", "log", "verify", "export", "import", "stats", "completion"} <= names


def test_every_command_has_a_group_in_the_help() -> None:
    # Issue 14 point 7: `ledger --help` listed the commands alphabetically; a new command must
    # be given a group in COMMAND_GROUPS, or it would be left out of the help.
    grouped = [name for names in COMMAND_GROUPS.values() for name in names]
    assert len(grouped) == len(set(grouped)), "a command is in two groups"
    assert {path[0] for path in all_commands(main)} <= set(grouped)


def test_help_lists_commands_by_group_with_whole_summaries() -> None:
    # Issue 14 point 7: every summary was cut at 45 characters with "...".
    result = cli("--help")
    assert result.exit_code == 0
    commands = result.output.split("Write commands:")[1]
    assert "..." not in commands
    titles = [line for line in commands.splitlines() if line.endswith("commands:")]
    assert titles == ["Read commands:", "Drafts commands:", "Maintenance commands:"]
    assert "Append events from SOURCE (a file of JSON lines, or - for stdin) as one atomic append." in " ".join(commands.split())
    for names in COMMAND_GROUPS.values():
        listed = [name for name in names if f"\n  {name} " in commands]
        assert listed == [name for name in names if main.get_command(click.Context(main), name) is not None]


@pytest.mark.parametrize("path", [(), *all_commands(main)], ids=lambda path: " ".join(path) or "ledger")
def test_every_help_has_an_example(path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output, f"`ledger {' '.join(path)} --help` shows no example"


# --- colour ------------------------------------------------------------------------------


@pytest.mark.slow
def test_piped_output_has_no_colour_codes(store_dir: Path) -> None:
    assert run_ledger("append", "-", store=store_dir, input=jsonl(created("a"))).returncode == 0
    for args in (["log"], ["stats"], ["verify"], ["log", "--article", "nope"], ["--help"]):
        result = subprocess.run([LEDGER, "--store", str(store_dir), *args], check=False, capture_output=True, env=plain_env())
        assert ANSI not in result.stdout and ANSI not in result.stderr, args


@pytest.mark.slow
def test_piped_tables_are_aligned_and_end_rows_at_their_last_cell(tmp_path: Path) -> None:
    store = ledger.init(tmp_path / "store")
    with ledger.open(store) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "categories": ["world", "économie"]}}])
        led.append([{"type": "ArticleCreated", "article": "b", "data": {"title": "B", "categories": ["world"]}}])
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run([LEDGER, "--store", str(store), "categories"], check=False, capture_output=True, env=env)
    assert piped.stdout.decode() == "category  articles\nworld     2\néconomie  1\n"
    # At a width COLUMNS sets, rich wraps the rows; they still end at their last cell.
    narrow = subprocess.run([LEDGER, "--store", str(store), "categories", "--article", "a"], check=False, capture_output=True,
                            env={**env, "COLUMNS": "40"})
    lines = narrow.stdout.decode().splitlines()
    assert narrow.returncode == 0 and len(lines) > 3 and all(line == line.rstrip() for line in lines)


@pytest.mark.slow
def test_a_long_table_on_a_terminal_is_printed_as_when_piped(tmp_path: Path) -> None:
    store = ledger.init(tmp_path / "store")
    with ledger.open(store) as led, led.bulk():
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "0"}}])
        for n in range(1, 1001):
            led.append([{"type": "ArticleEdited", "article": "a", "data": {"body": str(n)}, "reason": "r" * (n % 7)}])
    piped = run_ledger("history", "a", store=store)
    code, screen = on_terminal(["--store", str(store), "history", "a"], plain_env())
    assert code == 0 and len(piped.stdout.splitlines()) == 1002
    # Rich would have made the header bold and padded every row to the terminal's width.
    assert screen.replace(b"\r\n", b"\n") == piped.stdout


def test_a_long_table_is_streamed_and_a_wider_cell_widens_its_column_from_its_row(capsys: pytest.CaptureFixture[str]) -> None:
    printed_before_the_last_row: list[str] = []

    def rows() -> Iterator[list[object]]:
        for n in range(1, 2001):
            if n == 2000:
                printed_before_the_last_row.append(capsys.readouterr().out)
            yield ["a-longer-name" if n == 1500 else "a", n, None]

    table(["article", "ver", "note"], rows())
    lines = (printed_before_the_last_row[0] + capsys.readouterr().out).splitlines()
    # All but the last row were out before the last was read: nothing waits for the whole table.
    assert len(printed_before_the_last_row[0].splitlines()) == 1 + 1999
    assert lines[:2] == ["article  ver   note", "a        1"]
    assert lines[1499:1502] == ["a        1499", "a-longer-name  1500", "a              1501"]
    assert len(lines) == 2001 and lines[-1] == "a              2000"


@pytest.mark.slow
def test_titles_and_paths_are_never_read_as_rich_markup(tmp_path: Path) -> None:
    store = ledger.init(tmp_path / "store")
    title = "Live [b]bold[/b] a[/]b [red]x"
    with ledger.open(store) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": title, "categories": ["news"]}}])
    piped = run_ledger("categories", "news", store=store)
    assert piped.returncode == 0 and title in piped.stdout.decode()
    code, screen = on_terminal(["--store", str(store), "categories", "news"], plain_env())
    assert code == 0 and title.encode() in screen
    # An error naming a path with brackets names it as it is.
    missing = tmp_path / "[b]old[/b]"
    result = run_ledger("show", "a", store=missing)
    assert (result.returncode, result.stderr.decode()) == (6, f"error: {missing}: no ledger store here (run `ledger init`)\n")


def test_colour_on_a_terminal_unless_no_color(store_dir: Path) -> None:
    code, screen = on_terminal(["--store", str(store_dir), "log", "--article", "nope"], plain_env())
    assert code == 4 and ANSI in screen and b"not in the log" in screen
    code, screen = on_terminal(["--store", str(store_dir), "log", "--article", "nope"], {**plain_env(), "NO_COLOR": "1"})
    assert code == 4 and ANSI not in screen and b"error: article 'nope' is not in the log" in screen


# --- completion --------------------------------------------------------------------------


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"), ("zsh", "#compdef ledger"), ("fish", "complete --no-files --command ledger")])
def test_completion_prints_the_script(shell: str, marker: str) -> None:
    result = cli("completion", shell)
    assert result.exit_code == 0
    assert marker in result.output and "_LEDGER_COMPLETE" in result.output


@pytest.mark.slow
def test_completion_completes_commands_and_choices() -> None:
    env = {**os.environ, "_LEDGER_COMPLETE": "bash_complete", "COMP_WORDS": "ledger ex", "COMP_CWORD": "1"}
    result = subprocess.run([LEDGER], check=False, capture_output=True, env=env)
    assert result.returncode == 0
    assert result.stdout.decode().split() == ["plain,export"]
    env.update(COMP_WORDS="ledger stats --format ", COMP_CWORD="3")
    result = subprocess.run([LEDGER], check=False, capture_output=True, env=env)
    assert result.stdout.decode().split() == ["plain,text", "plain,json"]


def test_the_clis_store_default_is_the_librarys() -> None:
    # The CLI names them itself (importing the library would slow every start), so they must agree.
    import ledger.application

    option = next(p for p in main.params if p.name == "store")
    assert (option.default, option.envvar) == (ledger.application.DEFAULT_STORE, ledger.application.ENV_STORE)
    assert ledger.store_path("some/folder") == Path("some/folder")
    # A URL is no folder: it was made a path, password and all.
    with pytest.raises(ledger.InvalidInputError, match=r"^postgresql://u:\*\*\*@h/db names a store on a PostgreSQL server, not a folder$"):
        ledger.store_path("postgresql://u:secret@h/db")


@pytest.mark.parametrize(("store", "message"), [
    ("", "error: the store location is empty: give a folder or a postgresql:// URL\n"),
    ("   ", "error: the store location is empty: give a folder or a postgresql:// URL\n"),
    ("http://example.org/news", "error: http:// names no store: a store is a folder or a postgresql:// URL\n"),
])
def test_a_store_location_that_names_no_store_is_refused(tmp_path: Path, store: str, message: str) -> None:
    # `--store ''` made the current folder a store; `--store http://x` was the folder `http:/x`.
    result = subprocess.run([str(Path(sys.executable).with_name("ledger")), "--store", store, "init"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert (result.returncode, result.stderr) == (3, message)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ledger.InvalidInputError):
        ledger.store_path(store)
