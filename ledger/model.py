"""The base of every pydantic model of the library: validators built on first use.

Building a model's validator and serializer takes about a millisecond per model, and importing
the library defines some forty of them, while a command uses a few (`ledger show` builds the
article view's two): building them at import was most of the CLI's start-up (issue 14).
pydantic builds a deferred model under one lock since 2.14.0 (pydantic#13438; in 2.13 two
threads using a model for the first time at once could fail, and the watcher ingests on a thread
of its own): hence the version floor in `pyproject.toml`, and `tests/test_models.py`.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model whose validator and serializer are built when it is first used."""

    model_config = ConfigDict(defer_build=True)

    @classmethod
    def assemble(cls, values: dict[str, Any]) -> Self:
        """The model of `values`, which give every field, valid already (made by the library
        from its own records, never read from outside): what `model_construct` makes, in a fifth
        of its time (it looks at each field for defaults and aliases; a blame makes thousands of
        spans). `tests/test_models.py` checks that both make equal models."""
        model = cls.__new__(cls)
        object.__setattr__(model, "__dict__", values)
        object.__setattr__(model, "__pydantic_fields_set__", set(values))
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model
