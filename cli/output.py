"""Output helpers shared by every command: JSON lines for programs, rich text for people."""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from ledger import InvalidTimeError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn

    from ledger import RecordedEvent

# rich and the library are imported where they are used: a command loads only what it prints
# with and what it reads (`ledger --help` neither), which keeps start-up short (issue 14).

FORMATS = ("text", "json")

# What a terminal would act on rather than show, written out instead: control characters (an
# escape sequence in a file name could clear the screen or retitle the window), line and
# paragraph separators, and the marks that reorder text (a name could read backwards).
_UNSHOWABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_WRITTEN_OUT = {"\n": "\\n", "\r": "\\r"}


def shown(text: str) -> str:
    """`text` with what a terminal would act on written out as escapes (`\\n`, `\\x1b`, `\\u202e`):
    a name from a file or the log printed on one line, as what it is."""
    if text.isprintable():
        return text  # (most text: checked in C, for the long tables)
    return _UNSHOWABLE.sub(lambda m: _WRITTEN_OUT.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"), text)


def plural(number: int, noun: str) -> str:
    """`number` and `noun`, the noun in the plural unless the number is 1: "1 article", "5 events"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


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


_UNBOUNDED = 100_000
"""The width of piped output (unless COLUMNS says otherwise): rows are never wrapped."""
_RICH_MAX_ROWS = 1_000
"""Longer tables are printed plain on a terminal too: rich lays out about 1,400 rows a second."""


def console(stderr: bool = False) -> Console:
    """A rich console: colour only on a terminal and without NO_COLOR."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    plain = bool(os.environ.get("NO_COLOR")) or not terminal
    # Piped output is read by programs: a table row must stay one line, whatever its length.
    width = None if terminal or "COLUMNS" in os.environ else _UNBOUNDED
    return Console(file=stream, no_color=plain, highlight=False, soft_wrap=True, width=width,
                   force_terminal=None if not plain else False)


def notice(label: str, message: str) -> None:
    """Print `label message` on stderr: `label` is rich markup (`"[bold red]error:[/]"`), `message`
    plain text, so that a path or title in it such as `drafts/[old]/a.md` is never read as markup,
    on one line with what a terminal would act on written out (`shown`)."""
    from rich.markup import escape

    console(stderr=True).print(f"{label} {escape(shown(message))}", markup=True, highlight=False)


def json_line(value: Any) -> None:
    """Write one JSON value as a line on stdout."""
    from ledger import dumps

    sys.stdout.buffer.write(dumps(value) + b"\n")
    sys.stdout.flush()


def json_lines(values: Iterable[Any]) -> None:
    """Write JSON values, one per line."""
    from ledger import dumps

    out = sys.stdout.buffer
    for value in values:
        out.write(dumps(value) + b"\n")
    sys.stdout.flush()


def local_time(moment: datetime) -> str:
    """A time for people: local time zone, to the second."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


# Columns of what people copy into the next command (article ids, versions, positions): kept
# whole on a narrow terminal, where the other columns wrap or shrink to make room.
_ID_COLUMNS = frozenset({"article", "ver", "pos", "in", "out", "category"})


def table(columns: list[str], rows: Iterable[list[Any]], title: str | None = None) -> None:
    """Print a table for people: rich on a terminal (or at the width COLUMNS gives); plain aligned
    text, one line per row, when piped or longer than 1,000 rows. Longer tables are streamed, so
    the first rows appear at once and memory stays flat (see `_plain_table`)."""
    cells = (["" if cell is None else shown(str(cell)) for cell in row] for row in rows)
    first = list(itertools.islice(cells, _RICH_MAX_ROWS + 1))
    # What console() would give: unbounded on a pipe unless COLUMNS is set. Decided before
    # creating one, so that piped output never loads rich's console.
    if (not sys.stdout.isatty() and "COLUMNS" not in os.environ) or len(first) > _RICH_MAX_ROWS:
        _plain_table(columns, first, cells, title)
        return
    from rich.table import Table
    from rich.text import Text

    out = console()
    grid = Table(title=title, box=None, pad_edge=False, header_style="bold")
    for n, name in enumerate(columns):
        if name not in _ID_COLUMNS:
            grid.add_column(name)
        else:
            # Never cut short ("night-mark…"): an id is copied whole or not at all.
            widest = max((cell_len(row[n]) for row in first if n < len(row)), default=0)
            grid.add_column(name, no_wrap=True, min_width=max(widest, cell_len(name)))
    for row in first:
        # Text, not str: a title such as "Live [updated]" or "a[/]b" is not rich markup.
        grid.add_row(*(Text(cell) for cell in row))
    if out.is_terminal:
        out.print(grid)
        return
    # Piped at a set width: rows end at their last cell, so tools see the row's real end.
    with out.capture() as captured:
        out.print(grid)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def cell_len(text: str) -> int:
    """The columns `text` takes on a terminal, as rich counts them: printable ASCII is one a
    character, so rich (rich.cells) is loaded only for other text, and a piped history of such
    text does not load rich at all (issue 14)."""
    if text.isascii() and text.isprintable():
        return len(text)
    from rich.cells import cell_len as rich_cell_len

    return rich_cell_len(text)


def _plain_table(columns: list[str], first: list[list[str]], rest: Iterator[list[str]], title: str | None) -> None:
    # The layout rich gives the same table at an unbounded width (left-aligned columns two spaces
    # apart, the title on its own line), written directly: rich took 18 s for the 17,060 rows of
    # a long history. Rows end at their last cell, so tools see the row's real end.
    # Columns are as wide as the header and the first 1,001 rows need; a later, wider cell widens
    # its column from that row on. Measuring every row first held all 1M rows of `ledger log`
    # (549 MB) and printed nothing for most of a minute.
    widths = [cell_len(name) for name in columns]
    for row in first:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    write = sys.stdout.write
    if title:
        write(title + "\n")
    for row in itertools.chain([columns], first, rest):
        line = []
        for i, cell in enumerate(row):
            size = cell_len(cell)
            if size > widths[i]:
                widths[i] = size
            line.append(cell + " " * (widths[i] - size))
        write("  ".join(line).rstrip() + "\n")
    sys.stdout.flush()


class TimeParam(click.ParamType[str | datetime, Any]):
    """A time typed by a person: ISO 8601 (`2017-09-05T16:05:00Z`, `2017-09-05`) or an age
    before now (`90m`, `2h`, `3d`).

    It is checked here and handed to the library as typed, because what a typed time means
    depends on its use (`--at 2017-09-05` is as of the end of that day, `--since 2017-09-05` from
    its start: see `ledger.times`). A time that cannot be read is invalid input (exit 3, like
    every bad time), named with its option.
    """

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | datetime:
        """Check `value` with `ledger.parse_when` and return it unchanged."""
        from ledger import parse_when

        if isinstance(value, datetime):
            return value
        try:
            parse_when(str(value))
            return str(value)
        except InvalidTimeError as exc:
            # Named as click names a bad value (`ledger show: --at: ...`), with the exit code of
            # a bad time (3).
            where = param.get_error_hint(ctx).replace("'", "") if param is not None and ctx is not None else "time"
            command = f"{ctx.command_path}: " if ctx is not None else ""
            raise InvalidTimeError(f"{command}{where}: {exc}") from None


TIME = TimeParam()
"""The `TimeParam` to use as `type=` of a time option or argument."""

INT64_MAX = 2**63 - 1
"""The largest position, version or count the log and its index can hold."""


class Count(click.IntRange):
    """A whole number from `minimum` up to what the log can hold (a larger one is a usage error
    saying so, not an overflow deep in the index), refused in plain words: `'abc' is not a whole
    number (expected 1 or more)` rather than click's `'abc' is not a valid integer range`."""

    def __init__(self, minimum: int) -> None:
        super().__init__(min=minimum, max=INT64_MAX)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        """`N` in usage and help (click's is `INTEGER RANGE`)."""
        return "N"

    def _describe_range(self) -> str:
        # Help shows `[1 or more]`, not click's `[1<=x<=9223372036854775807]`: the top is only
        # what the log holds, said when a number passes it.
        return f"{self.min} or more"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """`value` as an int within the range, or a usage error saying what is expected."""
        expected = f"{self.min} or more"
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{str(value)!r} is not a whole number (expected {expected})", param, ctx)
        if self.min is not None and number < self.min:
            self.fail(f"{number} is too small (expected {expected})", param, ctx)
        if number > INT64_MAX:
            self.fail(f"{number} is beyond 64 bits (expected at most {INT64_MAX:,}, the largest the log holds)", param, ctx)
        return number


def count(minimum: int) -> Count:
    """The `Count` type for an option or argument: a whole number from `minimum` on."""
    return Count(minimum)


class Seconds(click.ParamType[float, Any]):
    """A number of seconds from `minimum` on: NaN is refused (every comparison with it is false,
    so a wait of NaN seconds never ends), and so is infinity unless `forever` allows it."""

    name = "seconds"

    def __init__(self, minimum: float, *, forever: bool = False) -> None:
        self.minimum = minimum
        self.forever = forever

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """`value` as a float of seconds, or a usage error in plain words."""
        expected = f"a number of seconds{'' if self.minimum == 0 else f' from {self.minimum:g}'}, such as 2.5"
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not {expected}", param, ctx)
        if math.isnan(seconds) or (math.isinf(seconds) and not self.forever):
            self.fail(f"{value!r} is not {expected}", param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value} is too small (expected {self.minimum:g} or more seconds)", param, ctx)
        return seconds


TERMINAL_PAGE = 50
"""How many rows a long listing shows on a terminal unless `--limit` says otherwise."""


def page_options(func: Any) -> Any:
    """`--limit/-n N` and `--offset N` of a long listing (see `page_limit`)."""
    func = click.option("--offset", type=count(0), default=0, show_default=True, help="Skip this many rows first (the next page: the previous offset plus its limit).")(func)
    return click.option(
        "--limit", "-n", type=count(1),
        help=f"At most this many rows (1 or more). Default: {TERMINAL_PAGE} on a terminal, all when the output is piped or redirected.",
    )(func)


def page_limit(limit: int | None) -> int | None:
    """The rows to show: `limit` when given, else a page on a terminal and all (None) on a pipe,
    so that scripts reading the output keep getting every row."""
    if limit is None and sys.stdout.isatty():
        return TERMINAL_PAGE
    return limit


def more_note(total: Callable[[], int], rows: int, limit: int | None, offset: int, noun: str) -> None:
    """On a terminal, when the page is full, one line on stderr saying how many rows are left and
    how to see them; and, wherever the output goes, when `--offset` skipped past the last row.
    `total` counts them all (only called in those two cases)."""
    if rows == 0 and offset > 0:
        count_all = total()
        notice("note:", f"nothing from --offset {offset} on: there {'is' if count_all == 1 else 'are'} {count_all:,} {noun if count_all == 1 else noun + 's'} in all")
        return
    if limit is None or rows < limit or not sys.stdout.isatty():
        return
    left = total() - offset - rows
    if left > 0:
        notice("note:", f"{left:,} more {noun if left == 1 else noun + 's'}: --offset {offset + rows} for the next page, --limit N for longer pages, or pipe the output for all")


def event_line(event: RecordedEvent) -> str:
    """One event on one line, for people (`ledger log --follow`)."""
    who = f"  {event.actor}" if event.actor else ""
    why = f"  ({event.reason})" if event.reason else ""
    return shown(f"{event.position:>6}  {local_time(event.occurred_at)}  {event.article} v{event.version}  {event.type}{who}{why}")


def show_progress() -> bool:
    """Whether to draw progress bars: only when stderr is a terminal (never on a pipe or file)."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def _rate_column(unit: str) -> ProgressColumn:
    """A column of items per second (rich has a rate column for bytes only)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed")

    return RateColumn()


@contextmanager
def progress_bar(description: str, unit: str = "bytes") -> Iterator[Callable[[int, int], None] | None]:
    """A callback `update(done, total)` for long work: on a terminal it draws a bar on stderr with
    the amount done, the rate and the time left; on a pipe it is None, so that the library does
    not even measure the work to report. `unit` is "bytes", or the name of what is counted
    ("events", "files").

    Example::

        with progress_bar("verifying") as update:
            report = led.verify(update)
    """
    if not show_progress():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if unit == "bytes":
        amount: list[ProgressColumn] = [DownloadColumn(), TransferSpeedColumn()]
    else:
        amount = [MofNCompleteColumn(), _rate_column(unit)]
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), *amount, TimeRemainingColumn()]
    with Progress(*columns, console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
