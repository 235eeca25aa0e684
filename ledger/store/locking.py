"""The file store's writers' lock: an exclusive `flock` on the log file itself, reentrant within
one process, refusing a log that was deleted or replaced while it was open."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from ledger.errors import CorruptStoreError, StoreError, StoreLockedError


class WriterLock:
    """The lock on the log at `log_path`, which this process reads through `read_fd`.

    The lock is the log file itself, through a descriptor of its own (flock locks belong to an
    open file description): it cannot be deleted from under a writer the way a lock file beside
    the log could.
    """

    def __init__(self, log_path: Path, read_fd: int) -> None:
        self.log_path = log_path
        self._read_fd = read_fd
        self._fd: int | None = None
        # (device, inode) of the log this process reads: the path must still name it.
        self._identity: tuple[int, int] = (-1, -1)
        # As text: a `Path` is converted at each stat (a third of its cost).
        self._path_text = os.fspath(log_path)
        # How many `take` calls hold the lock now: an append inside `exclusive` neither takes it
        # again nor lets it go.
        self._depth = 0

    def try_take(self) -> bool:
        """Take the lock if no other writer holds it (without counting a hold); False if one does."""
        if self._fd is None:
            try:
                fd = os.open(self.log_path, os.O_RDONLY)
            except OSError as exc:
                raise StoreError(f"{self.log_path}: cannot open the log to lock it ({exc.strerror or exc}); nothing appended") from None
            # What a descriptor refers to never changes: the lock's and the reader's are compared
            # once, here, and the reader's file is what the path must still name at each take.
            mine = os.fstat(self._read_fd)
            if not os.path.samestat(mine, os.fstat(fd)):
                os.close(fd)
                raise CorruptStoreError(
                    f"{self.log_path}: the log file was deleted or replaced while this process had it open; nothing appended"
                )
            self._fd, self._identity = fd, (mine.st_dev, mine.st_ino)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            here = os.stat(self._path_text)
        except FileNotFoundError:
            here = None
        if here is None or (here.st_dev, here.st_ino) != self._identity:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            raise CorruptStoreError(
                f"{self.log_path}: the log file was deleted or replaced while this process had it open; nothing appended"
            )
        return True

    def take(self, timeout: float) -> None:
        """Take the lock, waiting up to `timeout` seconds (then `StoreLockedError`); reentrant
        (the caller serialises its threads). Release it with `release`."""
        if self._depth:
            self._depth += 1
            return
        if not self.try_take():
            deadline = time.monotonic() + timeout
            delay = 0.0005
            while not self.try_take():
                if time.monotonic() >= deadline:
                    raise StoreLockedError(f"{self.log_path.parent}: locked by another writer for more than {timeout:g}s")
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._depth = 1

    def release(self) -> None:
        """Let one hold go; the lock itself when it was the last."""
        assert self._fd is not None
        if self._depth > 1:
            self._depth -= 1
            return
        self._depth = 0
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock's descriptor (which lets the lock go)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
