"""Ingesting drafts: turn a parsed draft (`ledger.draft_format`) into the events that bring its
article up to it.

A draft states the whole article. `ingest` compares it with the article's current view and
appends, stating the version it compared against, only the events that bring the article up to
the draft (planned by `ledger.plans`): `ArticleCreated`, `ArticleEdited`, one
`UpdateBlockAdded` per new update block (`UpdateBlockEdited`/`UpdateBlockRemoved` for changed or
dropped ones), `CategoriesChanged`, `MetadataChanged`. The drafts of one `ingest` call are one
atomic append; an unchanged draft appends nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field

from ledger.application import Ledger
from ledger.draft_format import DRAFT_SUFFIXES, Draft, check_draft_file, is_draft_name, read_draft
from ledger.errors import ArticleNotFoundError, DraftError, NothingToDoError, VersionConflictError
from ledger.limits import DRAFT_SIZE_LIMIT
from ledger.model import Model
from ledger.plans import plan_changes
from ledger.projections import ArticleView
from ledger.rendering import LAYOUT_KEY
from ledger.times import parse_when

log = logging.getLogger("ledger.drafts")
_RETRIES = 5
# Tries planned without the writers' lock; the rest plan and append under it (see `ingest_drafts`).
_OPTIMISTIC = 2


class IngestResult(Model):
    """What ingesting one draft did."""

    path: str | None = Field(description="The draft file.")
    article: str
    status: Literal["created", "updated", "unchanged", "withdrawn"]
    version: int = Field(description="The article's version after the ingest.")
    changes: list[str] = Field(default_factory=list, description="Types of the events appended, in order.")
    summary: str = Field(description='What changed, for people: "edited body, added update block ...".')
    first_position: int | None = Field(default=None, description="Log position of the first event appended.")


# --- planning the events -------------------------------------------------------------------


def plan(draft: Draft, current: ArticleView | None, *, restore: bool = False) -> list[dict[str, Any]]:
    """The events (`{"type", "data"}`) that bring `current` (None: no article yet) up to `draft`
    (see `ledger.plans.plan_changes`).

    Empty when the article already says what the draft says. A withdrawn article is restored
    first when the draft changes it (or when `restore` is set).
    """
    # A Markdown draft states all metadata; a plain-text one only its layout.
    keys = None if draft.format == "markdown" else {*draft.metadata, LAYOUT_KEY}
    return plan_changes(current, draft, metadata_keys=keys, restore=restore)


def describe(events: Iterable[Mapping[str, Any]], headings: Sequence[str] = ()) -> str:
    """What `events` change, for people: "edited title and body, added update block ...".
    `headings` are the article's block headings before them: an edited or removed block is then
    named by its heading too (its number moves as blocks come and go), not by number alone."""
    parts: list[str] = []
    blocks = list(headings)
    # Removed blocks are counted into one part, at the place of the first removal.
    removed_at: int | None = None
    removed: list[str] = []

    def named(index: int) -> str:
        heading = blocks[index].strip()[:60] if index < len(blocks) else ""
        return f"{index + 1} {heading!r}" if heading else str(index + 1)

    for event in events:
        kind, data = event["type"], event["data"]
        if kind == "ArticleCreated":
            parts.append("created")
        elif kind == "ArticleEdited":
            parts.append("edited " + " and ".join(k for k in ("title", "body") if k in data))
        elif kind == "UpdateBlockAdded":
            parts.append(f"added update block {data['heading'].strip()[:60]!r}")
            index = data.get("index")
            blocks.insert(len(blocks) if index is None else index, data["heading"])
        elif kind == "UpdateBlockEdited":
            # A new heading is said too: the old one alone read as if the block still had it.
            renamed = f" now {data['heading'].strip()[:60]!r}" if "heading" in data else ""
            parts.append(f"edited update block {named(data['index'])}{renamed}")
            if "heading" in data and data["index"] < len(blocks):
                blocks[data["index"]] = data["heading"]
        elif kind == "UpdateBlockRemoved":
            removed.append(named(data["index"]))
            if data["index"] < len(blocks):
                del blocks[data["index"]]
            if removed_at is None:
                removed_at = len(parts)
                parts.append("")
            parts[removed_at] = f"removed update block {removed[0]}" if len(removed) == 1 else f"removed {len(removed)} update blocks"
        elif kind == "CategoriesChanged":
            moves = [f"+{c}" for c in data["added"] if c not in data["removed"]]
            moves += [f"-{c}" for c in data["removed"] if c not in data["added"]]
            parts.append("categories " + (" ".join(moves) if moves else "reordered"))
        elif kind == "MetadataChanged":
            names = [k for k in [*data["set"], *data["unset"]] if k != LAYOUT_KEY]
            # "draft layout", not "layout": a draft may have a `layout` key of its own.
            parts.append("metadata " + ", ".join(names) if names else "draft layout")
        elif kind == "ArticleRestored":
            parts.append("restored")
        elif kind == "ArticleWithdrawn":
            parts.append("withdrawn")
    return ", ".join(parts) if parts else "unchanged"


# --- ingesting -----------------------------------------------------------------------------


def _current(ledger: Ledger, article: str) -> ArticleView | None:
    try:
        return ledger.article(article)
    except ArticleNotFoundError:
        return None


def ingest_drafts(
    ledger: Ledger,
    drafts: Sequence[Draft],
    *,
    at: datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
    restore: bool = False,
) -> list[IngestResult]:
    """Bring the articles of `drafts` up to them in ONE atomic append: every changed draft's
    events, or none of them (nothing at all when every draft is unchanged). One result per
    draft, in order.

    Each article's events state the version they were computed against; when another writer
    got there first, every draft is planned again against the new versions. Two drafts of the
    same article are refused (`DraftError`): which one would win is not for us to guess.
    """
    seen: dict[str, str] = {}
    for draft in drafts:
        label = draft.source or f"<draft of {draft.id}>"
        if draft.id in seen:
            raise DraftError(f"{label}:1: article {draft.id!r} is also the article of {seen[draft.id]}; ingest one draft per article")
        seen[draft.id] = label
    for attempt in range(_RETRIES):
        # The expected versions are ours, not the user's: an ingest must not fail because others
        # write too. After a few optimistic tries, plan and append under the writers' lock, where
        # no one can move the articles on.
        lock: AbstractContextManager[Any] = ledger.store.exclusive() if attempt >= _OPTIMISTIC else nullcontext()
        try:
            with lock:
                return _ingest_once(ledger, drafts, at=at, actor=actor, reason=reason, restore=restore)
        except VersionConflictError:
            if attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class _Planned(NamedTuple):
    """One draft planned against its article as it is now: `version` is that article's version
    (0: no article yet), read once for the events' expected version and the result."""

    draft: Draft
    current: ArticleView | None
    version: int
    events: list[dict[str, Any]]
    offset: int


