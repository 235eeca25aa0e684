"""Helpers shared by the tests: events as `Ledger.append` takes them, the CLI run in-process, and
what the watcher tests wait on and record. (Fixtures live in conftest.py.)"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from click.testing import CliRunner, Result
from ledger_cli.main import main

import ledger
from ledger.draft_format import parse_draft
from ledger.drafts import ingest_draft
from ledger.rendering import render
from ledger.times import parse_when

DEADLINE = 60.0
"""Seconds a test waits for a condition before it fails (generous: no assertion depends on how
fast the machine is)."""


def created(article: str = "a", title: str = "Title", body: str = "Body.", *, data: Mapping[str, Any] | None = None,
            **extra: Any) -> dict[str, Any]:
    """An ArticleCreated event as `Ledger.append` takes it: `data` adds fields to its data
    (categories, metadata), `extra` to the event (actor, reason, occurred_at, id, expected_version)."""
    return {"type": "ArticleCreated", "article": article, "data": {"title": title, "body": body, **(data or {})}, **extra}


def edited(article: str, body: str, **extra: Any) -> dict[str, Any]:
    """An ArticleEdited event giving the whole new body."""
    return {"type": "ArticleEdited", "article": article, "data": {"body": body}, **extra}


def jsonl(*events: Mapping[str, Any]) -> bytes:
    """`events` as JSON lines, the input of `ledger append` and `ledger import`."""
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


def cli(*args: str, store: Path | None = None, input: bytes | str | None = None) -> Result:
    """Run the CLI in-process on `store` (else the options in `args`), stdout and stderr kept
    apart; NO_COLOR: plain text, as in a pipe."""
    prefix = ["--store", str(store)] if store is not None else []
    return CliRunner(env={"NO_COLOR": "1"}).invoke(main, [*prefix, *args], input=input)


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Recorder:
    """Collects what the watcher reports, from its thread."""

    def __init__(self) -> None:
        self.results: list[ledger.IngestResult] = []
        self.errors: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def result(self, result: ledger.IngestResult) -> None:
        """The watcher's `on_result`."""
        with self.lock:
            self.results.append(result)

    def error(self, path: str, message: str) -> None:
        """The watcher's `on_error`."""
        with self.lock:
            self.errors.append((path, message))


def version(led: ledger.Ledger, article: str) -> int:
    """The article's version in the store (0: none yet)."""
    return led.store.article_version(article)


def text_of(led: ledger.Ledger, article: str) -> str | None:
    """The article as a draft's text, or None when it does not exist."""
    try:
        return render(led.article(article))
    except ledger.ArticleNotFoundError:
        return None


def story(n: int, extra: str = "") -> str:
    """A plain-text draft of story `n`."""
    return f"Story {n}\n\nBody of story {n}.{extra}\n\nCategories: news"


def t(text: str) -> datetime:
    """A UTC time on 2017-09-05 from "HH:MM[:SS]"."""
    return datetime.fromisoformat(f"2017-09-05T{text}+00:00")


def build_newsroom(led: ledger.Ledger) -> None:
    """Two articles with known histories (times on 2017-09-05, UTC).

    bridge: v1 10:00 created [local, traffic]; v2 11:00 body edited; v3 12:00 update block;
    v4 12:00 traffic -> roads; v5 13:00 withdrawn; v6 14:00 restored; v7 15:00 metadata.
    storm: v1 09:00 created [weather]; v2 12:30 update block; v3 16:00 title edited.
    """

    def add(kind: str, article: str, at: str, data: dict | None = None, **extra: str) -> None:
        led.append([{"type": kind, "article": article, "data": data or {}, "occurred_at": f"2017-09-05T{at}Z", **extra}])

    add("ArticleCreated", "storm", "09:00:00", {"title": "Storm warning", "body": "A storm is coming.\n", "categories": ["weather"]})
    add(
        "ArticleCreated", "bridge", "10:00:00",
        {"title": "Bridge closed", "body": "The bridge is closed.\n", "categories": ["local", "traffic"], "metadata": {"source": "Council"}},
        actor="ann", reason="first report",
    )
    add("ArticleEdited", "bridge", "11:00:00", {"body": "The bridge is closed until Friday.\n"}, actor="bob", reason="date")
    add("UpdateBlockAdded", "bridge", "12:00:00", {"heading": "Update from Council:", "text": "\nIt reopens Monday.\n"})
    add("CategoriesChanged", "bridge", "12:00:00", {"removed": ["traffic"], "added": ["roads"]})
    add("UpdateBlockAdded", "storm", "12:30:00", {"heading": "Update from Met Office:", "text": "\nWinds of 100 km/h.\n"})
    add("ArticleWithdrawn", "bridge", "13:00:00", reason="legal")
    add("ArticleRestored", "bridge", "14:00:00")
    add("MetadataChanged", "bridge", "15:00:00", {"set": {"author": "Ann"}})
    add("ArticleEdited", "storm", "16:00:00", {"title": "Storm hits"})


