"""The docs agree with the code they describe: the CLI reference lists exactly the commands and
options the CLI has, and every link between the README and the pages of docs/ resolves.

The CLI side comes from click's own description of the command group (`ledger_cli.main.main`), which is
also what `ledger --help` and `ledger COMMAND --help` print. The reference side is
`docs/cli.md`: one `### \\`ledger COMMAND\\`` section per command, naming each of its options in
backticks (`--format`, `-a`); the global options are named before the first command section.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import click.testing
import pytest
from ledger_cli.main import main

import ledger

ROOT = Path(__file__).resolve().parent.parent
CLI_REFERENCE = ROOT / "docs" / "cli.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SECTION = re.compile(r"^### `ledger ([a-z-]+)`$", re.MULTILINE)
OPTION = re.compile(r"`(--?[a-z][a-z-]*)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
HELP = {"-h", "--help"}
"""Every command takes these; the reference says so once."""


def option_names(command: click.Command) -> set[str]:
    """Every option name (long and short, flags' negations too) a command takes, but help."""
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts, param.secondary_opts)
    return names - HELP


def reference_sections() -> tuple[str, dict[str, str]]:
    """The CLI reference's text before the first command section, and each command's section."""
    text = FENCE.sub("", CLI_REFERENCE.read_text(encoding="utf-8"))
    found = list(SECTION.finditer(text))
    assert found, "docs/cli.md has a '### `ledger COMMAND`' section per command"
    sections: dict[str, str] = {}
    for number, match in enumerate(found):
        end = found[number + 1].start() if number + 1 < len(found) else len(text)
        body = text[match.end() : end]
        sections[match.group(1)] = body.split("\n## ", 1)[0]
    return text[: found[0].start()], sections


def test_the_reference_has_every_command_and_no_other() -> None:
    _, sections = reference_sections()
    assert sorted(sections) == sorted(main.commands)


@pytest.mark.parametrize("name", sorted(main.commands))
def test_the_reference_has_every_option_of_a_command_and_no_other(name: str) -> None:
    _, sections = reference_sections()
    documented = set(OPTION.findall(sections[name])) - HELP
    assert documented == option_names(main.commands[name]), f"docs/cli.md, `ledger {name}`"


def test_the_reference_has_the_global_options() -> None:
    before, _ = reference_sections()
    documented = set(OPTION.findall(before))
    assert option_names(main) <= documented
    assert documented >= HELP


def test_the_help_lists_what_the_reference_lists() -> None:
    # The same check through what a user sees: `ledger --help` and `ledger COMMAND --help`.
    runner = click.testing.CliRunner()
    listed = runner.invoke(main, ["--help"], terminal_width=200)
    assert listed.exit_code == 0
    _, sections = reference_sections()
    for name in sections:
        assert re.search(rf"^  {name}\b", listed.output, re.MULTILINE), name
        shown = runner.invoke(main, [name, "--help"], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        for option in set(OPTION.findall(sections[name])):
            assert re.search(rf"(?<![\w-]){re.escape(option)}\b", shown.output), f"ledger {name} --help lacks {option}"


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (headings inside code blocks are not headings)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {anchor(match.group(1)) for match in HEADING.finditer(text)}


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_link_resolves(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target}: no such file"
        if fragment:
            assert linked.suffix == ".md" and fragment in anchors(linked), f"{page.name}: link to {target}: no such heading"


def test_every_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, page.name


def _git(repo: Path, *args: str, date: str | None = None) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo), "GIT_AUTHOR_NAME": "Ana Lima", "GIT_AUTHOR_EMAIL": "ana@example.org",
           "GIT_COMMITTER_NAME": "Ana Lima", "GIT_COMMITTER_EMAIL": "ana@example.org"}
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def test_the_git_history_import_of_the_drafts_page_works(tmp_path: Path) -> None:
    # The function docs/drafts-and-watching.md offers for importing a revision history, run as
    # written on a real repository whose third commit's author date goes back (a rebase).
    page = (ROOT / "docs" / "drafts-and-watching.md").read_text(encoding="utf-8")
    section = page.split("### Importing a revision history", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "drafts-and-watching.md", "exec"), namespace)
    import_git_history = namespace["import_git_history"]
    assert callable(import_git_history)
    repo = tmp_path / "site"
    repo.mkdir()
    _git(repo, "init", "-q")
    post = repo / "posts" / "bridge.md"
    post.parent.mkdir()
    texts = [
        b"---\ntitle: Bridge closed\ncategory: transport\n---\n\nThe bridge is closed.\r\n",
        b"---\ntitle: Bridge closed\ncategory: transport\n---\n\n## _(Update 2-Mar-2024)_ Ferries\n\nFerries run.\n\nThe bridge is closed.\r\n",
        b"---\ntitle: Bridge reopens\ncategory: transport\n---\n\n## _(Update 2-Mar-2024)_ Ferries\n\nFerries run.\n\nThe bridge is closed.\r\n",
    ]
    for text, date, subject in zip(texts, ["2024-03-01T09:00:00+01:00", "2024-03-02T09:00:00+01:00", "2024-03-01T12:00:00+01:00"],
                                   ["first report", "ferries", "reopening"], strict=True):
        post.write_bytes(text)
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", subject, date=date)
    with ledger.open(tmp_path / "store", create=True) as led:
        import_git_history(led, str(repo), "posts/bridge.md", "bridge")
        assert [ledger.render(led.article("bridge", version)).encode() for version in (1, 2, 3)] == texts
        history = led.history("bridge")
        assert [(e.actor, e.reason) for e in history] == [("Ana Lima", "first report"), ("Ana Lima", "ferries"), ("Ana Lima", "reopening")]
        assert history[2].occurred_at == history[1].occurred_at  # the date that went back
