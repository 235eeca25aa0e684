"""Projections: pure folds of the event stream into views of articles.

`apply(state, record)` folds one raw record into an `ArticleState`; folding an article's records
in order gives the article at any version. States are plain objects rather than pydantic models
because a full replay folds millions of records; `ArticleState.view()` turns one into the
public `ArticleView` model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from pydantic import BaseModel, Field

from ledger.events import parse_time
from ledger.patches import apply_patch


class UpdateBlock(BaseModel):
    """An update block as it stands in a version of an article."""

    heading: str = Field(description='The heading line, e.g. "Update from Al Masdar News:".')
    text: str = Field(description="Everything after the heading line up to the next block.")
    added_version: int = Field(description="The article version that added the block.")
    added_at: datetime = Field(description="When that version occurred (UTC).")


class ArticleView(BaseModel):
    """An article as it stood at one version."""

    id: str
    version: int
    title: str
    body: str
    blocks: list[UpdateBlock] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    withdrawn: bool = False
    created_at: datetime = Field(description="When version 1 occurred (UTC).")
    updated_at: datetime = Field(description="When this version occurred (UTC).")
    position: int = Field(description="Log position of the last event of this version.")


class ArticleState:
    """The mutable fold state of one article (internal: `view()` gives the public model)."""

    __slots__ = ("id", "version", "title", "body", "blocks", "categories", "metadata", "withdrawn", "created_at", "updated_at", "position")

    def __init__(self, article: str) -> None:
        self.id = article
        self.version = 0
        self.title = ""
        self.body = ""
        self.blocks: list[list[Any]] = []
        self.categories: list[str] = []
        self.metadata: dict[str, Any] = {}
        self.withdrawn = False
        self.created_at = ""
        self.updated_at = ""
        self.position = 0

    def copy(self) -> "ArticleState":
        """An independent copy (blocks, categories and metadata are copied, strings shared)."""
        other = ArticleState(self.id)
        other.version = self.version
        other.title = self.title
        other.body = self.body
        other.blocks = [list(block) for block in self.blocks]
        other.categories = list(self.categories)
        other.metadata = dict(self.metadata)
        other.withdrawn = self.withdrawn
        other.created_at = self.created_at
        other.updated_at = self.updated_at
        other.position = self.position
        return other

    def view(self) -> ArticleView:
        """The public model of this state."""
        return ArticleView(
            id=self.id,
            version=self.version,
            title=self.title,
            body=self.body,
            blocks=[
                UpdateBlock(heading=h, text=t, added_version=v, added_at=parse_time(at)) for h, t, v, at in self.blocks
            ],
            categories=list(self.categories),
            metadata=dict(self.metadata),
            withdrawn=self.withdrawn,
            created_at=parse_time(self.created_at),
            updated_at=parse_time(self.updated_at),
            position=self.position,
        )


def apply(state: ArticleState | None, record: dict[str, Any]) -> ArticleState:
    """Fold one raw record into the article's state and return the state.

    For speed the state is updated in place (copy it first to keep the old one). The record must
    belong to the article and follow the state's version; the store guarantees both.
    """
    kind = record["type"]
    data = record["data"]
    if state is None:
        state = ArticleState(record["article"])
    if kind == "ArticleCreated":
        state.title = data["title"]
        state.body = data.get("body", "")
        state.categories = list(data.get("categories", ()))
        state.metadata = dict(data.get("metadata") or {})
        state.created_at = record["occurred_at"]
    elif kind == "ArticleEdited":
        if data.get("title") is not None:
            state.title = data["title"]
        if data.get("patch"):
            state.body = apply_patch(state.body, data["patch"])
    elif kind == "UpdateBlockAdded":
        block = [data["heading"], data.get("text", ""), record["version"], record["occurred_at"]]
        index = data.get("index")
        if index is None:
            state.blocks.append(block)
        else:
            state.blocks.insert(index, block)
    elif kind == "UpdateBlockEdited":
        block = state.blocks[data["index"]]
        if data.get("heading") is not None:
            block[0] = data["heading"]
        if data.get("patch"):
            block[1] = apply_patch(block[1], data["patch"])
    elif kind == "UpdateBlockRemoved":
        del state.blocks[data["index"]]
    elif kind == "CategoriesChanged":
        removed = set(data.get("removed", ()))
        kept = [c for c in state.categories if c not in removed]
        kept.extend(c for c in data.get("added", ()) if c not in kept)
        state.categories = kept
    elif kind == "MetadataChanged":
        for key in data.get("unset", ()):
            state.metadata.pop(key, None)
        state.metadata.update(data.get("set", {}))
    elif kind == "ArticleWithdrawn":
        state.withdrawn = True
    elif kind == "ArticleRestored":
        state.withdrawn = False
    state.version = record["version"]
    state.updated_at = record["occurred_at"]
    state.position = record["pos"]
    return state


def fold(records: Iterable[dict[str, Any]], state: ArticleState | None = None) -> ArticleState | None:
    """Fold an article's records, in order, onto `state` (None: from nothing)."""
    for record in records:
        state = apply(state, record)
    return state
