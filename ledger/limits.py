"""The default limits on what the ledger accepts, apart from the modules that apply them: the
command line shows them in its help without loading pydantic's models or the draft parsers."""

from __future__ import annotations

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The default bound on one event's data, as JSON (`ledger.open(max_event_bytes=...)`)."""

DRAFT_SIZE_LIMIT = 1024 * 1024
"""The default largest draft, in bytes (1 MiB: a long article is a few tens of KiB). A bigger
draft is refused before it is read; `max_size` (CLI: `--max-draft-size`) sets another limit."""
