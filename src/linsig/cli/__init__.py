"""The ``linsig`` command line.

Each sub-module of this package owns one command (or command group) and exposes it as
``COMMAND``; the main group collects them, so that commands can be written and tested apart.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback

import click

from linsig import __version__
from linsig.errors import DownloadError, LinsigInputError

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
        except Exception as exc:
            if ctx.params.get("verbose", 0) >= 2:
                traceback.print_exc(file=sys.stderr)
            if isinstance(exc, (LinsigInputError, DownloadError, OSError)):
                message = str(exc)
            else:
                message = f"{type(exc).__name__}: {exc} (run with -vv for the traceback)"
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            raise click.ClickException("; ".join(lines) or type(exc).__name__) from exc


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="linsig")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """linsig: is there non-linear signal in your expression data, and does a neural
    network beat a linear baseline on it?"""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a command still being written: leave it out
        if exc.name != f"{__name__}.{_name}":
            raise
        continue
    main.add_command(_module.COMMAND)
