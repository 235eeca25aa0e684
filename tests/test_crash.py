"""Crash safety: a writer process killed with SIGKILL at random moments of large appends.

Each round starts a writer that appends large multi-article appends to one store and reports on
stdout when an append starts and after it returned. The test kills it at a random moment after a
random append started (during preparation, the write, or the fsync), then checks that the store
opens, verifies, holds every append the writer saw return, and shows no part of any other.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ledger
from ledger import codec
from ledger.store import LOG_FILE

ROUNDS = 24
EVENTS_PER_APPEND = 40
BODY_BYTES = 24_000

WRITER = textwrap.dedent(
    """
    import json, sys
    import ledger

    store, round_no, events, body_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    out = sys.stdout
    with ledger.open(store) as led:
        for k in range(1000):
            batch = [
                {"type": "ArticleCreated", "article": f"r{round_no}-k{k}-{i}", "id": f"r{round_no}-k{k}-e{i}",
                 "data": {"title": f"Story {i}", "body": (f"append {k} event {i} " * body_bytes)[:body_bytes]}}
                for i in range(events)
            ]
            batch.append({"type": "ArticleEdited", "article": "shared", "id": f"r{round_no}-k{k}-shared",
                          "data": {"body": f"round {round_no} append {k}"}})
            out.write(f"start {k}\\n")
            out.flush()
            result = led.append(batch)
            out.write("done " + json.dumps({"k": k, "first": result.first_position, "last": result.last_position,
                                             "ids": result.event_ids}) + "\\n")
            out.flush()
    """
)


def _appends_in_log(store_dir: Path) -> list[list[dict[str, object]]]:
    """The log's records grouped into appends (each closed by an end marker)."""
    groups: list[list[dict[str, object]]] = [[]]
    for line in (store_dir / LOG_FILE).read_bytes().splitlines():
        record = codec.decode(line)
        groups[-1].append(record)
        if record.get("end"):
            groups.append([])
    assert groups[-1] == [], "records after the last end marker survived recovery"
    return groups[:-1]


@pytest.mark.slow
def test_sigkill_during_large_appends_loses_only_the_unfinished_append(tmp_path: Path) -> None:
    store_dir = ledger.init(tmp_path / "store")
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "shared", "data": {"title": "Shared", "body": "start"}}])
    rng = random.Random(20170905)
    returned: dict[str, dict[str, object]] = {}
    torn_rounds = 0
    must_have_returned = 0

    def record_returned(line: bytes) -> None:
        if line.startswith(b"done "):
            report = json.loads(line[5:])
            returned[report["ids"][0]] = report

    for round_no in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store_dir), str(round_no), str(EVENTS_PER_APPEND), str(BODY_BYTES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None
        target = rng.randint(0, 2)
        must_have_returned += target  # "start t" is written after appends 0..t-1 returned
        try:
            while True:
                line = child.stdout.readline()
                assert line, f"writer exited early: {child.stderr.read().decode() if child.stderr else ''}"
                record_returned(line)  # appends 0..target-1 returned before "start target"
                if line.startswith(f"start {target}\n".encode()):
                    break
            time.sleep(rng.uniform(0, 0.08))
        finally:
            child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, errors.decode()
        for line in rest.splitlines():
            record_returned(line)

        # Before recovery: what verify sees without cutting anything.
        with ledger.open(store_dir, recover=False) as led:
            raw = led.verify()
            assert raw.ok, raw.problems
            torn_rounds += raw.torn_tail_bytes > 0
        with ledger.open(store_dir) as led:
            report = led.verify()
            assert report.ok and report.torn_tail_bytes == 0, report
        groups = _appends_in_log(store_dir)
        by_first_id = {str(group[0]["id"]): group for group in groups}
        for first_id, seen in returned.items():
            group = by_first_id.get(first_id)
            assert group is not None, f"append {first_id} returned but is not in the log"
            assert [g["id"] for g in group] == seen["ids"]
            assert (group[0]["pos"], group[-1]["pos"]) == (seen["first"], seen["last"])
        for group in groups[1:]:
            # Every visible append is whole: all its events, the shared edit last.
            prefix = str(group[0]["id"]).rsplit("-e", 1)[0]
            assert [g["id"] for g in group] == [f"{prefix}-e{i}" for i in range(EVENTS_PER_APPEND)] + [f"{prefix}-shared"]
        with ledger.open(store_dir) as led:
            # The shared article's versions are gap-free and its state folds: one per append.
            assert led.article("shared").version == len(groups)
    assert len(returned) >= must_have_returned
    print(f"{ROUNDS} rounds, {len(returned)} appends returned, {torn_rounds} rounds left a torn tail")
