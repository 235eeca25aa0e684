"""Several processes on one store: writers serialised by the lock, readers that never skip.

Real processes: two writers append 1,000 events each at once (one event per append, fsync on,
some to a shared article so their versions interleave) while a reader follows the log with
`events(after=last)`; two processes send the same appends with the same ids at once; and a
process holding the lock makes `ledger append` time out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest

import ledger
from ledger.store import LOG_FILE
from tests.conftest import run_ledger

PER_WRITER = 1000

WRITER = textwrap.dedent(
    """
    import sys
    import ledger

    store, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with ledger.open(store) as led:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()  # start together
        for n in range(count):
            article = "shared" if n % 5 == 0 else f"{name}-{n % 7}"
            if led.store.article_version(article) == 0:
                event = {"type": "ArticleCreated", "article": article, "data": {"title": article}}
            else:
                event = {"type": "ArticleEdited", "article": article, "data": {"body": f"{name} {n}"}}
            led.append([{**event, "id": f"{name}-{n}"}])
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    import ledger

    store, total, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seen = []
    last = 0
    deadline = time.monotonic() + 120
    with ledger.open(store) as led:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        while last < total and time.monotonic() < deadline:
            for event in led.events(after=last):
                seen.append(event.position)
                last = event.position
    with open(out, "w") as f:
        f.write(" ".join(map(str, seen)))
    """
)


@pytest.mark.slow
def test_two_writers_and_a_following_reader(tmp_path: Path) -> None:
    store_dir = ledger.init(tmp_path / "store")
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "shared", "data": {"title": "Shared"}}])
    total = 2 * PER_WRITER + 1
    seen_file = tmp_path / "seen.txt"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store_dir), str(total), str(seen_file)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store_dir), name, str(PER_WRITER)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in ("w1", "w2")
    ]
    for process in (reader, *writers):
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        writer.stdin.flush()
    for process in (*writers, reader):
        _, errors = process.communicate(timeout=240)
        assert process.returncode == 0, errors.decode()

    assert seen_file.read_text().split() == [str(p) for p in range(1, total + 1)]
    with ledger.open(store_dir) as led:
        assert led.verify().ok
        events = list(led.events())
    assert [e.position for e in events] == list(range(1, total + 1))
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event.article].append(event.version)
    for article, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), article
    ids = [e.id for e in events[1:]]
    assert sorted(ids) == sorted(f"{name}-{n}" for name in ("w1", "w2") for n in range(PER_WRITER))
    # Each writer's events are in its own order; the shared article interleaves both writers.
    for name in ("w1", "w2"):
        mine = [int(eid.split("-")[1]) for eid in ids if eid.startswith(name + "-")]
        assert mine == sorted(mine)
    assert len(versions["shared"]) == 2 * PER_WRITER // 5 + 1
    assert {e.id.split("-")[0] for e in events if e.article == "shared" and e.version > 1} == {"w1", "w2"}


HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    sys.stdout.write("locked\\n")
    sys.stdout.flush()
    time.sleep(60)
    """
)


@pytest.mark.slow
def test_a_held_lock_makes_append_fail_with_exit_7_and_change_nothing(store_dir: Path) -> None:
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A"}}])
    before = (store_dir / LOG_FILE).read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_dir / LOG_FILE)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        line = b'{"type": "ArticleCreated", "article": "b", "data": {"title": "B"}}\n'
        started = time.monotonic()
        result = run_ledger("--lock-timeout", "0.3", "append", "-", store=store_dir, input=line)
        waited = time.monotonic() - started
        assert result.returncode == 7, result.stderr
        stderr = result.stderr.decode()
        assert stderr.count("\n") == 1 and "locked by another writer for more than 0.3s" in stderr
        assert str(store_dir) in stderr and "Traceback" not in stderr
        assert waited >= 0.3  # it did wait for the lock before giving up
        assert (store_dir / LOG_FILE).read_bytes() == before
        with pytest.raises(ledger.StoreLockedError), ledger.open(store_dir, lock_timeout=0.1) as led:
            led.append([{"type": "ArticleCreated", "article": "b", "data": {"title": "B"}}])
        # Reading needs no lock.
        assert run_ledger("log", store=store_dir).returncode == 0
    finally:
        holder.kill()
        holder.wait()
    assert (store_dir / LOG_FILE).read_bytes() == before
    assert run_ledger("--lock-timeout", "0.3", "append", "-", store=store_dir, input=line).returncode == 0


RESENDER = textwrap.dedent(
    """
    import json, sys
    import ledger

    store, count = sys.argv[1], int(sys.argv[2])
    with ledger.open(store) as led:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()
        for n in range(count):
            article = f"story-{n % 10}"
            kind = "ArticleCreated" if n < 10 else "ArticleEdited"
            data = {"title": article} if n < 10 else {"body": f"text {n}"}
            result = led.append([{"type": kind, "article": article, "id": f"dup-{n}", "data": data}])
            sys.stdout.write(json.dumps([n, result.first_position, result.versions[article], result.duplicate]) + "\\n")
    """
)


