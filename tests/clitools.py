"""Helpers of the command-line tests: run a command in-process and read its one error line."""

from pathlib import Path

import numpy as np
import pandas as pd
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


def write_tables(folder: Path, ids: list[str], study_prefix: str) -> tuple[Path, Path]:
    """expr.csv (samples × 20 genes, seed 0) and meta.csv (label A/B alternating, 8 studies)."""
    rng = np.random.default_rng(0)
    expr = pd.DataFrame(rng.normal(size=(len(ids), 20)), index=pd.Index(ids, name="sample"),
                        columns=[f"g{j}" for j in range(20)])
    meta = pd.DataFrame({"label": ["A", "B"] * (len(ids) // 2),
                         "study": [f"{study_prefix}{i % 8}" for i in range(len(ids))]},
                        index=pd.Index(ids, name="sample"))
    expr.to_csv(folder / "expr.csv")
    meta.to_csv(folder / "meta.csv")
    return folder / "expr.csv", folder / "meta.csv"
