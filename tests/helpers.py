"""Helpers shared by the tests: events as `Ledger.append` takes them, and the CLI run in-process.
(Fixtures live in conftest.py.)"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from ledger_cli.main import main


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
