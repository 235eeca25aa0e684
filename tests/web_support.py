"""What the web viewer's tests share: the viewer served by uvicorn in a thread on a free
loopback port, and the stores they serve (the bundled examples, the shared corpus)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn

import ledger
from ledger.web import create_app
from tests.conftest import ROOT
from tests.helpers import DEADLINE, corpus_versions, ingest_corpus_version

SCREENSHOTS = ROOT / "build" / "screenshots"
"""Where the browser tests write full-page screenshots for a person to look at (git-ignored)."""
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's chromium, which Playwright drives (it downloads no browser of its own here)."""


class Site:
    """The viewer over `led`, served by uvicorn in a thread on 127.0.0.1 and a free port; `url`
    once it answers. A context manager: it stops the server on the way out."""

    def __init__(self, led: ledger.Ledger) -> None:
        config = uvicorn.Config(create_app(led), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> Site:
        self.thread.start()
        deadline = time.monotonic() + DEADLINE
        while not self.server.started:
            assert self.thread.is_alive(), "the viewer's server stopped while starting"
            assert time.monotonic() < deadline, "the viewer's server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        assert httpx.get(self.url + "/", timeout=DEADLINE).status_code == 200
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(DEADLINE)


def examples_store(root: Path) -> ledger.Ledger:
    """The bundled examples as `examples/demo.sh` ingests them (same times, people, reasons)."""
    led = ledger.open(ledger.init(root))
    revisions = ROOT / "examples" / "revisions" / "harbour-bridge-closure"
    for name, at, actor, reason in (
        ("v1.txt", "2024-03-05T08:10:00Z", "Ana Ruiz", "first report"),
        ("v2.txt", "2024-03-05T11:25:00Z", "Ana Ruiz", "third cable; ferry update"),
        ("v3.txt", "2024-03-05T18:40:00Z", "Tom Berg", "reopening date"),
    ):
        ledger.ingest(led, [revisions / name], article="harbour-bridge-closure", at=at, actor=actor, reason=reason)
    ledger.ingest(led, [ROOT / "examples" / "drafts"], at="2024-05-04T08:00:00Z", actor="City desk")
    return led


def corpus_store(root: Path, corpus: Path) -> ledger.Ledger:
    """Every version of every article of the shared corpus, ingested as tests/test_corpus.py does."""
    led = ledger.open(ledger.init(root))
    with led.bulk():
        for version in corpus_versions(corpus):
            ingest_corpus_version(led, version)
    return led
