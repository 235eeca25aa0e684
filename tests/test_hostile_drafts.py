"""Hostile drafts: every bad thing a drafts folder can hold, for `ledger ingest`, `ledger import`
and the watcher. Each gets one clear line naming it, nothing recorded from it, and no hang.

Every future bad draft input goes here. Waits are polling loops on conditions with generous
deadlines; the deadlines that matter are far below the 30 s the watcher once waited for a
close, and far above what a busy machine needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import ledger
from ledger.draft_format import parse_draft
from ledger.rendering import render
from ledger.watcher import watch
from tests.conftest import run_ledger
from tests.helpers import Recorder, story, text_of, version, wait_for

# Well before the 30 s the watcher once waited for a lost close, well after the 0.5 s it needs.
PROMPT = 15.0

BILLION_LAUGHS = (
    "---\n"
    "title: lol\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    "---\n"
    "Body\n"
)


def nothing_recorded(store: Path) -> bool:
    return run_ledger("log", "--format", "json", store=store).stdout == b""


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the drafts folder that must never reach the log."""
    path = tmp_path / "secret.txt"
    path.write_text("Secret\n\nroot:$6$not-for-the-log\n")
    return path


# --- point 13: hostile YAML front matter and oversize drafts ---------------------------------


def test_billion_laughs_is_refused_at_its_first_alias() -> None:
    assert len(BILLION_LAUGHS.encode()) < 500
    with pytest.raises(ledger.DraftError) as refused:
        parse_draft(BILLION_LAUGHS, "lol.md")
    assert str(refused.value) == (
        "lol.md:4: the YAML alias *a is not allowed in front matter "
        "(aliases and merge keys can expand without bound; write the value out)"
    )


