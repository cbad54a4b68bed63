"""Declarative, resumable experiments: files → hashed units → local processes or Dask → one table.

* :mod:`.spec` — parse and validate TOML/YAML experiment files (and the shipped ``presets/``);
* :mod:`.units` — expand an experiment into hashed units; compute one unit (worker side);
* :mod:`.store` — per-unit result files, claims (lock files), the combined ``results.parquet``;
* :mod:`linsig.executors` — in-process, local process pool, Dask (shared with `linsig run`);
* :mod:`.driver` — the run loop with its progress bar;
* :mod:`.pretraining` — the S4 experiment;
* :mod:`.status` — ``linsig experiment status``.
"""

from linsig.experiment.spec import Experiment, load_experiment, preset_names

__all__ = ["Experiment", "load_experiment", "preset_names"]
