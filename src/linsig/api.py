"""linsig from Python: :func:`benchmark`, :func:`report` and :func:`export_csv`, for notebooks.

The functions take the command line's option names (``--folds`` is ``folds=``, ``--signal`` is
``signal=``, ``--n-top-genes`` is ``n_top_genes=``) and do what ``linsig run`` and
``linsig report`` do, returning Python objects instead of printing::

    import linsig

    df = linsig.benchmark("example:ALL", label="sex", models=["logreg", "mlp3"],
                          folds=3, seeds=[0], signal=["none", "removed"], tuning="off", epochs=20)
    df.groupby(["signal", "model"])["balanced_accuracy"].mean()

    linsig.benchmark(adata, label="tissue", group="donor", out="runs/gtex")   # also writes the run
    v = linsig.report("runs/gtex")          # report.html beside it; v.answer_a, v.answer_b, v.table
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path


from linsig.splits import DEFAULT_FRACTIONS

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("logreg", "svm", "mlp3", "mlp5")


def _as_tuple(value, kind=str) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(kind(v.strip()) for v in value.split(",") if v.strip())
    if isinstance(value, (int, float)):
        return (kind(value),)
    return tuple(kind(v) for v in value)


def _dataset(data, metadata, orientation, n_top_genes, normalize, group, missing, na_values, layer, name):
    """An AnnData ready for tasks, from a path, ``example:NAME`` or an AnnData (as ``linsig run``)."""
    import anndata as ad

    from linsig.data.normalize import check_method
    from linsig.runner import normalize_group, prepare_dataset

    zscore_group = normalize_group(group, None) if normalize == "study-zscore" else None
    check_method(normalize, zscore_group)
    if not isinstance(data, ad.AnnData):
        return prepare_dataset(data, metadata, orientation, n_top_genes=n_top_genes, normalize=normalize,
                               group=zscore_group, missing=missing, na_values=na_values, layer=layer)
    from linsig.data.io import _with_na_values
    from linsig.data.layers import select_layer
    from linsig.runner import preprocessed

    source = f"AnnData {name!r}"
    adata = select_layer(data, layer, source) if layer else data.copy()
    info = dict(adata.uns.get("linsig", {}))
    info.setdefault("dataset", name)
    info.setdefault("source", source)
    adata.uns["linsig"] = info
    adata = _with_na_values(adata, na_values, source)
    return preprocessed(adata, normalize, n_top_genes, zscore_group, missing)  # as for a file


def benchmark(
    data,
    label: str | None = None,
    group: str | None = None,
    models: Sequence[str] | str = DEFAULT_MODELS,
    folds: int = 5,
    seeds: Sequence[int] | int = (0, 1, 2),
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    signal: Sequence[str] | str = ("none",),
    recipe: str = "strong",
    out: str | Path | None = None,
    *,
    metadata: str | Path | None = None,
    orientation: str = "auto",
    layer: str | None = None,
    na_values: Sequence[str] | str | None = None,
    classes: Sequence[str] | None = None,
    min_groups: int | None = None,
    pairwise_top: int | None = None,
    preset: str | None = None,
    n_top_genes: int = 5000,
    normalize: str = "minmax",
    missing: str = "error",
    split: str = "study",
    tuning: str = "auto",
    epochs: int | None = None,
    batch_size: int | None = None,
    patience: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    threads: int = 1,
    permutations: int = 0,
    jobs: int = 1,
    progress: bool = False,
    name: str = "data",
    dry_run: bool = False,
):
    """Cross-validate linear and non-linear models on one dataset: ``linsig run`` as a function.

    ``data`` is a path (``.h5ad``, or a CSV/TSV/Parquet expression table with ``metadata``), a
    bundled example (``"example:ALL"``) or an :class:`anndata.AnnData` (dense or sparse ``X``;
    ``name`` names its dataset). Every other argument is the ``linsig run`` option of the same
    name (``folds`` = ``--folds``, ``signal`` = ``--signal``, ``epochs`` = ``--epochs``,
    ``n_top_genes`` = ``--n-top-genes``, ...) with the same default; lists may be given as lists or
    comma-separated strings. ``out``: also write ``results.parquet`` and ``summary.json`` there
    (what :func:`report` reads). ``progress``: show the progress bar.

    Returns the results table (one row per task, model, seed, fold, signal mode and training
    size; columns in docs/conventions.md). ``dry_run``: train and write nothing; return the
    :class:`linsig.estimate.Estimate` of the run (``.total`` seconds, ``.wall(jobs)``,
    ``.by_model()``, ``.lines(jobs)``: what ``linsig run --dry-run`` prints). Raises :class:`~linsig.errors.LinsigInputError` on bad
    input, naming the option, file or column at fault.
    """
    from linsig.cli.options import settings_errors_as_options
    from linsig.evaluation import Settings, check_task, evaluate
    from linsig.models import parse_models
    from linsig.outputs import ensure_output_dir
    from linsig.permutation import check_permutations, evaluate_permutations, with_permutations
    from linsig.results import write_run
    from linsig.run_guard import guard_outputs
    from linsig.runner import build_tasks

    with settings_errors_as_options():  # a bad value is named by its option, as on the command line
        settings = Settings(models=tuple(parse_models(list(_as_tuple(models)))), seeds=_as_tuple(seeds, int),
                            folds=folds, fractions=_as_tuple(fractions, float), split=split,
                            signal=_as_tuple(signal), recipe=recipe, tuning=tuning, epochs=epochs,
                            batch_size=batch_size, patience=patience, device=device, lr=lr,
                            weight_decay=weight_decay, threads=threads, precision=precision)
    check_permutations(permutations, settings.signals)
    na_values = list(_as_tuple(na_values)) or None
    config = {"data": str(data) if isinstance(data, (str, Path)) else f"AnnData {name!r}", "layer": layer,
              "label": label, "group": group, "preset": preset, "normalize": normalize, "missing": missing,
              "na_values": list(na_values or ()), **settings.to_dict(), "permutations": permutations}
    if out is not None and not dry_run:
        inputs = [data, metadata] if isinstance(data, (str, Path)) else [metadata]
        guard_outputs(out, "run", inputs, config)  # the command line's one check of output folders
        ensure_output_dir(Path(out))
    adata = _dataset(data, metadata, orientation, n_top_genes, normalize, group, missing, na_values, layer, name)
    tasks = build_tasks(adata, label, group, list(_as_tuple(classes)) or None, min_groups, pairwise_top, preset)
    for task in tasks:
        check_task(task, settings)
    if settings.splitter.grouped and any(task.group_key is None for task in tasks):
        log.warning("no group: every sample is its own group and the 'study'-wise folds are sample-wise; "
                    "give group=COLUMN (study, donor, batch) unless the samples are independent")
    if dry_run:
        from linsig.estimate import estimate
        from linsig.permutation import planned_work

        return estimate(planned_work(tasks, settings, permutations))
    results = evaluate(tasks, settings, progress=progress, jobs=jobs)
    if permutations:
        results = with_permutations(results, evaluate_permutations(tasks, settings, permutations,
                                                                   progress=progress, jobs=jobs))
    if out is not None:
        config["preprocessing"] = adata.uns.get("linsig", {}).get("preprocessing")
        write_run(out, results, [t.summary() for t in tasks], config)
    return results


def report(run_dir: str | Path, out: str | Path | None = None, rope: float = 0.01,
           metric: str = "balanced_accuracy", jobs: int = 1, csv: bool = False):
    """``linsig report`` as a function (:func:`linsig.report.report_run`): write ``report.html``
    (default ``RUN_DIR/report.html``) and ``verdict.parquet``; with ``csv=True`` also the tidy CSV
    files of :func:`export_csv`. Returns the :class:`linsig.report.Verdict` (``v.path``: the page)."""
    from linsig.report import report_run

    return report_run(run_dir, out, rope=rope, metric=metric, jobs=jobs, csv=csv)


def export_csv(run_dir: str | Path, out_dir: str | Path | None = None, verdict=None) -> list[Path]:
    """The run's tables as tidy CSV for R and spreadsheets (:func:`linsig.results.export_csv`)."""
    from linsig.results import export_csv as export

    return export(run_dir, out_dir, verdict)


__all__ = ["benchmark", "export_csv", "report"]