@pytest.mark.parametrize(
    ("front", "line", "what"),
    [
        ("val: &a [*a]\n", 3, "the YAML alias *a is not allowed"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", 5, "the YAML alias *b is not allowed"),
        ("deep: " + "[" * 500 + "]" * 500 + "\n", 3, "front matter nests lists or mappings deeper than 50 levels"),
        ("deep:\n" + "".join("  " * n + f"k{n}:\n" for n in range(1, 80)) + "  " * 80 + "end\n", 52,
         "front matter nests lists or mappings deeper than 50 levels"),
    ],
    ids=["recursive alias", "merge key", "500 deep flow", "80 deep block"],
)
def test_aliases_and_deep_nesting_are_refused_in_one_line(front: str, line: int, what: str) -> None:
    with pytest.raises(ledger.DraftError) as refused:
        parse_draft(f"---\ntitle: T\n{front}---\nBody\n", "x.md")
    message = str(refused.value)
    assert message.startswith(f"x.md:{line}: {what}") and "\n" not in message


@pytest.mark.slow
def test_hostile_front_matter_through_the_cli_appends_nothing(store_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "lol.md").write_text(BILLION_LAUGHS)
    done = run_ledger("ingest", str(tmp_path / "lol.md"), store=store_dir, timeout=60)
    assert done.returncode == 3
    assert done.stderr.decode() == (
        f"error: {tmp_path / 'lol.md'}:4: the YAML alias *a is not allowed in front matter "
        "(aliases and merge keys can expand without bound; write the value out)\n"
    )
    assert nothing_recorded(store_dir)


DEEP = 80


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('+++\ntitle = "T"\ntitle = "U"\n+++\n', "x.md:3: broken TOML front matter: a key is given twice (or as a value and as a table)"),
        ('+++\ntitle = "T"\n[extra]\na = 1\n[extra]\nb = 2\n+++\n', "x.md:5: broken TOML front matter: a table is declared twice"),
        ('+++\ntitle = "T"\nx = {a = 1, a = 2}\n+++\n', "x.md:3: broken TOML front matter: a key is given twice in an inline table"),
        ('+++\ntitle = "T"\ndate = 2024-02-30\n+++\n', "x.md:3: broken TOML front matter: not a valid date or time (a month, day or hour out of range?)"),
        ('+++\ntitle = "T"\ndate = 2024-13-01T10:00:00Z\n+++\n',
         "x.md:3: broken TOML front matter: not a valid date or time (a month, day or hour out of range?)"),
        ('+++\ntitle = "T"\ndate = 2017-13-45\n+++\n', "x.md:3: broken TOML front matter: not a valid date or time (a month, day or hour out of range?)"),
        ('+++\ntitle = "T"\nn = 12 34\n+++\n',
         "x.md:3: broken TOML front matter: something follows the value on its line (one `key = value` a line; a date or number written wrong?)"),
        ('+++\ntitle = "T"\n[taxonomies]\ntags = [{a = 1}]\n+++\n', "x.md:3: front matter `taxonomies.tags` must be text or a list of texts"),
        ('{\n  "title": "T",\n  "taxonomies": {"tags": [1.5, {"a": 1}]}\n}\n', "x.md:3: front matter `taxonomies.tags` must be text or a list of texts"),
        ('+++\ntitle = "T"\nviews = 99999999999999999999\n+++\n', "x.md:3: front matter `views`: integer too large"),
        # Past 4,300 digits Python reads no integer: it was a ValueError traceback.
        ('+++\ntitle = "T"\n[t]\nviews = [1, ' + "9" * 5000 + "]\n+++\n", "x.md:4: front matter `views`: integer too large"),
        ('+++\ntitle = "T"\n"the views" = -' + "9" * 5000 + "\n+++\n", "x.md:3: front matter `the views`: integer too large"),
        ("---\ntitle: T\nviews: " + "9" * 5000 + "\n---\n", "x.md:3: front matter `views`: integer too large"),
        ("---\ntitle: T\nviews: [-" + "9" * 5000 + "]\n---\n", "x.md:3: front matter `views`: integer too large"),
        ("---\ntitle: T\nviews: 0x" + "f" * 5000 + "\n---\n", "x.md:3: front matter `views`: integer too large"),
        ('+++\ntitle = "T"\nscore = 1e999\n+++\n', "x.md:3: front matter `score`: inf is not a finite number"),
        ('+++\ntitle = "T"\nscore = nan\n+++\n', "x.md:3: front matter `score`: nan is not a finite number"),
        ('+++\ntitle = "T"\ndeep = ' + "[" * 500 + "]" * 500 + "\n+++\n", "x.md:3: front matter nests lists or mappings deeper than 50 levels"),
        ('+++\ntitle = "T"\n\ndeep.' + ".".join(f"k{n}" for n in range(DEEP)) + " = 1\n+++\n", "x.md:4: front matter nests lists or mappings deeper than 50 levels"),
        ('+++\ntitle = "T"\n[' + ".".join(f"k{n}" for n in range(DEEP)) + "]\n+++\n", "x.md:3: front matter nests lists or mappings deeper than 50 levels"),
        ('+++\ntitle = "T"\nx = {' + ".".join(f'"k{n}"' for n in range(DEEP)) + " = 1}\n+++\n",
         "x.md:3: front matter nests lists or mappings deeper than 50 levels"),
        ('+++\ntitle = T\n+++\n', 'x.md:2: broken TOML front matter: a value TOML does not know (text must be quoted: title = "...")'),
        ('+++\ntitle = "T"\nx = [1, 2\n+++\n', "x.md:4: broken TOML front matter: a list '[' is not closed"),
        ('+++\ntitle = "T"\n_draft = 1\n+++\n', "x.md:3: front-matter key `_draft` is reserved by ledger"),
        ('+++\ntitle = "T"\n', "x.md:1: front matter is not closed: no '+++' line after the opening one"),
        ('{\n  "title": "T",\n  "title": "U"\n}\n', "x.md:3: JSON front matter: key 'title' is given twice in one object"),
        ('{\n  "title": "T",\n  "views": 123456789012345678901\n}\n',
         "x.md:3: JSON front matter: integer 123456789012345678901 is beyond 64 bits (the log keeps integers from -2**63 to 2**63-1)"),
        ('{\n  "title": "T",\n  "score": 1e999\n}\n', "x.md:3: JSON front matter: number 1e999 is too large for a 64-bit float"),
        ('{\n  "title": "T",\n  "score": NaN\n}\n', "x.md:3: JSON front matter: NaN is not a JSON number"),
        ('{\n  "title": "T",\n  "deep":\n' + "[" * 500 + "]" * 500 + "\n}\n", "x.md:4: front matter nests lists or mappings deeper than 50 levels"),
        ('{\n  "title": "T",\n  "x": 1,\n}\n', "x.md:4: broken JSON front matter: expecting property name enclosed in double quotes"),
        ('{\n  "title": "T",\n  "x": "}"\n', "x.md:1: JSON front matter is not closed: no '}' matches the '{' that opens the draft"),
        ('{"title": "T"} Body\n', "x.md:1: text after the '}' that closes the JSON front matter; start the body on the next line"),
        ('["title", "T"]\n', "x.md:1: no title: a Markdown draft starts with front matter ('---' YAML, '+++' TOML or a JSON object, "
                              "with a title) or with a '# Title' heading line"),
        ('{\n  "name": "T"\n}\n', "x.md:1: front matter has no `title`"),
        ("\n\nJust a paragraph.\n", "x.md:3: no title: a Markdown draft starts with front matter ('---' YAML, '+++' TOML or a JSON "
                                       "object, with a title) or with a '# Title' heading line"),
        ("#   \nBody\n", "x.md:1: no title: a Markdown draft starts with front matter ('---' YAML, '+++' TOML or a JSON object, "
                        "with a title) or with a '# Title' heading line"),
        ("# Ti\x01tle\n", "x.md:1: title contains a control character"),
    ],
    ids=["toml duplicate key", "toml table twice", "toml inline duplicate", "toml 30 February", "toml month 13", "toml 2017-13-45",
         "toml two values on a line", "toml taxonomy of tables", "json taxonomy of objects",
         "toml 67-bit integer", "toml 5000 digits in a list", "toml 5000 digits quoted key", "yaml 5000 digits", "yaml 5000 digits in a list",
         "yaml 5000 hex digits", "toml huge float", "toml nan", "toml 500 deep", "toml 80 dotted keys", "toml 80 deep table",
         "toml 80 dotted keys inline",
         "toml bare text", "toml open list", "toml reserved key", "toml not closed", "json duplicate key", "json 67-bit integer",
         "json huge float", "json NaN", "json 500 deep", "json trailing comma", "json not closed", "json body on its line",
         "json array", "json without title", "no heading", "empty heading", "heading control character"],
)
def test_hostile_toml_json_and_plain_markdown_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ledger.DraftError) as refused:
        parse_draft(text, "x.md")
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("title: T\ntitle: U", "x.md:3: front matter: key 'title' is given twice in one mapping"),
        ("title: T\nm:\n  a: 1\n  a: 2", "x.md:5: front matter: key 'a' is given twice in one mapping"),
        ("title: T\nx: !custom 1", "x.md:3: broken front matter: the YAML tag !custom is not allowed in front matter (write the value plainly)"),
        ("title: T\nx: !!python/object/apply:os.system [ls]",
         "x.md:3: broken front matter: the YAML tag !!python/object/apply:os.system is not allowed in front matter (write the value plainly)"),
        ("title: T\n? [a, b]\n: 1", "x.md:3: broken front matter: a list or mapping cannot be a key"),
        ("title: T\n\tx: 1", "x.md:3: broken front matter: a tab where YAML wants spaces: indent with spaces"),
        ("title: T\nx: @me", "x.md:3: broken front matter: '@' cannot start a value: put the value in quotes (\"...\")"),
        ("title: T\nx: {a: 1", "x.md:3: broken front matter: a mapping '{' is not closed"),
        ("title: T\nx: \"open", "x.md:3: broken front matter: a quoted text is not closed"),
        ("title: T\nx: a: b", "x.md:3: broken front matter: a ': ' where no key can be (put a value holding ': ' in quotes, or check the indentation)"),
        ("title: T\n[1, 2]", "x.md:3: broken front matter: a line that is not `key: value`"),
    ],
    ids=["duplicate", "nested duplicate", "tag", "python tag", "list key", "tab", "at sign", "open mapping", "open quote", "colon", "no key"],
)
def test_yaml_problems_are_named_in_plain_words(front: str, message: str) -> None:
    # PyYAML's own words ("could not determine a constructor", "found unhashable key (while
    # constructing a mapping)") came through, and a key given twice kept the last value unsaid.
    with pytest.raises(ledger.DraftError) as refused:
        parse_draft(f"---\n{front}\n---\n\nBody\n", "x.md")
    assert str(refused.value) == message