@pytest.mark.slow
def test_two_processes_sending_the_same_ids_record_each_once(store_dir: Path) -> None:
    count = 150
    senders = [
        subprocess.Popen([sys.executable, "-c", RESENDER, str(store_dir), str(count)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for sender in senders:
        assert sender.stdout is not None and sender.stdout.readline() == b"ready\n"
    for sender in senders:
        assert sender.stdin is not None
        sender.stdin.write(b"go\n")
        sender.stdin.flush()
    outputs = []
    for sender in senders:
        out, errors = sender.communicate(timeout=120)
        assert sender.returncode == 0, errors.decode()
        outputs.append([json.loads(line) for line in out.splitlines()])
    one, two = outputs
    # Both saw the same position and version for every append; exactly one of them recorded it.
    assert [row[:3] for row in one] == [row[:3] for row in two]
    assert all(a[3] != b[3] for a, b in zip(one, two, strict=False))
    with ledger.open(store_dir) as led:
        events = list(led.events())
        assert led.verify().ok
    assert [e.id for e in events] == [f"dup-{n}" for n in range(count)]
    assert [e.position for e in events] == [row[1] for row in one] == list(range(1, count + 1))


def _append_in_another_process(store: Path, article: str) -> None:
    done = run_ledger("append", "-", store=store, input=json.dumps({"type": "ArticleEdited", "article": article, "data": {"body": f"at {time.time()}"}}).encode())
    assert done.returncode == 0, done.stderr


def test_verify_while_another_process_appends_and_indexes_is_ok(store_dir: Path) -> None:
    # The trial: verify read the log up to its size at the start, then asked the index, which
    # another process had moved past that size meanwhile: "truncated after the fact" (exit 8).
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x"}}])
        led.head()

        def append_when_read(done: int, total: int) -> None:
            if done == total:  # the log is read: its index is asked next
                _append_in_another_process(store_dir, "a")

        report = led.verify(progress=append_when_read)
    assert (report.ok, report.events, report.problems) == (True, 1, []), report
    assert run_ledger("verify", store=store_dir).stdout.startswith(b"ok: 2 events")


def test_verify_while_another_process_appends_between_the_logs_size_and_the_index(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same, one step later: the append lands after verify took the log's size and before it
    # read the index.
    import ledger.store.file as file_store

    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x"}}])
        led.head()
        real = file_store.committed_but_missing
        calls: list[int] = []

        def append_first(*args: object) -> str | None:
            if not calls:
                _append_in_another_process(store_dir, "a")
            calls.append(1)
            return real(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(file_store, "committed_but_missing", append_first)
        report = led.verify()
    assert (report.ok, report.problems, len(calls)) == (True, [], 2), report


def test_verify_takes_an_append_being_written_for_no_loss(store_dir: Path, tmp_path: Path) -> None:
    # An append half written when verify read the end, finished and folded into the views before
    # verify asked them: verify called it a loss the views had seen (exit 8).
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x"}}])
        led.categories()
    twin = tmp_path / "twin"
    shutil.copytree(store_dir, twin)
    before = (twin / LOG_FILE).stat().st_size
    with ledger.open(twin) as copy:
        copy.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "y"}}, {"type": "ArticleCreated", "article": "b", "data": {"title": "B"}}])
    append = (twin / LOG_FILE).read_bytes()[before:]
    half = append.index(b"\n") + 1
    with (store_dir / LOG_FILE).open("ab") as log:
        log.write(append[:half])
    with ledger.open(store_dir, recover=False) as led:

        def finish_when_read(done: int, total: int) -> None:
            if done == total:
                with (store_dir / LOG_FILE).open("ab") as log:
                    log.write(append[half:])
                assert run_ledger("categories", store=store_dir).returncode == 0  # the views fold it

        report = led.verify(progress=finish_when_read)
    assert (report.ok, report.torn_tail_bytes, report.problems) == (True, 0, []), report
    assert run_ledger("verify", store=store_dir).stdout.startswith(b"ok: 3 events")


@pytest.mark.parametrize("reappend", [True, False], ids=["reappend", "exact-only"])
def test_an_import_while_another_process_appends(store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reappend: bool) -> None:
    # The trial: an exact import chose its mode from a head read without the writers' lock; a
    # writer appending meanwhile made it fail with "does not continue this log" (exit 3), also
    # when --reappend was given.
    from ledger import transfer

    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x"}}])
    # What continues this store's log exactly: made on a copy of it, exported whole.
    twin = tmp_path / "twin"
    shutil.copytree(store_dir, twin)
    with ledger.open(twin) as copy:
        copy.append([{"type": "ArticleCreated", "article": "imported", "data": {"title": "I"}}])
        lines = list(copy.export())
    checked = transfer._ExactImport.finish

    def finish_while_another_appends(self: transfer._ExactImport) -> None:
        _append_in_another_process(store_dir, "a")
        checked(self)

    monkeypatch.setattr(transfer._ExactImport, "finish", finish_while_another_appends)
    with ledger.open(store_dir) as led:
        if reappend:
            result = led.import_records(lines, name="in.jsonl", reappend=True)
            assert (result.mode, result.imported) == ("reappended", 1)
            assert [(e.article, e.version) for e in led.events()] == [("a", 1), ("a", 2), ("imported", 1)]
        else:
            with pytest.raises(ledger.InvalidEventError, match=r"^in\.jsonl: another writer appended while the file was read \(head position 1, now 2\)"):
                led.import_records(lines, name="in.jsonl")
            assert [(e.article, e.version) for e in led.events()] == [("a", 1), ("a", 2)]
    assert run_ledger("verify", store=store_dir).returncode == 0


def test_an_exact_import_holds_other_writers_off_from_its_first_batch_to_its_last(store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import import_in_batches_trying_another_writer

    code, err = import_in_batches_trying_another_writer(store_dir, monkeypatch, tmp_path)
    assert code == 7 and "locked by another writer for more than 0.5s" in err, err
    assert run_ledger("verify", store=store_dir).stdout.startswith(b"ok: 4 events")
