"""``linsig simulate``: the paper's simulated datasets as .h5ad."""

from __future__ import annotations

from pathlib import Path

import click

from linsig.data.simulate import KINDS, InvalidSimulation, simulate
from linsig.errors import LinsigInputError

_OPTIONS = {"n_samples": "--samples", "n_features": "--features", "n_groups": "--groups", "shift": "--shift",
            "class_balance": "--balance", "seed": "--seed"}


@click.command("simulate")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--samples", type=click.IntRange(2), default=1000, show_default=True, help="Number of samples.")
@click.option("--features", type=click.IntRange(1), default=5000, show_default=True, help="Number of features.")
@click.option("--groups", type=click.IntRange(1), default=None,
              help="Number of studies to spread samples over (default: each sample its own study).")
@click.option("--shift", type=float, default=6.0, show_default=True, help="Mean shift of the signal features.")
@click.option("--balance", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Fraction of samples in class 1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--signal-genes", "n_signal", type=click.IntRange(1), default=10, show_default=True,
              help="variance/interaction kinds: number of planted features (interaction: pairs, so even).")
@click.option("--effect", type=float, default=None,
              help="variance: class-1 standard deviation factor [2]; interaction: fraction of samples whose pair "
                   "product has their class's sign [0.9].")
@click.option("--weak-shift", type=float, default=0.3, show_default=True,
              help="+linear kinds: mean shift of the weak linear features beside the non-linear ones.")
def simulate_command(kind, out, samples, features, groups, shift, balance, seed, n_signal, effect, weak_shift):
    """Write the KIND simulation to OUT.h5ad.

    The paper's: mixed: half the features linear (class 1 shifted by +6), half non-linear (class 1
    at ±6 with equal probability); linear: all features linear; noise: N(0, 1) regardless of class.
    With known non-linear truth, for linsig locate: variance: the first --signal-genes features
    have a wider spread in class 1, same mean; interaction: they form pairs whose product's sign
    is the class's, each feature the same in both classes; variance+linear, interaction+linear:
    plus as many weak linear features. Labels are in obs['label'], studies in obs['group'],
    each feature's role in var['signal'].
    """
    if out.suffix.lower() != ".h5ad":  # any other name would later be read as a table
        raise LinsigInputError(f"{out}: simulate writes an .h5ad file; give OUT a name ending in .h5ad")
    try:
        adata = simulate(kind, samples, features, groups, shift, balance, seed, n_signal=n_signal, effect=effect,
                         weak_shift=weak_shift)
    except InvalidSimulation as exc:
        raise LinsigInputError(f"{_OPTIONS.get(exc.field, exc.field)}: {exc.problem}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    adata.write_h5ad(tmp)
    tmp.replace(out)
    click.echo(f"wrote {out} ({samples} samples × {features} features, {kind})")


COMMAND = simulate_command