def test_json_dates_are_text_as_in_yaml() -> None:
    # JSON has no dates: a date that is no day is text as written, as YAML keeps it.
    for text in ('{"title": "T", "date": "2024-02-30"}\n', "---\ntitle: T\ndate: 2024-02-30\n---\n"):
        assert parse_draft(text, "x.md").metadata["date"] == "2024-02-30"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("dup.md", '+++\ntitle = "T"\ntags = ["a"]\ntags = ["b"]\n+++\nBody\n',
         "4: broken TOML front matter: a key is given twice (or as a value and as a table)"),
        ("deep.md", '{\n  "title": "T",\n  "x": ' + "{\"a\": " * 900 + "1" + "}" * 900 + "\n}\nBody\n",
         "3: front matter nests lists or mappings deeper than 50 levels"),
    ],
    ids=["toml", "json"],
)
def test_hostile_toml_and_json_through_the_cli_append_nothing(store_dir: Path, tmp_path: Path, name: str, text: str, error: str) -> None:
    (tmp_path / "good.md").write_text("+++\ntitle = \"Good\"\n+++\nBody\n")
    (tmp_path / name).write_text(text)
    done = run_ledger("ingest", str(tmp_path / "good.md"), str(tmp_path / name), store=store_dir, timeout=60)
    assert done.returncode == 3
    assert done.stderr.decode() == f"error: {tmp_path / name}:{error}\n"
    assert nothing_recorded(store_dir)


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("title.md", '---\ntitle: "T\\ud800"\n---\nBody\n', 2),
        ("list.md", '---\ntitle: T\nsources: ["a", "\\udfff"]\n---\nBody\n', 3),
        # A key written as an escape is not found as typed: the front matter's first line.
        ("key.md", '---\ntitle: T\n"\\udc00k": 1\n---\nBody\n', 2),
        ("json.md", '{"title": "T",\n "x": "\\ud800"}\nBody\n', 2),
    ],
    ids=["yaml-title", "yaml-list", "yaml-key", "json"],
)
def test_an_escaped_lone_surrogate_in_front_matter_is_one_line(store_dir: Path, tmp_path: Path, name: str, text: str,
                                                               line: int) -> None:
    # The hostile run: `title: "T\ud800"` (an escape YAML and JSON read into half a surrogate
    # pair, which is no character) ended in a UnicodeEncodeError traceback, exit 1.
    (tmp_path / name).write_text(text)
    done = run_ledger("ingest", str(tmp_path / name), store=store_dir)
    assert done.returncode == 3, done.stderr
    assert done.stderr.decode() == (f"error: {tmp_path / name}:{line}: front matter holds an escape that is no character "
                                    "(an unpaired surrogate, \\ud800 to \\udfff); write the character itself\n")
    assert nothing_recorded(store_dir)


