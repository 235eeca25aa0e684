"""The watcher with real files, a real observer and real editors' save sequences, in temp folders.

Every wait is a polling loop on a condition with a generous deadline; no assertion depends on
how fast the machine is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ledger
from ledger import watcher as watcher_module
from ledger.draft_format import is_draft_name
from ledger.rendering import render
from ledger.watcher import Watcher, watch
from tests.conftest import run_ledger
from tests.helpers import Recorder, story, text_of, version, wait_for


@pytest.mark.slow
def test_new_and_changed_drafts_are_ingested(led: ledger.Ledger, drafts: Path, running) -> None:
    watcher, recorder = running
    assert watcher.mode == "inotify"
    (drafts / "a.txt").write_text(story(1))
    wait_for(lambda: text_of(led, "a") == story(1), "a v1")
    (drafts / "a.txt").write_text(story(1, " More."))
    wait_for(lambda: text_of(led, "a") == story(1, " More."), "a v2")
    assert version(led, "a") == 2
    # The watcher reports after the append is durable, so the log can be ahead of the report.
    wait_for(lambda: len(recorder.results) == 2, "both ingests to be reported")
    assert [(r.article, r.version, r.status) for r in recorder.results] == [("a", 1, "created"), ("a", 2, "updated")]
    assert recorder.results[1].summary == "edited body"


@pytest.mark.slow
def test_atomic_save_by_rename(led: ledger.Ledger, drafts: Path, running) -> None:
    (drafts / "a.txt").write_text(story(1))
    wait_for(lambda: version(led, "a") == 1, "a v1")
    temp = drafts / ".a.txt.tmp-1234"
    temp.write_text(story(1, " Saved atomically."))
    os.replace(temp, drafts / "a.txt")
    wait_for(lambda: text_of(led, "a") == story(1, " Saved atomically."), "a v2")
    assert version(led, "a") == 2
    assert set(led.store.articles()) == {"a"}


@pytest.mark.slow
def test_a_toml_draft_is_picked_up_like_any_other(led: ledger.Ledger, drafts: Path, running) -> None:
    _watcher, recorder = running
    yaml_text = "---\ntitle: Ferry timetable\ncategory: transport\n---\n\nFerries run hourly.\n"
    toml_text = '+++\n# after the move to Zola\ntitle = "Ferry timetable"\ntags = ["transport"]\n+++\n\nFerries run hourly.\n'
    (drafts / "ferry.md").write_text(yaml_text)
    wait_for(lambda: text_of(led, "ferry") == yaml_text, "the YAML version")
    (drafts / "ferry.md").write_text(toml_text)
    wait_for(lambda: text_of(led, "ferry") == toml_text, "the TOML version")
    assert version(led, "ferry") == 2
    wait_for(lambda: len(recorder.results) == 2, "both ingests to be reported")
    assert [(r.status, r.summary) for r in recorder.results] == [("created", "created"), ("updated", "draft layout")]
    assert recorder.errors == []


@pytest.mark.slow
def test_a_file_written_in_slow_chunks_is_never_ingested_half_written(led: ledger.Ledger, drafts: Path, running) -> None:
    full = "Slow story\n\n" + "".join(f"Paragraph {i}.\n\n" for i in range(6)) + "Categories: slow"
    with open(drafts / "slow.txt", "w", encoding="utf-8") as out:
        for start in range(0, len(full), 20):
            out.write(full[start : start + 20])
            out.flush()
            if start in (0, 40):
                time.sleep(1.2)  # a pause longer than the quiet period, with a draft that parses
    wait_for(lambda: text_of(led, "slow") == full, "the whole draft")
    # Had any part been ingested before, the whole draft would be version 2 or later.
    assert version(led, "slow") == 1


@pytest.mark.slow
def test_two_hundred_drafts_dropped_at_once(led: ledger.Ledger, drafts: Path, running) -> None:
    for n in range(200):
        (drafts / f"story-{n:03d}.txt").write_text(story(n))
    wait_for(lambda: len(led.store.articles()) == 200, "200 articles")
    wait_for(lambda: running[0].pending() == 0, "the watcher to settle")
    assert all(v == 1 for v in led.store.articles().values())
    assert all(render(led.article(f"story-{n:03d}")) == story(n) for n in range(200))
    assert led.head().position == 200


@pytest.mark.slow
def test_restart_records_each_change_once(led: ledger.Ledger, drafts: Path) -> None:
    (drafts / "a.txt").write_text(story(1))
    (drafts / "b.txt").write_text(story(2))
    with watch(led, drafts) as first:
        wait_for(lambda: version(led, "a") == 1 and version(led, "b") == 1, "a and b")
        wait_for(lambda: first.pending() == 0, "the watcher to settle")
    (drafts / "a.txt").write_text(story(1, " Changed while down."))
    (drafts / "c.txt").write_text(story(3))
    for _ in range(2):
        with watch(led, drafts) as again:
            wait_for(lambda: version(led, "a") == 2 and version(led, "c") == 1, "the changes made while down")
            wait_for(lambda: again.pending() == 0, "the watcher to settle")
    assert led.store.articles() == {"a": 2, "b": 1, "c": 1}
    assert text_of(led, "a") == story(1, " Changed while down.")
    assert led.head().position == 4


@pytest.mark.slow
def test_restart_does_not_undo_changes_made_through_the_log(led: ledger.Ledger, drafts: Path, store_dir: Path) -> None:
    (drafts / "a.txt").write_text(story(1))
    with watch(led, drafts):
        wait_for(lambda: version(led, "a") == 1, "a v1")
    led.append([{"type": "CategoriesChanged", "article": "a", "data": {"added": ["extra"]}}])
    with watch(led, drafts) as again:
        wait_for(lambda: again.pending() == 0, "the reconcile")
    assert version(led, "a") == 2  # the draft did not change: the hand edit stands


@pytest.mark.slow
def test_bad_drafts_beside_good_ones(led: ledger.Ledger, drafts: Path, running) -> None:
    watcher, recorder = running
    (drafts / "bytes.txt").write_bytes(b"Title\n\ncaf\xe9\n")
    (drafts / "empty.txt").write_bytes(b"")
    (drafts / "broken.md").write_text("---\ntitle: [unclosed\n---\nBody\n")
    (drafts / "good.txt").write_text(story(1))
    # (An empty file is no draft yet: no error, see test_an_empty_file_is_no_draft_yet_and_no_error.)
    wait_for(lambda: version(led, "good") == 1 and len(recorder.errors) == 2 and watcher.pending() == 0, "the good draft and two errors")
    messages = sorted(message for _, message in recorder.errors)
    assert messages[0].startswith(str(drafts / "broken.md") + ":2: broken front matter")
    assert messages[1] == f"{drafts / 'bytes.txt'}:3: not UTF-8 (byte 0xe9 at column 4); save the draft as UTF-8"
    assert set(led.store.articles()) == {"good"}
    assert watcher.running
    (drafts / "bytes.txt").write_text("Title\n\ncafé\n")
    wait_for(lambda: text_of(led, "bytes") == "Title\n\ncafé\n", "the fixed draft")


def test_a_draft_with_a_number_python_cannot_read_is_one_error_and_the_watcher_goes_on(
    led: ledger.Ledger, drafts: Path, running, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A front-matter integer of 5,000 digits raised ValueError: the watcher's thread died.
    watcher, recorder = running
    (drafts / "huge.md").write_text("---\ntitle: T\nn: " + "1" * 5000 + "\n---\n\nx\n")
    wait_for(lambda: len(recorder.errors) == 1 and watcher.pending() == 0, "the error")
    assert recorder.errors[0][1] == f"{drafts / 'huge.md'}:3: front matter `n`: integer too large"
    # Any other fault of ledger's set off by one draft is that draft's error, not the watcher's end.
    real = watcher_module.parse_draft

    def faulty(data: bytes, path: Path) -> ledger.Draft:
        if path.name == "trips.txt":
            raise KeyError("a fault")
        return real(data, path)

    monkeypatch.setattr(watcher_module, "parse_draft", faulty)
    (drafts / "trips.txt").write_text(story(1))
    (drafts / "good.txt").write_text(story(1))
    wait_for(lambda: version(led, "good") == 1 and len(recorder.errors) == 2 and watcher.pending() == 0, "the good draft and the fault")
    assert recorder.errors[1][1] == f"{drafts / 'trips.txt'}: not ingested: KeyError: 'a fault' (a fault of ledger's: please report it)"
    assert watcher.running


HOLD_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a+b") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_a_draft_is_retried_once_the_store_is_unlocked(store_dir: Path, drafts: Path) -> None:
    recorder = Recorder()
    with ledger.open(store_dir, lock_timeout=0.2) as led, watch(
        led, drafts, on_result=recorder.result, on_error=recorder.error, actor="desk", reason="from the folder"
    ):
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store_dir / "events.jsonl")], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
            (drafts / "a.txt").write_text(story(1))
            wait_for(lambda: recorder.errors, "the ingest to fail on the lock")
        finally:
            holder.communicate(b"", timeout=30)  # closing its stdin makes it exit, releasing the lock
        wait_for(lambda: version(led, "a") == 1, "the draft to be tried again")
        [event] = led.events(article="a")
    assert (event.actor, event.reason) == ("desk", "from the folder")
    path, message = recorder.errors[0]
    assert path == str(drafts / "a.txt")
    assert message.startswith(f"{path}: ") and "locked by another writer" in message and message.endswith("; trying again in 1 s")
    assert [(r.article, r.status) for r in recorder.results] == [("a", "created")]


@pytest.mark.slow
def test_a_draft_just_under_the_size_limit(led: ledger.Ledger, drafts: Path, running) -> None:
    paragraph = "A long paragraph of the report, repeated to make a big draft. " * 16 + "\n\n"
    text = "Big story\n\n" + paragraph * (1000 * 1000 // len(paragraph)) + "Update from the desk:\n\nDone.\n"
    assert 1_000_000 < len(text.encode()) <= ledger.DRAFT_SIZE_LIMIT
    (drafts / "big.txt").write_text(text)
    wait_for(lambda: version(led, "big") == 1, "the big draft")
    assert text_of(led, "big") == text


@pytest.mark.slow
def test_vim_style_save(led: ledger.Ledger, drafts: Path) -> None:
    recorder = Recorder()
    (drafts / "a.txt").write_text(story(1))
    # quiet=2.0: a thread stalled for over the default 0.5 s between the rename and the write
    # would see the draft missing, withdraw it and restore it (version 3), as designed.
    with watch(led, drafts, withdraw_on_delete=True, on_result=recorder.result, on_error=recorder.error, quiet=2.0) as watcher:
        wait_for(lambda: version(led, "a") == 1, "a v1")
        swap = drafts / ".a.txt.swp"
        swap.write_bytes(b"vim swap")
        probe = drafts / "4913"
        probe.write_bytes(b"")
        probe.unlink()
        os.rename(drafts / "a.txt", drafts / "a.txt~")  # backup by rename: the draft is briefly absent
        (drafts / "a.txt").write_text(story(1, " Edited in vim."))
        (drafts / "a.txt~").unlink()
        swap.unlink()
        wait_for(lambda: text_of(led, "a") == story(1, " Edited in vim."), "a v2")
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert version(led, "a") == 2
    assert not led.article("a").withdrawn
    assert set(led.store.articles()) == {"a"}
    assert recorder.errors == []


@pytest.mark.slow
def test_emacs_and_office_files_are_ignored(led: ledger.Ledger, drafts: Path, running) -> None:
    os.symlink("user@host.1234:1700000000", drafts / ".#a.txt")  # emacs lock: a dangling symlink
    (drafts / "#a.txt#").write_text("autosave")
    (drafts / ".~lock.a.txt#").write_text("lock")
    (drafts / "~$a.txt").write_text("office")
    (drafts / "a.txt___jb_tmp___").write_text("jetbrains")
    (drafts / ".goutputstream-XYZ").write_text("gnome")
    (drafts / "notes.docx").write_text("not a draft")
    (drafts / "a.txt").write_text(story(1))
    wait_for(lambda: version(led, "a") == 1, "a v1")
    wait_for(lambda: running[0].pending() == 0, "the watcher to settle")
    assert set(led.store.articles()) == {"a"}
    assert running[1].errors == []


@pytest.mark.parametrize(
    ("name", "watched"),
    [("a.txt", True), ("a.md", True), ("A.Markdown", True), (".a.txt.swp", False), ("a.txt~", False), (".#a.txt", False),
     ("#a.txt#", False), ("4913", False), (".~lock.a.txt#", False), ("~$a.txt", False), ("a.txt___jb_tmp___", False),
     (".goutputstream-ABC", False), (".DS_Store", False), (".hidden.txt", False), ("a.docx", False)],
)
def test_watched_names(name: str, watched: bool) -> None:
    assert is_draft_name(name) is watched


@pytest.mark.slow
def test_renamed_draft_with_an_id_stays_the_same_article(led: ledger.Ledger, drafts: Path) -> None:
    with watch(led, drafts, withdraw_on_delete=True) as watcher:
        (drafts / "first-name.md").write_text("---\ntitle: T\nid: the-story\n---\nBody\n")
        wait_for(lambda: version(led, "the-story") == 1, "the-story v1")
        os.rename(drafts / "first-name.md", drafts / "second-name.md")
        (drafts / "other.txt").write_text(story(2))
        wait_for(lambda: version(led, "other") == 1 and watcher.pending() == 0, "the rename to settle")
    assert led.store.articles() == {"the-story": 1, "other": 1}


@pytest.mark.slow
def test_deleting_a_draft_appends_nothing_unless_asked(led: ledger.Ledger, drafts: Path) -> None:
    (drafts / "a.txt").write_text(story(1))
    (drafts / "b.txt").write_text(story(2))
    with watch(led, drafts) as watcher:
        wait_for(lambda: version(led, "a") == 1 and version(led, "b") == 1, "a and b")
        (drafts / "a.txt").unlink()
        (drafts / "c.txt").write_text(story(3))
        wait_for(lambda: version(led, "c") == 1 and watcher.pending() == 0, "the deletion to settle")
    assert version(led, "a") == 1 and not led.article("a").withdrawn
    with watch(led, drafts, withdraw_on_delete=True) as watcher:
        wait_for(lambda: watcher.pending() == 0, "the reconcile")
        (drafts / "b.txt").unlink()
        wait_for(lambda: led.article("b").withdrawn, "b withdrawn")
        (drafts / "b.txt").write_text(story(2))
        wait_for(lambda: not led.article("b").withdrawn, "b restored by its draft")
    assert [e.type for e in led.events(article="b")] == ["ArticleCreated", "ArticleWithdrawn", "ArticleRestored"]


@pytest.mark.slow
def test_hand_appends_to_the_same_store_while_watching(led: ledger.Ledger, drafts: Path, store_dir: Path, running) -> None:
    (drafts / "a.txt").write_text(story(1))
    wait_for(lambda: version(led, "a") == 1, "a v1")
    by_hand = b'{"type": "CategoriesChanged", "article": "a", "data": {"added": ["by-hand"]}}\n'
    by_hand += b'{"type": "ArticleCreated", "article": "z", "data": {"title": "Z"}}\n'
    done = run_ledger("append", "-", store=store_dir, input=by_hand)
    assert done.returncode == 0, done.stderr
    (drafts / "a.txt").write_text(story(1, " Edited after the hand append."))
    (drafts / "b.txt").write_text(story(2))
    wait_for(lambda: version(led, "a") == 3 and version(led, "b") == 1, "the drafts after the hand append")
    assert text_of(led, "a") == story(1, " Edited after the hand append.")
    assert led.article("a", version=2).categories == ["news", "by-hand"]
    assert version(led, "z") == 1
    checked = run_ledger("verify", store=store_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow
def test_polling_when_asked(led: ledger.Ledger, drafts: Path) -> None:
    with watch(led, drafts, poll=0.2) as watcher:
        assert watcher.mode == "polling every 0.2 s"
        (drafts / "a.txt").write_text(story(1))
        wait_for(lambda: text_of(led, "a") == story(1), "a v1 by polling")


@pytest.mark.slow
def test_falls_back_to_polling_when_inotify_is_exhausted(led: ledger.Ledger, drafts: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    class Exhausted(watcher_module.Observer):  # type: ignore[misc, valid-type]
        def schedule(self, *args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher_module, "Observer", Exhausted)
    with caplog.at_level("WARNING", logger="ledger.watcher"), watch(led, drafts) as watcher:
        assert watcher.mode.startswith("polling")
        (drafts / "a.txt").write_text(story(1))
        wait_for(lambda: version(led, "a") == 1, "a v1 by polling")
    assert "inotify watch limit reached" in caplog.text and "polling" in caplog.text


@pytest.mark.slow
def test_a_dead_observer_is_restarted(led: ledger.Ledger, drafts: Path, running) -> None:
    watcher, _ = running
    observer = watcher._observer
    assert observer is not None
    observer.stop()
    observer.join(5)
    (drafts / "a.txt").write_text(story(1))
    wait_for(lambda: version(led, "a") == 1, "a v1 after the restart of the observer")
    assert watcher._observer is not observer and watcher._observer.is_alive()


def test_missing_folder_is_a_clear_error(led: ledger.Ledger, tmp_path: Path) -> None:
    with pytest.raises(ledger.InvalidInputError, match="not a folder"):
        watch(led, tmp_path / "nowhere")


def test_watchdogs_report_of_its_own_stop_racing_a_read_is_not_printed() -> None:
    # watchdog 7 logs this as an error when its emitter reads once more after the observer is
    # stopped: `ledger watch` printed it on Ctrl-C now and then. Other watchdog errors still show.
    script = (
        "import logging, ledger.watcher\n"
        "log = logging.getLogger('watchdog.observers.inotify')\n"
        "log.error('InotifyEmitter.queue_events() called when the thread is inactive')\n"
        "log.error('something else')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr == "something else\n"


@pytest.mark.slow
def test_a_damaged_manifest_never_withdraws_an_article_its_folder_did_not_write(led: ledger.Ledger, drafts: Path, store_dir: Path) -> None:
    # A manifest entry naming another article made deleting nothing withdraw it; one of the wrong
    # shape crashed the watcher. The manifest is a cache: entries of the wrong shape, or of
    # another folder, are left out, and a deleted draft withdraws only an article that still
    # says what the draft said.
    led.append([{"type": "ArticleCreated", "article": "other", "data": {"title": "Other"}}])
    (drafts / "a.txt").write_text(story(1))
    with watch(led, drafts, withdraw_on_delete=True) as watcher:
        wait_for(lambda: version(led, "a") == 1 and watcher.pending() == 0, "a v1")
    [manifest] = (store_dir / "watch").glob("*.json")
    entry = json.loads(manifest.read_text())["files"]["a.txt"]
    for files in ([], {"gone.txt": {**entry, "article": 5}}, {"gone.txt": {**entry, "article": "other"}}):
        manifest.write_text(json.dumps({"folder": str(drafts), "files": files}))
        recorder = Recorder()
        with watch(led, drafts, withdraw_on_delete=True, on_error=recorder.error) as watcher:
            wait_for(lambda: watcher.pending() == 0, "the reconcile")
        assert not led.article("other").withdrawn and version(led, "a") == 1
        if isinstance(files, dict) and files["gone.txt"]["article"] == "other":
            assert recorder.errors == [(str(drafts / "gone.txt"), f"{drafts / 'gone.txt'}: 'other' is not withdrawn: it no longer says what the deleted draft said "
                                        "(another writer changed it since); `ledger withdraw other` withdraws it")]
    # A manifest of another folder is not this one's.
    manifest.write_text(json.dumps({"folder": "/elsewhere", "files": {"gone.txt": {**entry, "article": "a"}}}))
    with watch(led, drafts, withdraw_on_delete=True) as watcher:
        wait_for(lambda: watcher.pending() == 0, "the reconcile")
    assert not led.article("a").withdrawn
    # The real thing still withdraws: the draft deleted while its article says what it said.
    with watch(led, drafts, withdraw_on_delete=True) as watcher:
        wait_for(lambda: watcher.pending() == 0, "the reconcile")
        (drafts / "a.txt").unlink()
        wait_for(lambda: led.article("a").withdrawn, "a withdrawn")


@pytest.mark.slow
def test_two_drafts_of_one_article_are_refused_not_left_to_overwrite_each_other(led: ledger.Ledger, drafts: Path) -> None:
    # A new post started from a copy of an old one kept its `id`: each save of either draft
    # rewrote the article, and the article kept the copy's text after the copy was deleted.
    keep = "---\ntitle: Keep me\nid: keeper\n---\n\nKeep body.\n"
    copy = keep.replace("Keep me", "Copy")
    recorder = Recorder()
    with watch(led, drafts, on_error=recorder.error) as watcher:
        (drafts / "keep.md").write_text(keep)
        wait_for(lambda: version(led, "keeper") == 1 and watcher.pending() == 0, "keeper v1")
        (drafts / "copy.md").write_text(copy)
        wait_for(lambda: recorder.errors, "the clash reported")
        assert recorder.errors == [(str(drafts / "copy.md"), f"{drafts / 'copy.md'}:1: article 'keeper' is also the article of "
                                    f"{drafts / 'keep.md'}; one draft per article")]
        assert version(led, "keeper") == 1 and text_of(led, "keeper") == keep
        # The old draft gone, the copy is the article's draft: read again, and ingested.
        (drafts / "keep.md").unlink()
        wait_for(lambda: text_of(led, "keeper") == copy, "the copy ingested")
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert version(led, "keeper") == 2 and len(recorder.errors) == 1


@pytest.mark.slow
def test_a_folder_removed_and_made_again_is_watched_again(led: ledger.Ledger, drafts: Path) -> None:
    # The observer watched the old folder: saves in the new one were found only by the periodic
    # rescan (here never), and while it was gone its absence was reported five times a second.
    recorder = Recorder()
    with watch(led, drafts, on_error=recorder.error, rescan=3600) as watcher:
        (drafts / "a.txt").write_text(story(1))
        wait_for(lambda: version(led, "a") == 1, "a v1")
        shutil.rmtree(drafts)
        wait_for(lambda: recorder.errors, "the folder's absence reported")
        drafts.mkdir()
        (drafts / "b.txt").write_text(story(2))
        wait_for(lambda: version(led, "b") == 1, "b, saved in the folder made again")
        (drafts / "b.txt").write_text(story(2, " Edited."))
        wait_for(lambda: text_of(led, "b") == story(2, " Edited."), "b v2")
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert len(recorder.errors) == 1 and "cannot list the folder" in recorder.errors[0][1]


@pytest.mark.slow
def test_an_empty_file_is_no_draft_yet_and_no_error(led: ledger.Ledger, drafts: Path) -> None:
    # `touch new-post.md` before opening it in an editor printed "empty draft: no title".
    recorder = Recorder()
    with watch(led, drafts, on_error=recorder.error) as watcher:
        (drafts / "new-post.txt").touch()
        (drafts / "other.txt").write_text(story(2))
        wait_for(lambda: version(led, "other") == 1 and watcher.pending() == 0, "other v1")
        (drafts / "new-post.txt").write_text(story(1))
        wait_for(lambda: version(led, "new-post") == 1, "new-post v1")
    assert recorder.errors == []


@pytest.mark.slow
def test_a_save_that_takes_the_draft_away_for_a_second_does_not_withdraw_it(led: ledger.Ledger, drafts: Path) -> None:
    # Gone for longer than the quiet time, the draft's article was withdrawn and then restored
    # by the save: two versions that said nothing true.
    (drafts / "gap.txt").write_text(story(1))
    with watch(led, drafts, withdraw_on_delete=True) as watcher:
        wait_for(lambda: version(led, "gap") == 1 and watcher.pending() == 0, "gap v1")
        os.rename(drafts / "gap.txt", drafts / "gap.txt~")
        gone = time.monotonic()
        wait_for(lambda: time.monotonic() - gone >= 1.0, "a second gone")
        (drafts / "gap.txt").write_text(story(1, " Saved slowly."))
        (drafts / "gap.txt~").unlink()
        wait_for(lambda: text_of(led, "gap") == story(1, " Saved slowly."), "gap v2")
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert [e.type for e in led.events(article="gap")] == ["ArticleCreated", "ArticleEdited"]


@pytest.mark.slow
def test_a_folder_put_in_the_watched_one_is_named_once(led: ledger.Ledger, drafts: Path, caplog: pytest.LogCaptureFixture) -> None:
    # `cp -r batch drafts/`: 200 drafts in a folder, not one read, and not a word said.
    (drafts / "batch").mkdir()
    (drafts / "batch" / "x.txt").write_text(story(1))
    with watch(led, drafts, rescan=0.2) as watcher:
        (drafts / "b.txt").write_text(story(2))
        wait_for(lambda: version(led, "b") == 1 and watcher.pending() == 0, "b v1")
        wait_for(lambda: sum("a folder: not watched" in r.message for r in caplog.records) >= 1, "the folder named")
        time_named = time.monotonic()
        wait_for(lambda: time.monotonic() - time_named >= 1.0, "a few rescans")
    assert sum("a folder: not watched" in r.message for r in caplog.records) == 1
    assert led.store.articles() == {"b": 1}


@contextlib.contextmanager
def _a_refused_copy(led: ledger.Ledger, drafts: Path, keep: str, copy: str) -> Iterator[Watcher]:
    """A watcher (withdrawing on delete) over `keep`, the draft of article `keeper`, and `copy`,
    a second draft of it, refused."""
    text = "---\ntitle: Keep me\nid: keeper\n---\n\nKeep body.\n"
    recorder = Recorder()
    with watch(led, drafts, withdraw_on_delete=True, on_error=recorder.error) as watcher:
        (drafts / keep).write_text(text)
        wait_for(lambda: version(led, "keeper") == 1 and watcher.pending() == 0, "keeper v1")
        (drafts / copy).write_text(text.replace("Keep me", "Copy"))
        wait_for(lambda: recorder.errors, "the clash reported")
        yield watcher


@pytest.mark.slow
def test_the_draft_of_an_article_deleted_while_a_copy_waits_hands_it_over_without_a_withdrawal(led: ledger.Ledger, drafts: Path) -> None:
    # With --withdraw-on-delete the article was withdrawn, then restored by the copy it waited for.
    with _a_refused_copy(led, drafts, "keep.md", "copy.md") as watcher:
        (drafts / "keep.md").unlink()
        wait_for(lambda: version(led, "keeper") == 2, "the copy ingested")
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert [e.type for e in led.events(article="keeper")] == ["ArticleCreated", "ArticleEdited", "MetadataChanged"]


@pytest.mark.slow
def test_a_log_restored_from_an_older_copy_makes_the_watcher_compare_every_draft(store_dir: Path, drafts: Path) -> None:
    # The manifest said lib.txt was ingested; the log, restored from a backup taken before,
    # did not have it, and a restarted watcher never ingested it again.
    with ledger.open(store_dir) as led:
        led.append([{"type": "ArticleCreated", "article": "story", "data": {"title": "Story"}}])
    backup = store_dir.parent / "backup"
    shutil.copytree(store_dir, backup)
    (drafts / "lib.txt").write_text(story(1))
    with ledger.open(store_dir) as led, watch(led, drafts) as watcher:
        wait_for(lambda: version(led, "lib") == 1 and watcher.pending() == 0, "lib v1")
    manifests = {manifest.name: manifest.read_bytes() for manifest in (store_dir / "watch").glob("*.json")}
    assert manifests
    shutil.rmtree(store_dir)
    shutil.copytree(backup, store_dir)
    (store_dir / "watch").mkdir(exist_ok=True)
    for name, data in manifests.items():
        (store_dir / "watch" / name).write_bytes(data)
    with ledger.open(store_dir) as led, watch(led, drafts) as watcher:
        wait_for(lambda: version(led, "lib") == 1 and watcher.pending() == 0, "lib ingested again")
        assert text_of(led, "lib") == story(1)


@pytest.mark.slow
def test_both_drafts_of_one_article_deleted_withdraw_it(led: ledger.Ledger, drafts: Path) -> None:
    # The refused copy, gone too, still counted as the article's next draft: it stayed live.
    # (The article's draft sorts first: its deletion is settled before the copy's.)
    with _a_refused_copy(led, drafts, "a-keep.md", "b-copy.md"):
        (drafts / "b-copy.md").unlink()
        (drafts / "a-keep.md").unlink()
        wait_for(lambda: led.article("keeper").withdrawn, "keeper withdrawn")


@pytest.mark.slow
def test_a_store_that_cannot_say_its_head_while_the_manifest_is_saved_does_not_stop_the_watcher(
        led: ledger.Ledger, drafts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # On PostgreSQL the head is a query: the server away, the save raised and ended the thread.
    def away() -> ledger.Head:
        raise ledger.StoreConnectionError("no connection to the server could be had")

    with watch(led, drafts) as watcher:
        (drafts / "a.txt").write_text(story(1))
        wait_for(lambda: version(led, "a") == 1 and watcher.pending() == 0, "a v1")
        monkeypatch.setattr(ledger.Ledger, "head", lambda self: away())
        (drafts / "b.txt").write_text(story(2))
        wait_for(lambda: led.store.article_version("b") == 1 and watcher.pending() == 0, "b v1")
        assert watcher.running
