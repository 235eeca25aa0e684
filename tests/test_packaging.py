"""The distribution as `pip install article-ledger` gives it (not the editable install the
tests run on): every module and data file of the library and the command line is in the wheel,
and the wheel alone opens a store, appends, and runs the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the project (offline: the test extra's setuptools)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("ledger", "cli"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert built.returncode == 0, built.stderr
    [path] = out.glob("*.whl")
    return path


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    """Every file of `ledger/` (subpackages, templates, static files, `py.typed`) and of `cli/`
    (as `ledger_cli`) is in the wheel: a subpackage left out of `pyproject.toml` broke every
    installed copy, which the editable install hid."""
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = set()
    for folder, package in (("ledger", "ledger"), ("cli", "ledger_cli")):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                wanted.add(f"{package}/{path.relative_to(ROOT / folder).as_posix()}")
    assert wanted - names == set()
    assert "ledger/py.typed" in names


def test_the_installed_wheel_works_on_its_own(wheel: Path, tmp_path: Path) -> None:
    """The wheel's files, first on the path, open a store, append, read, and run the command
    line and the viewer's and PostgreSQL store's imports: nothing comes from the source tree."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = f"""
import ledger, ledger.store.postgres, ledger.web.app, ledger_cli.main
assert ledger.__file__.startswith({str(site)!r}), ledger.__file__
with ledger.open({str(tmp_path / "store")!r}, create=True) as led:
    led.append([{{"type": "ArticleCreated", "article": "a", "data": {{"title": "T", "body": "One.\\n"}}}}])
    assert led.article("a").body == "One.\\n"
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    shown = subprocess.run([sys.executable, "-m", "ledger_cli.main", "--store", str(tmp_path / "store"), "show", "a"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert (shown.returncode, shown.stdout) == (0, "T\nOne.\n"), shown.stderr
