"""Option parsers shared by several commands."""

from __future__ import annotations

from contextlib import contextmanager

import click

from linsig.errors import LinsigInputError
from linsig.models import DEFAULT_MODELS, FAMILIES
from linsig.recipes import RECIPES, TUNINGS
from linsig.splits import DEFAULT_FRACTIONS, SPLITTERS
from linsig.training import PRECISIONS
from linsig.validation import BOUNDS, InvalidSetting, check_bound

#: Key of ``ctx.meta`` under which a command says, for Ctrl-C, what is kept and how to resume.
INTERRUPTED_HINT = "linsig.interrupted"


def on_interrupt(hint: str) -> None:
    """What Ctrl-C keeps of the running command and how to go on (printed with exit status 130)."""
    click.get_current_context().meta[INTERRUPTED_HINT] = hint


# Settings fields whose option is not simply --field-name
_OPTION_OF = {"n_folds": "--folds", "max_epochs": "--epochs", "signals": "--signal"}


@contextmanager
def settings_errors_as_options():
    """Name a bad setting by the option that set it (``--epochs``, not ``max_epochs``)."""
    try:
        yield
    except InvalidSetting as exc:
        option = _OPTION_OF.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise LinsigInputError(f"{option}: {exc.problem}") from None


class Bounded(click.ParamType):
    """A number checked against :data:`linsig.validation.BOUNDS` (the one table of numeric
    bounds), so that an option refuses exactly what the Python API and experiment files refuse —
    NaN and infinities included, which ``click.FloatRange`` lets through."""

    def __init__(self, name: str):
        self.bound_name = name
        self.kind = int if BOUNDS[name].integer else float
        self.name = "integer" if self.kind is int else "float"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        try:
            check_bound(self.bound_name, number)
        except InvalidSetting as exc:
            self.fail(exc.problem, param, ctx)
        return number


def csv_list(kind=str):
    def convert(ctx, param, value):
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return tuple(value)
        try:
            return tuple(kind(v.strip()) for v in str(value).split(",") if v.strip())
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}") from exc

    return convert


#: ``--precision`` of every command that trains networks (``linsig run``, ``experiment run``, ``demo``)
precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default=None,
    help="The networks' arithmetic: fp32, bf16 (bfloat16 matrix products, float32 weights: "
         "1.6-1.8x faster steps at 5,000 genes where the hardware has it, 0.01-0.02 lower balanced "
         "accuracy in some comparisons) or auto (bf16 for networks of >= 1,000 genes on CPUs "
         "with AVX-512 BF16/AMX and bf16 GPUs, else fp32) [default: fp32]. The results' "
         "precision column says what each fit used.")


