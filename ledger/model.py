"""The base of every pydantic model ledger defines.

Validators are built when a model is first used, not when its module is imported: a CLI command
uses a handful of ledger's ~30 models, and building all of them cost 60-80 ms of every command's
start-up (about a fifth of it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic `BaseModel` whose validator and serializer are built on first use."""

    model_config = ConfigDict(defer_build=True)
