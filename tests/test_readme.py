"""The README and every page of docs/, run for real so that none of them can go stale; and the
demo script.

Each page is run as a reader would, from the top, in a fresh temporary folder holding a copy of
`examples/` (and `../shared`, when present), with the installed `ledger` first on PATH:

- a ```sh block followed by a ```text block is run as a shell script, and the text block is what
  it must print (a ```sh block with no text block shows no output and is not run);
- a ```python block followed by a ```text block is run with this Python, the same way;
- a text block of `$ command` lines (a transcript) has each command run, and the lines after it
  are what it must print (stdout and stderr; errors are shown, so any exit code is accepted).

What legitimately differs between runs is normalised on both sides by the named patterns below,
and an expected line `...` stands for any lines (an abridged output); anything else that differs
(a renamed option, a changed line, a new column) fails.

The watch step of the tutorial is run the way a reader would run it in one terminal: a block
whose command ends with `&` starts that command in the background (its text block is what it
prints on start); the blocks after it show their own output followed by what the background
command printed meanwhile; a `kill %1` block stops it with SIGTERM (its text block is what it
prints on the way out).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
"""The pages whose commands and code are run: the README and every page of docs/."""
SHARED = ROOT.parent / "shared"
"""The samples some pages use as `../shared/...` (present on the development machine)."""

RECORDED_IN = "/tmp/ledger"
"""The folder the pages' output was recorded in (it shows in absolute paths)."""

RECORDED_ENV = {"TZ": "UTC", "COLUMNS": "100", "NO_COLOR": "1"}
"""The environment the pages' output was recorded with: local times in UTC, tables 100 wide."""

NOW_TIME = re.compile(r"\b(?!20(?:24|17)-)\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4}|Z)?")
"""A time of the run itself (a version ingested without `--at`, a `recorded_at`): the examples'
own times are all in 2024 or 2017, given with `--at` or `occurred_at`, and must come out exactly
as recorded."""

CLOCK = re.compile(r"^\d\d:\d\d:\d\d ", re.MULTILINE)
"""The local clock time at the start of each line `ledger watch` prints."""

HASH = re.compile(r"\b[0-9a-f]{64}\b")
"""A SHA-256 hash (the head hash depends on recording times)."""

UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b")
"""A generated event id (a time-ordered UUIDv7: new on every run)."""

DURATION = re.compile(r"\bin \d+(?:\.\d+)?s \([\d,]+ events/s\)")
"""How long a replay took, and its rate."""

ELLIPSIS = "..."
"""An expected line that is only `...` stands for any number of lines (an abridged output)."""

WATCH_TIMEOUT = 20.0
"""Seconds to wait for the background watcher to print what the tutorial shows (it settles a
draft about 0.5 s after it is complete; the margin is for a loaded machine)."""


@dataclass
class Block:
    """One fenced block of a page: its info string, its text and the line it starts on."""

    kind: str
    body: str
    line: int


@dataclass
class Step:
    """One runnable block of a page and the output the page shows for it.

    `kind` is `sh` (a shell script), `python` (a Python script) or `transcript` (a text block of
    `$ command` lines, each followed by its output; its commands may fail, as errors are shown).
    """

    script: str
    expected: str
    line: int
    kind: str = "sh"

    @property
    def background(self) -> bool:
        """Whether the block starts a command in the background (`... &`)."""
        return self.kind == "sh" and self.script.rstrip().endswith("&")

    @property
    def stops_background(self) -> bool:
        """Whether the block stops the background command (`kill %1`)."""
        return self.kind == "sh" and self.script.strip() == "kill %1"


def blocks(text: str) -> list[Block]:
    """Every fenced block of a page, in order."""
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = lines.index("```", index + 1)
            found.append(Block(line[3:].strip(), "\n".join(lines[index + 1 : end]), index + 1))
            index = end
        index += 1
    return found


def is_transcript(block: Block) -> bool:
    """Whether a block shows commands with their output (`$ command` lines)."""
    return block.kind in ("", "text") and block.body.startswith("$ ")


def steps(text: str) -> list[Step]:
    """A page's runnable blocks in order: each ```sh or ```python block followed by the ```text
    block of its output, and each transcript. A ```sh block with no text block after it shows
    no output and is not run (a `--follow` that never ends, a shell start-up line)."""
    found = blocks(text)
    result: list[Step] = []
    for number, block in enumerate(found):
        following = found[number + 1] if number + 1 < len(found) else None
        shown = following is not None and following.kind == "text" and not is_transcript(following)
        if block.kind in ("sh", "python") and shown:
            assert following is not None
            result.append(Step(block.body, following.body, block.line, block.kind))
        elif is_transcript(block):
            result.append(Step(block.body, "", block.line, "transcript"))
    return result


