"""Commands that move a store's events in and out, count them, and set up the shell:
export, import, stats, completion."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from .group import main, open_ledger
from .output import format_option, json_line, plural, progress_bar

SHELLS = ("bash", "zsh", "fish")


@main.command()
@click.option("--article", "-a", help="Only this article's events (`import --reappend` appends them anew: new positions and hashes).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (replaced only once the export is complete) instead of stdout.",
)
@click.pass_context
def export(ctx: click.Context, article: str | None, output: Path | None) -> None:
    """Write events as JSON lines: an exact, importable copy of the log.

    The lines are the sealed records exactly as stored, with their ids, positions, versions,
    times, actors, reasons and hash chain.

    `ledger import` turns a whole-log export into an identical store: `verify` then gives the
    same head hash as the source.

    \b
    Example:
      ledger export -o newsroom.jsonl
      ledger --store copy init && ledger --store copy import newsroom.jsonl
      ledger export --article deir-ez-zor | gzip > deir-ez-zor.jsonl.gz
    """
    led = open_ledger(ctx)
    if output is None:
        out = sys.stdout.buffer
        for line in led.export(article):
            out.write(line)
        out.flush()
        return
    count = led.export_to(output, article)
    click.echo(f"exported {plural(count, 'event')} to {output}")


@main.command(name="import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--reappend",
    is_flag=True,
    help="Append the versions of an export that is not a whole piece of this log (an --article export, another store's) anew.",
)
@format_option
@click.pass_context
def import_command(ctx: click.Context, source: Path, reappend: bool, fmt: str) -> None:
    """Load an export file (SOURCE, or - for stdin) into this store.

    An import is exact or refused: a whole-log export into an empty store, or into an older
    copy of the same log, is appended exactly as it was (same positions, hashes and head
    hash), provided its hash chain is unbroken and it ends where an append ends. Anything else
    is refused (exit 3), unless --reappend is given: then an `--article` export, or an export
    of another store, is reappended append by append, with the same ids, versions,
    occurred_at, actors and reasons but new positions, recorded_at times and hashes; every
    append in it must still be whole. Everything is checked before anything is appended;
    events already in the store are skipped, so an import can be run again (exit 0, "already
    recorded").

    JSON fields: mode (exact or reappended), read, imported, skipped, head {position, hash}.

    \b
    Example:
      ledger --store copy init
      ledger --store copy import newsroom.jsonl
      ledger --store copy verify
      ledger --store other import --reappend deir-ez-zor.jsonl
    """
    led = open_ledger(ctx)
    with progress_bar("importing") as update:
        result = led.import_file(sys.stdin.buffer if str(source) == "-" else source, reappend=reappend, progress=update)
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    if not result.imported:
        click.echo(f"already recorded: all {plural(result.read, 'event')} of {source} are in the store; nothing imported")
        return
    skipped = f", skipped {result.skipped} already in the store" if result.skipped else ""
    click.echo(f"imported {plural(result.imported, 'event')} ({result.mode}){skipped}")
    click.echo(f"head position {result.head.position}, hash {result.head.hash}")


@main.command()
@format_option
@click.pass_context
def stats(ctx: click.Context, fmt: str) -> None:
    """Count events, articles, versions and categories; show the head.

    Also the number of withdrawn articles, the log's size, and the head position and hash.

    JSON fields: events, articles, versions, categories, withdrawn, log_bytes, head_position,
    head_hash.

    \b
    Example:
      ledger stats --format json
    """
    led = open_ledger(ctx)
    result = led.stats()
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    rows = [
        ("events", f"{result.events:,}"),
        ("articles", f"{result.articles:,}"),
        ("versions", f"{result.versions:,}"),
        ("categories", f"{result.categories:,}"),
        ("withdrawn", f"{result.withdrawn:,}"),
        ("log size", f"{result.log_bytes:,} bytes"),
        ("head position", f"{result.head_position:,}"),
        ("head hash", result.head_hash),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script (bash, zsh or fish).

    With it, commands, options and their choices complete with Tab.

    \b
    Example:
      eval "$(ledger completion bash)"                       # in ~/.bashrc
      eval "$(ledger completion zsh)"                        # in ~/.zshrc
      ledger completion fish > ~/.config/fish/completions/ledger.fish
    """
    script = get_completion_class(shell)
    assert script is not None  # every name in SHELLS is one click knows
    click.echo(script(main, {}, "ledger", "_LEDGER_COMPLETE").source())