def grid_options(f):
    """The options that define the evaluation grid and training recipe (``run`` and ``demo``)."""
    options = [
        click.option("--models", default=",".join(DEFAULT_MODELS), show_default=True,
                     help="Comma-separated models: " + "; ".join(
                         f"{f.name} ({f.description}{'' if f.paper else ', strong recipe only'})"
                         for f in FAMILIES.values()) + ". logreg and svm are the linear baseline."),
        click.option("--recipe", type=click.Choice(list(RECIPES)), default="strong", show_default=True,
                     help="strong: every model trained to what its class can reach (converged linear models, "
                          "AdamW networks, hyperparameters by nested CV per signal mode); paper: the paper's "
                          "exact training, to reproduce its figures."),
        click.option("--folds", "n_folds", type=Bounded("n_folds"), default=5, show_default=True,
                     help="Outer cross-validation folds."),
        click.option("--seeds", default="0,1,2", show_default=True, callback=csv_list(int),
                     help="Comma-separated seeds (fold assignment, subsampling, initialisation)."),
        click.option("--fractions", default=",".join(map(str, DEFAULT_FRACTIONS)), show_default=True,
                     callback=csv_list(float), help="Training-set fractions for the learning curve."),
        click.option("--split", type=click.Choice(list(SPLITTERS)), default="study", show_default=True,
                     help="Group-wise (study/donor) or sample-wise stratified folds."),
        click.option("--signal", "signals", default="none", show_default=True, callback=csv_list(str),
                     help="Signal modes: none, removed (train/val each corrected with their own labels), "
                          "removed_full (whole dataset corrected before splitting), study."),
        click.option("--tuning", type=click.Choice(list(TUNINGS)), default="auto",
                     show_default=True,
                     help="Hyperparameter search by nested group-wise CV. auto: the recipe's default (strong: "
                          "full; paper: paper). strong recipe: full (each model's search space) or fast (a "
                          "smaller one); paper recipe: paper (25 random lr/weight-decay trials in [1e-6, 10]) "
                          "or fast (3×2 grid); off: model defaults."),
        click.option("--epochs", "max_epochs", type=Bounded("max_epochs"), default=None,
                     help="Maximum training epochs of the networks [default: strong 100 (cosine schedule, "
                          "length chosen by CV), paper 50]."),
        click.option("--batch-size", type=Bounded("batch_size"), default=None,
                     help="Mini-batch size [default: strong ceil(n/8) within 8–128, paper 16]."),
        click.option("--patience", type=Bounded("patience"), default=None,
                     help="Epochs without improvement before a run stops [default: strong 20 (inner tuning "
                          "runs, after the warm-up), paper 7 (early stopping)]."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="Where to train: auto picks a CUDA GPU when torch sees one."),
        precision_option,
        click.option("--lr", type=Bounded("lr"), default=None, help="Learning rate when --tuning off (default: per model)."),
        click.option("--weight-decay", type=Bounded("weight_decay"), default=None,
                     help="Weight decay of the networks [default: strong 1.0 (AdamW, decoupled), paper 0 "
                          "(Adam) when --tuning off]."),
        click.option("--threads", type=Bounded("threads"), default=1, show_default=True,
                     help="CPU threads per training (results are bit-for-bit repeatable for a given count)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


#: The grid options that set the folds alone (``locate``: the same folds as ``run``).
FOLD_OPTIONS = ("--folds", "--seeds", "--split", "--threads")


def fold_options(f):
    """``--folds``, ``--seeds``, ``--split`` and ``--threads`` exactly as :func:`grid_options` defines them."""
    # read off grid_options itself, so the two commands cannot drift apart
    for option in reversed([o for o in _grid_option_list() if set(o.opts) & set(FOLD_OPTIONS)]):
        f = _apply(option, f)
    return f


def _grid_option_list() -> list:
    """The click.Option objects of :func:`grid_options`, read off a throwaway command."""
    command = click.command()(grid_options(lambda **kwargs: None))
    return command.params


def _apply(option: click.Option, f):
    """Attach an existing option (a copy: click options are per command) to ``f``."""
    import copy

    if not hasattr(f, "__click_params__"):
        f.__click_params__ = []
    f.__click_params__.append(copy.copy(option))
    return f


def data_options(f):
    """The data options of ``linsig run`` that ``locate`` shares: where the data are, which task,
    and the preprocessing (``--data --metadata --orientation --na-values --label --group --classes
    --n-top-genes --normalize --missing``)."""
    from linsig.data.missing import MISSING_MODES
    from linsig.data.normalize import NORMALIZATIONS

    from pathlib import Path

    options = [
        click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Expression data: .h5ad (samples × genes), CSV/TSV/Parquet with --metadata, or a "
                          "bundled example: example:ALL, example:bladder, example:ovarian."),
        click.option("--metadata", type=click.Path(dir_okay=False, path_type=Path),
                     help="Sample metadata table (first column: sample id) for CSV/TSV/Parquet data."),
        click.option("--orientation", type=click.Choice(["auto", "samples-by-genes", "genes-by-samples"]),
                     default="auto", show_default=True, help="Layout of a CSV/TSV/Parquet expression table."),
        click.option("--na-values", "na_values", metavar="VALUES", callback=csv_list(str),
                     help="Metadata cells that mean missing, comma-separated (e.g. NA for tables written by R)."),
        click.option("--label", required=True, help="Metadata column with the class labels."),
        click.option("--group", help="Metadata column with the study/donor of each sample (default: each sample "
                                     "its own group)."),
        click.option("--classes", callback=csv_list(str),
                     help="Keep only these classes (e.g. a binary pair: Blood,Brain)."),
        click.option("--n-top-genes", type=click.IntRange(0), default=5000, show_default=True,
                     help="Keep the N most variable genes (0: all). Skipped for data preprocessed by linsig data."),
        click.option("--normalize", type=click.Choice(NORMALIZATIONS), default=None,
                     help="Per-gene normalisation before gene selection, label-free: minmax (default), "
                          "study-zscore (within each --group), none."),
        click.option("--missing", type=click.Choice(MISSING_MODES), default="error", show_default=True,
                     help="Missing (NaN) expression values: error, impute (training-fold gene means, inside "
                          "every fold) or drop-genes."),
    ]
    for option in reversed(options):
        f = option(f)
    return f
