"""The design's rules, checked on the source: imports point one way, third-party libraries stay
in their one module, and the public API is curated and documented."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ledger

ROOT = Path(__file__).resolve().parent.parent

# Each module's layer (a package, such as `store`, is one module here: every file in it has the
# package's layer); a module may import only from its own layer or lower ones.
LAYERS = {
    "errors": 0,
    "times": 0,
    "patches": 0,
    "settling": 0,
    "limits": 0,
    "model": 0,
    "events": 1,
    "codec": 2,
    "caches": 2,
    "store": 3,
    "projections": 4,
    "views": 4,
    "diffs": 4,
    "rendering": 4,
    "plans": 4,
    "decisions": 4,
    "history": 4,
    "anchors": 4,
    "attribution": 4,
    "catalog": 5,
    "transfer": 5,
    "states": 5,
    "draft_format": 5,
    "textindex": 5,
    "application": 6,
    "replays": 6,
    "drafts": 7,
    "watcher": 8,
    "web": 8,
}

# Inside the store package: the port (`contract`) knows no implementation, and the index knows
# nothing of the file store that uses it.
STORE_INSIDE = {
    "contract": set(),
    "index": set(),
    "locking": set(),
    "checked": {"index"},
    "logfile": {"contract", "index"},
    "verify": {"contract", "logfile"},
    "groups": {"contract"},
    "file": {"checked", "contract", "groups", "index", "locking", "logfile", "verify"},
    "postgres": {"contract", "groups", "logfile"},
}

# Third-party libraries and the only places allowed to import them.
CONFINED = {
    "orjson": {"ledger/codec.py"}, "watchdog": {"ledger/watcher.py"}, "click": {"cli"}, "rich": {"cli"},
    "starlette": {"ledger/web"}, "jinja2": {"ledger/web"}, "uvicorn": {"ledger/web"}, "markdown_it": {"ledger/web"}, "nh3": {"ledger/web"},
    "diff_match_patch": {"ledger/diffs.py"},
    "psycopg": {"ledger/store/postgres.py"}, "psycopg_pool": {"ledger/store/postgres.py"},
}


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
    return sorted([*(ROOT / "ledger").rglob("*.py"), *(ROOT / "cli").glob("*.py")])


def _module(path: Path) -> str:
    """The layered module a library file belongs to: its own name, or its package's."""
    return path.relative_to(ROOT / "ledger").parts[0].removesuffix(".py")


def _library_files() -> list[Path]:
    return sorted(p for p in (ROOT / "ledger").rglob("*.py") if p.relative_to(ROOT / "ledger").as_posix() != "__init__.py")


def test_every_library_module_has_a_layer() -> None:
    modules = {_module(path) for path in _library_files()}
    assert modules == set(LAYERS), "add new modules to LAYERS with the layer they belong to"


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: p.relative_to(ROOT / "ledger").as_posix())
def test_library_imports_point_down(path: Path) -> None:
    own = LAYERS[_module(path)]
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "ledger_cli":
            pytest.fail(f"{path.name} imports the CLI ({name})")
        if parts[0] == "ledger" and len(parts) > 1 and parts[1] in LAYERS:
            assert LAYERS[parts[1]] <= own, f"{path.name} (layer {own}) imports {name} (layer {LAYERS[parts[1]]})"


def test_the_store_package_is_a_port_and_its_implementation() -> None:
    package = ROOT / "ledger" / "store"
    assert {p.stem for p in package.glob("*.py")} - {"__init__"} == set(STORE_INSIDE), "add new store modules to STORE_INSIDE"
    for path in package.glob("*.py"):
        if path.stem == "__init__":
            continue
        inside = {name.split(".")[2] for name in _imports(path) if name.startswith("ledger.store.")}
        assert inside <= STORE_INSIDE[path.stem], f"store/{path.name} imports {sorted(inside - STORE_INSIDE[path.stem])}"


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_third_party_libraries_stay_in_their_module(library: str) -> None:
    allowed = CONFINED[library]
    for path in _sources():
        relative = path.relative_to(ROOT).as_posix()
        if any(name.split(".")[0] == library for name in _imports(path)):
            assert any(relative == place or relative.startswith(place + "/") for place in allowed), f"{relative} imports {library}"


def test_the_cli_uses_only_the_public_api() -> None:
    for path in (ROOT / "cli").glob("*.py"):
        for name in _imports(path):
            assert not name.startswith("ledger.") or name.split(".")[1] in ledger.__all__, f"cli/{path.name} imports {name}"


def test_the_public_api_is_curated_and_documented() -> None:
    # Constants, then classes, then functions, each sorted (ruff's RUF022 keeps it so).
    assert ledger.__all__ == sorted(ledger.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))
    for name in ledger.__all__:
        value = getattr(ledger, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"ledger.{name} has no docstring"
    for name in ("watch", "Watcher"):
        assert inspect.getdoc(getattr(ledger, name)), f"ledger.{name} has no docstring"


def test_every_error_has_one_root() -> None:
    errors = [getattr(ledger, n) for n in ledger.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, ledger.LedgerError) for e in errors)


_SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE(?: IF NOT EXISTS| IF EXISTS)?)\s+([a-z_]+)\b")
# A function a module creates (PostgreSQL's `ledger_append`) is queried `FROM` as a table is.
_CREATED = re.compile(r"CREATE (?:VIRTUAL )?(?:TABLE|FUNCTION) (?:IF NOT EXISTS )?([a-z_]+)")
# A PL/pgSQL body (between `$fn$`s) says FROM and INTO of other things than tables
# (`overlay(... FROM n)`, `SELECT ... INTO variable`): its module is the one that defines it.
_PLPGSQL_BODY = re.compile(r"\$fn\$.*?\$fn\$", re.S)


