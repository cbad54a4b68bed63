"""The ``linsig`` command line.

Each sub-module of this package owns one command (or command group) and exposes it as
``COMMAND``; the main group collects them, so that commands can be written and tested apart.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from linsig import __version__
from linsig.errors import DownloadError, LinsigInputError, RunInterrupted
from linsig.cli.options import INTERRUPTED_HINT
from linsig.logconfig import add_logging_options, configure, error_to_log_file, state, verbosity
from linsig.terminal import install_warning_display, safe_text

# Order is the order shown by ``linsig --help``.
_COMMAND_MODULES = ("demo", "run", "locate", "simulate", "data", "experiment", "plot", "report")


class _Main(click.Group):
    """Every error reaches the user as one ``Error:`` line and exit status 1.

    Errors about input, downloads and the file system carry their own message (naming the file,
    column or sample at fault); anything else is named by its type as well. The traceback is
    printed only with ``-vv``: a user needs the one line, a bug report the traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            # Ctrl-C is not a failure of the run's units (exit 1): 128 + SIGINT, as shells report
            # it, and what is kept and how to go on, which the command knows (ctx.meta).
            hint = ctx.meta.get(INTERRUPTED_HINT, "nothing was written")
            click.echo(f"\ninterrupted: {hint}", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as exc:
            if verbosity(ctx) >= 2:  # -vv before or after the command
                traceback.print_exc(file=sys.stderr)
            if isinstance(exc, (LinsigInputError, DownloadError, OSError, RunInterrupted)):
                message = str(exc)
            else:
                message = f"{type(exc).__name__}: {exc} (run with -vv for the traceback)"
            # messages quote file names, columns and stored errors: shown, never obeyed
            lines = [safe_text(line).strip() for line in message.splitlines() if line.strip()]
            error_to_log_file("; ".join(lines) or type(exc).__name__)
            raise click.ClickException("; ".join(lines) or type(exc).__name__) from exc


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linsig")
def main() -> None:
    """linsig: is there non-linear signal in your expression data, and does a neural
    network beat a linear baseline on it?"""
    ctx = click.get_current_context()
    s = state(ctx)
    configure(s["verbose"], s["quiet"], s["log_file"])  # also when no logging option was given
    if not s["verbose"]:  # -v (here or after the command): warnings as Python prints them, with their source
        install_warning_display()


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a command still being written: leave it out
        if exc.name != f"{__name__}.{_name}":
            raise
        continue
    main.add_command(_module.COMMAND)

# -v/--verbose, --quiet and --log-file on the main command and on every command (linsig.logconfig)
add_logging_options(main)
