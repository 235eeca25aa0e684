"""The design's rules, checked on the source: imports point one way, third-party libraries stay
in their one module, and the public API is curated and documented."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import ledger

ROOT = Path(__file__).resolve().parent.parent

# Each module's layer; a module may import only from its own layer or lower ones.
LAYERS = {
    "errors": 0,
    "times": 0,
    "patches": 0,
    "settling": 0,
    "events": 1,
    "codec": 2,
    "caches": 2,
    "store": 3,
    "projections": 4,
    "views": 4,
    "diffs": 4,
    "rendering": 4,
    "changes": 4,
    "checkpoints": 5,
    "draft_format": 5,
    "application": 6,
    "drafts": 7,
    "watcher": 8,
}

# Third-party libraries and the only places allowed to import them.
CONFINED = {"orjson": {"ledger/codec.py"}, "watchdog": {"ledger/watcher.py"}, "click": {"cli"}, "rich": {"cli"}}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "ledger":
                names.update(f"ledger.{alias.name}" for alias in node.names)
    return names


def _sources() -> list[Path]:
    return sorted([*(ROOT / "ledger").glob("*.py"), *(ROOT / "cli").glob("*.py")])


def test_every_library_module_has_a_layer() -> None:
    modules = {path.stem for path in (ROOT / "ledger").glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS), "add new modules to LAYERS with the layer they belong to"


@pytest.mark.parametrize("path", [p for p in (ROOT / "ledger").glob("*.py") if p.stem != "__init__"], ids=lambda p: p.stem)
def test_library_imports_point_down(path: Path) -> None:
    own = LAYERS[path.stem]
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "ledger_cli":
            pytest.fail(f"{path.name} imports the CLI ({name})")
        if parts[0] == "ledger" and len(parts) > 1 and parts[1] in LAYERS:
            assert LAYERS[parts[1]] <= own, f"{path.name} (layer {own}) imports {name} (layer {LAYERS[parts[1]]})"


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_third_party_libraries_stay_in_their_module(library: str) -> None:
    allowed = CONFINED[library]
    for path in _sources():
        relative = path.relative_to(ROOT).as_posix()
        if any(name.split(".")[0] == library for name in _imports(path)):
            assert relative in allowed or relative.split("/")[0] in allowed, f"{relative} imports {library}"


def test_the_cli_uses_only_the_public_api() -> None:
    for path in (ROOT / "cli").glob("*.py"):
        for name in _imports(path):
            assert not name.startswith("ledger.") or name.split(".")[1] in ledger.__all__, f"cli/{path.name} imports {name}"


def test_the_public_api_is_curated_and_documented() -> None:
    assert ledger.__all__ == sorted(ledger.__all__, key=lambda n: (n[0].islower(), n))
    for name in ledger.__all__:
        value = getattr(ledger, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"ledger.{name} has no docstring"
    for name in ("watch", "Watcher"):
        assert inspect.getdoc(getattr(ledger, name)), f"ledger.{name} has no docstring"


def test_every_error_has_one_root() -> None:
    errors = [getattr(ledger, n) for n in ledger.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, ledger.LedgerError) for e in errors)


def test_the_cli_is_importable_only_under_its_installed_name() -> None:
    # From the repository root the `cli` folder is on sys.path; it must still not be a `cli` package.
    result = subprocess.run([sys.executable, "-c", "import cli"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "import ledger_cli" in result.stderr
    import ledger_cli.main  # noqa: F401  (the installed name works)


def _cli_imports(path: Path) -> set[str]:
    """The `cli/` modules that `path` imports, by their file stem (`from .group import main` is "group")."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or node.module in ("ledger_cli", "cli")):
            names.update([node.module] if node.module and node.module not in ("ledger_cli", "cli") else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("ledger_cli", "cli"):
            names.add(node.module.split(".")[1])
    return names


def test_the_cli_has_no_import_loop() -> None:
    # The group lives in cli/group.py; cli/main.py only assembles it with the command modules.
    for path in (ROOT / "cli").glob("*.py"):
        imported = _cli_imports(path)
        assert "main" not in imported, f"cli/{path.name} imports cli/main.py"
        if path.stem in ("group", "output"):
            assert not any(name.endswith("_commands") for name in imported), f"cli/{path.name} imports a command module"
