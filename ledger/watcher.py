"""Watching a drafts folder: new and changed drafts become events as they are saved.

The only module that imports watchdog. Events from the file system only mark a path "dirty"
(`ledger.settling` decides when it is due); what happens is decided later from the file itself,
once it has settled: quiet for `quiet` seconds
(or dirty for `max_wait` seconds), closed by its writer, unchanged while read, and parsed. So
editors' atomic saves (temp file renamed over the draft), vim's and emacs' save sequences, a
chmod or touch after a save and slow writers all come down to "the draft has new settled
content".

"Closed by its writer" is known two ways on Linux: inotify reports a write and then the close
of a file written to (a change of attributes only, chmod or utime, is no write), and /proc
shows which processes have the file open for writing. A draft some process still has open for
writing is not ready, however quiet; a draft reported written but never closed (a lost event)
is read once /proc shows no writer, after `OPEN_CHECK` seconds of quiet.

Only regular files are drafts: a FIFO, a folder or a device named like a draft is reported once
and never opened in a way that could block; symbolic links are followed only when asked, and
only to drafts in the folder.

A manifest in the store folder (for a server store, its local cache folder;
`watch/<folder hash>.json`: size, mtime, ctime, inode, SHA-256 and article of each draft last
ingested) lets a restart pick up what changed while the watcher
was down, and only that: an unchanged draft is not even read, one whose ctime or inode changed
is read and hashed (a rewrite that kept size and mtime is still a change), and a changed one
whose content the article already has appends nothing. A periodic rescan catches events the
kernel dropped.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileAttribEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ledger.anchors import record_at
from ledger.application import Ledger
from ledger.application import open as open_ledger
from ledger.codec import dumps, loads
from ledger.draft_format import is_draft_name, parse_draft, read_draft_bytes
from ledger.drafts import IngestResult, ingest_draft, withdraw
from ledger.errors import ArticleNotFoundError, DraftError, InvalidInputError, LedgerError
from ledger.limits import DRAFT_SIZE_LIMIT
from ledger.rendering import render
from ledger.settling import Settling

log = logging.getLogger("ledger.watcher")

_STOP_RACE = "InotifyEmitter.queue_events() called when the thread is inactive"


class _QuietStop(logging.Filter):
    """Drops watchdog's error for its own stop racing a read: its emitter thread may read once
    more after the observer is stopped (watchdog 7), which it reports as an error on stderr
    although nothing is lost: the watcher is stopping, and `ledger watch` printed it on Ctrl-C."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _STOP_RACE


logging.getLogger("watchdog.observers.inotify").addFilter(_QuietStop())

QUIET = 0.5
"""Seconds a draft must be left alone before it is read."""
MAX_WAIT = 3.0
"""Seconds after which a draft that keeps changing (but is not open for writing) is read anyway."""
OPEN_CHECK = 5.0
"""Seconds of quiet after which a draft reported written but never closed is read, if no process
has it open for writing (the close event was lost); a draft that is still open is never read."""
WITHDRAW_GRACE = 3.0
"""Seconds a draft must stay gone before its deletion withdraws its article (with
`withdraw_on_delete`): a save that takes the file away for longer than the quiet time (a slow
tool writing a new file before it renames it back) must not withdraw and restore it."""
RESCAN = 10.0
"""Seconds between full rescans of the folder (catches events the kernel dropped)."""
RETRY_FIRST = 1.0
"""Seconds before a draft whose ingest failed for a reason other than its content (the store
locked by another writer, a store error) is tried again; the wait doubles with each failure."""
RETRY_MAX = 30.0
"""The longest wait between two tries of such a draft."""
_TICK = 0.1
_INOTIFY_LIMITS = (errno.ENOSPC, errno.EMFILE, errno.ENFILE)


