"""Hostile disks: a full disk and a read-only store, made for real with mounts (a small tmpfs to
fill, a read-only bind mount), as users meet them. The tests run as root here and in CI, where
chmod stops nothing; where mounting is refused they are skipped, saying why.

The log is the truth and everything else in the store folder is a cache: a cache that cannot be
written must never stop a read nor turn into a traceback, and a write that cannot be made is one
line, exit 6, with the log exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import ledger
from tests.conftest import run_ledger

# Every test here runs the CLI as processes on a prepared store (the template fixture too).
pytestmark = pytest.mark.slow

EXIT_STORE = 6
# Reads through the index (show, history), the whole log (log) and the views (categories): one
# process each, so few of them (a spawn costs a second on a busy CI machine).
READS = (("show", "a1"), ("history", "a1"), ("log",), ("categories",))


def _mount(*args: str) -> None:
    """Run `mount`, skipping the test (visibly) where this machine does not allow it."""
    done = subprocess.run(["mount", *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root or CAP_SYS_ADMIN): mount {' '.join(args)}: {done.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs to fill."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    try:
        yield disk
    finally:
        _umount(disk)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source, view): `view` shows `source` through a read-only bind mount; call `mount_ro()`
    through the `ro` fixture below once `source` holds the store."""
    source = tmp_path / "source"
    view = tmp_path / "view"
    source.mkdir()
    view.mkdir()
    yield source, view
    _umount(view)


def _mount_read_only(source: Path, view: Path) -> None:
    _mount("--bind", str(source), str(view))
    _mount("-o", "remount,bind,ro", str(view))
    probe = view / "probe"
    try:
        probe.touch()
    except OSError:
        return
    probe.unlink()
    pytest.skip("a read-only bind mount still takes writes here")


def _fill(disk: Path, leave: int = 0) -> None:
    """Fill `disk` with zeros until at most `leave` bytes are free."""
    stats = os.statvfs(disk)
    room = stats.f_bavail * stats.f_frsize - leave
    block = b"\0" * 65536
    with open(disk / "filler", "ab", buffering=0) as filler:
        try:
            while room > 0:
                room -= filler.write(block[: min(len(block), room)])
            if leave == 0:
                while True:
                    filler.write(block[:4096])
        except OSError:
            pass


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, ...], bytes]]:
    """A store with two articles (a1 at version 2), its index and views caught up by the reads
    whose answers come with it; made once, copied by each test (`_store_in`)."""
    store = ledger.init(tmp_path_factory.mktemp("template") / "store")
    with ledger.open(store) as led:
        led.append([{"type": "ArticleCreated", "article": "a1", "occurred_at": "2024-01-01T00:00:00Z",
                     "data": {"title": "First", "body": "one\ntwo\n", "categories": ["news"]}}])
        led.append([{"type": "ArticleCreated", "article": "a2", "occurred_at": "2024-01-01T01:00:00Z",
                     "data": {"title": "Second", "body": "text\n"}}])
        led.append([{"type": "ArticleEdited", "article": "a1", "occurred_at": "2024-01-02T00:00:00Z",
                     "data": {"title": "First, edited", "patch": [[4, 7, "three"]]}}])
    return store, _answers(store)


def _store_in(root: Path, template: tuple[Path, dict[tuple[str, ...], bytes]]) -> Path:
    """A copy of the template store in `root`."""
    return Path(shutil.copytree(template[0], root / "store"))


