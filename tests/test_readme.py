"""The README's tutorial, its Python API tour and the demo script, run for real so that none of
them can go stale.

Every ```sh block of the README's "Tutorial" section is run as a shell script (the installed
`ledger` first on PATH) in a temporary folder holding a copy of `examples/`, one block after the
other as a reader would; the ```text block that follows it is its expected output (no text block:
no output). What legitimately differs between runs is normalised on both sides by the named
patterns below; anything else that differs (a renamed option, a changed line, a new column) fails.

The watch step is run the way a reader would run it in one terminal: a block whose command ends
with `&` starts that command in the background (its text block is what it prints on start); the
blocks after it show their own output followed by what the background command printed meanwhile;
a `kill %1` block stops it with SIGTERM (its text block is what it prints on the way out).

The Python API tour (the ```python block of "Python API") runs as one script in such a folder;
the ```text block after it is what it prints.
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
TUTORIAL_HEADING = "## Tutorial"
API_HEADING = "## Python API"

RECORDED_IN = "/tmp/ledger"
"""The folder the README's tutorial output was recorded in (it shows in absolute paths)."""

RECORDED_ENV = {"TZ": "UTC", "COLUMNS": "100", "NO_COLOR": "1"}
"""The environment the README's output was recorded with: local times in UTC, tables 100 wide."""

NOW_TIME = re.compile(r"\b(?!2024-)\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4}|Z)?")
"""A time of the run itself (a version ingested without `--at`): the examples' own times are all
in 2024, given with `--at`, and must come out exactly as recorded."""

CLOCK = re.compile(r"^\d\d:\d\d:\d\d ", re.MULTILINE)
"""The local clock time at the start of each line `ledger watch` prints."""

HASH = re.compile(r"\b[0-9a-f]{64}\b")
"""A SHA-256 hash (the head hash depends on recording times)."""

WATCH_TIMEOUT = 20.0
"""Seconds to wait for the background watcher to print what the README shows (it settles a
draft about 0.5 s after it is complete; the margin is for a loaded machine)."""


@dataclass
class Step:
    """One ```sh block of the tutorial and the output the README shows for it."""

    script: str
    expected: str
    line: int

    @property
    def background(self) -> bool:
        """Whether the block starts a command in the background (`... &`)."""
        return self.script.rstrip().endswith("&")

    @property
    def stops_background(self) -> bool:
        """Whether the block stops the background command (`kill %1`)."""
        return self.script.strip() == "kill %1"


def tutorial_steps(text: str) -> list[Step]:
    """The tutorial's ```sh blocks, each with the ```text block right after it (if any)."""
    lines = text.splitlines()
    start = lines.index(TUTORIAL_HEADING)
    blocks: list[tuple[str, str, int]] = []
    index = start + 1
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            break
        if line.startswith("```"):
            end = lines.index("```", index + 1)
            blocks.append((line[3:].strip(), "\n".join(lines[index + 1 : end]), index + 1))
            index = end
        index += 1
    steps: list[Step] = []
    for number, (kind, body, at) in enumerate(blocks):
        if kind != "sh":
            continue
        following = blocks[number + 1] if number + 1 < len(blocks) else None
        expected = following[1] if following is not None and following[0] == "text" else ""
        steps.append(Step(body, expected, at))
    return steps


def normalise(output: str, folder: Path | None = None) -> str:
    """Output with what varies between runs replaced by placeholders, lines right-stripped."""
    if folder is not None:
        for variant in {str(folder.resolve()), str(folder)}:
            output = output.replace(variant, RECORDED_IN)
    output = HASH.sub("<hash>", NOW_TIME.sub("<now>", CLOCK.sub("<clock> ", output)))
    return "\n".join(line.rstrip() for line in output.splitlines()).strip("\n")


