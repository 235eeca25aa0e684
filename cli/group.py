"""The `ledger` command group, its shared options, and how errors become exit codes. The command
modules attach their commands to it; `ledger_cli.main` assembles them.

Exit codes (also in docs/cli.md):

    0  success
    1  other ledger error
    2  usage error (unknown command or option, bad option value)
    3  invalid input: malformed JSON, unknown event type, bad field or id, bad time, bad draft
    4  article or version not found
    5  conflict: version conflict, duplicate event ids, event not allowed in the article's state
    6  store error: no store at that path, unsupported format, I/O failure
    7  store locked by another writer past the timeout
    8  corrupt store: a record fails its checksum, the hash chain or the order of positions;
       the log no longer extends an anchored head (verify --head)
    9  nothing to do: a change that changes nothing, or an input with nothing in it (a re-send of
       what the log already holds succeeds: exit 0, "already recorded")
   10  the store's server cannot be used: unreachable, login refused, no such database, or
       the connection was lost (PostgreSQL stores)
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (broken pipe, e.g. `ledger log | head -1`)
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import sys
import traceback
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

import ledger

from .output import Seconds, count, notice

EXIT_USAGE = 2
EXIT_STORE = ledger.StoreError.exit_code
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _error(message: str) -> None:
    notice("[bold red]error:[/]", message)


def _lower_first(text: str) -> str:
    # Click's sentences start upper case; ours continue the line after "error:".
    return text[0].lower() + text[1:] if text[:2].istitle() else text


def _debug(ctx: click.Context) -> bool:
    # Read when an error is caught: the group's callback sets it once the options are parsed.
    return bool(ctx.obj and ctx.obj.get("debug"))


# The options of ledger itself, as a usage line writes them.
_GLOBAL_OPTIONS = {"--store": "--store DIR", "--lock-timeout": "--lock-timeout SECONDS", "--max-event-bytes": "--max-event-bytes N", "--debug": "--debug"}


def _a_command_takes(group: click.Group, option: str) -> bool:
    """Whether any command of `group` takes `option`."""
    return any(option in param.opts for command in group.commands.values() for param in command.params)


class ClickProblem(click.ClickException):
    """An error click raises, shown as every other error is: one line `error: ...` on stderr,
    with click's exit code (1; `UsageProblem`: 2)."""

    @classmethod
    def of(cls, exc: click.ClickException) -> click.ClickException:
        """`exc` in ledger's words: the command, then click's message on one line (its "Did you
        mean" suggestion included), starting lower case; a bad value is named by its option."""
        if isinstance(exc, (ClickProblem, NoArgsIsHelpError)):
            return exc  # NoArgsIsHelpError: `ledger` alone prints its help, as asked
        if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) and exc.param is not None:
            # click names the option in quotes, "Invalid value for '--version': ..."
            hint = exc.param.get_error_hint(exc.ctx) if exc.ctx is not None else exc.param.human_readable_name
            message = f"{hint.replace(chr(39), '')}: {_lower_first(exc.message)}"
        else:
            message = _lower_first(exc.format_message())
        message = re.sub(r"\.\s+Did you mean ", "; did you mean ", message).rstrip(".")
        if isinstance(exc, click.NoSuchOption) and exc.ctx is not None and exc.ctx.parent is not None and exc.option_name in _GLOBAL_OPTIONS:
            # The store and the other options of ledger itself come before the command.
            name = exc.ctx.info_name
            message = f"{exc.option_name} is an option of ledger itself: put it before the command (ledger {_GLOBAL_OPTIONS[exc.option_name]} {name} ...)"
        elif (
            isinstance(exc, click.NoSuchOption) and exc.ctx is not None and exc.ctx.parent is None
            and isinstance(exc.ctx.command, click.Group) and _a_command_takes(exc.ctx.command, exc.option_name)
        ):
            # The reverse: an option of the commands given before the command.
            message = f"{exc.option_name} is an option of the command, not of ledger itself: put it after the command (ledger COMMAND {exc.option_name} ...)"
        elif isinstance(exc, click.NoSuchOption) and exc.option_name == "--version" and exc.ctx is not None and _takes_a_version(exc.ctx.command):
            # `blame --version N` is also taken; elsewhere a version is an argument.
            usage = " ".join(exc.ctx.command.collect_usage_pieces(exc.ctx)[1:])
            message = f"no such option '--version': a version is an argument here ({exc.ctx.command_path} {usage})"
        if not isinstance(exc, click.UsageError):
            return cls(message)
        if exc.ctx is not None:
            message = f"{exc.ctx.command_path}: {message}"
        return UsageProblem(message)

    def show(self, file: Any = None) -> None:
        """Print the one line on stderr."""
        _error(self.message)


def _takes_a_version(command: click.Command) -> bool:
    """Whether `command` takes a version as an argument (`show`, `diff`, `restore`)."""
    return any(isinstance(param, click.Argument) and "version" in (param.name or "") for param in command.params)


class UsageProblem(ClickProblem):
    """A usage error (unknown command or option, bad option value): exit code 2."""

    exit_code = EXIT_USAGE


# Where each command is listed in `ledger --help`, in this order; a command missing here fails
# tests/test_cli_conventions.py, so a new command cannot land unlisted.
COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "Write": ("init", "append", "import", "restore", "withdraw"),
    "Read": ("show", "history", "diff", "articles", "categories", "updated", "timeline", "log", "stats", "schema", "blame", "search", "serve"),
    "Drafts": ("ingest", "watch"),
    "Maintenance": ("verify", "head", "replay", "export", "completion"),
}