def test_front_matter_that_is_no_mapping_names_its_kind_in_plain_words() -> None:
    # "not a int", "not a str": Python's names for what YAML read.
    for front, kind in (("5", "a number"), ("just text", "text"), ("- a", "a list"), ("true", "true/false")):
        with pytest.raises(ledger.DraftError, match=f"front matter must be a mapping of keys to values, not {kind}$"):
            parse_draft(f"---\n{front}\n---\nBody\n".encode(), "d.md")


@pytest.mark.slow
def test_a_dotted_toml_key_of_a_megabyte_is_refused_without_a_stall(store_dir: Path, tmp_path: Path) -> None:
    # tomllib's cost grows with the square of a key's parts: this key would take it hours.
    parts = 400_000
    (tmp_path / "dots.md").write_text('+++\ntitle = "T"\nx.' + ".".join(["k"] * parts) + " = 1\n+++\nBody\n")
    assert (tmp_path / "dots.md").stat().st_size < 1024 * 1024
    done = run_ledger("ingest", str(tmp_path / "dots.md"), store=store_dir, timeout=60)
    assert done.returncode == 3
    assert done.stderr.decode() == f"error: {tmp_path / 'dots.md'}:3: front matter nests lists or mappings deeper than 50 levels\n"
    assert nothing_recorded(store_dir)


