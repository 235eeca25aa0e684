"""Commands on the log itself: init, append (and schema, what it takes), log, verify, head."""

from __future__ import annotations

import itertools
import json
import sys
from typing import IO

import click

import ledger

from .group import main, open_ledger
from .output import console, count, event_line, format_option, json_line, json_lines, local_time, notice, plural, progress_bar, table


class EventTypeChoice(click.Choice[str]):
    """The event types as a choice, named when first needed (a value to check, help, completion):
    naming them at import would build every event model for every command, `ledger --help` too."""

    def __init__(self) -> None:
        self._names: tuple[str, ...] = ()
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        """The event types, sorted."""
        if not self._names:
            self._names = tuple(sorted(ledger.EVENT_TYPES))
        return self._names

    @choices.setter
    def choices(self, names: tuple[str, ...]) -> None:
        self._names = names


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create an empty store (harmless if one exists).

    \b
    Example:
      ledger --store newsroom-data init
    """
    existed = ledger.store_exists(ctx.obj["store"])
    root = ledger.init(ctx.obj["store"])
    # Already there is no error (docs/cli.md, exit codes), but it is not news either.
    click.echo(f"store already exists at {root}" if existed else f"initialised store {root}")


@main.command()
@click.argument("source", type=click.File("rb"), default="-")
@format_option
@click.pass_context
def append(ctx: click.Context, source: IO[bytes], fmt: str) -> None:
    """Append events from SOURCE (a file of JSON lines, or - for stdin) as one atomic append.

    Each line is an object with `type`, `article` and `data`, and optionally `id`, `actor`,
    `reason`, `occurred_at` and `expected_version`. For ArticleEdited give the new `title`
    and/or the whole new `body`: only what changed is recorded. Either every line is recorded or
    none is.

    \b
    Example:
      echo '{"type": "ArticleCreated", "article": "deir-ez-zor", "data": {"title": "Deir ez-Zor", "body": "..."}}' | ledger append -
    """
    name = getattr(source, "name", "-")
    name = "<stdin>" if name in ("<stdin>", "-") else name
    result = open_ledger(ctx).append_json_lines(source, name=name)
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    note = " (already recorded: nothing appended)" if result.duplicate else ""
    versions = ", ".join(f"{article} v{version}" for article, version in result.versions.items())
    recorded = result.last_position - result.first_position + 1
    where = f"position {result.first_position}" if recorded == 1 else f"positions {result.first_position}-{result.last_position}"
    click.echo(f"recorded {plural(recorded, 'event')} at {where}: {versions}{note}")


@main.command()
@click.argument("kind", metavar="[TYPE]", required=False)
def schema(kind: str | None) -> None:
    """Print the JSON Schema of what `ledger append` takes: one event type's (TYPE), or of any
    event (all types, as oneOf) without TYPE.

    \b
    Examples:
      ledger schema ArticleEdited
      ledger schema > ledger-event.schema.json
    """
    click.echo(json.dumps(ledger.event_schema(kind), indent=2, ensure_ascii=False))


@main.command(name="log")
@click.option("--article", "-a", help="Only this article's events.")
@click.option("--type", "-t", "types", multiple=True, type=EventTypeChoice(), help="Only events of this type (repeatable).")
@click.option("--from", "from_position", type=count(1), default=1, show_default=True, help="Start at this position.")
@click.option("--limit", "-n", type=count(1), help="At most this many events.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print events as any process appends them, one per line, until Ctrl-C (from now on, or from --from).",
)
@format_option
@click.pass_context
def log_command(
    ctx: click.Context, article: str | None, types: tuple[str, ...], from_position: int, limit: int | None, follow: bool, fmt: str
) -> None:
    """List recorded events, oldest first.

    JSON fields: position, id, article, version, type, schema_version, recorded_at, occurred_at,
    actor, reason, data.

    With --follow it keeps running like `tail -f`: new events are printed as they are
    appended, by this or any other process, until Ctrl-C (exit 130); --limit N stops after N.

    \b
    Example:
      ledger log --article deir-ez-zor --format json
      ledger log --follow --format json | jq -c .type
    """
    led = open_ledger(ctx)
    if follow:
        explicit = ctx.get_parameter_source("from_position") is not click.core.ParameterSource.DEFAULT
        stream = led.follow(after=from_position - 1 if explicit else None, article=article, types=types or None)
        for event in itertools.islice(stream, limit):
            if fmt == "json":
                json_line(event.to_json_dict())
            else:
                click.echo(event_line(event))  # echo flushes: each event shows as it comes
        return
    events = led.events(after=from_position - 1, article=article, types=types or None, limit=limit)
    if fmt == "json":
        json_lines(event.to_json_dict() for event in events)
        return
    table(
        ["pos", "article", "ver", "type", "occurred", "actor", "reason"],
        ([e.position, e.article, e.version, e.type, local_time(e.occurred_at), e.actor, e.reason] for e in events),
    )


@main.command()
@click.option("--head", "anchor", metavar="HASH[@POSITION]", help="Also prove that the log still extends this head, noted down earlier from `ledger head`.")
@format_option
@click.pass_context
def verify(ctx: click.Context, anchor: str | None, fmt: str) -> None:
    """Check every record: checksums, hash chain, gap-free positions and versions.

    Prints the head hash. The chain shows that no record was changed on its own, but not that
    the log was not rewritten and sealed again from some record on: for that, keep a head
    (`ledger head`) elsewhere and pass it to --head, which proves the log still extends it
    (exit 8 if it does not). Exits 8 when a problem is found, naming the line and position of
    each.

    JSON fields: ok, events, articles, head_position, head_hash, log_bytes, torn_tail_bytes,
    problems [{position, message}], anchor {position, hash} (with --head).

    \b
    Example:
      ledger verify
      ledger verify --head 7ab0848f7d4e117e0241b040d807e6c8a1d2d595b436dda071af560ed721bce1@2
    """
    led = open_ledger(ctx, recover=False)
    with progress_bar("verifying") as update:
        report = led.verify(update, head=anchor)
    if fmt == "json":
        json_line(report.model_dump(mode="json"))
    else:
        out = console()
        for problem in report.problems:
            notice("[red]problem:[/]", problem.message)
        state = "[green]ok[/]" if report.ok else f"[red]{plural(len(report.problems), 'problem')}[/]"
        out.print(f"{state}: {plural(report.events, 'event')}, {plural(report.articles, 'article')}, head position {report.head_position}")
        out.print(f"head hash {report.head_hash}")
        if report.anchor is not None:
            out.print(f"extends head {report.anchor.hash}@{report.anchor.position}")
        if report.torn_tail_bytes:
            out.print(f"{plural(report.torn_tail_bytes, 'byte')} of an unfinished append at the end (cut on the next open)")
    if not report.ok:
        sys.exit(ledger.CorruptStoreError.exit_code)


@main.command()
@format_option
@click.pass_context
def head(ctx: click.Context, fmt: str) -> None:
    """Print the head: the last position and the hash that seals the log up to it.

    Text is HASH@POSITION on one line, to publish or keep outside the store (a mail, a
    ticket, another machine). `ledger verify --head HASH@POSITION` later proves the log still
    extends it: no record up to that position was changed, removed or reordered since, even by
    someone who sealed the log again.

    JSON fields: position, hash.

    \b
    Example:
      ledger head > ../newsroom.head
      ledger verify --head "$(cat ../newsroom.head)"
    """
    result = open_ledger(ctx).head()
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    click.echo(f"{result.hash}@{result.position}")
