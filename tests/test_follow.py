"""`Ledger.follow` and `ledger log --follow`: events as any process appends them."""

from __future__ import annotations

import json
import queue
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from ledger_cli.main import main

import ledger
from tests.conftest import run_ledger
from tests.helpers import created, edited

# How long a test waits for something that should happen at once before it calls it a hang.
# Only a guard against hanging forever: nothing is asserted about speed.
HANG = 30.0


class Pump:
    """Runs a follow generator in a thread until it has yielded `count` events, handing them
    over through a queue, so that a test waits for them without hanging forever. The thread
    ends with its last event, before the test closes the store."""

    def __init__(self, events: Iterator[ledger.RecordedEvent], count: int) -> None:
        self.events = events
        self.count = count
        self.queue: queue.Queue[ledger.RecordedEvent] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for number, event in enumerate(self.events, 1):
            self.queue.put(event)
            if number == self.count:
                return

    def take(self) -> list[ledger.RecordedEvent]:
        got = [self.queue.get(timeout=HANG) for _ in range(self.count)]
        self.thread.join(timeout=HANG)
        return got


@pytest.mark.slow
def test_follow_yields_existing_then_appends_of_another_process(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a")])
        led.append([edited("a", "b2\n")])
        pump = Pump(led.follow(after=0, poll=0.02), 2)
        assert [(e.position, e.article, e.version) for e in pump.take()] == [(1, "a", 1), (2, "a", 2)]
        pump = Pump(led.follow(after=2, poll=0.02), 1)
        line = json.dumps(created("b", actor="ann", reason="new story")).encode()
        done = run_ledger("append", "-", store=store_dir, input=line)
        assert done.returncode == 0, done.stderr
        (event,) = pump.take()
        assert (event.position, event.article, event.type, event.actor, event.reason) == (3, "b", "ArticleCreated", "ann", "new story")


def test_follow_from_now_by_default_and_filters(store_dir: Path) -> None:
    with ledger.open(store_dir) as led, ledger.open(store_dir) as other:
        led.append([created("a"), created("b")])
        everything = led.follow(poll=0.02)
        only_b_edits = led.follow(poll=0.02, article="b", types=["ArticleEdited"])
        other.append([edited("a", "a2\n")])
        other.append([edited("b", "b2\n")])
        other.append([{"type": "CategoriesChanged", "article": "b", "data": {"added": ["x"]}}])
        other.append([edited("b", "b3\n")])
        assert [(e.position, e.article) for e in Pump(everything, 4).take()] == [(3, "a"), (4, "b"), (5, "b"), (6, "b")]
        assert [(e.position, e.version) for e in Pump(only_b_edits, 2).take()] == [(4, 2), (6, 4)]


def test_follow_reads_an_append_only_when_it_is_complete(store_dir: Path, tmp_path: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a")])
    # The bytes of a two-event append, made on a copy of the store: written to the real log in
    # two parts they are exactly what a reader sees while another process is mid-append.
    twin = tmp_path / "twin"
    shutil.copytree(store_dir, twin)
    before = (twin / "events.jsonl").stat().st_size
    with ledger.open(twin) as copy:
        copy.append([edited("a", "a2\n"), created("b")])
    new = (twin / "events.jsonl").read_bytes()[before:]
    first_line = new[: new.index(b"\n") + 1]
    with ledger.open(store_dir) as led:
        follower = led.follow(poll=0.02)
        with (store_dir / "events.jsonl").open("ab") as log:
            log.write(first_line + new[len(first_line) : len(first_line) + 40])
            log.flush()
            pump = Pump(follower, 2)
            with pytest.raises(queue.Empty):
                pump.queue.get(timeout=0.5)
            log.write(new[len(first_line) + 40 :])
        assert [(e.position, e.article, e.version) for e in pump.take()] == [(2, "a", 2), (3, "b", 1)]


def test_follow_stops_when_the_consumer_stops(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a"), created("b"), created("c")])
        follower = led.follow(after=0, poll=0.02)
        seen = []
        for event in follower:
            seen.append(event.article)
            if len(seen) == 2:
                break
        follower.close()
        assert seen == ["a", "b"]
        with pytest.raises(StopIteration):
            next(follower)


def test_log_follow_with_limit_prints_and_exits(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([created("a", actor="ann", reason="first")])
        led.append([edited("a", "b2\n")])
        when = led.article("a").updated_at
        created_at = led.article("a").created_at
    runner = CliRunner()
    result = runner.invoke(main, ["--store", str(store_dir), "log", "--follow", "--from", "1", "--limit", "2"])
    assert result.exit_code == 0, result.output
    from ledger_cli.output import local_time

    assert result.output == (
        f"     1  {local_time(created_at)}  a v1  ArticleCreated  ann  (first)\n"
        f"     2  {local_time(when)}  a v2  ArticleEdited\n"
    )
    result = runner.invoke(main, ["--store", str(store_dir), "log", "-f", "--from", "2", "-n", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert (record["position"], record["type"], record["version"]) == (2, "ArticleEdited", 2)


def test_log_follow_of_an_unknown_article_exits_4(store_dir: Path) -> None:
    result = CliRunner().invoke(main, ["--store", str(store_dir), "log", "--follow", "--article", "nope"])
    assert result.exit_code == 4
    assert "article 'nope' is not in the log" in result.output