def _ingest_once(
    ledger: Ledger, drafts: Sequence[Draft], *, at: datetime | None, actor: str | None, reason: str | None, restore: bool
) -> list[IngestResult]:
    """One try of `ingest_drafts`: plan every draft against its article now and append; raises
    `VersionConflictError` when another writer moved an article on in between."""
    plans: list[_Planned] = []
    events: list[dict[str, Any]] = []
    labels: list[str] = []
    for draft in drafts:
        current = _current(ledger, draft.id)
        version = current.version if current is not None else 0
        planned = plan(draft, current, restore=restore)
        plans.append(_Planned(draft, current, version, planned, len(events)))
        envelope = {"article": draft.id, "expected_version": version, "occurred_at": at, "actor": actor, "reason": reason}
        events.extend({**event, **envelope} for event in planned)
        labels.extend(f"{draft.source or draft.id} ({event['type']})" for event in planned)
    if not events:
        return [_unchanged(one) for one in plans]
    # A draft's layout goes into the reserved metadata key `_draft`.
    result = ledger.append(events, labels=labels, reserved_keys=True)
    return [
        IngestResult(
            path=one.draft.source,
            article=one.draft.id,
            status="created" if one.current is None else "updated",
            version=result.versions[one.draft.id],
            changes=[event["type"] for event in one.events],
            summary=describe(one.events, [block.heading for block in one.current.blocks] if one.current is not None else ()),
            # Positions within one append are consecutive, in the order given.
            first_position=result.first_position + one.offset,
        )
        if one.events
        else _unchanged(one)
        for one in plans
    ]