def _not_utf8(value: str) -> str | None:
    """What is wrong with `value` as text, or None: an argument's bytes that are not UTF-8
    reach Python as lone surrogates (one per byte), which no store can hold or look up."""
    for index, char in enumerate(value):
        if "\ud800" <= char <= "\udfff":
            # Python keeps a byte b that is not UTF-8 as the character U+DC00 + b.
            byte = f"byte 0x{ord(char) - 0xDC00:02x}" if "\udc80" <= char <= "\udcff" else "a lone surrogate"
            return f"not UTF-8 text ({byte} at character {index + 1})"
    return None


class LedgerCommand(click.Command):
    """A command whose text arguments and options (an article, a category, a phrase, an actor)
    must be UTF-8 text: one that is not is a usage error naming it, not a traceback from deep
    inside the store. Paths are another type and may be any bytes the system allows."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse as click does, then check every plain text value."""
        rest = super().parse_args(ctx, args)
        for param in self.get_params(ctx):
            if not isinstance(param.type, click.types.StringParamType) or param.name is None:
                continue
            given = ctx.params.get(param.name)
            for value in given if isinstance(given, tuple) else (given,):
                problem = _not_utf8(value) if isinstance(value, str) else None
                if problem is not None:
                    raise click.BadParameter(problem, ctx=ctx, param=param)
        return rest


class LedgerGroup(click.Group):
    """Runs commands so that every error (a `LedgerError`, a usage error) is one line on stderr
    and its documented exit code; with `--debug`, a traceback and the same exit code. Its help
    lists the commands by `COMMAND_GROUPS`, each with its whole first sentence."""

    command_class = LedgerCommand

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """One section per group of `COMMAND_GROUPS`, commands in its order, summaries uncut."""
        # Names padded to the longest so that every section's summaries start in one column.
        width = max(map(len, self.list_commands(ctx)), default=0)
        for title, names in COMMAND_GROUPS.items():
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name.ljust(width), command.get_short_help_str(limit=1000)))
            if rows:
                with formatter.section(f"{title} commands"):
                    formatter.write_dl(rows)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        """Parse the group's own options; a usage error there is one line too."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            raise ClickProblem.of(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn what it raises into one line and its exit code (see the class)."""
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise ClickProblem.of(exc) from None
        except ledger.LedgerError as exc:
            if _debug(ctx):
                traceback.print_exc()
            else:
                _error(str(exc))
            ctx.exit(exc.exit_code)
        except sqlite3.Error as exc:
            # The library maps the caches' errors it expects; this is the last line of defence,
            # so that a damaged or unwritable cache is never a traceback.
            if _debug(ctx):
                traceback.print_exc()
            else:
                _error(f"the store's index or views failed ({exc}); they are caches of the log, "
                       "so deleting index.sqlite and views.sqlite in the store folder is safe")
            ctx.exit(EXIT_STORE)
        except KeyboardInterrupt:
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (`ledger log | head`): stop quietly, as `cat` would, and keep
            # Python from complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # `--debug` lets the library's debug notes through: they must not read as warnings.
        label = "[yellow]warning:[/]" if record.levelno >= logging.WARNING else "[dim]debug:[/]" if record.levelno < logging.INFO else "note:"
        notice(label, record.getMessage())


@click.group(name="ledger", cls=LedgerGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--store",
    "store",
    metavar="DIR|URL",
    envvar="LEDGER_STORE",
    default="ledger-data",
    show_default=True,
    help="The store folder, or a PostgreSQL URL postgresql://USER:PASSWORD@HOST/DB (else $LEDGER_STORE, else ./ledger-data).",
)
@click.option(
    "--lock-timeout",
    type=Seconds(0, forever=True),
    envvar="LEDGER_LOCK_TIMEOUT",
    default=10.0,
    show_default=True,
    help="Seconds to wait for another writer's lock before failing with exit code 7 (inf: wait for ever; else $LEDGER_LOCK_TIMEOUT).",
)
@click.option(
    "--max-event-bytes",
    type=count(1),
    envvar="LEDGER_MAX_EVENT_BYTES",
    default=ledger.DEFAULT_MAX_EVENT_BYTES,
    show_default=True,
    help="Refuse an event whose data, as JSON, is larger than this (exit code 3; else $LEDGER_MAX_EVENT_BYTES).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="article-ledger", prog_name="ledger")
@click.pass_context
def main(ctx: click.Context, store: str, lock_timeout: float, max_event_bytes: int, debug: bool) -> None:
    """Versions articles by event sourcing: every edit, update block and category change is an
    immutable event in one log, and every view is rebuilt from it.

    \b
    Example:
      ledger init
      ledger ingest examples/drafts
      ledger history night-market-returns
    """
    ctx.ensure_object(dict)
    ctx.obj["store"] = store
    ctx.obj["debug"] = debug
    ctx.obj["lock_timeout"] = lock_timeout
    ctx.obj["max_event_bytes"] = max_event_bytes
    # Warnings go to stderr for the length of the command only: a program that runs commands
    # in-process (tests, scripts) gets its logging back as it was.
    logger = logging.getLogger("ledger")
    handler = _StderrHandler()
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False

    def restore_logging() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

    ctx.call_on_close(restore_logging)


def open_ledger(ctx: click.Context, **options: Any) -> ledger.Ledger:
    """Open the store named by `--store` (the ledger is closed when the command ends)."""
    options.setdefault("lock_timeout", ctx.obj["lock_timeout"])
    options.setdefault("max_event_bytes", ctx.obj["max_event_bytes"])
    led = ledger.open(ctx.obj["store"], **options)
    ctx.call_on_close(led.close)
    return led

