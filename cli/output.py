"""Output helpers shared by every command: JSON lines for programs, rich text for people."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any, Iterable

import click
from rich.console import Console
from rich.table import Table

from ledger.codec import dumps

FORMATS = ("text", "json")


def format_option(func: Any) -> Any:
    """The `--format text|json` option every read command has."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="text for people, json for programs (one JSON object per line for lists).",
    )(func)


def console(stderr: bool = False) -> Console:
    """A rich console: colour only on a terminal and without NO_COLOR."""
    stream = sys.stderr if stderr else sys.stdout
    plain = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    return Console(file=stream, no_color=plain, highlight=False, soft_wrap=True, force_terminal=None if not plain else False)


def json_line(value: Any) -> None:
    """Write one JSON value as a line on stdout."""
    sys.stdout.buffer.write(dumps(value) + b"\n")
    sys.stdout.flush()


def json_lines(values: Iterable[Any]) -> None:
    """Write JSON values, one per line."""
    out = sys.stdout.buffer
    for value in values:
        out.write(dumps(value) + b"\n")
    sys.stdout.flush()


def local_time(moment: datetime) -> str:
    """A time for people: local time zone, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def table(columns: list[str], rows: Iterable[list[Any]], title: str | None = None) -> None:
    """Print a table for people (plain text, aligned, when piped)."""
    grid = Table(*columns, title=title, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(grid)