def _unchanged(one: _Planned) -> IngestResult:
    withdrawn = one.current is not None and one.current.withdrawn
    return IngestResult(
        path=one.draft.source, article=one.draft.id, status="unchanged", version=one.version,
        summary="withdrawn, unchanged" if withdrawn else "unchanged",
    )


def ingest_draft(
    ledger: Ledger,
    draft: Draft,
    *,
    at: datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
    restore: bool = False,
) -> IngestResult:
    """Bring `draft`'s article up to the draft in one atomic append (nothing when unchanged);
    see `ingest_drafts`."""
    return ingest_drafts(ledger, [draft], at=at, actor=actor, reason=reason, restore=restore)[0]


def withdraw(ledger: Ledger, article: str, *, at: datetime | None = None, actor: str | None = None,
             reason: str | None = None, path: str | None = None) -> IngestResult:
    """Withdraw `article` (its draft was deleted); nothing when it is absent or already withdrawn."""
    current = _current(ledger, article)
    if current is None or current.withdrawn:
        return IngestResult(path=path, article=article, status="unchanged", version=current.version if current else 0,
                            summary="already withdrawn" if current else "not in the log")
    event = {"type": "ArticleWithdrawn", "article": article, "data": {}, "expected_version": current.version,
             "occurred_at": at, "actor": actor, "reason": reason}
    result = ledger.append([event], labels=[path or article])
    return IngestResult(path=path, article=article, status="withdrawn", version=result.versions[article],
                        changes=["ArticleWithdrawn"], summary="withdrawn (draft deleted)", first_position=result.first_position)


def draft_files(paths: Iterable[str | os.PathLike[str]], *, follow_symlinks: bool = False) -> list[Path]:
    """The draft files named by `paths`: files as given, folders' drafts (not recursive), sorted.

    In a folder, names that are drafts but not regular files (a folder, a FIFO, a symbolic link
    unless `follow_symlinks`, a link out of the folder even then) are skipped with a warning on
    the `ledger.drafts` logger; files named as such are refused when read."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            files.append(path)
            continue
        for entry in sorted(path.iterdir()):
            if not is_draft_name(entry.name):
                continue
            try:
                check_draft_file(entry, follow_symlinks=follow_symlinks)
            except DraftError as exc:
                log.warning("%s; skipped", exc)
                continue
            files.append(entry)
    return files


def ingest(
    ledger: Ledger,
    paths: Iterable[str | os.PathLike[str]],
    at: datetime | str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    article: str | None = None,
    *,
    follow_symlinks: bool = False,
    max_size: int = DRAFT_SIZE_LIMIT,
) -> list[IngestResult]:
    """Ingest draft files (folders: their drafts) in ONE atomic append: all their changes or,
    when anything is wrong, nothing at all (see `ingest_drafts`).

    Every draft is parsed and planned before anything is appended, so a bad draft
    (`DraftError`), two drafts naming the same article, or an event the log refuses (a time
    earlier than an article's last version) leave the log as it was. `at` (a datetime, ISO 8601
    text or an age like `2h`) is when the changes happened, `actor` who made them, `reason` why.
    `article` ingests a single draft as that article, whatever its file name. Only regular files
    of at most `max_size` bytes are drafts; symbolic links are read only with `follow_symlinks`,
    and only to drafts in their own folder (see `draft_files`, `read_draft_bytes`). No draft
    at all among `paths` (an empty folder) is `NothingToDoError`.
    """
    when = parse_when(at) if at is not None else None
    given = list(paths)
    files = draft_files(given, follow_symlinks=follow_symlinks)
    if not files:
        where = ", ".join(os.fspath(path) for path in given) or "no paths given"
        raise NothingToDoError(f"nothing to ingest: no drafts in {where} (drafts are {', '.join(DRAFT_SUFFIXES)} files)")
    if article is not None and len(files) != 1:
        raise DraftError(f"an article id can be given for one draft only, not {len(files)}")
    drafts = [read_draft(path, article, follow_symlinks=follow_symlinks, max_size=max_size) for path in files]
    return ingest_drafts(ledger, drafts, at=when, actor=actor, reason=reason)
