"""The `ledger` command group, its shared options, and how errors become exit codes.

Exit codes (also in the README):

    0  success
    1  other ledger error
    2  usage error (unknown command or option, bad option value)
    3  invalid input: malformed JSON, unknown event type, bad field or id, bad time, bad draft
    4  article or version not found
    5  conflict: version conflict, duplicate event ids, event not allowed in the article's state
    6  store error: no store at that path, unsupported format, I/O failure
    7  store locked by another writer past the timeout
    8  corrupt store: a record fails its checksum, the hash chain or the order of positions
    9  nothing to do: the input would record nothing
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

import ledger
from cli.output import console

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LedgerGroup(click.Group):
    """Runs commands so that a `LedgerError` is one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ledger.LedgerError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            console(stderr=True).print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            ctx.exit(EXIT_INTERRUPTED)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console(stderr=True).print(f"[yellow]warning:[/] {record.getMessage()}", markup=True, highlight=False)


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
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="ledger", prog_name="ledger")
@click.pass_context
def main(ctx: click.Context, store: Path, debug: bool) -> None:
    """Versions articles by event sourcing: every edit, update block and category change is an
    immutable event in one log, and every view is rebuilt from it.

    \b
    Example:
      ledger init
      ledger ingest examples/drafts/*.txt
      ledger history harbour-bridge-closure
    """
    ctx.ensure_object(dict)
    ctx.obj["store"] = store
    ctx.obj["debug"] = debug
    logger = logging.getLogger("ledger")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False


def open_ledger(ctx: click.Context, **options: Any) -> ledger.Ledger:
    """Open the store named by `--store` (the ledger is closed when the command ends)."""
    led = ledger.open(ctx.obj["store"], **options)
    ctx.call_on_close(led.close)
    return led


def _register() -> None:
    # Command modules import `main` to attach their commands; importing them here, after `main`
    # exists, keeps one entry point.
    from cli import store_commands  # noqa: F401


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
