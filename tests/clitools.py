"""Helpers of the command-line tests: run a command in-process and read its one error line."""

from click.testing import CliRunner

from linsig.cli import main


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def one_error_line(res) -> str:
    """The CLI failed with exactly one ``Error:`` line and no traceback; return that line."""
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    return errors[0]
