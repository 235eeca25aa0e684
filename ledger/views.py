"""The result models of the query API: what `Ledger.history`, `diff`, `category`, `timeline`...
return. Every model is pydantic, so `model_dump(mode="json")` gives its documented JSON form (times
as the log's canonical UTC text).

Field names are one vocabulary across every result: the article's id is `article`; a version and
its time are `version`/`occurred_at` for a change itself, and `<what>_version`/`<what>_at` for
when something happened to a block or a category membership (`added_version`/`added_at` for an
update block, `entered_version`/`entered_at` and `left_version`/`left_at` for a category).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ledger.model import Model
from ledger.projections import UtcTime

ChangeKind = Literal[
    "created",
    "edited",
    "block added",
    "block edited",
    "block removed",
    "categories changed",
    "metadata changed",
    "withdrawn",
    "restored",
]
"""What kind of change a version made (one version may make several)."""


class VersionChange(Model):
    """What one version of an article changed: a line of `history` and of `timeline`."""

    article: str = Field(description="The article's id.")
    version: int = Field(description="The article version (1, 2, 3...).")
    position: int = Field(description="Log position of the version's last event.")
    occurred_at: UtcTime = Field(description="When the change happened (UTC).")
    recorded_at: UtcTime = Field(description="When the store recorded it (UTC).")
    actor: str | None = Field(default=None, description="Who made the change.")
    reason: str | None = Field(default=None, description="Why (the edit summary).")
    changes: list[ChangeKind] = Field(description="Kinds of change, in the order of the version's events.")
    categories_added: list[str] = Field(default_factory=list, description="Categories the version added.")
    categories_removed: list[str] = Field(default_factory=list, description="Categories the version removed.")
    headings: list[str] = Field(default_factory=list, description="Headings of the update blocks the version added.")
    events: int = Field(description="Number of events in the version.")


class ArticleSummary(Model):
    """One article as `Ledger.articles` lists it: what it is called and where it stands now."""

    article: str = Field(description="The article's id.")
    title: str = Field(description="Its title now.")
    version: int = Field(description="Its latest version.")
    updated_at: UtcTime = Field(description="When its latest version occurred (UTC).")
    categories: list[str] = Field(description="Its categories now, in order.")
    authors: list[str] = Field(description="Its authors now, however its metadata names them (see `ArticleView.authors`).")
    withdrawn: bool = Field(description="Whether it is withdrawn now.")


class HistoryEntry(VersionChange):
    """One version of an article, as `Ledger.history` lists it."""

    size: int = Field(description="Bytes (UTF-8) of the article rendered at this version.")
    withdrawn: bool = Field(description="Whether the article is withdrawn at this version.")


class WordsChanged(Model):
    """How many words one version added and removed (`Ledger.word_changes`)."""

    version: int = Field(description="The article version.")
    words_added: int = Field(description="Words and punctuation marks it added to the body and update blocks.")
    words_removed: int = Field(description="Words and punctuation marks it removed from them.")


class DiffLine(Model):
    """One line of a line diff: `op` is ' ' (context), '-' (only in FROM) or '+' (only in TO)."""

    op: Literal[" ", "-", "+"]
    text: str = Field(description="The line without its line break.")
    newline: bool = Field(default=True, description="False for a last line without a line break.")


class WordChange(Model):
    """One run of a word diff: `op` is 'equal', 'delete' (only in FROM) or 'insert' (only in TO)."""

    op: Literal["equal", "delete", "insert"]
    text: str = Field(description="The words and the whitespace between them, exactly.")


class Hunk(Model):
    """A run of changed lines with context, as in a unified diff (`@@ -a,b +c,d @@`)."""

    from_start: int
    from_count: int
    to_start: int
    to_count: int
    lines: list[DiffLine]


class Diff(Model):
    """What changed in the rendered article between two versions."""

    article: str
    from_version: int
    to_version: int
    words: bool = Field(description="True for a word diff (`changes`), False for a line diff (`hunks`).")
    hunks: list[Hunk] = Field(default_factory=list, description="Line diff hunks (empty for a word diff).")
    changes: list[WordChange] = Field(default_factory=list, description="Word diff runs (empty for a line diff).")
    text: str = Field(description="The unified diff (lines) or the `[-old-]{+new+}` text (words).")

    @property
    def same(self) -> bool:
        """True when the two versions render the same."""
        return not self.hunks and not any(change.op != "equal" for change in self.changes)


class CategoryMember(Model):
    """An article in a category listing."""

    article: str
    title: str = Field(description="The article's title at the listing's time.")
    entered_at: UtcTime = Field(description="When it (last) entered the category (UTC).")
    entered_version: int = Field(description="The version that put it there.")


class CategoryListing(Model):
    """The articles in one category, now or at a past time (withdrawn ones left out)."""

    name: str
    at: UtcTime | None = Field(default=None, description="The time asked for; None for now.")
    articles: list[CategoryMember]


class CategoryCount(Model):
    """A category with how many (not withdrawn) articles it holds."""

    name: str
    count: int


class CategoryMembership(Model):
    """A stint of an article in a category: when it entered and (unless still in) left."""

    article: str
    category: str
    entered_version: int = Field(description="The version that put the article in the category.")
    entered_at: UtcTime = Field(description="When that version occurred (UTC).")
    left_version: int | None = Field(default=None, description="The version that took it out; None while it is still in.")
    left_at: UtcTime | None = Field(default=None, description="When that version occurred (UTC); None while it is still in.")
    withdrawn: bool = Field(default=False, description="The article is withdrawn now: still in the category, but left out of its listings.")


class FeedBlock(Model):
    """An update block of a feed entry, as it stands now (its current heading)."""

    heading: str
    added_version: int = Field(description="The article version that added the block.")
    added_at: UtcTime = Field(description="When that version occurred (UTC).")


class FeedEntry(Model):
    """An article that received update blocks since the time asked for (blocks it still has)."""

    article: str
    title: str = Field(description="The article's current title.")
    last_update_at: UtcTime = Field(description="When its latest update block still in it was added (UTC).")
    blocks: list[FeedBlock] = Field(description="The blocks added since then that it still has, newest first.")


class TimelineEntry(VersionChange):
    """One version of one article in the timeline of all changes."""

    title: str | None = Field(default=None, description="The article's title at that version (None where the views cannot say).")


class ReplayStats(Model):
    """What a full rebuild of the views did."""

    events: int = Field(description="Events folded.")
    articles: int = Field(description="Articles in the views.")
    position: int = Field(description="The log position the views now stand at.")
    seconds: float = Field(description="Wall-clock time of the whole replay: the views and the text index.")
    events_per_second: float = Field(description="events / seconds.")
    saved: bool = Field(
        default=True,
        description="Whether the rebuilt views were written to the store's cache files; False when they could only be kept in "
        "this process's memory (a read-only store, a full disk, no cache folder), so that the next process builds them again.",
    )


class Stats(Model):
    """Counts of a store (`ledger stats`)."""

    events: int = Field(description="Events in the log.")
    articles: int = Field(description="Articles with at least one event.")
    versions: int = Field(description="Article versions, all articles together.")
    categories: int = Field(description="Categories holding at least one article now (withdrawn articles left theirs).")
    withdrawn: int = Field(description="Articles withdrawn now.")
    log_bytes: int = Field(description="Size of the log file.")
    head_position: int = Field(description="The last position in the log.")
    head_hash: str = Field(description="The hash that seals the log up to the head.")


BlamePart = Literal["title", "body", "heading", "block", "frame", "categories"]
"""Where in the rendered text a blamed span lies: the title, the body, an update block's heading
or its text, the front matter and layout around the title (`frame`), the `Categories:` line."""


class BlameSpan(Model):
    """A run of the rendered text written by one version."""

    start: int = Field(description="Offset of its first character in the rendered text (characters, not bytes).")
    end: int = Field(description="Offset just after its last character.")
    text: str = Field(description="The characters start:end of the rendered text.")
    part: BlamePart = Field(description="Which part of the article the span is in.")
    version: int = Field(description="The version that wrote these characters.")
    occurred_at: UtcTime = Field(description="When that version occurred (UTC).")
    actor: str | None = Field(default=None, description="Who made that version.")
    reason: str | None = Field(default=None, description="Why (its edit summary).")


class BlameLine(Model):
    """One line of a blamed text (`Blame.lines`)."""

    versions: list[int] = Field(description="The versions that wrote more than spaces in the line, oldest first: its margin.")
    runs: list[tuple[str, int]] = Field(description="The line's text (without its line break) as runs of `(text, version)`.")


class Blame(Model):
    """An article's rendered text at one version, every character attributed (`Ledger.blame`)."""

    article: str = Field(description="The article's id.")
    version: int = Field(description="The version blamed.")
    occurred_at: UtcTime = Field(description="When that version occurred (UTC).")
    text: str = Field(description="The article rendered at that version (as `ledger show` prints it).")
    spans: list[BlameSpan] = Field(description="Consecutive spans covering `text` exactly, in order.")

    def lines(self) -> list[BlameLine]:
        """The text cut into its lines, as `ledger blame` and the viewer show them. A line's
        margin counts only the versions that wrote more than spaces in it: spaces and line
        breaks alone say nothing of who wrote a line."""
        cut: list[list[tuple[str, int]]] = [[]]
        for span in self.spans:
            for index, piece in enumerate(span.text.split("\n")):
                if index:
                    cut.append([])
                if piece:
                    cut[-1].append((piece, span.version))
        if not cut[-1]:
            cut.pop()  # after the last line break
        return [BlameLine(versions=sorted({v for text, v in runs if text.strip()}), runs=runs) for runs in cut]


SearchPart = Literal["title", "body", "blocks"]
"""Where a phrase was found: the title, the body, or the update blocks (headings and texts)."""


class SearchHit(Model):
    """One stretch of versions in which a phrase stood in one part of an article (`Ledger.search`)."""

    article: str = Field(description="The article's id.")
    part: SearchPart = Field(description="Where in the article the phrase stood.")
    appeared_version: int = Field(description="The version that brought the phrase in.")
    appeared_at: UtcTime = Field(description="When that version occurred (UTC).")
    appeared_actor: str | None = Field(default=None, description="Who made that version.")
    appeared_reason: str | None = Field(default=None, description="Why (its edit summary).")
    vanished_version: int | None = Field(default=None, description="The version that took the last occurrence out (None: it is still there).")
    vanished_at: UtcTime | None = Field(default=None, description="When that version occurred (UTC).")
    vanished_actor: str | None = Field(default=None, description="Who made that version.")
    vanished_reason: str | None = Field(default=None, description="Why (its edit summary).")
    current: bool = Field(description="Whether the phrase is in that part of the article's latest version.")
    lines: int = Field(description="The most lines that held the phrase there at once in this stretch.")