def environment() -> dict[str, str]:
    """The environment of the tutorial's commands: the installed `ledger` first on PATH, the
    default store (`./ledger-data`), and what the README's output was recorded with."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(RECORDED_ENV)
    return env


class Background:
    """A command started in the background, its stdout and stderr collected as they come."""

    def __init__(self, script: str, cwd: Path, env: dict[str, str]) -> None:
        command = script.rstrip().removesuffix("&")
        # `exec`, so that the SIGTERM of `kill %1` reaches the command itself.
        self.process = subprocess.Popen(
            ["sh", "-c", "exec " + command], cwd=cwd, env=env,
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
    """How many lines the README shows for a step."""
    return len(step.expected.splitlines()) if step.expected.strip() else 0


def run_step(step: Step, cwd: Path, env: dict[str, str], job: Background | None) -> tuple[str, Background | None]:
    """Run one step as the reader would; returns its output and the background job, if any."""
    if step.background:
        job = Background(step.script, cwd, env)
        return job.new_output(expected_lines(step)), job
    if step.stops_background:
        assert job is not None, f"README.md:{step.line}: `kill %1` with no background command"
        return job.stop(), None
    done = subprocess.run(["sh", "-ec", step.script], cwd=cwd, env=env, capture_output=True, encoding="utf-8", timeout=60)
    assert done.returncode == 0, f"README.md:{step.line}: exit code {done.returncode}\n{step.script}\n{done.stdout}{done.stderr}"
    output = done.stdout + done.stderr
    if job is not None:
        output += job.new_output(expected_lines(step) - len(output.splitlines()))
    return output, job


def test_the_tutorial_has_the_commands_it_promises() -> None:
    steps = tutorial_steps(README.read_text(encoding="utf-8"))
    commands = " ".join(step.script for step in steps)
    for command in ("init", "ingest", "watch", "history", "diff", "show", "categories", "updated", "verify"):
        assert f"ledger {command}" in commands
    assert any(step.background for step in steps) and any(step.stops_background for step in steps)
    assert all(step.expected.strip() for step in steps), "every tutorial command shows its output"


@pytest.mark.slow
def test_the_tutorial_runs_as_shown(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = environment()
    job: Background | None = None
    try:
        for step in tutorial_steps(README.read_text(encoding="utf-8")):
            output, job = run_step(step, tmp_path, env, job)
            assert normalise(output, tmp_path) == normalise(step.expected), f"README.md:{step.line}: {step.script}\nprinted:\n{output}"
    finally:
        if job is not None:
            job.kill()
    assert job is None, "the tutorial leaves a command running in the background"


def test_normalise_keeps_what_the_tutorial_fixes() -> None:
    # The examples' --at times and everything but run times, clocks and hashes must be compared.
    recorded = "2024-03-05 08:10:00 +0000  Ana Ruiz\n21:08:35 updated x v3"
    assert normalise(recorded) == recorded.replace("21:08:35", "<clock>")
    assert normalise("2026-11-27 21:08:35 +0000 " + "ab" * 32) == "<now> <hash>"
    assert normalise("2024-03-05 08:10:00 +0000") != normalise("2024-03-05 08:11:00 +0000")


def api_tour(text: str) -> tuple[str, str]:
    """The ```python block of the README's "Python API" section and the ```text block after it."""
    section = text[text.index(API_HEADING + "\n") :]
    found = re.search(r"^```python\n(.*?)^```\n\n```text\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert found is not None, "the Python API section has a python block followed by its output"
    return found.group(1), found.group(2)


@pytest.mark.slow
def test_the_python_api_tour_runs_as_shown(tmp_path: Path) -> None:
    code, expected = api_tour(README.read_text(encoding="utf-8"))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(), capture_output=True, encoding="utf-8", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert normalise(done.stdout, tmp_path) == normalise(expected), f"the tour printed:\n{done.stdout}"


@pytest.mark.slow
def test_demo_script_runs_to_completion() -> None:
    done = subprocess.run(["sh", str(ROOT / "examples" / "demo.sh")], env=environment(), capture_output=True, encoding="utf-8", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "+ ledger verify\nok: 9 events, 3 articles, head position 9\n" in done.stdout
    store = re.search(r"^initialised store (.+)$", done.stdout, re.MULTILINE)
    assert store is not None, done.stdout
    assert not Path(store.group(1)).exists(), "the demo removes its temporary store"
