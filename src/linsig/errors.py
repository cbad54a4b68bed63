"""Exceptions raised by linsig.

Every error about user input derives from :class:`LinsigInputError` (a ``ValueError``) so that
callers and the CLI can tell bad data apart from bugs, and so that messages always name the file,
column or sample at fault.
"""


class LinsigInputError(ValueError):
    """Bad user input: the message names the file, column or sample at fault."""


class OutputError(LinsigInputError, OSError):
    """An output cannot be written (a read-only or full folder, a folder in the file's place):
    the message names the file the user asked for, not the temporary file it was staged in."""


class LinsigWarning(UserWarning):
    """Something the user should know about their data or run, said in linsig's words (the
    command line shows it as one ``warning:`` line)."""


class DownloadError(RuntimeError):
    """A remote file could not be fetched or failed verification."""


class RunInterrupted(RuntimeError):
    """A run stopped by something outside it (a lost cluster); the message says what was kept
    and how to resume."""
