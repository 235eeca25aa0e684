"""`ledger blame`, `ledger search` and `history --contains` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ledger
from tests.helpers import cli, created, edited


@pytest.fixture
def store(store_dir: Path) -> Path:
    with ledger.open(store_dir) as led:
        led.append([created("bridge", "Bridge closed", "The cat sat on the mat.\n\nFerries run.\n", occurred_at="2024-03-01T09:00:00Z", actor="ann")])
        led.append([edited("bridge", "The dog sat on the mat.\n\nFerries run.\n", occurred_at="2024-03-02T09:00:00Z", actor="bob", reason="a dog")])
    return store_dir


def test_blame_prints_a_margin_of_versions_and_a_key(store: Path) -> None:
    result = cli("blame", "bridge", store=store)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:5] == [
        "  1 | Bridge closed",
        "1-2 | The dog sat on the mat.",
        "    |",
        "  1 | Ferries run.",
        "",
    ]
    assert result.stdout.splitlines()[5].split() == ["ver", "occurred", "actor", "reason"]
    assert "bob" in result.stdout and "a dog" in result.stdout
    assert cli("blame", "bridge", "--version", "1", store=store).stdout.startswith("1 | Bridge closed\n1 | The cat")
    # The version is an argument, as in show, diff and restore; --version says the same.
    assert cli("blame", "bridge", "1", store=store).stdout == cli("blame", "bridge", "--version", "1", store=store).stdout
    assert cli("blame", "bridge", "--at", "2024-03-01T12:00Z", store=store).stdout.startswith("1 | Bridge closed\n")


def test_blame_json_gives_spans_that_cover_the_text(store: Path) -> None:
    result = cli("blame", "bridge", "--format", "json", store=store)
    blame = json.loads(result.stdout)
    assert "".join(span["text"] for span in blame["spans"]) == blame["text"]
    assert all(blame["text"][span["start"] : span["end"]] == span["text"] for span in blame["spans"])
    assert [(span["text"], span["version"], span["actor"]) for span in blame["spans"] if span["part"] == "body"] == [
        ("The ", 1, "ann"), ("dog", 2, "bob"), (" sat on the mat.\n\nFerries run.\n", 1, "ann"),
    ]


def test_search_lists_where_a_phrase_came_in_and_went_out(store: Path) -> None:
    result = cli("search", "THE CAT", "--format", "json", store=store)
    assert result.exit_code == 0, result.stderr
    (hit,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (hit["appeared_version"], hit["vanished_version"], hit["vanished_actor"], hit["current"]) == (1, 2, "bob", False)
    assert cli("search", "THE CAT", "--exact", "--format", "json", store=store).stdout == ""
    table = cli("search", "ferries run", "--article", "bridge", store=store).stdout.splitlines()
    assert table[0].split()[:3] == ["article", "part", "in"] and table[1].split()[:3] == ["bridge", "body", "1"]
    assert cli("search", "dog", "--since", "2024-03-03", store=store).stdout.count("bridge") == 1
    assert "bridge" not in cli("search", "cat", "--since", "2024-03-03", store=store).stdout


def test_history_contains(store: Path) -> None:
    result = cli("history", "bridge", "--contains", "dog", "--format", "json", store=store)
    assert [json.loads(line)["version"] for line in result.stdout.splitlines()] == [2]
    assert [json.loads(line)["version"] for line in cli("history", "bridge", "--contains", "mat", "--format", "json", store=store).stdout.splitlines()] == [1, 2]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("blame", "nope"), 4, "error: article 'nope' is not in the log\n"),
        (("blame", "bridge", "--version", "9"), 4, "error: article 'bridge' has versions 1 to 2, not 9\n"),
        (("blame", "bridge", "--version", "1", "--at", "2024-03-02"), 3, "error: give a version or a time, not both\n"),
        (("blame", "bridge", "1", "--at", "2024-03-02"), 3, "error: give a version or a time, not both\n"),
        (("blame", "bridge", "1", "--version", "2"), 2, "error: ledger blame: give the version once: 1 or --version 2\n"),
        (("search", ""), 3, "error: the phrase to search for is empty\n"),
        (("search", "--", "--"), 3, "error: the phrase '--' has no letter or digit to search for\n"),
        (("search", "cat", "--article", "nope"), 4, "error: article 'nope' is not in the log\n"),
        (("history", "bridge", "--contains", " "), 3, "error: the phrase to search for is empty\n"),
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(store: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = cli(*args, store=store)
    assert (result.exit_code, result.stderr) == (code, message)


def test_a_version_that_is_not_a_number_is_a_usage_error(store: Path) -> None:
    result = cli("blame", "bridge", "--version", "zero", store=store)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