def _identity(info: os.stat_result) -> dict[str, int]:
    """What the manifest keeps of a stat: ctime and inode change with any rewrite, even one that
    puts size and mtime back (`touch -r`), so they trigger a re-hash."""
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns, "ino": info.st_ino}


def _valid_entry(entry: Any) -> bool:
    """Whether a manifest entry has the shape `_remember` writes (a damaged manifest must not
    name an article to withdraw, or crash the watcher)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
        return False
    if not isinstance(entry.get("article", ""), str):
        return False
    return all(type(entry.get(key)) is int for key in ("size", "mtime_ns", "ctime_ns", "ino"))


def open_for_writing(files: set[tuple[int, int]]) -> set[tuple[int, int]] | None:
    """Which of `files` (`(st_dev, st_ino)` pairs) some process has open for writing, read from
    /proc (Linux); None where /proc cannot tell. Processes of other users cannot be inspected and
    are not counted."""
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return None
    found: set[tuple[int, int]] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # ended, or not ours to inspect
        for fd in fds:
            try:
                info = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key not in files or key in found:
                continue
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as fdinfo:
                    flags = next((int(line.split()[1], 8) for line in fdinfo if line.startswith("flags:")), 0)
            except (OSError, ValueError, IndexError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                found.add(key)
    return found


class _Handler(FileSystemEventHandler):
    """Turns file-system events into dirty paths (events are hints, never decisions)."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, (FileOpenedEvent, FileClosedNoWriteEvent)):
            return  # our own reads produce these
        if event.is_directory:
            if event.event_type in ("moved", "deleted", "created"):
                self.watcher._request_rescan()
            return
        path = os.fsdecode(event.src_path)
        if isinstance(event, FileMovedEvent):
            self.watcher._touch(path, writing=False)
            self.watcher._touch(os.fsdecode(event.dest_path), writing=False)
        elif isinstance(event, FileModifiedEvent):
            self.watcher._touch(path, writing=True)  # content written: a close follows
        elif isinstance(event, FileCreatedEvent):
            self.watcher._touch(path, writing=_just_created(path))
        elif isinstance(event, FileAttribEvent):
            # chmod, utime, chown (`cp -p`, `shutil.copy` after the close): nothing was written,
            # so whether a writer has the file open is unchanged.
            self.watcher._touch(path, writing=None)
        else:
            # deleted, or closed after a write
            self.watcher._touch(path, writing=False)