def tutorial_steps(text: str) -> list[Step]:
    """The steps of a page that are shell blocks (the tutorial is made of them alone)."""
    return [step for step in steps(text) if step.kind == "sh"]


def normalise(output: str, folder: Path | None = None) -> str:
    """Output with what varies between runs replaced by placeholders, lines right-stripped."""
    if folder is not None:
        for variant in {str(folder.resolve()), str(folder)}:
            output = output.replace(variant, RECORDED_IN)
    output = CLOCK.sub("<clock> ", output)
    for pattern, placeholder in ((DURATION, "in <duration>"), (NOW_TIME, "<now>"), (HASH, "<hash>"), (UUID, "<uuid>")):
        output = pattern.sub(placeholder, output)
    return "\n".join(line.rstrip() for line in output.splitlines()).strip("\n")


def matches(printed: str, expected: str) -> bool:
    """Whether normalised output is what a page shows (a `...` line: any lines)."""
    if not any(line.strip() == ELLIPSIS for line in expected.splitlines()):
        return printed == expected
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == ELLIPSIS else re.escape(line) + r"\n" for line in expected.splitlines()
    )
    return re.fullmatch(pattern, printed + "\n") is not None


def environment() -> dict[str, str]:
    """The environment of the pages' commands: the installed `ledger` first on PATH, the
    default store (`./ledger-data`), and what the pages' output was recorded with."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(RECORDED_ENV)
    return env


class Background:
    """A command started in the background, its stdout and stderr collected as they come."""

    def __init__(self, script: str, cwd: Path, env: dict[str, str]) -> None:
        *before, command = script.rstrip().removesuffix("&").splitlines()
        # `exec`, so that the SIGTERM of `kill %1` reaches the command itself; the lines before
        # it (`mkdir`) run first.
        self.process = subprocess.Popen(
            ["sh", "-ec", "\n".join([*before, "exec " + command])], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
        )
        self.lines: list[str] = []
        self.read = 0
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def new_output(self, count: int) -> str:
        """The next `count` lines it prints (waiting for them, up to WATCH_TIMEOUT seconds)."""
        deadline = time.monotonic() + WATCH_TIMEOUT
        while len(self.lines) < self.read + count and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.05)
        if self.process.poll() is not None:
            self.reader.join(5)
        taken = self.lines[self.read : self.read + count]
        self.read += len(taken)
        return "".join(taken)

    def stop(self) -> str:
        """SIGTERM it, and return the rest of what it prints."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(WATCH_TIMEOUT)
        self.reader.join(5)
        assert code == 0, f"the background command exited with {code}:\n{''.join(self.lines)}"
        rest = self.lines[self.read :]
        self.read = len(self.lines)
        return "".join(rest)

    def kill(self) -> None:
        """End it whatever state it is in (cleanup after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def expected_lines(step: Step) -> int:
    """How many lines a page shows for a step."""
    return len(step.expected.splitlines()) if step.expected.strip() else 0


def transcript_commands(step: Step) -> list[tuple[str, str]]:
    """A transcript's commands, each with the output shown after it."""
    commands: list[tuple[str, list[str]]] = []
    for line in step.script.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            commands[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in commands]


def run_step(step: Step, cwd: Path, env: dict[str, str], job: Background | None) -> tuple[str, Background | None]:
    """Run one sh or python step as the reader would; returns its output and the background job."""
    if step.background:
        job = Background(step.script, cwd, env)
        return job.new_output(expected_lines(step)), job
    if step.stops_background:
        assert job is not None, f"line {step.line}: `kill %1` with no background command"
        return job.stop(), None
    command = ["sh", "-ec", step.script] if step.kind == "sh" else [sys.executable, "-c", step.script]
    done = subprocess.run(command, cwd=cwd, env=env, check=False, capture_output=True, encoding="utf-8", timeout=60)
    assert done.returncode == 0, f"line {step.line}: exit code {done.returncode}\n{step.script}\n{done.stdout}{done.stderr}"
    output = done.stdout + done.stderr
    if job is not None:
        output += job.new_output(expected_lines(step) - len(output.splitlines()))
    return output, job


