"""The `ledger` command: the group with every command module attached (the console script's entry point)."""

from __future__ import annotations

import sys

# Each command module attaches its commands to the group when imported.
from . import draft_commands, io_commands, store_commands, view_commands, web_commands  # noqa: F401
from .group import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
