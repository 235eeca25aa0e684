"""`ledger serve`: the read-only web viewer over the store."""

from __future__ import annotations

import click

from .group import main, open_ledger


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="The TCP port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on; anything but loopback prints a warning.")
@click.pass_context
def serve(ctx: click.Context, port: int, host: str) -> None:
    """Open a read-only web viewer of the store: articles, history, diffs, blame, search, feed, categories.

    Pages follow the log live: a version appended meanwhile shows on reload. Every page is also
    JSON (add .json to its address). Stop it with Ctrl+C.

    \b
    Example:
      ledger --store ledger-data serve --port 8000
    """
    import ledger

    ledger.serve(open_ledger(ctx), host=host, port=port)
