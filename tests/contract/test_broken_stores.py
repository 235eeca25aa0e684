"""The contract suite catches a store that breaks a promise: it is run, in a process of its own,
against each deliberately broken store of `conftest.BROKEN`, and must fail there (and only in
the tests of the promise broken, plus any that lean on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract.conftest import BROKEN

ROOT = Path(__file__).resolve().parents[2]

# The test each broken store must fail.
CAUGHT_BY = {
    "skips-version-check": "test_an_expected_version_conflict_appends_nothing",
    "forgets-ids": "test_a_resent_append_returns_the_original_result",
    "verifies-nothing": "test_verify_finds_a_changed_removed_or_reordered_record",
}


def test_every_broken_store_has_a_test_that_catches_it() -> None:
    assert set(CAUGHT_BY) == set(BROKEN)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_contract_suite_fails_a_broken_store(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "contract" / "test_contract.py"), "-q", "-rf", "-m", "not slow",
         "-p", "no:cacheprovider"],
        cwd=ROOT, env={**os.environ, "LEDGER_CONTRACT_STORES": name}, check=False, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAILED tests/contract/test_contract.py::{CAUGHT_BY[name]}[" in done.stdout, done.stdout