def phrase_lines(phrase: str, text: str) -> int:
    """How many lines of `text` hold `phrase`, by the definition `search` documents: its words
    in order, in any case, whatever punctuation or spaces stand between them."""
    wanted = re.findall(r"[^\W_]+", phrase.lower())
    found = 0
    for line in text.split("\n"):
        words = re.findall(r"[^\W_]+", line.lower())
        if any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1)):
            found += 1
    return found


def phrase_stretches(led: ledger.Ledger, article: str, phrase: str) -> list[tuple[str, int, int | None]]:
    """Where `phrase` stood in the article, from reading every version (the brute force search is
    checked against): `(part, version it came in, version it went out or None)`, sorted."""
    found: dict[str, list[list[int | None]]] = {}
    last: dict[str, int] = {}
    for version in range(1, led.current_version(article) + 1):
        view = led.article(article, version)
        counts = {
            "title": phrase_lines(phrase, view.title),
            "body": phrase_lines(phrase, view.body),
            "blocks": sum(phrase_lines(phrase, block.heading) + phrase_lines(phrase, block.text) for block in view.blocks),
        }
        for part, count in counts.items():
            if count and not last.get(part):
                found.setdefault(part, []).append([version, None])
            elif not count and last.get(part):
                found[part][-1][1] = version
            last[part] = count
    return sorted((part, int(a or 0), b) for part, stretches in found.items() for a, b in stretches)


class CorpusVersion(NamedTuple):
    """One version of one article of the shared corpus, as its git history gives it."""

    article: str
    data: bytes
    at: datetime
    actor: str
    reason: str


def corpus_versions(corpus: Path, articles: int | None = None) -> Iterator[CorpusVersion]:
    """Every version of the corpus's articles (the first `articles` of them by name, or all),
    oldest first within each article."""
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir())[:articles]:
        last: datetime | None = None
        for entry in json.loads((folder / "versions.json").read_bytes())["versions"]:
            # Git author dates go backwards in 6 places (rebased commits); the log's time may
            # not, so such a version is dated at its predecessor's time.
            when = parse_when(entry["author_date"])
            when = max(when, last) if last is not None else when
            last = when
            yield CorpusVersion(folder.name, (folder / entry["file"]).read_bytes(), when, entry["author_name"], entry["subject"][:2000])


def ingest_corpus_version(led: ledger.Ledger, version: CorpusVersion) -> ledger.IngestResult:
    """Ingest one corpus version as the `ledger ingest` of its draft would."""
    draft = parse_draft(version.data, f"{version.article}.md")
    return ingest_draft(led, draft, at=version.at, actor=version.actor, reason=version.reason)


def interruptible(command: list[str]) -> list[str]:
    """`command` run with Ctrl-C's signal (SIGINT) as a terminal delivers it: a test run started
    in the background by a non-interactive shell (`.ci/run ... &`) inherits SIGINT ignored, and
    a process that starts with it ignored keeps it so (the reset is in a Python that then
    becomes `command`: a default disposition stays through `exec`)."""
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", reset, *command]



def import_in_batches_trying_another_writer(store: str | Path, monkeypatch: Any, scratch: Path) -> tuple[int, str]:
    """Create article `a` in the empty `store`, then import exactly three edits of it made on a
    copy in `scratch`, one append a batch, and after the first batch run another process's
    append that waits at most half a second for the writers' lock; returns that append's exit
    code and stderr (exit 7: an exact import holds other writers off from its first batch to its
    last)."""
    import subprocess

    from ledger import transfer

    with ledger.open(store) as led:
        led.append([{"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "x"}}])
        start = list(led.export())
    with ledger.open(ledger.init(scratch / "copy")) as copy:
        copy.import_records(start, name="start.jsonl")
        for n in range(3):
            copy.append([{"type": "ArticleEdited", "article": "a", "data": {"body": f"x {n}"}}])
        source = list(copy.export())

    monkeypatch.setattr(transfer, "_IMPORT_BATCH", 1)
    tried: list[subprocess.CompletedProcess[bytes]] = []
    with ledger.open(store) as led:
        store_type = type(led.store)
        real = store_type.append_raw

        def append_raw(self: Any, lines: Any, labels: Any = None) -> ledger.Head:
            head = real(self, lines, labels)
            if not tried:
                command = [str(Path(sys.executable).with_name("ledger")), "--store", str(store), "--lock-timeout", "0.5", "append", "-"]
                line = json.dumps({"type": "ArticleCreated", "article": "writer", "data": {"title": "W"}}).encode() + b"\n"
                tried.append(subprocess.run(command, input=line, capture_output=True, timeout=DEADLINE, check=False))
            return head

        monkeypatch.setattr(store_type, "append_raw", append_raw)
        try:
            result = led.import_records(source, name="in.jsonl")
        finally:
            monkeypatch.undo()
    assert (result.mode, result.imported) == ("exact", 3), result
    return tried[0].returncode, tried[0].stderr.decode()
