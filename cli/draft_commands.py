"""Commands on drafts: ingest draft files, watch a drafts folder."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from ledger import DRAFT_SIZE_LIMIT

from .group import main, open_ledger
from .output import TIME, Seconds, console, count, format_option, json_line, notice, shown

if TYPE_CHECKING:
    from ledger import IngestResult

follow_symlinks_option = click.option(
    "--follow-symlinks", is_flag=True,
    help="Read symbolic links to drafts in the same folder (default: links are not followed; never out of the folder).",
)
max_draft_size_option = click.option(
    "--max-draft-size", type=count(1), default=DRAFT_SIZE_LIMIT, show_default=True, metavar="BYTES",
    envvar="LEDGER_MAX_DRAFT_SIZE", help="Refuse drafts bigger than this (else $LEDGER_MAX_DRAFT_SIZE).",
)


def _line(result: IngestResult) -> str:
    where = f" ({result.path})" if result.path else ""
    return shown(f"{result.status} {result.article} v{result.version}{where}: {result.summary}")


@main.command(name="ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--at", "at", type=TIME, help="When the changes happened (ISO 8601 or an age like 2h; default: now).")
@click.option("--actor", help="Who made the changes.")
@click.option("--reason", help="Why (an edit summary).")
@click.option("--article", "-a", "article", help="Ingest the (single) draft as this article, whatever its file name.")
@follow_symlinks_option
@max_draft_size_option
@format_option
@click.pass_context
def ingest_command(
    ctx: click.Context, paths: tuple[Path, ...], at: str | None, actor: str | None, reason: str | None, article: str | None,
    follow_symlinks: bool, max_draft_size: int, fmt: str,
) -> None:
    """Bring articles up to their drafts, all of them in one atomic append.

    PATH is a draft file (.txt plain text; .md/.markdown with YAML, TOML or JSON front matter, or a
    '# Title' heading) or a folder of them.
    The article id is the file name's stem unless the front matter names an `id`. An unchanged
    draft appends nothing. Every draft is parsed and compared first, and the changes of all of
    them are one append: a bad draft, two drafts of one article or an event the log refuses
    (e.g. --at earlier than an article's last version) appends nothing at all. Only regular
    files are drafts: in a folder, anything else named like a draft (a FIFO, a folder, a symbolic
    link unless --follow-symlinks) is skipped with a warning; named on its own, it is refused.

    JSON fields (one object per draft): path, article, status (created, updated, unchanged),
    version, changes (event types), summary, first_position.

    \b
    Example:
      ledger ingest examples/drafts
      ledger ingest examples/revisions/harbour-bridge-closure/v1.txt --article harbour-bridge-closure
    """
    from ledger import ingest

    led = open_ledger(ctx)
    results = ingest(led, paths, at=at, actor=actor, reason=reason, article=article, follow_symlinks=follow_symlinks, max_size=max_draft_size)
    for result in results:
        if fmt == "json":
            json_line(result.model_dump(mode="json"))
        else:
            click.echo(_line(result))


@main.command(name="watch")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--poll", type=Seconds(0.05), help="Poll every SECONDS instead of native events (network drives, containers).")
@click.option("--withdraw-on-delete", is_flag=True, help="Withdraw an article when its draft is deleted (default: record nothing).")
@click.option("--actor", help="Who to record as the author of the changes.")
@click.option("--reason", help="Why, recorded with every change (an edit summary).")
@follow_symlinks_option
@max_draft_size_option
@click.pass_context
def watch_command(
    ctx: click.Context, folder: Path, poll: float | None, withdraw_on_delete: bool, actor: str | None, reason: str | None,
    follow_symlinks: bool, max_draft_size: int,
) -> None:
    """Watch FOLDER and ingest drafts as they are saved, until Ctrl-C or SIGTERM.

    On start, drafts changed while no watcher ran are ingested (unchanged ones append nothing).
    Then each draft is ingested once it has settled (quiet for 0.5 s and closed by its writer:
    a draft still open for writing is not read, however quiet); editors' temporary, swap and
    backup files are ignored, and names that are no regular file (a FIFO, a folder, a symbolic
    link unless --follow-symlinks) are reported once. Each draft is its own append: one
    line per ingest on stdout. A bad draft is reported on stderr and skipped until it changes;
    a draft that fails for another reason (the store locked by another writer) is reported and
    tried again, less and less often, and the watcher goes on.

    \b
    Example:
      ledger watch drafts/ --withdraw-on-delete
    """
    from ledger import watch  # watchdog is loaded only by the command that needs it

    led = open_ledger(ctx)
    err = console(stderr=True)
    stopping = threading.Event()

    def on_result(result: IngestResult) -> None:
        click.echo(f"{datetime.now().strftime('%H:%M:%S')} {_line(result)}")

    def on_error(path: str, message: str) -> None:
        notice("[bold red]error:[/]", message)

    def on_signal(number: int, frame: FrameType | None) -> None:
        stopping.set()

    watcher = watch(
        led, folder, poll=poll, withdraw_on_delete=withdraw_on_delete, on_result=on_result, on_error=on_error, actor=actor, reason=reason,
        follow_symlinks=follow_symlinks, max_draft_size=max_draft_size,
    )
    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        watcher.start()
        err.print(f"watching {folder} ({watcher.mode}) into {led.location}; Ctrl-C or SIGTERM stops", markup=False, highlight=False)
        while not stopping.wait(0.2):
            if not watcher.running:
                break
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        signal.signal(signal.SIGTERM, previous)
    if watcher.failure is not None:
        raise watcher.failure
    err.print("stopped", highlight=False)
    sys.stdout.flush()
