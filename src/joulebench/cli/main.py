"""The ``joulebench`` command. Each subcommand lives in its own module and registers itself here.

Start-up is kept cheap (no engine, numpy or torch import before a command runs), because the tool
itself runs inside the setup stage it measures.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.29 vendors click privately
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _cx  # type: ignore[no-redef]

from joulebench.errors import JoulebenchError

COMMAND_MODULES = ("sources", "measure", "run", "model", "report", "advise", "sweep", "db", "roofline")

app = typer.Typer(
    name="joulebench",
    help="Power and energy of LLM inference engines over their whole lifecycle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def version() -> None:
    """Print joulebench's version."""
    from joulebench import __version__

    print(__version__)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"joulebench.cli.{name}").register(app)


def _fail(message: str, code: int) -> None:
    for line in message.splitlines() or [""]:
        print(f"joulebench: error: {line}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every expected error becomes one line on stderr and an exit code, never a traceback."""
    _register()
    try:
        rc = app(args=argv, prog_name="joulebench", standalone_mode=False)
    except _cx.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "", file=sys.stderr)
        sys.exit(2)
    except _cx.UsageError as exc:
        _fail(exc.format_message().splitlines()[0] if exc.format_message() else str(exc), 2)
    except typer.Abort:
        _fail("interrupted", 130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except JoulebenchError as exc:
        # A message may list several problems, one self-contained line each (e.g. a plan's validation).
        _fail(str(exc) or type(exc).__name__, exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    sys.exit(rc if isinstance(rc, int) else 0)
