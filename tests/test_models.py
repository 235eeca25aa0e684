"""The library's pydantic models build their validators on first use (`ledger/model.py`): that
must hold when many threads use the models for the first time at once (with pydantic 2.13 some
of them failed: `AttributeError: ... has no attribute '__pydantic_core_schema__'`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A fresh interpreter per round: a model is used for the first time once per process. Threads
# switch as often as the interpreter allows, so that builds overlap.
FIRST_USE = r"""
import importlib, pkgutil, sys, threading
sys.setswitchinterval(1e-6)
from pydantic import BaseModel, ValidationError
import ledger
for info in pkgutil.walk_packages(ledger.__path__, "ledger."):
    importlib.import_module(info.name)
models = sorted({value for module in list(sys.modules.values()) if getattr(module, "__name__", "").startswith("ledger.")
                 for value in vars(module).values()
                 if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__.startswith("ledger.")},
                key=lambda model: model.__qualname__)
assert not any(model.__pydantic_complete__ for model in models), "a model was built at import"
failures = []
start = threading.Barrier(16)

def use(turn):
    start.wait()
    for model in models[::-1] if turn % 2 else models:
        try:
            try:
                model.model_validate({})
            except ValidationError:
                pass
            model.model_json_schema()
        except Exception as exc:
            failures.append(f"{model.__name__}: {exc!r}")

threads = [threading.Thread(target=use, args=(turn,)) for turn in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(models), "models")
assert not failures, failures[:3]
"""


def _first_use_in_threads() -> None:
    result = subprocess.run([sys.executable, "-c", FIRST_USE], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[0]) >= 30


def test_models_are_built_on_first_use_by_many_threads_at_once() -> None:
    _first_use_in_threads()


@pytest.mark.slow
def test_models_are_built_on_first_use_by_many_threads_at_once_repeatedly() -> None:
    # One round found the race of pydantic 2.13 about one time in three; twenty find it for sure.
    for _ in range(20):
        _first_use_in_threads()
