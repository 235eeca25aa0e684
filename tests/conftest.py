"""Shared fixtures: temporary stores, the shared corpus and sample, and the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ledger
from tests import pgserver
from tests.helpers import Recorder

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "nodejs-blog"
SAMPLES = SHARED / "samples"


@pytest.fixture(scope="session", autouse=True)
def _views_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The views of server stores go to a folder of the test session, not the user's
    ~/.cache/ledger (each test database would leave its cache there)."""
    saved = os.environ.get("LEDGER_CACHE_DIR")
    os.environ["LEDGER_CACHE_DIR"] = str(tmp_path_factory.mktemp("ledger-cache"))
    yield
    if saved is None:
        del os.environ["LEDGER_CACHE_DIR"]
    else:
        os.environ["LEDGER_CACHE_DIR"] = saved


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgserver.Cluster]:
    """A PostgreSQL server for the session: `$LEDGER_TEST_POSTGRES`, else a throw-away cluster
    started here and stopped at the end (skipped, with the reason, when none can be had)."""
    try:
        cluster = pgserver.start()
    except pgserver.Unavailable as exc:
        pytest.skip(f"PostgreSQL tests: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: pgserver.Cluster) -> Iterator[str]:
    """The URL of a fresh database holding an empty ledger store (dropped after the test)."""
    from ledger.store.postgres import init_schema

    name = pg_cluster.create_database()
    url = pg_cluster.url(name)
    init_schema(url)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A fresh, initialised store folder."""
    return ledger.init(tmp_path / "store")


@pytest.fixture
def led(store_dir: Path) -> Iterator[ledger.Ledger]:
    """An open `Ledger` on a fresh store."""
    with ledger.open(store_dir) as opened:
        yield opened


@pytest.fixture
def drafts(tmp_path: Path) -> Path:
    """An empty drafts folder."""
    folder = tmp_path / "drafts"
    folder.mkdir()
    return folder


@pytest.fixture
def running(led: ledger.Ledger, drafts: Path) -> Iterator[tuple[ledger.Watcher, Recorder]]:
    """A started watcher of `drafts` into `led`, and what it reports."""
    recorder = Recorder()
    with ledger.watch(led, drafts, on_result=recorder.result, on_error=recorder.error) as started:
        yield started, recorder


@pytest.fixture
def corpus() -> Path:
    """The real revision histories in ../shared/corpus (skipped, visibly, where absent)."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (CI has ../shared beside the project)")
    return CORPUS


@pytest.fixture
def samples() -> Path:
    """The real sample drafts in ../shared/samples (skipped, visibly, where absent)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES} (CI has ../shared beside the project)")
    return SAMPLES


def run_ledger(*args: str, store: Path | None = None, input: bytes | None = None, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run the installed `ledger` console script as a real process."""
    environment = {**os.environ, "NO_COLOR": "1", **(env or {})}
    command = [str(Path(sys.executable).with_name("ledger"))]
    if store is not None:
        command += ["--store", str(store)]
    return subprocess.run(command + list(args), input=input, check=False, capture_output=True, env=environment, timeout=timeout)


def drain_terminal(controller: int) -> bytes:
    """Everything written to a pseudo-terminal until its last writer closes it."""
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        screen += chunk
    return screen