_SQLITE_OWN = {"sqlite_master", "json_each"}
"""Tables SQLite itself provides: its schema, and the table-valued function that passes a list as one parameter."""


def test_each_module_queries_only_the_tables_it_defines() -> None:
    # views.sqlite has one owner (ledger/catalog.py), the store's index another: SQL against a
    # table lives in the module whose schema defines it.
    for path in sorted((ROOT / "ledger").rglob("*.py")):
        strings = [
            node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        defined = {table for text in strings for table in _CREATED.findall(text)}
        for text in strings:
            if not re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP)\b", text) and " FROM " not in text:
                continue
            for table in _SQL_TABLE.findall(_PLPGSQL_BODY.sub("", text)):
                assert table in defined or table in _SQLITE_OWN, f"{path.relative_to(ROOT)}: SQL against {table!r}, a table it does not define"


def test_the_append_rules_and_transfer_sit_where_they_belong() -> None:
    # The rules judge states as the folds do; export and import work over the store and the
    # Ledger's public methods, below the facade that delegates to them.
    assert LAYERS["decisions"] == LAYERS["projections"]
    assert LAYERS["store"] < LAYERS["catalog"] < LAYERS["application"]
    assert LAYERS["store"] < LAYERS["transfer"] < LAYERS["application"]
    assert "ledger.application" not in _imports(ROOT / "ledger" / "transfer.py")


def test_the_cli_is_importable_only_under_its_installed_name() -> None:
    # From the repository root the `cli` folder is on sys.path; it must still not be a `cli` package.
    result = subprocess.run([sys.executable, "-c", "import cli"], cwd=ROOT, check=False, capture_output=True, text=True)
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


# What a command that needs none of them must not load: they made `ledger --help` take 0.4-0.6 s
# (issue 14; benchmarks/bench_startup.py measures it).
_HEAVY = ("pydantic", "rich", "yaml", "tomllib", "watchdog", "orjson", "ledger.application", "ledger.events")


def _loaded_after(code: str) -> list[str]:
    # On stderr: the code may print on stdout (help, a version).
    probe = f"import sys\n{code}\nsys.stderr.write(' '.join(m for m in {_HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True)
    return result.stderr.split()


def test_importing_ledger_loads_none_of_its_modules() -> None:
    assert _loaded_after("import ledger") == []


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_the_cli_starts_without_the_library_or_rich(option: str) -> None:
    code = f"import ledger_cli.main\nsys.argv = ['ledger', {option!r}]\ntry:\n    ledger_cli.main.main()\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


def test_a_name_of_the_library_loads_its_module_once_asked_for() -> None:
    assert _loaded_after("import ledger\nledger.Ledger") == ["pydantic", "orjson", "ledger.application", "ledger.events"]


# What `show`, `history` and `append` must not load: modules of other commands (search, blame,
# diff, verify, export, drafts, the watcher, the viewer) and their libraries, rich when the
# output is piped, and what no pydantic model built on the way needs (importlib.metadata, which
# pydantic's plugin loader imports at the first model build). Each was start-up these commands
# paid for nothing (issue 14; benchmarks/bench_startup.py measures it).
_OTHER_COMMANDS = (
    "ledger.anchors", "ledger.attribution", "ledger.diffs", "ledger.draft_format", "ledger.drafts", "ledger.textindex", "ledger.transfer",
    "ledger.watcher", "ledger.web", "rich", "yaml", "tomllib", "watchdog", "starlette", "jinja2", "uvicorn", "markdown_it", "nh3", "diff_match_patch",
)
_NOT_LOADED = {
    "show": (*_OTHER_COMMANDS, "ledger.decisions", "ledger.views", "importlib.metadata"),
    "history": (*_OTHER_COMMANDS, "ledger.decisions", "ledger.catalog", "importlib.metadata"),
    "append": (*_OTHER_COMMANDS, "ledger.views"),
}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup") / "store"
    with ledger.open(root, create=True) as led:
        led.append([
            {"type": "ArticleCreated", "article": "a", "data": {"title": "A", "body": "First.\n\nSecond.\n", "categories": ["Syria"]}},
            {"type": "UpdateBlockAdded", "article": "a", "data": {"heading": "Update:", "text": "More.\n"}},
        ])
        led.append([{"type": "ArticleEdited", "article": "a", "data": {"body": "First, edited.\n\nSecond.\n"}, "actor": "ed", "reason": "typo"}])
    return root


@pytest.mark.parametrize("command", sorted(_NOT_LOADED))
def test_show_history_and_append_load_only_what_they_use(command: str, small_store: Path, tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"type": "ArticleEdited", "article": "a", "data": {"title": f"Title {tmp_path.name}"}}) + "\n", encoding="utf-8")
    args = {"show": ["show", "a"], "history": ["history", "a"], "append": ["append", str(one)]}[command]
    # The command as the console script runs it, its output piped; what it loaded, on stderr.
    probe = (
        "import sys\nfrom ledger_cli.main import main\n"
        f"sys.argv = ['ledger', '--store', {str(small_store)!r}, *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"sys.stderr.write(' '.join(m for m in {_NOT_LOADED[command]!r} if m in sys.modules))"
    )
    # Piped without COLUMNS, as `ledger history | grep ...` runs (a set width asks for rich's layout).
    env = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout  # the command did its work
    assert result.stderr.split() == [], result.stderr