def check_page(page: Path, tmp_path: Path) -> None:
    """Run every runnable block of a page, in order, in a fresh folder; compare what it prints."""
    text = page.read_text(encoding="utf-8")
    if "../shared/" in text and not SHARED.is_dir():
        pytest.skip(f"{page.name} uses {SHARED}, which is absent")
    folder = tmp_path / "ledger"
    shutil.copytree(ROOT / "examples", folder / "examples")
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    env = environment()
    job: Background | None = None
    where = page.relative_to(ROOT)
    try:
        for step in steps(text):
            if step.kind == "transcript":
                for command, expected in transcript_commands(step):
                    done = subprocess.run(["sh", "-c", command], cwd=folder, env=env, check=False, capture_output=True, encoding="utf-8", timeout=60)
                    printed = normalise(done.stdout + done.stderr, folder)
                    assert matches(printed, normalise(expected)), f"{where}:{step.line}: $ {command}\nprinted:\n{printed}"
                continue
            output, job = run_step(step, folder, env, job)
            assert matches(normalise(output, folder), normalise(step.expected)), f"{where}:{step.line}:\n{step.script}\nprinted:\n{output}"
    finally:
        if job is not None:
            job.kill()
    assert job is None, f"{where} leaves a command running in the background"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_page_runs_as_shown(page: Path, tmp_path: Path) -> None:
    check_page(page, tmp_path)


def test_the_tutorial_has_the_commands_it_promises() -> None:
    tutorial = tutorial_steps((ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8"))
    commands = " ".join(step.script for step in tutorial)
    for command in ("init", "ingest", "watch", "history", "diff", "show", "categories", "updated", "verify"):
        assert f"ledger {command}" in commands
    assert any(step.background for step in tutorial) and any(step.stops_background for step in tutorial)
    sh_blocks = [block for block in blocks((ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")) if block.kind == "sh"]
    assert len(tutorial) == len(sh_blocks), "every tutorial command shows its output"


NOT_OUTPUT = {
    ("architecture.md", "                    cli/"),
    ("drafts-and-watching.md", "Video: In Syria, Deir ez-Zor civilians celebrate"),
}
"""The text blocks that show no output, by page and how they start: the layers' diagram and an
annotated draft (its `<-` notes are not part of the file)."""


def test_every_output_shown_is_run() -> None:
    # A text block is output that the tests run: the output of the ```sh or ```python block before
    # it, or a transcript; else it is one of the few blocks that show no output.
    illustrations: set[tuple[str, str]] = set()
    for page in PAGES:
        found = blocks(page.read_text(encoding="utf-8"))
        for number, block in enumerate(found):
            before = found[number - 1] if number else None
            if block.kind in ("", "text") and not is_transcript(block) and not (before is not None and before.kind in ("sh", "python")):
                known = {start for name, start in NOT_OUTPUT if name == page.name and block.body.startswith(start)}
                assert known, f"{page.name}:{block.line}: a text block that is neither run nor known to show no output"
                illustrations |= {(page.name, start) for start in known}
            if block.kind == "python" and "print(" in block.body:
                following = found[number + 1] if number + 1 < len(found) else None
                assert following is not None and following.kind == "text", f"{page.name}:{block.line}: a python block that prints shows its output"
    assert illustrations == NOT_OUTPUT, "NOT_OUTPUT names only blocks that are there"


def test_the_readme_keeps_its_promises() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= 12288, "the README stays short: details go to docs/"
    # .ci/run copies the second quick-start command verbatim: neither may change alone.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()[-1]
    quick = blocks(text[text.index("## Quick start") :])[0].body.splitlines()
    assert quick == [
        "# 1. set up, then ingest the bundled example drafts (three revisions of a story) and show what changed",
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && PATH=\"$PWD/.venv/bin:$PATH\" sh examples/demo.sh",
        "",
        "# 2. set up, then run the tests",
        ci,
    ]
    kinds = {step.kind for step in steps(text)}
    assert kinds == {"sh", "python"}, "the README shows a CLI tour and a Python tour, both run"


def test_normalise_keeps_what_the_pages_fix() -> None:
    # The examples' --at times and everything but run times, clocks, hashes and ids must be compared.
    recorded = "2024-03-05 08:10:00 +0000  Ana Ruiz\n21:08:35 updated x v3"
    assert normalise(recorded) == recorded.replace("21:08:35", "<clock>")
    assert normalise("2026-11-27 21:08:35 +0000 " + "ab" * 32) == "<now> <hash>"
    assert normalise("2024-03-05 08:10:00 +0000") != normalise("2024-03-05 08:11:00 +0000")
    assert normalise('"id":"019acb2e-5c3f-7a21-9d4e-0123456789ab"') == '"id":"<uuid>"'
    assert matches("a\nb\nc\nd", "a\n...\nd") and not matches("a\nb", "a\n...\nc")


@pytest.mark.slow
def test_demo_script_runs_to_completion() -> None:
    done = subprocess.run(["sh", str(ROOT / "examples" / "demo.sh")], env=environment(), check=False, capture_output=True, encoding="utf-8", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "+ ledger verify\nok: 9 events, 3 articles, head position 9\n" in done.stdout
    store = re.search(r"^initialised store (.+)$", done.stdout, re.MULTILINE)
    assert store is not None, done.stdout
    assert not Path(store.group(1)).exists(), "the demo removes its temporary store"