def _answers(store: Path) -> dict[tuple[str, ...], bytes]:
    """The output of every read, checked to be a success without a traceback."""
    out: dict[tuple[str, ...], bytes] = {}
    for command in READS:
        done = run_ledger(*command, store=store)
        assert done.returncode == 0, (command, done.stderr)
        assert b"Traceback" not in done.stderr, (command, done.stderr)
        out[command] = done.stdout
    return out


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    """Each file's mtime and content digest; SQLite's transient -wal/-shm files left out."""
    return {
        path.name: (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def _one_line_error(done: subprocess.CompletedProcess[bytes], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.decode().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    assert b"Traceback" not in done.stderr
    return lines[0]


def _big_event(article: str) -> bytes:
    # Larger than what is left in the log's last page: tmpfs takes a short append into it.
    return json.dumps({"type": "ArticleCreated", "article": article, "data": {"title": "Big", "body": "x" * 20000}}).encode()


# --- reads write nothing ------------------------------------------------------------------------


Template = tuple[Path, dict[tuple[str, ...], bytes]]


def test_reads_of_an_up_to_date_store_write_nothing(tmp_path: Path, template: Template) -> None:
    # Every read rewrote views.sqlite (its checkpoint) even when nothing had changed.
    store = _store_in(tmp_path, template)
    before = _files(store)
    assert _answers(store) == template[1]
    assert _files(store) == before


# --- a full disk --------------------------------------------------------------------------------


def test_reads_answer_on_a_full_disk(tiny_disk: Path, template: Template) -> None:
    store = _store_in(tiny_disk, template)
    _fill(tiny_disk)
    assert _answers(store) == template[1]


def test_reads_answer_on_a_full_disk_without_caches_and_what_it_leaves_is_rebuilt(tiny_disk: Path, template: Template) -> None:
    store = _store_in(tiny_disk, template)
    for name in os.listdir(store):
        if name.startswith(("index.sqlite", "views.sqlite")):
            (store / name).unlink()
    _fill(tiny_disk)
    assert _answers(store) == template[1]
    (tiny_disk / "filler").unlink()
    # What the full disk left behind (an index of 0 bytes, a -shm) is an empty cache: rebuilt.
    assert _answers(store) == template[1]
    assert (store / "index.sqlite").stat().st_size > 0
    assert (store / "views.sqlite").stat().st_size > 0


def test_an_append_on_a_full_disk_is_one_line_exit_6_and_leaves_the_log_as_it_was(tiny_disk: Path, template: Template) -> None:
    store = _store_in(tiny_disk, template)
    log_before = (store / "events.jsonl").read_bytes()
    _fill(tiny_disk)
    message = _one_line_error(run_ledger("append", store=store, input=_big_event("a3")), EXIT_STORE)
    assert "events.jsonl" in message and "No space left" in message
    assert (store / "events.jsonl").read_bytes() == log_before
    (tiny_disk / "filler").unlink()
    done = run_ledger("verify", store=store)
    assert done.returncode == 0, done.stderr


def test_an_ingest_on_a_full_disk_is_one_line_exit_6_and_leaves_the_log_as_it_was(
    tiny_disk: Path, tmp_path: Path, template: Template
) -> None:
    store = _store_in(tiny_disk, template)
    draft = tmp_path / "a4.txt"
    draft.write_text("A long draft\n\n" + "A paragraph of the story.\n" * 1000)
    log_before = (store / "events.jsonl").read_bytes()
    _fill(tiny_disk)
    message = _one_line_error(run_ledger("ingest", str(draft), store=store), EXIT_STORE)
    assert "No space left" in message
    assert (store / "events.jsonl").read_bytes() == log_before


def test_an_append_that_fits_on_a_nearly_full_disk_is_recorded(tiny_disk: Path, template: Template) -> None:
    store = _store_in(tiny_disk, template)
    for name in os.listdir(store):
        if name.startswith("views.sqlite"):
            (store / name).unlink()
    _fill(tiny_disk, leave=16 * 1024)
    # The index and views may not fit: they are caches, so the append still goes to the log.
    event = {"type": "ArticleCreated", "article": "a5", "data": {"title": "Small"}}
    done = run_ledger("append", store=store, input=json.dumps(event).encode())
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    shown = run_ledger("show", "a5", store=store)
    assert shown.returncode == 0, shown.stderr
    assert b"Small" in shown.stdout


# --- a read-only store -------------------------------------------------------------------------


def test_reads_answer_on_a_read_only_store_and_change_nothing(read_only: tuple[Path, Path], template: Template) -> None:
    source, view = read_only
    store = _store_in(source, template)
    before = _files(store)
    _mount_read_only(source, view)
    assert _answers(view / "store") == template[1]
    assert _files(store) == before


def test_reads_answer_on_a_read_only_store_whose_caches_are_stale_or_missing(
    read_only: tuple[Path, Path], template: Template
) -> None:
    source, view = read_only
    store = _store_in(source, template)
    # views.sqlite one append behind the log and no index: both are made in memory.
    with ledger.open(store) as led:
        led.append([{"type": "ArticleEdited", "article": "a2", "occurred_at": "2024-01-03T00:00:00Z",
                     "data": {"title": "Second, edited"}}])
    for name in os.listdir(store):
        if name.startswith("index.sqlite"):
            (store / name).unlink()
    before = _files(store)
    _mount_read_only(source, view)
    answers = _answers(view / "store")
    assert answers[("show", "a1")] == template[1][("show", "a1")]
    assert answers[("log",)].startswith(template[1][("log",)].rstrip(b"\n"))
    assert b"ArticleEdited" in answers[("log",)].splitlines()[-1]
    assert _files(store) == before


def test_reads_answer_on_a_read_only_store_with_a_torn_tail(read_only: tuple[Path, Path], template: Template) -> None:
    source, view = read_only
    store = _store_in(source, template)
    with open(store / "events.jsonl", "ab") as log:
        log.write(b'{"pos":4,"id":"half an app')
    _mount_read_only(source, view)
    # Opening a store cuts a torn tail under the writers' lock: here it can take neither.
    assert _answers(view / "store") == template[1]


def test_an_append_on_a_read_only_store_is_one_line_exit_6(read_only: tuple[Path, Path], template: Template) -> None:
    source, view = read_only
    store = _store_in(source, template)
    log_before = (store / "events.jsonl").read_bytes()
    _mount_read_only(source, view)
    event = {"type": "ArticleCreated", "article": "a3", "data": {"title": "T"}}
    message = _one_line_error(run_ledger("append", store=view / "store", input=json.dumps(event).encode()), EXIT_STORE)
    assert "Read-only file system" in message
    assert (store / "events.jsonl").read_bytes() == log_before
