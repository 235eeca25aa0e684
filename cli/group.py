"""The `ledger` command group, its shared options, and how errors become exit codes. The command
modules attach their commands to it; `ledger_cli.main` assembles them.

Exit codes (also in docs/cli.md):

    0  success
    1  other ledger error
    2  usage error (unknown command or option, bad option value)
    3  invalid input: malformed JSON, unknown event type, bad field or id, bad time, bad draft
    4  article or version not found
    5  conflict: version conflict, duplicate event ids, event not allowed in the article's state
    6  store error: no store at that path, unsupported format, I/O failure
    7  store locked by another writer past the timeout
    8  corrupt store: a record fails its checksum, the hash chain or the order of positions;
       the log no longer extends an anchored head (verify --head)
    9  nothing to do: the input would record nothing
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (broken pipe, e.g. `ledger log | head -1`)
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

import ledger

from .output import Seconds, count, notice

EXIT_USAGE = 2
EXIT_STORE = ledger.StoreError.exit_code
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LedgerGroup(click.Group):
    """Runs commands so that a `LedgerError` is one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ledger.LedgerError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            # One line, always: a name given by the user may hold a line break.
            notice("[bold red]error:[/]", str(exc).replace("\r", "\\r").replace("\n", "\\n"))
            ctx.exit(exc.exit_code)
        except sqlite3.Error as exc:
            # The library maps the caches' errors it expects; this is the last line of defence,
            # so that a damaged or unwritable cache is never a traceback.
            if ctx.obj and ctx.obj.get("debug"):
                raise
            notice("[bold red]error:[/]", f"the store's index or views failed ({exc}); they are caches of the log, "
                   "so deleting index.sqlite and views.sqlite in the store folder is safe")
            ctx.exit(EXIT_STORE)
        except KeyboardInterrupt:
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (`ledger log | head`): stop quietly, as `cat` would, and keep
            # Python from complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        notice("[yellow]warning:[/]", record.getMessage())


@click.group(cls=LedgerGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--store",
    "store",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LEDGER_STORE",
    default="ledger-data",
    show_default=True,
    help="The store folder (else $LEDGER_STORE, else ./ledger-data).",
)
@click.option(
    "--lock-timeout",
    type=Seconds(0, forever=True),
    envvar="LEDGER_LOCK_TIMEOUT",
    default=10.0,
    show_default=True,
    help="Seconds to wait for another writer's lock before failing with exit code 7 (inf: wait for ever).",
)
@click.option(
    "--max-event-bytes",
    type=count(1),
    envvar="LEDGER_MAX_EVENT_BYTES",
    default=ledger.DEFAULT_MAX_EVENT_BYTES,
    show_default=True,
    help="Refuse an event whose data, as JSON, is larger than this (exit code 3).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="article-ledger", prog_name="ledger")
@click.pass_context
def main(ctx: click.Context, store: Path, lock_timeout: float, max_event_bytes: int, debug: bool) -> None:
    """Versions articles by event sourcing: every edit, update block and category change is an
    immutable event in one log, and every view is rebuilt from it.

    \b
    Example:
      ledger init
      ledger ingest examples/drafts
      ledger history night-market-returns
    """
    ctx.ensure_object(dict)
    ctx.obj["store"] = store
    ctx.obj["debug"] = debug
    ctx.obj["lock_timeout"] = lock_timeout
    ctx.obj["max_event_bytes"] = max_event_bytes
    # Warnings go to stderr for the length of the command only: a program that runs commands
    # in-process (tests, scripts) gets its logging back as it was.
    logger = logging.getLogger("ledger")
    handler = _StderrHandler()
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False

    def restore_logging() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    ctx.call_on_close(restore_logging)


def open_ledger(ctx: click.Context, **options: Any) -> ledger.Ledger:
    """Open the store named by `--store` (the ledger is closed when the command ends)."""
    options.setdefault("lock_timeout", ctx.obj["lock_timeout"])
    options.setdefault("max_event_bytes", ctx.obj["max_event_bytes"])
    led = ledger.open(ctx.obj["store"], **options)
    ctx.call_on_close(led.close)
    return led