@pytest.mark.slow
def test_an_oversize_draft_is_refused_before_it_is_read(store_dir: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("Big\n\n" + "x" * ledger.DRAFT_SIZE_LIMIT)
    done = run_ledger("ingest", str(big), store=store_dir)
    assert (done.returncode, done.stdout) == (3, b"")
    assert done.stderr.decode() == (
        f"error: {big}: the draft is over the size limit of {ledger.DRAFT_SIZE_LIMIT:,} bytes (--max-draft-size sets another)\n"
    )
    assert nothing_recorded(store_dir)
    small = run_ledger("ingest", str(big), "--max-draft-size", "100", store=store_dir)
    assert small.returncode == 3 and b"size limit of 100 bytes" in small.stderr
    allowed = run_ledger("ingest", str(big), "--max-draft-size", str(2 * ledger.DRAFT_SIZE_LIMIT), store=store_dir)
    assert allowed.returncode == 0, allowed.stderr
    assert run_ledger("show", "big", store=store_dir).stdout == big.read_bytes()
    # In the words every count option uses (it was click's "'abc' is not a valid integer range").
    for given, env in (("abc", {}), (None, {"LEDGER_MAX_DRAFT_SIZE": "-1"})):
        refused = run_ledger("ingest", str(big), *(["--max-draft-size", given] if given else []), store=store_dir, env=env)
        shown = "'abc' is not a whole number" if given else "-1 is too small"
        assert (refused.returncode, refused.stderr.decode()) == (2, f"error: ledger ingest: --max-draft-size: {shown} (expected 1 or more)\n")


# --- point 10: FIFOs and other files that are no drafts --------------------------------------


@pytest.mark.slow
def test_ingest_of_a_fifo_is_refused_without_hanging(store_dir: Path, drafts: Path) -> None:
    os.mkfifo(drafts / "x.txt")
    done = run_ledger("ingest", str(drafts / "x.txt"), store=store_dir, timeout=30)
    assert done.returncode == 3
    assert done.stderr.decode() == f"error: {drafts / 'x.txt'}: a FIFO (named pipe), not a regular file: only regular files are drafts\n"
    assert nothing_recorded(store_dir)


@pytest.mark.slow
def test_a_folder_scan_skips_what_is_not_a_regular_file(store_dir: Path, drafts: Path) -> None:
    os.mkfifo(drafts / "fifo.txt")
    (drafts / "folder.txt").mkdir()
    (drafts / "good.txt").write_text(story(1))
    done = run_ledger("ingest", str(drafts), store=store_dir, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"created good v1 ({drafts / 'good.txt'}): created\n"
    assert done.stderr.decode() == (
        f"warning: {drafts / 'fifo.txt'}: a FIFO (named pipe), not a regular file: only regular files are drafts; skipped\n"
        f"warning: {drafts / 'folder.txt'}: a folder, not a regular file: only regular files are drafts; skipped\n"
    )


@pytest.mark.slow
def test_import_of_a_fifo_is_refused_without_hanging(store_dir: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "events.jsonl")
    done = run_ledger("import", str(tmp_path / "events.jsonl"), store=store_dir, timeout=30)
    assert done.returncode == 3
    assert done.stderr.decode() == (
        f"error: {tmp_path / 'events.jsonl'}: not a regular file; to import from a pipe, give - and redirect it to stdin\n"
    )


# --- point 11: symbolic links ----------------------------------------------------------------


@pytest.mark.slow
def test_a_link_out_of_the_folder_records_nothing(store_dir: Path, drafts: Path, secret: Path) -> None:
    os.symlink(secret, drafts / "shadow.txt")
    (drafts / "good.txt").write_text(story(1))
    for extra in ((), ("--follow-symlinks",)):
        done = run_ledger("ingest", str(drafts), *extra, store=store_dir)
        assert done.returncode == 0, done.stderr
        [warning] = done.stderr.decode().splitlines()
        assert warning.startswith(f"warning: {drafts / 'shadow.txt'}: a symbolic link") and warning.endswith("; skipped")
    assert "outside the drafts folder" in warning
    named = run_ledger("ingest", str(drafts / "shadow.txt"), store=store_dir)
    assert named.returncode == 3
    assert named.stderr.decode() == (
        f"error: {drafts / 'shadow.txt'}: a symbolic link: not followed (--follow-symlinks reads links to drafts in the same folder)\n"
    )
    followed = run_ledger("ingest", str(drafts / "shadow.txt"), "--follow-symlinks", store=store_dir)
    assert followed.returncode == 3
    assert followed.stderr.decode() == f"error: {drafts / 'shadow.txt'}: a symbolic link to {secret}, outside the drafts folder: not followed\n"
    log = run_ledger("log", "--format", "json", store=store_dir).stdout.decode()
    assert "not-for-the-log" not in log and "shadow" not in log
    assert run_ledger("show", "good", store=store_dir).returncode == 0


@pytest.mark.slow
def test_a_link_inside_the_folder_is_read_only_when_asked(store_dir: Path, drafts: Path) -> None:
    (drafts / "original.txt").write_text(story(1))
    os.symlink("original.txt", drafts / "alias.txt")
    hop = drafts / "hop.txt"
    os.symlink(drafts / "alias.txt", hop)  # a link to a link: where it ends up is what counts
    assert run_ledger("ingest", str(drafts / "alias.txt"), store=store_dir).returncode == 3
    done = run_ledger("ingest", str(drafts / "alias.txt"), str(hop), "--follow-symlinks", store=store_dir)
    assert done.returncode == 0, done.stderr
    assert run_ledger("show", "alias", store=store_dir).stdout == (drafts / "original.txt").read_bytes()
    assert run_ledger("show", "hop", store=store_dir).stdout == (drafts / "original.txt").read_bytes()


def test_the_python_api_refuses_links_unless_asked(led: ledger.Ledger, drafts: Path, secret: Path) -> None:
    os.symlink(secret, drafts / "shadow.txt")
    with pytest.raises(ledger.DraftError, match="symbolic link: not followed"):
        ledger.read_draft(drafts / "shadow.txt")
    with pytest.raises(ledger.DraftError, match="outside the drafts folder"):
        ledger.ingest(led, [drafts / "shadow.txt"], follow_symlinks=True)
    # The link is skipped, which leaves no draft at all: nothing to ingest (issue 14 point 4).
    with pytest.raises(ledger.NothingToDoError, match="no drafts in "):
        ledger.ingest(led, [drafts])
    assert led.head().position == 0


# --- the watcher: points 9, 10, 11, 12, 13 and 15 --------------------------------------------


def _write_then_chmod(path: Path, text: str, scratch: Path) -> None:
    path.write_text(text)
    os.chmod(path, 0o644)


def _shell_redirect_then_chmod(path: Path, text: str, scratch: Path) -> None:
    source = scratch / "source.txt"
    source.write_text(text)
    subprocess.run(["sh", "-c", 'cat "$1" > "$2"; chmod 644 "$2"', "sh", str(source), str(path)], check=True)


def _write_then_touch(path: Path, text: str, scratch: Path) -> None:
    path.write_text(text)
    subprocess.run(["touch", str(path)], check=True)


def _cp_p(path: Path, text: str, scratch: Path) -> None:
    source = scratch / "source.txt"
    source.write_text(text)
    subprocess.run(["cp", "-p", str(source), str(path)], check=True)


def _shutil_copy(path: Path, text: str, scratch: Path) -> None:
    source = scratch / "source.txt"
    source.write_text(text)
    shutil.copy(source, path)


def _shutil_copy2(path: Path, text: str, scratch: Path) -> None:
    source = scratch / "source.txt"
    source.write_text(text)
    shutil.copy2(source, path)


def _temp_then_rename(path: Path, text: str, scratch: Path) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def _moved_in_from_another_folder(path: Path, text: str, scratch: Path) -> None:
    source = scratch / "source.txt"
    source.write_text(text)
    os.replace(source, path)


SAVES: dict[str, Callable[[Path, str, Path], None]] = {
    "write, chmod": _write_then_chmod,
    "sh: cat >, chmod": _shell_redirect_then_chmod,
    "write, touch": _write_then_touch,
    "cp -p": _cp_p,
    "shutil.copy": _shutil_copy,
    "shutil.copy2": _shutil_copy2,
    "temp file renamed": _temp_then_rename,
    "moved in from another folder": _moved_in_from_another_folder,
}


@pytest.mark.slow
@pytest.mark.parametrize("save", list(SAVES.values()), ids=list(SAVES))
def test_every_save_becomes_its_own_version_promptly(led: ledger.Ledger, drafts: Path, tmp_path: Path, running,
                                                      save: Callable[[Path, str, Path], None]) -> None:
    """A change of attributes after the save (chmod, utime, chown) is no write: the draft is
    closed and ready. Each save is made as soon as the one before is recorded, as a writer saving
    every second or two would."""
    watcher, recorder = running
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    texts = [story(1), story(1, " Second save."), story(1, " Third save.")]
    for number, text in enumerate(texts, 1):
        save(drafts / "a.txt", text, scratch)
        wait_for(lambda number=number: version(led, "a") == number, f"save {number} to be recorded", timeout=PROMPT)
    assert [render(led.article("a", version=n)) for n in (1, 2, 3)] == texts
    wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert version(led, "a") == 3
    assert recorder.errors == []


@pytest.mark.slow
@pytest.mark.parametrize("poll", [None, 0.2], ids=["inotify", "polling"])
def test_a_writer_pausing_with_the_draft_open_never_makes_half_a_version(led: ledger.Ledger, drafts: Path, poll: float | None) -> None:
    """The watcher looks for a writer in /proc before it reads a quiet draft: this one (the
    test's own process) still has the file open, so it keeps waiting, however quiet; polling,
    where no close is reported, included."""
    recorder = Recorder()
    with watch(led, drafts, on_result=recorder.result, on_error=recorder.error, open_check=0.5, poll=poll) as watcher:
        looked = 0
        original = watcher._ready

        def counting(now: float) -> tuple[list[str], list[str]]:
            nonlocal looked
            looked += 1
            return original(now)

        watcher._ready = counting  # type: ignore[method-assign]
        with open(drafts / "slow.txt", "w", encoding="utf-8") as out:
            out.write("Slow story\n\nFirst half, which parses on its own.\n")
            out.flush()
            # Quiet for many times `quiet` and `open_check`, counted in the watcher's own looks.
            start = looked
            wait_for(lambda: looked - start >= 60, "the watcher to look at the open draft many times")
            assert version(led, "slow") == 0
            out.write("\nSecond half.\n\nCategories: slow")
        wait_for(lambda: version(led, "slow") == 1, "the whole draft", timeout=PROMPT)
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert text_of(led, "slow") == "Slow story\n\nFirst half, which parses on its own.\n\nSecond half.\n\nCategories: slow"
    assert version(led, "slow") == 1


@pytest.mark.slow
def test_a_fifo_does_not_freeze_the_watcher(led: ledger.Ledger, drafts: Path, running) -> None:
    watcher, recorder = running
    os.mkfifo(drafts / "x.txt")
    (drafts / "good.txt").write_text(story(1))
    wait_for(lambda: version(led, "good") == 1, "the draft after the FIFO")
    wait_for(lambda: recorder.errors, "the FIFO to be reported")
    (drafts / "later.txt").write_text(story(2))
    wait_for(lambda: version(led, "later") == 1, "a later draft")
    assert recorder.errors == [
        (str(drafts / "x.txt"), f"{drafts / 'x.txt'}: a FIFO (named pipe), not a regular file: only regular files are drafts")]
    assert watcher.running


@pytest.mark.slow
def test_sigterm_stops_a_watcher_beside_a_fifo_promptly(store_dir: Path, drafts: Path) -> None:
    os.mkfifo(drafts / "x.txt")
    command = [str(Path(sys.executable).with_name("ledger")), "--store", str(store_dir), "watch", str(drafts)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        (drafts / "good.txt").write_text(story(1))
        wait_for(lambda: run_ledger("show", "good", store=store_dir).returncode == 0, "the draft beside the FIFO")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # Blocked in open() on the FIFO, the watcher took over 10 s (its join timeout) to stop.
            _out, err = process.communicate(timeout=9)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0, err
    assert f"error: {drafts / 'x.txt'}: a FIFO (named pipe), not a regular file".encode() in err
    assert err.endswith(b"stopped\n")


@pytest.mark.slow
def test_the_watcher_does_not_follow_links_unless_asked(store_dir: Path, drafts: Path, secret: Path) -> None:
    (drafts / "original.txt").write_text(story(1))
    os.symlink(secret, drafts / "shadow.txt")
    os.symlink("original.txt", drafts / "alias.txt")
    for follow in (False, True):
        recorder = Recorder()
        with ledger.open(store_dir) as led, watch(led, drafts, on_result=recorder.result, on_error=recorder.error,
                                                   follow_symlinks=follow) as watcher:
            wait_for(lambda follow=follow, recorder=recorder: version(led, "original") == 1 and version(led, "alias") == (1 if follow else 0)
                     and len(recorder.errors) == (1 if follow else 2), "the drafts to be ingested and the links reported")
            wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
            assert version(led, "alias") == (1 if follow else 0)
            assert version(led, "shadow") == 0
        messages = sorted(message for _, message in recorder.errors)
        if follow:
            assert messages == [f"{drafts / 'shadow.txt'}: a symbolic link to {secret}, outside the drafts folder: not followed"]
        else:
            assert [m.split(": ", 1)[1] for m in messages] == [
                "a symbolic link: not followed (--follow-symlinks reads links to drafts in the same folder)"] * 2
    with ledger.open(store_dir) as led:
        assert all("not-for-the-log" not in str(event.data) for event in led.events())


@pytest.mark.slow
def test_a_rewrite_that_keeps_size_and_mtime_is_found_after_a_restart(led: ledger.Ledger, drafts: Path) -> None:
    draft = drafts / "a.txt"
    draft.write_text(story(1, " Version A."))
    with watch(led, drafts) as watcher:
        wait_for(lambda: version(led, "a") == 1 and watcher.pending() == 0, "a v1")
    before = draft.stat()
    draft.write_text(story(1, " Version B."))  # same length
    os.utime(draft, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r: mtime put back
    after = draft.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with watch(led, drafts) as watcher:
        wait_for(lambda: version(led, "a") == 2, "the rewrite made while no watcher ran")
        wait_for(lambda: watcher.pending() == 0, "the watcher to settle")
    assert text_of(led, "a") == story(1, " Version B.")
    # An unchanged draft whose ctime moved (chmod) is read again, and appends nothing.
    os.chmod(draft, 0o600)
    with watch(led, drafts) as watcher:
        wait_for(lambda: watcher.pending() == 0, "the reconcile")
    assert version(led, "a") == 2


@pytest.mark.slow
def test_hostile_drafts_are_reported_and_the_watcher_goes_on(led: ledger.Ledger, drafts: Path) -> None:
    recorder = Recorder()
    with watch(led, drafts, on_result=recorder.result, on_error=recorder.error, max_draft_size=1000) as watcher:
        (drafts / "lol.md").write_text(BILLION_LAUGHS)
        (drafts / "loop.md").write_text("---\ntitle: T\nval: &a [*a]\n---\nBody\n")
        (drafts / "big.txt").write_text("Big\n\n" + "x" * 1000)
        (drafts / "good.txt").write_text(story(1))
        wait_for(lambda: version(led, "good") == 1 and len(recorder.errors) == 3, "the good draft and three errors")
        assert watcher.running
    messages = sorted(message for _, message in recorder.errors)
    assert messages[0] == f"{drafts / 'big.txt'}: the draft is over the size limit of 1,000 bytes (--max-draft-size sets another)"
    assert messages[1].startswith(f"{drafts / 'lol.md'}:4: the YAML alias *a is not allowed")
    assert messages[2].startswith(f"{drafts / 'loop.md'}:3: the YAML alias *a is not allowed")
    assert set(led.store.articles()) == {"good"}


@pytest.mark.slow
def test_a_folder_named_like_a_draft_is_reported_once(led: ledger.Ledger, drafts: Path) -> None:
    recorder = Recorder()
    (drafts / "x.txt").mkdir()
    with watch(led, drafts, on_result=recorder.result, on_error=recorder.error, rescan=0.2) as watcher:
        scans = 0
        original = watcher._scan

        def counting(*, reconcile: bool = False) -> None:
            nonlocal scans
            scans += 1
            original(reconcile=reconcile)

        watcher._scan = counting  # type: ignore[method-assign]
        (drafts / "good.txt").write_text(story(1))
        wait_for(lambda: version(led, "good") == 1, "the good draft")
        wait_for(lambda: scans >= 20, "twenty rescans")
    assert recorder.errors == [(str(drafts / "x.txt"), f"{drafts / 'x.txt'}: a folder, not a regular file: only regular files are drafts")]


@pytest.mark.slow
def test_a_watch_manifest_that_cannot_be_saved_does_not_stop_the_watcher(store_dir: Path, tmp_path: Path) -> None:
    # `watch` in the store folder is a file: the manifest (a cache) cannot be saved there.
    (store_dir / "watch").write_text("x")
    folder = tmp_path / "drafts"
    folder.mkdir()
    process = subprocess.Popen([str(Path(sys.executable).with_name("ledger")), "--store", str(store_dir), "watch", str(folder)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        (folder / "one.txt").write_text("One\n\nThe first draft.\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with ledger.open(store_dir) as led:
                if led.store.article_version("one") == 1:
                    break
            time.sleep(0.1)
        (folder / "two.txt").write_text("Two\n\nThe second draft.\n")
        while time.monotonic() < deadline:
            with ledger.open(store_dir) as led:
                if led.store.article_version("two") == 1:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the watcher did not go on after the manifest failed")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err.count(b"cannot save the watch manifest") == 1 and b"Traceback" not in err, err
