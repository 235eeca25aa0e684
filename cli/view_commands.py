"""Commands that read the views: articles, show, history, diff, categories, updated, timeline; and
those that act on them: restore and withdraw (a new version) and replay (rebuild the views)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from .group import main, open_ledger
from .output import (
    TIME,
    console,
    count,
    format_option,
    json_line,
    json_lines,
    local_time,
    more_note,
    notice,
    page_limit,
    page_options,
    plural,
    progress_bar,
    table,
)

if TYPE_CHECKING:
    from ledger import Blame, Diff, HistoryEntry, TimelineEntry


def _write(text: str) -> None:
    # Exactly the text's bytes: no newline added, no locale re-encoding.
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


def _changes(entry: HistoryEntry | TimelineEntry) -> str:
    parts = []
    for kind in entry.changes:
        if kind == "categories changed":
            moves = [f"+{c}" for c in entry.categories_added] + [f"-{c}" for c in entry.categories_removed]
            parts.append("categories " + (" ".join(moves) if moves else "reordered"))
        else:
            parts.append(kind)
    return ", ".join(parts)


@main.command()
@click.argument("article")
@click.argument("version", metavar="[VERSION]", required=False, type=count(1))
@click.option("--at", type=TIME, help="Show the version current at this time (ISO 8601 or an age like 2h).")
@format_option
@click.pass_context
def show(ctx: click.Context, article: str, version: int | None, at: datetime | None, fmt: str) -> None:
    """Print ARTICLE as its draft text, now, at VERSION or as it stood --at TIME.

    Versions are positional arguments here as in `diff` and `restore`. The text is exactly the
    rendered draft, byte for byte (no newline added), so `ledger show A 3 > a.txt` gives back the
    draft of version 3. A withdrawn article is still shown (with a note on stderr).

    JSON fields: article, version, title, body, blocks (heading, text, added_version, added_at),
    categories, metadata, authors (however the metadata names them), withdrawn, created_at, updated_at, position, text (the rendered draft).

    \b
    Example:
      ledger show deir-ez-zor --at 2017-09-05T18:00Z
    """
    from ledger import render

    view = open_ledger(ctx).article(article, version=version, at=at)
    text = render(view)
    if fmt == "json":
        json_line({**view.model_dump(mode="json"), "text": text})
        return
    if view.withdrawn:
        notice("note:", f"{article} is withdrawn at version {view.version}")
    _write(text)


@main.command()
@click.argument("article")
@click.option("--contains", metavar="PHRASE", help="Only the versions whose change touched PHRASE (added, changed or removed a line holding it; any case).")
@format_option
@click.pass_context
def history(ctx: click.Context, article: str, contains: str | None, fmt: str) -> None:
    """List every version of ARTICLE: when, who, why, what kind of change, size.

    JSON fields (one line per version): article, version, position, occurred_at, recorded_at,
    actor, reason, changes, categories_added, categories_removed, headings, events, size, withdrawn.

    \b
    Example:
      ledger history deir-ez-zor --contains "al masdar"
    """
    entries = open_ledger(ctx).history(article, contains=contains)
    if fmt == "json":
        json_lines(entry.model_dump(mode="json") for entry in entries)
        return
    table(
        ["ver", "occurred", "actor", "changes", "bytes", "reason"],
        (
            [e.version, local_time(e.occurred_at), e.actor, _changes(e), e.size, e.reason]
            for e in entries
        ),
    )


def _print_diff(diff: Diff) -> None:
    out = console()
    if out.no_color or not out.is_terminal:
        _write(diff.text)
        return
    from rich.text import Text

    text = Text()
    if diff.words:
        for change in diff.changes:
            style = {"equal": "", "delete": "red strike", "insert": "green"}[change.op]
            text.append(change.text, style=style)
    else:
        for line in diff.text.splitlines(keepends=True):
            style = "bold" if line.startswith(("---", "+++")) else "cyan" if line.startswith("@@") else "red" if line.startswith("-") else "green" if line.startswith("+") else ""
            text.append(line, style=style)
    out.print(text, end="")


@main.command()
@click.argument("article")
@click.argument("from_version", metavar="[FROM]", required=False, type=count(0))
@click.argument("to_version", metavar="[TO]", required=False, type=count(0))
@click.option("--words", "-w", is_flag=True, help="Word by word instead of line by line.")
@format_option
@click.pass_context
def diff(ctx: click.Context, article: str, from_version: int | None, to_version: int | None, words: bool, fmt: str) -> None:
    """Show what changed in ARTICLE from version FROM to TO (defaults: the previous version
    against the latest; FROM alone: FROM against the latest; 0 is the empty text before version
    1). What version N changed is `diff ARTICLE N-1 N`.

    Line diffs are unified diffs; word diffs mark [-deleted-] and {+inserted+} words. Coloured on
    a terminal, plain when piped or with NO_COLOR.

    JSON fields: article, from_version, to_version, words, hunks (from_start, from_count,
    to_start, to_count, lines: op, text, newline), changes (op, text), text.

    \b
    Example:
      ledger diff deir-ez-zor 1 3 --words
    """
    result = open_ledger(ctx).diff(article, from_version, to_version, words=words)
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    _print_diff(result)


@main.command()
@click.argument("name", required=False)
@click.option("--at", type=TIME, help="As they were at this time (ISO 8601 or an age like 2h).")
@click.option("--article", "-a", help="When this article entered and left each category instead.")
@click.option("--history", "whole", is_flag=True, help="With NAME: every article ever in it, when each entered and left.")
@format_option
@click.pass_context
def categories(ctx: click.Context, name: str | None, at: datetime | None, article: str | None, whole: bool, fmt: str) -> None:
    """List categories with their article counts, or the articles in category NAME; now or
    --at TIME. Withdrawn articles are left out. With --article A: when A entered and left
    each category (its whole history, so neither NAME nor --at). With NAME --history: every
    article that was ever in NAME, when each entered and left it.

    JSON fields (one line each): without NAME name, count; with NAME article, title,
    entered_at, entered_version; with --article or --history article, category,
    entered_version, entered_at, left_version, left_at (null while it is still in), withdrawn
    (the article is withdrawn now: still in, but left out of listings).

    \b
    Examples:
      ledger categories Syria --at 2017-09-05
      ledger categories --article deir-ez-zor
      ledger categories Syria --history
    """
    led = open_ledger(ctx)
    if article is not None or whole:
        if article is not None and (name is not None or at is not None or whole):
            raise click.UsageError("--article lists the article's whole category history: give no NAME, --at or --history with it")
        if whole and (name is None or at is not None):
            raise click.UsageError("--history lists the whole history of category NAME: give NAME and no --at")
        stints = led.category_history(article) if article is not None else led.category_stints(name or "")
        if fmt == "json":
            json_lines(s.model_dump(mode="json") for s in stints)
            return
        table(
            ["category" if article is not None else "article", "entered", "ver", "left", "ver"],
            (
                [s.category if article is not None else s.article, local_time(s.entered_at), s.entered_version,
                 local_time(s.left_at) if s.left_at else "withdrawn" if s.withdrawn else "", s.left_version]
                for s in stints
            ),
        )
        return
    if name is None:
        counts = led.categories(at=at)
        if fmt == "json":
            json_lines(c.model_dump(mode="json") for c in counts)
            return
        table(["category", "articles"], ([c.name, c.count] for c in counts))
        return
    listing = led.category(name, at=at)
    if fmt == "json":
        json_lines(m.model_dump(mode="json") for m in listing.articles)
        return
    table(["article", "title", "entered"], ([m.article, m.title, local_time(m.entered_at)] for m in listing.articles))


@main.command()
@click.option("--category", "-c", help="Only articles in this category now.")
@click.option("--since", type=TIME, help="Only articles changed at or after this time (ISO 8601 or an age like 2h).")
@click.option("--withdrawn/--live", default=None, help="Only withdrawn articles, or only live ones (default: both).")
@click.option("--author", "-a", help="Only articles by this author now (the whole name, in any case; author or authors in any front matter).")
@page_options
@format_option
@click.pass_context
def articles(
    ctx: click.Context, category: str | None, since: datetime | None, withdrawn: bool | None, author: str | None,
    limit: int | None, offset: int, fmt: str,
) -> None:
    """List articles as they stand now, the most recently changed first.

    On a terminal the first 50 are shown, with a note on stderr saying how many more there are;
    piped or redirected, all of them (unless --limit says otherwise).

    JSON fields (one line each): article, title, version, updated_at, categories, authors, withdrawn.

    \b
    Examples:
      ledger articles --since 24h
      ledger articles --category Syria --live --format json
      ledger articles --offset 50 --limit 50
    """
    led = open_ledger(ctx)
    limit = page_limit(limit)
    entries = led.articles(category=category, since=since, withdrawn=withdrawn, author=author, limit=limit, offset=offset)
    if fmt == "json":
        json_lines(e.model_dump(mode="json") for e in entries)
    else:
        table(
            ["updated", "article", "ver", "title", "categories", "authors", "withdrawn"],
            (
                [local_time(e.updated_at), e.article, e.version, e.title, ", ".join(e.categories), ", ".join(e.authors), "withdrawn" if e.withdrawn else ""]
                for e in entries
            ),
        )
    more_note(lambda: led.count_articles(category=category, since=since, withdrawn=withdrawn, author=author), len(entries), limit, offset, "article")


@main.command()
@click.option("--since", required=True, type=TIME, help="Update blocks added at or after this time (ISO 8601 or an age like 2h).")
@page_options
@format_option
@click.pass_context
def updated(ctx: click.Context, since: datetime, limit: int | None, offset: int, fmt: str) -> None:
    """List the articles that received update blocks since a time, the most recent first.

    Blocks are shown as they stand now: one added since TIME and removed again is not listed,
    and an edited heading reads as it does now. On a terminal the first 50 articles are shown,
    with a note on stderr saying how many more there are; piped or redirected, all of them
    (unless --limit says otherwise).

    JSON fields (one line per article): article, title, last_update_at, blocks (heading,
    added_version, added_at).

    \b
    Example:
      ledger updated --since 24h
    """
    led = open_ledger(ctx)
    limit = page_limit(limit)
    entries = led.updated_since(since, limit=limit, offset=offset)
    if fmt == "json":
        json_lines(e.model_dump(mode="json") for e in entries)
    else:
        table(
            ["updated", "article", "title", "blocks"],
            ([local_time(e.last_update_at), e.article, e.title, " | ".join(b.heading for b in e.blocks)] for e in entries),
        )
    more_note(lambda: led.count_updated_since(since), len(entries), limit, offset, "article")


@main.command()
@click.option("--since", type=TIME, help="Changes at or after this time (ISO 8601 or an age like 2h).")
@click.option("--until", type=TIME, help="Changes at or before this time (ISO 8601 or an age like 2h).")
@click.option("--article", "-a", help="Only this article.")
@click.option("--limit", "-n", type=count(1), help="At most this many (the newest).")
@format_option
@click.pass_context
def timeline(ctx: click.Context, since: datetime | None, until: datetime | None, article: str | None, limit: int | None, fmt: str) -> None:
    """List changes across all articles, newest first (one line per article version).

    JSON fields (one line each): position, article, version, title (the article's at that
    version), occurred_at, recorded_at, actor, reason, changes, categories_added,
    categories_removed, headings, events.

    \b
    Example:
      ledger timeline --since 2017-09-05 --limit 20
    """
    entries = open_ledger(ctx).timeline(since=since, until=until, article=article, limit=limit)
    if fmt == "json":
        json_lines(e.model_dump(mode="json") for e in entries)
        return
    table(
        ["occurred", "article", "ver", "actor", "changes", "reason"],
        (
            [local_time(e.occurred_at), e.article, e.version, e.actor, _changes(e), e.reason]
            for e in entries
        ),
    )


@main.command()
@click.argument("article")
@click.argument("version", type=count(1))
@click.option("--actor", help="Who restores it.")
@click.option("--reason", help="Why.")
@format_option
@click.pass_context
def restore(ctx: click.Context, article: str, version: int, actor: str | None, reason: str | None, fmt: str) -> None:
    """Bring ARTICLE back to what it said at VERSION, as a new version (nothing is rewritten).

    JSON fields: those of `ledger append --format json`.

    \b
    Example:
      ledger restore deir-ez-zor 2 --reason "revert vandalism"
    """
    result = open_ledger(ctx).restore(article, version, actor=actor, reason=reason)
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    click.echo(f"restored {article} to version {version} as version {result.versions[article]}")


@main.command()
@click.argument("article")
@click.option("--actor", help="Who withdraws it.")
@click.option("--reason", help="Why.")
@format_option
@click.pass_context
def withdraw(ctx: click.Context, article: str, actor: str | None, reason: str | None, fmt: str) -> None:
    """Withdraw ARTICLE: it leaves category listings and counts and the updated feed (`articles`
    marks it withdrawn), keeps its history, and `ledger restore` brings it back.

    JSON fields: those of `ledger append --format json`.

    \b
    Example:
      ledger withdraw deir-ez-zor --reason "legal request"
    """
    result = open_ledger(ctx).withdraw(article, actor=actor, reason=reason)
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    click.echo(f"withdrew {article} as version {result.versions[article]}")


@main.command()
@click.option("--to", "to", type=count(0), help="Stop at this log position.")
@format_option
@click.pass_context
def replay(ctx: click.Context, to: int | None, fmt: str) -> None:
    """Rebuild every view from the log (up to --to POSITION), and print the rate.

    JSON fields: events, articles, position, seconds, events_per_second, saved. Exits 6 when
    the views could only be rebuilt in memory (a read-only store, a full disk), after printing.

    \b
    Example:
      ledger replay
    """
    led = open_ledger(ctx)
    with progress_bar("replaying", unit="events") as update:
        stats = led.replay(to=to, progress=update)
    if fmt == "json":
        json_line(stats.model_dump(mode="json"))
    else:
        click.echo(
            f"replayed {plural(stats.events, 'event')} of {plural(stats.articles, 'article')} to position {stats.position} "
            f"in {stats.seconds:.2f}s ({stats.events_per_second:,.0f} events/s)"
        )
    if not stats.saved:
        from ledger import StoreError

        raise StoreError("the views were rebuilt in memory only, as their files cannot be written (see the warning above): the next command builds them again")


# Colours of a version's words by age on a terminal: oldest first, newest last.
_AGES = ("grey50", "blue", "cyan", "green", "yellow", "bold red")


def _margin(versions: list[int]) -> str:
    """Versions (oldest first) as a compact list: runs of consecutive ones as `3-5`."""
    parts: list[str] = []
    for version in versions:
        if parts and version == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = parts[-1].split("-")[0] + f"-{version}"
        else:
            parts.append(str(version))
    return ",".join(parts)


def _print_blame(blame: Blame) -> None:
    out = console()
    coloured = not out.no_color and out.is_terminal
    lines = blame.lines()
    margins = [_margin(line.versions) for line in lines]
    width = max((len(margin) for margin in margins), default=1)
    newest = max((span.version for span in blame.spans), default=1)
    if not coloured:
        _write("".join(f"{margin:>{width}} |{' ' if line.runs else ''}{''.join(piece for piece, _ in line.runs)}\n" for margin, line in zip(margins, lines, strict=True)))
    else:
        from rich.text import Text

        for margin, line in zip(margins, lines, strict=True):
            text = Text(f"{margin:>{width}} |{' ' if line.runs else ''}", style="dim")
            for piece, version in line.runs:
                text.append(piece, style=_AGES[min(len(_AGES) - 1, (version - 1) * len(_AGES) // max(newest, 1))])
            out.print(text)
    seen: dict[int, tuple[str, str | None, str | None]] = {}
    for span in blame.spans:
        seen.setdefault(span.version, (local_time(span.occurred_at), span.actor, span.reason))
    _write("\n")
    table(["ver", "occurred", "actor", "reason"], ([version, *seen[version]] for version in sorted(seen)))


@main.command()
@click.argument("article")
@click.argument("version", metavar="[VERSION]", required=False, type=count(1))
@click.option("--version", "version_option", type=count(1), help="Blame this version, as the VERSION argument does (default: the latest).")
@click.option("--at", type=TIME, help="Blame the version current at this time (ISO 8601 or an age like 2h).")
@format_option
@click.pass_context
def blame(ctx: click.Context, article: str, version: int | None, version_option: int | None, at: datetime | None, fmt: str) -> None:
    """Show which version wrote each word of ARTICLE, now, at VERSION or --at TIME.

    The version is an argument as in `show`, `diff` and `restore` (`--version N` says the same).

    Text: the article as `show` prints it, each line after a margin with the versions that
    wrote its words (`1,3-5`), coloured by age on a terminal, then one line per version named
    (when, who, why). Words left unchanged by an edit keep their version, and what a restore
    brought back keeps the version that first wrote it. The title, the update blocks and the
    front matter are blamed too.

    JSON (one object): article, version, occurred_at, text, spans (start, end, text, part,
    version, occurred_at, actor, reason); start and end are character offsets into text, and
    the spans cover it exactly. part is title, body, heading, block, frame or categories.

    \b
    Example:
      ledger blame deir-ez-zor --at 2017-09-05T18:00Z
    """
    if version is not None and version_option is not None and version != version_option:
        raise click.UsageError(f"give the version once: {version} or --version {version_option}", ctx)
    result = open_ledger(ctx).blame(article, version=version if version is not None else version_option, at=at)
    if fmt == "json":
        json_line(result.model_dump(mode="json"))
        return
    _print_blame(result)


@main.command()
@click.argument("phrase")
@click.option("--article", "-a", metavar="ID", help="Search this article only.")
@click.option("--since", type=TIME, help="Only where the phrase stood at this time or later (still standing, or went out at or after it).")
@click.option("--exact", is_flag=True, help="Match the phrase as typed, case and punctuation (default: any case, any punctuation).")
@format_option
@click.pass_context
def search(ctx: click.Context, phrase: str, article: str | None, since: datetime | None, exact: bool, fmt: str) -> None:
    """Find every stretch of history in which PHRASE stood in an article, and when it went.

    One row per stretch: the article, the part (title, body or blocks), the version that
    brought the phrase in (when, who), the version that took it out (if it did), and whether
    it is there now. The phrase's words match whole words in order within one line, in any case,
    whatever punctuation or spaces stand between them (--exact: as typed). Uses the text index
    (text.sqlite), not a scan of the log.

    JSON fields (one line per stretch): article, part, appeared_version, appeared_at,
    appeared_actor, appeared_reason, vanished_version, vanished_at, vanished_actor,
    vanished_reason, current, lines.

    \b
    Example:
      ledger search "Al Masdar" --since 2017-09-01
    """
    hits = open_ledger(ctx).search(phrase, article=article, since=since, exact=exact)
    if fmt == "json":
        json_lines(hit.model_dump(mode="json") for hit in hits)
        return
    table(
        ["article", "part", "in", "in at", "in by", "out", "out at", "out by", "now"],
        (
            [
                h.article, h.part, h.appeared_version, local_time(h.appeared_at), h.appeared_actor,
                h.vanished_version, local_time(h.vanished_at) if h.vanished_at else None, h.vanished_actor,
                "yes" if h.current else "no",
            ]
            for h in hits
        ),
    )
