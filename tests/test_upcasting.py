"""Old logs stay readable: a store written in schema 1 opens, verifies and reads back upcast.

`tests/fixtures/schema1-log/` is a store as the first prototype wrote it: `ArticleCreated` kept
`source`, `url` and `author` beside the title, and `UpdateBlockAdded` had no `index` (blocks
always went last). Its bytes are committed and never rewritten; `schema1_files` below is how they
were made (sealed with `ledger.codec.seal`, so the hash chain verifies).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import ledger
from ledger import codec
from ledger.store import INDEX_FILE, LOG_FILE, MARKER_FILE
from tests.conftest import run_ledger

FIXTURE = Path(__file__).parent / "fixtures" / "schema1-log"
STORE_ID = "5d1c3f0e-6a43-4b8e-9a57-1f2f8c2d0b11"


def schema1_files() -> dict[str, bytes]:
    """The fixture store's files, as the schema-1 writer produced them."""
    records = [
        [
            {"id": "old-1", "article": "deir-ez-zor", "type": "ArticleCreated",
             "data": {"title": "Army breaks siege of Deir ez-Zor", "body": "Syrian troops reached the city.\n",
                      "categories": ["latest", "syria"], "source": "Al Masdar News",
                      "url": "https://example.org/deir-ez-zor", "author": "Leith Fadel"},
             "actor": "importer", "reason": "first prototype import"},
            {"id": "old-2", "article": "raqqa", "type": "ArticleCreated",
             "data": {"title": "Raqqa offensive", "body": "", "categories": [], "source": "SANA", "author": None}},
        ],
        [
            {"id": "old-3", "article": "deir-ez-zor", "type": "UpdateBlockAdded",
             "data": {"heading": "Update from Al Masdar News:", "text": "\nThe airport road is open.\n"}},
        ],
        [
            {"id": "old-4", "article": "deir-ez-zor", "type": "CategoriesChanged", "data": {"added": ["featured"], "removed": []}},
            {"id": "old-5", "article": "raqqa", "type": "UpdateBlockAdded", "data": {"heading": "Update:", "text": "\nFighting continues.\n"}},
        ],
    ]
    times = ["2017-09-05T16:05:00.000000Z", "2017-09-05T19:30:00.000000Z", "2017-09-06T08:00:00.000000Z"]
    versions: dict[str, int] = {}
    lines: list[bytes] = []
    prev = codec.GENESIS_HASH
    position = 0
    for when, append in zip(times, records, strict=False):
        bumped = {event["article"]: versions.get(event["article"], 0) + 1 for event in append}
        versions.update(bumped)
        for i, event in enumerate(append):
            position += 1
            record = {"pos": position, "id": event["id"], "article": event["article"], "version": bumped[event["article"]],
                      "type": event["type"], "schema": 1, "recorded_at": when, "occurred_at": when}
            record.update({k: event[k] for k in ("actor", "reason") if k in event})
            record["data"] = event["data"]
            if i == len(append) - 1:
                record["end"] = True
            line, prev = codec.seal(record, prev)
            lines.append(line)
    marker = codec.dumps({"format": "ledger", "version": 1, "store_id": STORE_ID}) + b"\n"
    return {MARKER_FILE: marker, LOG_FILE: b"".join(lines)}


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """A copy of the schema-1 fixture (opening creates the index and lock beside the log)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "old"))


def test_the_fixture_is_what_the_schema1_writer_wrote() -> None:
    assert {p.name: p.read_bytes() for p in FIXTURE.iterdir()} == schema1_files()
    assert all(codec.decode(line)["schema"] == 1 for line in (FIXTURE / LOG_FILE).read_bytes().splitlines())


def test_schema1_log_opens_verifies_and_reads_back_upcast(old_store: Path) -> None:
    original = (old_store / LOG_FILE).read_bytes()
    with ledger.open(old_store) as led:
        report = led.verify()
        assert report.ok and (report.events, report.articles, report.head_position) == (5, 2, 5)
        events = list(led.events())
        assert [(e.position, e.type, e.schema_version) for e in events] == [
            (1, "ArticleCreated", 2), (2, "ArticleCreated", 2), (3, "UpdateBlockAdded", 2),
            (4, "CategoriesChanged", 1), (5, "UpdateBlockAdded", 2),
        ]
        assert events[0].data == {
            "title": "Army breaks siege of Deir ez-Zor", "body": "Syrian troops reached the city.\n",
            "categories": ["latest", "syria"],
            "metadata": {"source": "Al Masdar News", "url": "https://example.org/deir-ez-zor", "author": "Leith Fadel"},
        }
        assert events[0].actor == "importer" and events[0].reason == "first prototype import"
        assert events[1].data["metadata"] == {"source": "SANA"}  # a null author was never a value
        assert events[2].data == {"heading": "Update from Al Masdar News:", "text": "\nThe airport road is open.\n", "index": None}
        # Reading one article through the index upcasts the same way.
        by_article = led.store.read_article("deir-ez-zor")
        assert [r["data"] for r in by_article] == [e.data for e in events if e.article == "deir-ez-zor"]
        assert all(r["schema"] == 2 for r in by_article if r["type"] != "CategoriesChanged")
        # Projections see the upcast data.
        view = led.article("deir-ez-zor")
        assert view.version == 3 and view.metadata["author"] == "Leith Fadel"
        assert [b.heading for b in view.blocks] == ["Update from Al Masdar News:"]
        assert view.categories == ["latest", "syria", "featured"]
        assert led.article("raqqa").blocks[0].text == "\nFighting continues.\n"
    assert (old_store / LOG_FILE).read_bytes() == original  # upcasting happens on read only


def test_schema1_log_takes_new_appends_in_the_current_schema(old_store: Path) -> None:
    original = (old_store / LOG_FILE).read_bytes()
    with ledger.open(old_store) as led:
        result = led.append([{"type": "UpdateBlockAdded", "article": "raqqa", "data": {"heading": "Update 2:", "index": 0}}])
        assert (result.first_position, result.versions) == (6, {"raqqa": 3})
        assert led.verify().ok
    data = (old_store / LOG_FILE).read_bytes()
    assert data.startswith(original)
    assert codec.decode(data.splitlines()[-1])["schema"] == 2
    (old_store / INDEX_FILE).unlink()
    with ledger.open(old_store) as led:
        assert [b.heading for b in led.article("raqqa").blocks] == ["Update 2:", "Update:"]


@pytest.mark.slow
def test_cli_log_shows_schema1_events_upcast(old_store: Path) -> None:
    result = run_ledger("log", "--format", "json", "--type", "ArticleCreated", store=old_store)
    assert result.returncode == 0, result.stderr
    first = codec.loads(result.stdout.splitlines()[0])
    assert first["schema_version"] == 2 and first["data"]["metadata"]["url"] == "https://example.org/deir-ez-zor"
    assert "source" not in first["data"]
