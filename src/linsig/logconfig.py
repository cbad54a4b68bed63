"""Logging options of every ``linsig`` command: ``-v/--verbose``, ``--quiet``, ``--log-file``.

They are accepted before the command (``linsig -v run …``) and after it (``linsig run -v …``), as
users of other command-line tools expect. ``-v`` shows INFO messages, ``-vv`` DEBUG and the
traceback of an error; ``--quiet`` only errors (and, on the commands that draw one, no progress
bar); ``--log-file PATH`` also writes every message at INFO or above (DEBUG with ``-vv``) to PATH.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

FORMAT = "%(levelname)s %(name)s: %(message)s"
_META = "linsig.logging"


def state(ctx: click.Context) -> dict:
    """The logging options given so far anywhere on the command line (shared by nested contexts)."""
    return ctx.meta.setdefault(_META, {"verbose": 0, "quiet": False, "log_file": None})


def verbosity(ctx: click.Context | None) -> int:
    return state(ctx)["verbose"] if ctx is not None else 0


def configure(verbose: int = 0, quiet: bool = False, log_file: str | Path | None = None) -> None:
    """Set the root logger: WARNING by default, INFO with one ``-v``, DEBUG with two, ERROR when
    quiet; ``log_file`` gets INFO (or DEBUG) messages whatever the terminal shows.

    Like :func:`logging.basicConfig`, the terminal handler is added only when the process has no
    handler of its own (a notebook's, a test runner's), which then keeps its level; the handlers
    added here are replaced on the next call instead of piling up.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_linsig", False)]:
        root.removeHandler(handler)
        handler.close()
    level = logging.ERROR if quiet else logging.WARNING - 10 * min(verbose, 2)
    if not root.handlers:
        console = logging.StreamHandler()
        console.setLevel(level)
        console.setFormatter(logging.Formatter(FORMAT))
        console._linsig = True
        root.addHandler(console)
        root.setLevel(level)
    if log_file:
        file_level = min(logging.INFO, level)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(file_level)
        file_handler.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
        file_handler._linsig = True
        root.addHandler(file_handler)
        if root.level > file_level or root.level == logging.NOTSET:
            root.setLevel(file_level)


def _update(key):
    def callback(ctx: click.Context, param: click.Parameter, value):
        s = state(ctx)
        if key == "verbose":
            s["verbose"] += value or 0
            if s["verbose"]:  # given after the command too: warnings as Python prints them
                from linsig.terminal import restore_warning_display

                restore_warning_display()
        elif key == "quiet":
            s["quiet"] = s["quiet"] or bool(value)
        elif value is not None:
            s["log_file"] = value
        configure(s["verbose"], s["quiet"], s["log_file"])
        return value

    return callback


def _chain(existing, extra):
    if existing is None:
        return extra

    def callback(ctx, param, value):
        extra(ctx, param, value)
        return existing(ctx, param, value)

    return callback


def add_logging_options(command: click.Command) -> None:
    """Give ``command`` (and, for a group, every sub-command) the three logging options.

    A command's own ``--quiet`` (no progress bar) keeps its meaning and also quiets the log.
    """
    names = {opt for p in command.params for opt in getattr(p, "opts", [])}
    if "--verbose" not in names and "-v" not in names:
        command.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False, is_eager=True,
                                           callback=_update("verbose"), help="More log output (-vv: debug, and the "
                                           "traceback of an error)."))
    if "--quiet" in names:
        for p in command.params:
            if "--quiet" in getattr(p, "opts", []):
                p.callback = _chain(p.callback, _update("quiet"))
    else:
        command.params.append(click.Option(["--quiet"], is_flag=True, expose_value=False, is_eager=True,
                                           callback=_update("quiet"), help="Only errors in the log."))
    if "--log-file" not in names:
        command.params.append(click.Option(["--log-file"], type=click.Path(dir_okay=False, path_type=Path),
                                           expose_value=False, is_eager=True, callback=_update("log_file"),
                                           help="Also write the log (INFO and above) to this file."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_logging_options(sub)


def error_to_log_file(message: str) -> None:
    """Record a command's error in the ``--log-file`` too (the terminal shows it as ``Error:``)."""
    record = logging.LogRecord("linsig", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_linsig", False) and isinstance(handler, logging.FileHandler):
            handler.handle(record)
