"""Group commit: threads of one process appending at once share writes and syncs, yet each
append is checked on its own, gets its own result and is in the log when it returns."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import ledger
from ledger.errors import DuplicateEventError, VersionConflictError
from ledger.store import LOG_FILE
from tests.helpers import DEADLINE, created, edited

THREADS = 8
PER_THREAD = 25

# A separate process that reads the log file afresh for every position it is told, and answers
# whether the record is there with the id it was told: what another process sees of the file.
READER = textwrap.dedent(
    """
    import json, sys
    log = sys.argv[1]
    for line in sys.stdin:
        position, event_id = json.loads(line)
        # A read racing an append can see its new bytes as zeros for a moment (as ledger's
        # reads know: ledger/store/logfile.py): read again until no line holds one.
        data = b"\\0"
        while b"\\0" in data:
            with open(log, "rb") as f:
                data = f.read()
        records = [json.loads(raw) for raw in data.splitlines(keepends=True) if raw.endswith(b"\\n")]
        seen = position <= len(records) and records[position - 1]["id"] == event_id
        print("ok" if seen else f"missing {position} {event_id}", flush=True)
    """
)


def test_threads_appending_at_once_each_get_their_own_result_and_are_in_the_log_on_return(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        first = led.append([created("shared", body="v1")])
        reader = subprocess.Popen([sys.executable, "-c", READER, str(store_dir / LOG_FILE)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        talk = threading.Lock()
        results: dict[str, ledger.AppendResult] = {}
        refused: list[str] = []
        unseen: list[str] = []
        failures: list[BaseException] = []
        start = threading.Barrier(THREADS)

        def check_on_disk(result: ledger.AppendResult) -> None:
            with talk:
                assert reader.stdin is not None and reader.stdout is not None
                reader.stdin.write(json.dumps([result.last_position, result.event_ids[-1]]) + "\n")
                reader.stdin.flush()
                answer = reader.stdout.readline().strip()
            if answer != "ok":
                unseen.append(answer)

        def work(n: int) -> None:
            try:
                start.wait(timeout=DEADLINE)
                for i in range(PER_THREAD):
                    event_id = f"t{n}-{i}"
                    if i % 5 == 4:
                        # Stale on purpose: refused alone, while the others of its group go on.
                        try:
                            led.append([edited("shared", f"t{n} {i}", id=event_id, expected_version=0)])
                        except VersionConflictError:
                            refused.append(event_id)
                        continue
                    result = led.append([created(f"t{n}-a{i}", body=f"thread {n} append {i}", id=event_id)])
                    check_on_disk(result)
                    results[event_id] = result
                    if i % 7 == 3:
                        # A re-send of the same append: its original result, nothing recorded.
                        again = led.append([created(f"t{n}-a{i}", body=f"thread {n} append {i}", id=event_id)])
                        assert again.duplicate and again.first_position == result.first_position
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(DEADLINE)
        assert reader.stdin is not None
        reader.stdin.close()
        reader.wait(DEADLINE)
        assert not failures, failures
        assert not unseen, unseen
        assert len(refused) == THREADS * (PER_THREAD // 5)
        assert len(results) == THREADS * (PER_THREAD - PER_THREAD // 5)
        positions = sorted(result.first_position for result in results.values())
        assert positions == list(range(2, len(results) + 2))
        for event_id, result in results.items():
            assert result.event_ids == [event_id] and result.first_position == result.last_position
            assert list(result.versions.values()) == [1]
        assert led.verify().ok
        assert {event.id for event in led.events()} == {*results, *first.event_ids}
        assert led.current_version("shared") == 1


def test_an_id_given_twice_in_one_group_is_recorded_once(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        outcomes: list[object] = []
        start = threading.Barrier(THREADS)

        def work(n: int) -> None:
            start.wait(timeout=DEADLINE)
            try:
                outcomes.append(led.append([created("same", body="the same", id="one-id")]))
            except DuplicateEventError as exc:
                outcomes.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(DEADLINE)
        firsts = [o for o in outcomes if isinstance(o, ledger.AppendResult) and not o.duplicate]
        resent = [o for o in outcomes if isinstance(o, ledger.AppendResult) and o.duplicate]
        assert len(firsts) == 1 and len(resent) == THREADS - 1
        assert all(o.first_position == firsts[0].first_position for o in resent)
        assert [event.id for event in led.events()] == ["one-id"]


WRITER = textwrap.dedent(
    """
    import sys, threading
    import ledger

    store, threads, round_no = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = threading.Lock()
    with ledger.open(store) as led:
        def work(n):
            for i in range(100_000):
                result = led.append([{"type": "ArticleCreated", "article": f"r{round_no}-{n}-{i}", "id": f"r{round_no}-{n}-{i}",
                                      "data": {"title": "t", "body": "x" * 800}}])
                with out:
                    sys.stdout.write(f"{result.first_position} r{round_no}-{n}-{i}\\n")
                    sys.stdout.flush()
        workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    """
)


@pytest.mark.slow
def test_sigkill_during_group_commits_keeps_every_returned_append(store_dir: Path) -> None:
    for round_no in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store_dir), str(THREADS), str(round_no)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        returned: list[tuple[int, str]] = []
        deadline = time.monotonic() + DEADLINE
        while len(returned) < 200 * (round_no + 1) and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            position, event_id = line.split()
            returned.append((int(position), event_id))
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=DEADLINE)
        returned += [(int(p), e) for p, e in (line.split() for line in rest.splitlines() if line.count(" ") == 1)]
        with ledger.open(store_dir) as led:
            assert led.verify().ok
            ids = {event.position: event.id for event in led.events()}
        assert returned, "the writer reported no append"
        for position, event_id in returned:
            assert ids.get(position) == event_id