def _just_created(path: str) -> bool:
    """True when a created file is empty: its writer has just opened it and a close will come.
    A file that arrives whole (moved in from another folder, hard-linked) is not being written."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == 0


class Watcher:
    """Watches the drafts `folder` and ingests settled drafts into `ledger`; also named
    `ledger.watch`. It is not started: call `start()` and `stop()`, or use `with watcher:`.

    `poll` (seconds) forces the polling observer (network drives, containers); otherwise native
    events are used, falling back to polling with a warning where they are unavailable.
    `withdraw_on_delete` withdraws an article whose draft is deleted (by default a deletion
    records nothing). `on_result(IngestResult)` is called once per ingest that appended
    something, `on_error(path, message)` for each bad draft (reported once per content) and for
    each failed try of a draft that is tried again later (the store locked by another writer),
    with a one-line message that starts with the draft's path; by default both are logged to
    the `ledger.watcher` logger. `actor` and `reason` are recorded with every change. Each draft
    is ingested in an append of its own, so a bad draft never holds back the others.

    Only regular files of at most `max_draft_size` bytes are drafts; a name that is something
    else (a folder, a FIFO) is reported once. Symbolic links are skipped (reported once) unless
    `follow_symlinks`, and even then only links to drafts in the folder are read. `quiet`,
    `max_wait`, `open_check` and `rescan` (seconds) default to `QUIET`, `MAX_WAIT`, `OPEN_CHECK`
    and `RESCAN`.

    Ingests run on the watcher's own thread; for
    a file store it opens its own `Ledger` on the same folder (so the one given stays free for
    the caller's thread), otherwise it uses the one given.
    """

    def __init__(
        self,
        ledger: Ledger,
        folder: str | os.PathLike[str],
        *,
        poll: float | None = None,
        withdraw_on_delete: bool = False,
        on_result: Callable[[IngestResult], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        actor: str | None = None,
        reason: str | None = None,
        quiet: float = QUIET,
        max_wait: float = MAX_WAIT,
        rescan: float = RESCAN,
        open_check: float = OPEN_CHECK,
        follow_symlinks: bool = False,
        max_draft_size: int = DRAFT_SIZE_LIMIT,
    ) -> None:
        self.ledger = ledger
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise InvalidInputError(f"{folder}: not a folder (give the drafts folder to watch)")
        self.poll = poll
        self.withdraw_on_delete = withdraw_on_delete
        self.on_result = on_result or _log_result
        self.on_error = on_error or _log_error
        self.actor = actor
        self.reason = reason
        self.rescan_every = rescan
        self.follow_symlinks = follow_symlinks
        self.max_draft_size = max_draft_size
        self.mode = "not started"
        self.failure: BaseException | None = None
        self._pending = Settling(quiet=quiet, max_wait=max_wait, open_check=open_check)
        self._rescan_due = 0.0
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        # Bad drafts by name: the digest of the content that was refused, or for a name that is
        # no draft file (a folder, a FIFO, a link) what it is (skipped until it changes). Drafts
        # that failed for other reasons: how many times in a row (the backoff).
        self._errors: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._writer: Ledger = ledger
        self._own: Ledger | None = None
        self._manifest_path = self._manifest_file()
        self._manifest: dict[str, dict[str, Any]] = self._load_manifest()
        self._manifest_failed = False
        # Drafts refused because another draft is their article's: read again when it goes.
        self._blocked: dict[str, str] = {}
        self._folder_missing = False
        self._folder_id: tuple[int, int] | None = None
        self._subfolders: set[str] = set()
        self._saved_head: list[Any] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Watcher:
        """Start watching: the observer first, then a reconcile of the whole folder (so nothing
        changed in between is missed), then ingests as drafts settle. Returns self."""
        if self._thread is not None:
            return self
        if self.ledger.path is not None:
            self._own = self._writer = open_ledger(self.ledger.path, lock_timeout=self.ledger.store.lock_timeout)
        self._start_observer()
        self._scan(reconcile=True)
        self._thread = threading.Thread(target=self._run, name=f"ledger-watch {self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching. Drafts not yet settled are left for the next start's reconcile."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop_observer()
        if self._own is not None and not self.running:
            self._own.close()
            self._own = None

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the watcher's thread is alive (False after `stop` or a failure)."""
        return self._thread is not None and self._thread.is_alive()

    def pending(self) -> int:
        """How many paths are waiting to settle."""
        return len(self._pending)

    # --- the observer ------------------------------------------------------------------------

    def _start_observer(self) -> None:
        # The folder watched, by identity: one removed and made again (or moved away and back)
        # is another folder to the file system, which the observer no longer hears from.
        try:
            info = os.stat(self.folder)
            self._folder_id = (info.st_dev, info.st_ino)
        except OSError:
            self._folder_id = None
        handler = _Handler(self)
        if self.poll is None:
            observer: BaseObserver = Observer()
            try:
                observer.schedule(handler, str(self.folder), recursive=False)
                observer.start()
            except OSError as exc:
                if exc.errno not in _INOTIFY_LIMITS:
                    raise
                log.warning("native file watching unavailable (%s): polling %s every 1 s instead", exc.strerror or exc, self.folder)
                self._stop_observer(observer)
            else:
                self._observer = observer
                # Only inotify reports closes, so only with it is "a writer has it open" known.
                self._pending.track_writers = type(observer).__name__.startswith("Inotify")
                self.mode = "native" if not self._pending.track_writers else "inotify"
                return
        interval = self.poll if self.poll is not None else 1.0
        observer = PollingObserver(timeout=interval)
        observer.schedule(handler, str(self.folder), recursive=False)
        observer.start()
        self._observer = observer
        self._pending.track_writers = False
        self.mode = f"polling every {interval:g} s"

    def _stop_observer(self, observer: BaseObserver | None = None) -> None:
        target = observer or self._observer
        if target is None:
            return
        try:
            target.stop()
            if target.is_alive():
                target.join(5)
        except RuntimeError:
            pass  # never started: nothing to join
        if observer is None:
            self._observer = None

    def _supervise(self) -> None:
        if (self._observer is not None and self._observer.is_alive()) or self._folder_missing:
            return  # (a folder that is gone is watched again by the scan that finds it back)
        log.warning("the file watcher of %s stopped; restarting it and rescanning the folder", self.folder)
        self._stop_observer()
        self._start_observer()
        self._scan(reconcile=True)

    # --- events and scans --------------------------------------------------------------------

    def _touch(self, path: str, *, writing: bool | None) -> None:
        """Mark `path` dirty; `writing` says whether a writer now has it open (None: unknown,
        keep what was known)."""
        name = os.path.basename(path)
        if os.path.dirname(os.path.abspath(path)) != str(self.folder) or not is_draft_name(name):
            return
        self._pending.touch(name, writing=writing)

    def _request_rescan(self) -> None:
        self._rescan_due = 0.0

    def _stat(self, path: str | os.PathLike[str]) -> os.stat_result:
        return os.stat(path) if self.follow_symlinks else os.lstat(path)

    def _scan(self, *, reconcile: bool = False) -> None:
        """Mark dirty every draft whose size, mtime, ctime or inode differs from the manifest,
        and every draft of the manifest that is gone."""
        now = time.monotonic()
        seen: set[str] = set()
        try:
            entries = list(os.scandir(self.folder))
            info = os.stat(self.folder)
        except OSError as exc:
            if not self._folder_missing:
                # Once, not at every scan while it stays away.
                self._folder_missing = True
                self._report_error(str(self.folder), f"cannot list the folder: {exc.strerror or exc}; watching for it to come back")
            return
        if self._folder_missing or (info.st_dev, info.st_ino) != self._folder_id:
            if self._folder_missing:
                log.warning("%s: the folder is back; watching it again", self.folder)
            self._stop_observer()
            try:
                self._start_observer()
            except OSError as exc:
                # Gone again before the observer could watch it: the next scan tries again.
                self._folder_missing = True
                log.debug("%s: cannot watch the folder yet: %s", self.folder, exc)
                return
            self._folder_missing = False
            # Another folder: its drafts are compared whole, bad ones included (a fixed draft
            # put in it raises no event the new observer hears).
            reconcile = True
        dirty: list[str] = []
        for entry in entries:
            if not is_draft_name(entry.name):
                if entry.name not in self._subfolders and not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                    # `cp -r batch drafts/` put nothing in: say so once.
                    self._subfolders.add(entry.name)
                    log.warning("%s: a folder: not watched (drafts are read directly in %s, not in its folders)", entry.path, self.folder)
                continue
            try:
                info = entry.stat(follow_symlinks=self.follow_symlinks)
            except OSError:
                continue
            seen.add(entry.name)
            known = self._manifest.get(entry.name)
            if (known is None or any(known.get(key) != value for key, value in _identity(info).items())) and (reconcile or entry.name not in self._errors):
                dirty.append(entry.name)
        dirty.extend(name for name in self._manifest if name not in seen)
        self._pending.mark(dirty)
        self._rescan_due = now + self.rescan_every

    # --- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(_TICK):
                self._supervise()
                if time.monotonic() >= self._rescan_due:
                    self._scan()
                self._flush()
        except BaseException as exc:
            self.failure = exc
            log.error("the watcher of %s stopped: %s", self.folder, exc)
            raise

    def _ready(self, now: float) -> tuple[list[str], list[str]]:
        candidates = self._pending.due(now)
        present: list[str] = []
        gone: list[str] = []
        # By (device, inode): hard links and followed symbolic links share one.
        files: dict[tuple[int, int], list[str]] = {}
        for name in candidates:
            try:
                info = self._stat(self.folder / name)
            except FileNotFoundError:
                gone.append(name)
                continue
            except OSError:
                present.append(name)  # reading it will say what is wrong
                continue
            if stat.S_ISREG(info.st_mode):
                files.setdefault((info.st_dev, info.st_ino), []).append(name)
            else:
                present.append(name)  # never opened as a draft: reading it reports what it is
        writers = open_for_writing(set(files)) if files else set()
        for key, names in files.items():
            if writers is None or key not in writers:
                present.extend(names)
            else:
                # Still open for writing however quiet: wait for its close (or for /proc to
                # show no writer).
                self._pending.restart(names, now)
        grace = WITHDRAW_GRACE if self.withdraw_on_delete else 0.0
        return sorted(present), sorted(self._pending.deletions(gone, len(present), now, grace))

    def _flush(self) -> None:
        present, gone = self._ready(time.monotonic())
        for name in present:
            if self._stop.is_set():
                return
            self._settle(name)
        for name in gone:
            self._gone(name)

    def _report_error(self, path: str, message: str) -> None:
        # Some messages name the store or nothing (a lock held by another writer): every report
        # names the draft, whoever prints it.
        self.on_error(path, message if message.startswith(path) else f"{path}: {message}")

    def _retry(self, name: str, message: str) -> None:
        """Keep `name` pending after a failure that is not its content's fault, and try it
        again later, waiting longer after each failure so that a locked store is not hammered."""
        failures = self._failures[name] = self._failures.get(name, 0) + 1
        delay = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
        self._pending.retry_after(name, delay)
        self._report_error(str(self.folder / name), f"{message}; trying again in {delay:g} s")

    def _not_a_draft(self, name: str, message: str) -> None:
        """Report once that `name` cannot be read as a draft (a folder, a FIFO, a link, too
        big), until what is at that name changes."""
        self._pending.forget(name)
        try:
            info = os.lstat(self.folder / name)
            marker = f"{stat.S_IFMT(info.st_mode)} {_identity(info)}"
        except OSError:
            marker = message
        if self._errors.get(name) == marker:
            return
        self._errors[name] = marker
        self._failures.pop(name, None)
        self._report_error(str(self.folder / name), message)

    def _settle(self, name: str) -> None:
        path = self.folder / name
        events = self._pending.events(name)
        try:
            data, opened = read_draft_bytes(path, follow_symlinks=self.follow_symlinks, max_size=self.max_draft_size)
            after = self._stat(path)
        except DraftError as exc:
            if not os.path.lexists(path):
                self._pending.again(name)  # gone while read: a rename or a delete, settled later
            else:
                self._not_a_draft(name, str(exc))
            return
        except OSError as exc:
            if not os.path.lexists(path):
                self._pending.again(name)  # gone after the read: settled later
            else:
                self._not_a_draft(name, f"{path}:1: cannot read the draft: {exc.strerror or exc}")
            return
        if _identity(opened) != _identity(after) or len(data) != after.st_size:
            self._pending.again(name)  # still being written
            return
        if not self._pending.forget_if_quiet(name, events):
            return
        if not data:
            # `touch new-post.md` before the editor opens it: no draft yet, and no error either.
            log.debug("%s: empty, not a draft yet", path)
            return
        digest = hashlib.sha256(data).hexdigest()
        stat_entry: dict[str, Any] = {**_identity(after), "sha256": digest}
        known = self._manifest.get(name)
        if known is not None and known["sha256"] == digest:
            if any(known.get(key) != value for key, value in stat_entry.items()):
                self._remember(name, {**known, **stat_entry})
            return
        if self._errors.get(name) == digest:
            return
        try:
            draft = parse_draft(data, path)
            other = self._other_draft_of(draft.id, name)
            if other is not None:
                # As `ledger ingest` of the folder would: the two would overwrite each other.
                self._blocked[name] = draft.id
                raise InvalidInputError(f"{path}:1: article {draft.id!r} is also the article of {self.folder / other}; one draft per article")
            # With withdraw-on-delete the folder says which articles are live: a draft that is
            # back restores its article even when its text is unchanged.
            result = ingest_draft(self._writer, draft, actor=self.actor, reason=self.reason, restore=self.withdraw_on_delete)
        except InvalidInputError as exc:
            # The draft itself is bad: trying again cannot help until its content changes.
            self._errors[name] = digest
            self._failures.pop(name, None)
            self._report_error(str(path), str(exc))
            return
        except LedgerError as exc:
            self._retry(name, str(exc))
            return
        except Exception as exc:
            # A fault of ledger's own that this draft set off: reported as its error (and tried
            # again when the draft changes), so that one draft never stops the watcher.
            log.debug("%s: unexpected error", path, exc_info=True)
            self._errors[name] = digest
            self._failures.pop(name, None)
            self._report_error(str(path), f"{path}: not ingested: {type(exc).__name__}: {exc} (a fault of ledger's: please report it)")
            return
        self._errors.pop(name, None)
        self._failures.pop(name, None)
        self._blocked.pop(name, None)
        if known is not None and known.get("article") not in (None, draft.id):
            # This draft names another article now: one refused for its old one is read again.
            self._release(known["article"])
        self._remember(name, {**stat_entry, "article": draft.id})
        if result.status != "unchanged":
            self.on_result(result)
        else:
            log.debug("%s: %s v%d unchanged", path, result.article, result.version)

    def _gone(self, name: str) -> None:
        self._pending.forget(name)
        self._errors.pop(name, None)
        failures = self._failures.pop(name, 0)
        self._blocked.pop(name, None)
        known = self._manifest.pop(name, None)
        if known is None:
            return
        self._save_manifest()
        article = known.get("article")
        if not isinstance(article, str):
            return
        # A draft refused because this one was its article's is read again: it is its draft now.
        if self._release(article) or not self.withdraw_on_delete:
            return
        if any(entry.get("article") == article for entry in self._manifest.values()):
            return  # the article's draft lives on under another name
        try:
            if not self._still_says(article, known["sha256"]):
                self._report_error(str(self.folder / name), f"{article!r} is not withdrawn: it no longer says what the deleted draft said "
                                                            f"(another writer changed it since); `ledger withdraw {article}` withdraws it")
                return
            result = withdraw(self._writer, article, actor=self.actor, reason=self.reason, path=str(self.folder / name))
        except InvalidInputError as exc:
            self._report_error(str(self.folder / name), str(exc))
            return
        except LedgerError as exc:
            # Remember the draft again so that the deletion is retried, not forgotten.
            self._remember(name, known)
            self._failures[name] = failures
            self._retry(name, str(exc))
            return
        if result.status != "unchanged":
            self.on_result(result)

    def _release(self, article: str) -> bool:
        """Read again the drafts refused because another draft was `article`'s; whether any of
        them is still there (to become its draft)."""
        waiting = [other for other, blocked in self._blocked.items() if blocked == article]
        for other in waiting:
            del self._blocked[other]
            self._errors.pop(other, None)
        self._pending.mark(waiting)
        return any(os.path.lexists(self.folder / other) for other in waiting)

    def _other_draft_of(self, article: str, name: str) -> str | None:
        """Another draft of the folder, still there, that `article` was ingested from."""
        for other, entry in self._manifest.items():
            if other != name and entry.get("article") == article and os.path.lexists(self.folder / other):
                return other
        return None

    def _still_says(self, article: str, digest: str) -> bool:
        """Whether `article` renders to the draft whose SHA-256 is `digest` (or is gone or
        withdrawn already): only then is deleting the draft a withdrawal of what it wrote."""
        try:
            view = self._writer.article(article)
        except ArticleNotFoundError:
            return True
        return view.withdrawn or hashlib.sha256(render(view).encode("utf-8")).hexdigest() == digest

    # --- the manifest ------------------------------------------------------------------------

    def _manifest_file(self) -> Path | None:
        # The store's folder, or a server store's local cache folder: a server store needs the
        # manifest as much (a draft deleted while no watcher ran is known only from it).
        root = self.ledger.store.cache_dir
        if root is None:
            return None
        key = hashlib.sha256(os.fsencode(self.folder)).hexdigest()[:16]
        return Path(root) / "watch" / f"{key}.json"

    def _load_manifest(self) -> dict[str, dict[str, Any]]:
        if self._manifest_path is None or not self._manifest_path.exists():
            return {}
        try:
            value = loads(self._manifest_path.read_bytes())
            files = value["files"]
            if value.get("folder") != str(self.folder) or not isinstance(files, dict):
                raise ValueError("not this folder's manifest")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("%s: unreadable watch manifest; every draft will be compared with its article", self._manifest_path)
            return {}
        if not self._log_holds(value.get("head")):
            # The log was restored from a copy older than the manifest, or replaced: drafts it
            # says were ingested may not be in it.
            log.warning("%s: the watch manifest is of a log the store no longer holds (restored from a copy?); "
                        "every draft will be compared with its article", self._manifest_path)
            return {}
        kept = {name: entry for name, entry in files.items() if isinstance(name, str) and _valid_entry(entry)}
        if len(kept) != len(files):
            log.warning("%s: %d unreadable entries of the watch manifest left out; those drafts will be compared with their articles",
                        self._manifest_path, len(files) - len(kept))
        return kept

    def _log_holds(self, head: Any) -> bool:
        """Whether the log still holds the record a manifest saved as its head (`[position,
        hash]`; a manifest without one is taken as it is)."""
        if head is None:
            return True
        if not (isinstance(head, list) and len(head) == 2 and type(head[0]) is int and isinstance(head[1], str)):
            return False
        if head[0] == 0:
            return True
        try:
            there = record_at(self.ledger.store, head[0])
            return there is not None and there.get("hash") == head[1]
        except LedgerError:
            return True  # the store cannot say now (a server away): the manifest stays

    def _remember(self, name: str, entry: dict[str, Any]) -> None:
        self._manifest[name] = entry
        self._save_manifest()

    def _save_manifest(self) -> None:
        if self._manifest_path is None:
            return
        temp = self._manifest_path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self._manifest_path.parent.mkdir(exist_ok=True)
            try:
                head = self._writer.head()
                self._saved_head = [head.position, head.hash]
            except LedgerError:
                pass  # the server away: the head last seen is as good a witness
            saved = {"folder": str(self.folder), "files": self._manifest}
            if self._saved_head is not None:
                saved["head"] = self._saved_head
            temp.write_bytes(dumps(saved))
            os.replace(temp, self._manifest_path)
        except OSError as exc:
            # The manifest is a cache: without it a restart compares every draft with its
            # article. Watching goes on; say so once, not on every save.
            if not self._manifest_failed:
                log.warning("%s: cannot save the watch manifest (%s); watching goes on without it",
                            self._manifest_path, exc.strerror or exc)
            self._manifest_failed = True


def _log_result(result: IngestResult) -> None:
    log.info("%s: %s v%d (%s)", result.path, result.article, result.version, result.summary)


def _log_error(path: str, message: str) -> None:
    log.error("%s", message)


watch = Watcher
"""`ledger.watch(ledger, folder, ...)`: a `Watcher` (not started), by its public name."""
