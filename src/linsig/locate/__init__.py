"""``linsig locate``: which genes carry the signal left after linear removal, in what form, and
whether it adds to the linear signal. See :mod:`linsig.locate.core` and docs/locate.md."""

from linsig.locate.core import LocateConfig, LocateResult, beyond_linear, binary_tasks, gene_tests, locate
from linsig.locate.output import write_outputs

__all__ = ["LocateConfig", "LocateResult", "beyond_linear", "binary_tasks", "gene_tests", "locate", "write_outputs"]


def locate_demo_task(out_dir, seeds=(0,), progress: bool = True):
    """``linsig demo``'s located genes: ALL B- vs T-lineage (250 most variable probes, as the demo's
    benchmark), written to ``OUT/locate/``; returns the path of its locate.json."""
    from pathlib import Path

    from linsig.evaluation import Settings
    from linsig.runner import prepare_dataset
    from linsig.tasks import make_task

    task = make_task(prepare_dataset("example:ALL", n_top_genes=250), "lineage")
    settings = Settings(models=("gbdt",), seeds=tuple(seeds), n_folds=5, fractions=(1.0,), signals=("removed",))
    result = locate(task, settings, LocateConfig(), progress=progress)
    return write_outputs(Path(out_dir) / "locate", [result], {"data": "example:ALL", "label": "lineage",
                                                              "n_top_genes": 250, "seeds": list(seeds), "folds": 5})
