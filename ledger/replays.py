"""The text index rebuilt in a process of its own while `Ledger.replay` rebuilds the catalog.

The catalog (`views.sqlite`) and the text index (`text.sqlite`) are independent folds of the
same log into files of their own, so a replay runs them side by side: the replaying process folds
the catalog while a child process, started from the same Python with the store's location on its
stdin (a server's URL keeps its password off the command line), folds the text index. On two
cores the replay then takes as long as the slower of the two instead of both together.

The child reports the records it has folded as lines on its stdout; an error it raises comes
back as one line naming its class, the log position it names (if any) and its message, and is
raised again in the replaying process as the same error (a damaged log is a `CorruptStoreError`
either way). Each rebuild is one SQLite transaction, so a rebuild stopped half way (the child
killed, the replay interrupted) leaves the index it replaces, never half an index; stopping the replay stops the child (a replaying process
killed outright leaves it to finish: the index is then the whole new one).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ledger import errors
from ledger.errors import LedgerError, StoreError

log = logging.getLogger("ledger")

# The child: reads the location, rebuilds, and prints its progress and any error (see the module).
_CHILD = "from ledger.replays import child_main; child_main()"
_ERROR = b"!"


def child_main() -> None:
    """The child process's work: rebuild the text index of the store named on stdin."""
    from ledger.application import open as open_ledger

    location = sys.stdin.read()
    out = sys.stdout

    def report(done: int, _head: int) -> None:
        out.write(f"{done}\n")
        out.flush()

    try:
        with open_ledger(location, recover=False) as led:
            led.text_index.rebuild(report)
    except LedgerError as exc:
        # The position a damaged log names goes along, for the `CorruptStoreError` raised again.
        position = getattr(exc, "position", None)
        out.write(f"!{type(exc).__name__} {position if isinstance(position, int) else '-'} {exc}\n".replace("\n", " ").rstrip() + "\n")
        out.flush()
        sys.exit(1)


def _shown(location: str) -> str:
    """`location` as messages show it: a server's URL without its password."""
    if "://" not in location:
        return location
    # Only a server's URL names a scheme, and its store has loaded the PostgreSQL module already.
    from ledger.store.postgres import redact

    return redact(location)


class TextRebuild:
    """The text index of the store at `location` being rebuilt by a child process (started at
    once); `folded` is how many records it has folded so far."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.folded = 0
        self._pending = b""
        self._error: bytes | None = None
        # A file, not a pipe: what the child says there is read only at the end, and a full pipe
        # would stop it. Closed by `finish` or `stop`.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        # The package this process imported, first on the child's path: the child runs the same
        # code even where the package is not installed (a checkout on PYTHONPATH, a test run).
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env
            )
        except BaseException:
            self._stderr.close()
            raise
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdout = self._process.stdout
        try:
            self._process.stdin.write(location.encode("utf-8", "surrogateescape"))
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # the child is gone already: `finish` tells why
        os.set_blocking(self._stdout.fileno(), False)

    def poll(self) -> int:
        """Records folded by the child so far (reads what it has reported, without waiting)."""
        try:
            chunk = os.read(self._stdout.fileno(), 65536)
        except BlockingIOError:
            return self.folded
        self._take(chunk)
        return self.folded

    def _take(self, chunk: bytes) -> None:
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line.startswith(_ERROR):
                self._error = line[1:]
            elif line.strip():
                self.folded = int(line)

    def finish(self, progress: Callable[[int], None] | None = None) -> None:
        """Wait for the child, calling `progress(folded)` as it reports; raises its error (or a
        `StoreError` if it failed otherwise)."""
        os.set_blocking(self._stdout.fileno(), True)
        while chunk := os.read(self._stdout.fileno(), 65536):
            self._take(chunk)
            if progress is not None:
                progress(self.folded)
        code = self._process.wait()
        self._stderr.seek(0)
        said = self._stderr.read().decode("utf-8", "replace").strip()
        self._stderr.close()
        self._stdout.close()
        if code == 0:
            # Warnings the child logged (an index of an older format, say), said here as well.
            for line in said.splitlines():
                log.warning("text index: %s", line)
            return
        if self._error is not None:
            name, position, message = [*self._error.decode("utf-8", "replace").split(" ", 2), "", ""][:3]
            kind = getattr(errors, name, None)
            if kind is errors.CorruptStoreError:
                raise errors.CorruptStoreError(message, position=int(position) if position.isdigit() else None)
            if isinstance(kind, type) and issubclass(kind, LedgerError):
                try:
                    error = kind(message)
                except TypeError:
                    # An error that needs more than its message (none the text index raises today).
                    error = StoreError(message)
                raise error
        last = said.splitlines()[-1] if said else f"exit status {code}"
        raise StoreError(f"{_shown(self.location)}: rebuilding the text index in a process of its own failed ({last})")

    def stop(self) -> None:
        """Stop the child if it is still running (the replay failed or was interrupted): its
        transaction is rolled back, and the index stays as it was."""
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait()
        if not self._stderr.closed:
            self._stderr.close()
        if not self._stdout.closed:
            self._stdout.close()
