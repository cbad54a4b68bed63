"""``linsig data``: build the paper's datasets from their public sources.

Sub-commands live in ``linsig.cli.data_*`` modules, each exposing a ``COMMANDS`` list.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

import linsig.cli as _cli_pkg


@click.group("data")
def data() -> None:
    """Download and build datasets (GTEx v8, Recount3, sex labels)."""


for _info in sorted(pkgutil.iter_modules(_cli_pkg.__path__), key=lambda m: m.name):
    if _info.name.startswith("data_"):
        for _command in importlib.import_module(f"linsig.cli.{_info.name}").COMMANDS:
            data.add_command(_command)

COMMAND = data
