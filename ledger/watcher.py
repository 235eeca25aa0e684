"""Watching a drafts folder: new and changed drafts become events as they are saved.

The only module that imports watchdog. Events from the file system only mark a path "dirty"; what
happens is decided later from the file itself, once it has settled: quiet for `quiet` seconds
(or dirty for `max_wait` seconds), closed by its writer (Linux reports the close of a file
written to; a file still open for writing is not ready however quiet), unchanged while read,
and parsed. So editors' atomic saves (temp file renamed over the draft), vim's and emacs' save
sequences and slow writers all come down to "the draft has new settled content".

A manifest in the store folder (`watch/<folder hash>.json`: size, mtime, SHA-256 and article
of each draft last ingested) lets a restart pick up what changed while the watcher was down,
and only that: an unchanged draft is not even read, and a changed one whose content the article
already has appends nothing. A periodic rescan catches events the kernel dropped.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ledger.application import Ledger
from ledger.application import open as open_ledger
from ledger.codec import dumps, loads
from ledger.drafts import IngestResult, ingest_draft, is_draft_name, parse_draft, withdraw
from ledger.errors import InvalidInputError, LedgerError

log = logging.getLogger("ledger.watcher")

QUIET = 0.5
"""Seconds a draft must be left alone before it is read."""
MAX_WAIT = 3.0
"""Seconds after which a draft that keeps changing (but is not open for writing) is read anyway."""
OPEN_LIMIT = 30.0
"""Seconds after which a draft still reported open for writing is read anyway (a lost close)."""
RESCAN = 10.0
"""Seconds between full rescans of the folder (catches events the kernel dropped)."""
RETRY_FIRST = 1.0
"""Seconds before a draft whose ingest failed for a reason other than its content (the store
locked by another writer, a store error) is tried again; the wait doubles with each failure."""
RETRY_MAX = 30.0
"""The longest wait between two tries of such a draft."""
_TICK = 0.1
_DELETE_LIMIT = 10.0
_INOTIFY_LIMITS = (errno.ENOSPC, errno.EMFILE, errno.ENFILE)


def is_watched_name(name: str) -> bool:
    """True for file names the watcher reads: drafts (`.txt`, `.md`, `.markdown`) that are not
    hidden, temporary, swap or backup files (`.x.swp`, `x~`, `.#x`, `#x#`, `4913`, `.~lock.x#`,
    `~$x`, `x___jb_tmp___`, `.goutputstream-*`, `.DS_Store`): exactly `is_draft_name`."""
    return is_draft_name(name)


@dataclass
class _Pending:
    first: float
    last: float
    writing: bool = False
    retry_at: float = 0.0


class _Handler(FileSystemEventHandler):
    """Turns file-system events into dirty paths (events are hints, never decisions)."""

    def __init__(self, watcher: "Watcher") -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, (FileOpenedEvent, FileClosedNoWriteEvent)):
            return  # our own reads produce these
        if event.is_directory:
            if event.event_type in ("moved", "deleted", "created"):
                self.watcher._request_rescan()
            return
        if isinstance(event, FileMovedEvent):
            self.watcher._touch(os.fsdecode(event.src_path), writing=False)
            self.watcher._touch(os.fsdecode(event.dest_path), writing=False)
        elif event.event_type == "deleted":
            self.watcher._touch(os.fsdecode(event.src_path), writing=False)
        else:
            self.watcher._touch(os.fsdecode(event.src_path), writing=not isinstance(event, FileClosedEvent))


class Watcher:
    """Watches the drafts `folder` and ingests settled drafts into `ledger`; also named
    `ledger.watch`. It is not started: call `start()` and `stop()`, or use `with watcher:`.

    `poll` (seconds) forces the polling observer (network drives, containers); otherwise native
    events are used, falling back to polling with a warning where they are unavailable.
    `withdraw_on_delete` withdraws an article whose draft is deleted (by default a deletion
    records nothing). `on_result(IngestResult)` is called once per ingest that appended
    something, `on_error(path, message)` for each bad draft (reported once per content) and for
    each failed try of a draft that is tried again later (the store locked by another writer),
    with a one-line message that starts with the draft's path; by default both are logged to the `ledger.watcher` logger. `actor` and `reason` are recorded
    with every change. Each draft is ingested in an append of its own, so a bad draft never
    holds back the others.

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
        self.quiet = quiet
        self.max_wait = max_wait
        self.rescan_every = rescan
        self.mode = "not started"
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._close_events = False
        self._rescan_due = 0.0
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        # Bad drafts by name: the digest of the content that was refused (skipped until it
        # changes). Drafts that failed for other reasons: how many times in a row (the backoff).
        self._errors: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._writer: Ledger = ledger
        self._own: Ledger | None = None
        self._manifest_path = self._manifest_file()
        self._manifest: dict[str, dict[str, Any]] = self._load_manifest()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Watcher":
        """Start watching: the observer first, then a reconcile of the whole folder (so nothing
        changed in between is missed), then ingests as drafts settle. Returns self."""
        if self._thread is not None:
            return self
        if self.ledger.path is not None:
            lock_timeout = getattr(self.ledger.store, "lock_timeout", 10.0)
            self._own = self._writer = open_ledger(self.ledger.path, lock_timeout=lock_timeout)
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

    def __enter__(self) -> "Watcher":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the watcher's thread is alive (False after `stop` or a failure)."""
        return self._thread is not None and self._thread.is_alive()

    def pending(self) -> int:
        """How many paths are waiting to settle."""
        with self._lock:
            return len(self._pending)

    # --- the observer ------------------------------------------------------------------------

    def _start_observer(self) -> None:
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
                self._close_events = type(observer).__name__.startswith("Inotify")
                self.mode = "native" if not self._close_events else "inotify"
                return
        interval = self.poll if self.poll is not None else 1.0
        observer = PollingObserver(timeout=interval)
        observer.schedule(handler, str(self.folder), recursive=False)
        observer.start()
        self._observer = observer
        self._close_events = False
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
        if self._observer is not None and self._observer.is_alive():
            return
        log.warning("the file watcher of %s stopped; restarting it and rescanning the folder", self.folder)
        self._stop_observer()
        self._start_observer()
        self._scan(reconcile=True)

    # --- events and scans --------------------------------------------------------------------

    def _touch(self, path: str, *, writing: bool) -> None:
        name = os.path.basename(path)
        if os.path.dirname(os.path.abspath(path)) != str(self.folder) or not is_watched_name(name):
            return
        now = time.monotonic()
        with self._lock:
            entry = self._pending.get(name)
            if entry is None:
                entry = self._pending[name] = _Pending(first=now, last=now)
            entry.last = now
            entry.writing = self._close_events and writing

    def _request_rescan(self) -> None:
        self._rescan_due = 0.0

    def _scan(self, *, reconcile: bool = False) -> None:
        """Mark dirty every draft whose size or mtime differs from the manifest, and every draft
        of the manifest that is gone."""
        now = time.monotonic()
        seen: set[str] = set()
        try:
            entries = list(os.scandir(self.folder))
        except OSError as exc:
            self._report_error(str(self.folder), f"cannot list the folder: {exc.strerror or exc}")
            return
        dirty: list[str] = []
        for entry in entries:
            if not is_watched_name(entry.name):
                continue
            try:
                info = entry.stat()
            except OSError:
                continue
            seen.add(entry.name)
            known = self._manifest.get(entry.name)
            if known is None or known["size"] != info.st_size or known["mtime_ns"] != info.st_mtime_ns:
                if reconcile or entry.name not in self._errors:
                    dirty.append(entry.name)
        dirty.extend(name for name in self._manifest if name not in seen)
        with self._lock:
            for name in dirty:
                self._pending.setdefault(name, _Pending(first=now, last=now))
        self._rescan_due = now + self.rescan_every

    # --- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(_TICK):
                self._supervise()
                if time.monotonic() >= self._rescan_due:
                    self._scan()
                self._flush()
        except BaseException as exc:  # noqa: BLE001 - reported to the owner, never silent
            self.failure = exc
            log.error("the watcher of %s stopped: %s", self.folder, exc)
            raise

    def _ready(self, now: float) -> tuple[list[str], list[str]]:
        present: list[str] = []
        gone: list[str] = []
        with self._lock:
            for name, entry in self._pending.items():
                if entry.retry_at > now:
                    continue
                quiet = now - entry.last
                if entry.writing and quiet < OPEN_LIMIT:
                    continue
                if quiet < self.quiet and now - entry.first < self.max_wait:
                    continue
                (present if os.path.exists(self.folder / name) else gone).append(name)
            waiting = len(self._pending) - len(present) - len(gone)
            # A draft renamed to another name waits until the new name is read, so that an
            # article whose draft only moved is never withdrawn.
            if waiting:
                gone = [n for n in gone if now - self._pending[n].first >= _DELETE_LIMIT]
        return sorted(present), sorted(gone)

    def _flush(self) -> None:
        present, gone = self._ready(time.monotonic())
        for name in present:
            if self._stop.is_set():
                return
            self._settle(name)
        for name in gone:
            self._gone(name)

    def _done(self, name: str) -> None:
        with self._lock:
            self._pending.pop(name, None)

    def _again(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self._pending.get(name)
            if entry is not None:
                entry.last = now

    def _report_error(self, path: str, message: str) -> None:
        # Some messages name the store or nothing (a lock held by another writer): every report
        # names the draft, whoever prints it.
        self.on_error(path, message if message.startswith(path) else f"{path}: {message}")

    def _retry(self, name: str, message: str) -> None:
        """Keep `name` pending after a failure that is not its content's fault, and try it
        again later, waiting longer after each failure so that a locked store is not hammered."""
        failures = self._failures[name] = self._failures.get(name, 0) + 1
        delay = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
        now = time.monotonic()
        with self._lock:
            entry = self._pending.setdefault(name, _Pending(first=now, last=now))
            entry.retry_at = now + delay
        self._report_error(str(self.folder / name), f"{message}; trying again in {delay:g} s")

    def _settle(self, name: str) -> None:
        path = self.folder / name
        try:
            before = os.stat(path)
            data = path.read_bytes()
            after = os.stat(path)
        except FileNotFoundError:
            self._again(name)
            return
        except OSError as exc:
            self._done(name)
            self._report_error(str(path), f"cannot read the draft: {exc.strerror or exc}")
            return
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
            self._again(name)  # still being written
            return
        self._done(name)
        digest = hashlib.sha256(data).hexdigest()
        stat = {"size": after.st_size, "mtime_ns": after.st_mtime_ns, "sha256": digest}
        known = self._manifest.get(name)
        if known is not None and known["sha256"] == digest:
            if (known["size"], known["mtime_ns"]) != (after.st_size, after.st_mtime_ns):
                self._remember(name, {**known, **stat})
            return
        if self._errors.get(name) == digest:
            return
        try:
            draft = parse_draft(data, path)
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
        self._errors.pop(name, None)
        self._failures.pop(name, None)
        self._remember(name, {**stat, "article": draft.id})
        if result.status != "unchanged":
            self.on_result(result)
        else:
            log.debug("%s: %s v%d unchanged", path, result.article, result.version)

    def _gone(self, name: str) -> None:
        self._done(name)
        self._errors.pop(name, None)
        failures = self._failures.pop(name, 0)
        known = self._manifest.pop(name, None)
        if known is None:
            return
        self._save_manifest()
        article = known.get("article")
        if not self.withdraw_on_delete or article is None:
            return
        if any(entry.get("article") == article for entry in self._manifest.values()):
            return  # the article's draft lives on under another name
        try:
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

    # --- the manifest ------------------------------------------------------------------------

    def _manifest_file(self) -> Path | None:
        root = self.ledger.path
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
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable watch manifest; every draft will be compared with its article", self._manifest_path)
            return {}
        return {name: entry for name, entry in files.items() if isinstance(entry, dict) and "sha256" in entry}

    def _remember(self, name: str, entry: dict[str, Any]) -> None:
        self._manifest[name] = entry
        self._save_manifest()

    def _save_manifest(self) -> None:
        if self._manifest_path is None:
            return
        self._manifest_path.parent.mkdir(exist_ok=True)
        temp = self._manifest_path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_bytes(dumps({"folder": str(self.folder), "files": self._manifest}))
        os.replace(temp, self._manifest_path)


def _log_result(result: IngestResult) -> None:
    log.info("%s: %s v%d (%s)", result.path, result.article, result.version, result.summary)


def _log_error(path: str, message: str) -> None:
    log.error("%s", message)


watch = Watcher
"""`ledger.watch(ledger, folder, ...)`: a `Watcher` (not started), by its public name."""
