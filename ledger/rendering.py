"""Rendering an article view back to the draft text it came from (see README "Draft formats")."""

from __future__ import annotations

from ledger.projections import ArticleView


def render(view: ArticleView) -> str:
    """The plain-text draft of `view`: title line, body, update blocks, `Categories:` line."""
    parts = [view.title, "\n", view.body]
    parts.extend(block.heading + block.text for block in view.blocks)
    if view.categories:
        parts.append("Categories: " + ", ".join(view.categories))
    return "".join(parts)
