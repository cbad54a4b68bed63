"""Stored values ("golden" files): recorded on one machine, checked on any x86-64 CPU.

What a stored value promises, and so what the tests compare:

* **bit for bit on the machine that recorded it** (same CPU model, same torch and numpy builds,
  same kernel-selection variables): the fingerprint of that machine is stored beside the values,
  and where it matches the comparison is exact;
* **to float32 precision on any other x86-64 CPU**: MKL, oneDNN and ATen pick their instruction
  paths per CPU (AVX-512, AVX2, AMX, …) and sum in another order, so float32 results differ in the
  last bits (-0.750590980052948 against -0.7505910992622375 was measured between an AMD EPYC and
  an Intel Xeon). A few epochs of training amplify that to ~1e-6 relative (measured here with
  ``MKL_CBWR``/``ATEN_CPU_CAPABILITY`` forcing other kernel paths), so continuous values are
  compared at ``SCORE_RTOL``/``SCORE_ATOL``, which still catches any change of the algorithm
  (those move scores by 1e-3 and more). A balanced accuracy is a count of samples on either side
  of a threshold: a score sitting at the threshold may cross it, so it may move by one validation
  sample of its smallest class, no more.

``tests/test_golden_portability.py`` reruns the stored-value tests with other kernel paths forced,
so a comparison that only holds on the recording CPU fails here, not on someone else's machine.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

import numpy as np
import pandas as pd

SCORE_RTOL = 1e-4
SCORE_ATOL = 1e-5
# Variables that choose float kernels: a run with any of them set is "another machine".
KERNEL_VARIABLES = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                    "OPENBLAS_CORETYPE", "MKL_DEBUG_CPU_TYPE")


def _cpu() -> str:
    """Vendor, model name, family/model/stepping and the vector extensions: what kernel dispatch reads."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return platform.processor() or platform.machine()
    vector = sorted(f for f in fields.get("flags", "").split() if f.startswith(("avx", "amx", "fma", "sse")))
    return " / ".join([fields.get("vendor_id", "?"), fields.get("model name", "?"),
                       f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
                       f"stepping {fields.get('stepping', '?')}", " ".join(vector)])


@lru_cache(maxsize=1)
def machine() -> dict:
    """The fingerprint stored with golden values: what decides which float kernels run."""
    import torch

    return {"cpu": _cpu(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "numpy": np.__version__,
            "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ}}


def recorded_here(recorded: dict | None) -> bool:
    """Whether values recorded on ``recorded`` (a fingerprint) must match here bit for bit."""
    return recorded == machine()


def assert_scores(actual, expected, *, exact: bool, what: str = "scores") -> None:
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=f"{what}: not bit for bit on the recording machine")
    else:
        np.testing.assert_allclose(actual, expected, rtol=SCORE_RTOL, atol=SCORE_ATOL,
                                   err_msg=f"{what}: beyond float32 precision on another CPU")


def one_sample(n_classes: np.ndarray, smallest_class: np.ndarray) -> np.ndarray:
    """How far a balanced accuracy moves when one sample of the smallest class changes side."""
    return 1.0 / (np.asarray(n_classes, dtype=float) * np.asarray(smallest_class, dtype=float)) + 1e-12


def smallest_binary_class(n_val, majority_accuracy) -> np.ndarray:
    """A binary task's smallest validation class, from a result row's ``n_val`` and
    ``majority_accuracy`` (the share of the validation set in the training majority class)."""
    n_val = np.asarray(n_val, dtype=float)
    majority = np.rint(np.asarray(majority_accuracy, dtype=float) * n_val)
    return np.maximum(np.minimum(majority, n_val - majority), 1)


def assert_results(actual: pd.DataFrame, expected: pd.DataFrame, *, exact: bool,
                   one_sample_tolerance: np.ndarray | None = None,
                   continuous: tuple[str, ...] = (), counts: tuple[str, ...] = ("balanced_accuracy", "accuracy"),
                   choices: tuple[str, ...] = (), max_changed_choices: float = 0.05,
                   cells: tuple[str, ...] = (), cell_tolerance: float = 0.02) -> None:
    """Compare result rows (same order) with the stored ones.

    Off the recording machine: ``counts`` (metrics that count samples) may move by
    ``one_sample_tolerance`` per row; ``continuous`` (float32-derived values) are compared at
    float32 precision; ``choices`` are a search's discrete outcomes (chosen parameters, training
    length, the winner's inner score), which another CPU's rounding can tip where two candidates
    tie: at most ``max_changed_choices`` of the rows may change them, those rows are exempt from
    the one-sample rule, and the mean of each count over the rows of each ``cells`` group stays
    within ``cell_tolerance``. Every other column must be equal.
    """
    actual = actual[list(expected.columns)].reset_index(drop=True)
    expected = expected.reset_index(drop=True)
    assert len(actual) == len(expected), f"{len(actual)} rows, {len(expected)} stored"
    if exact:
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False, rtol=0, atol=0)
        return
    changed = np.zeros(len(expected), dtype=bool)
    for column in choices:
        a, e = actual[column], expected[column]
        if pd.api.types.is_numeric_dtype(e):
            a_, e_ = a.to_numpy(float), e.to_numpy(float)
            changed |= ~(np.isclose(a_, e_, rtol=SCORE_RTOL, atol=SCORE_ATOL) | (np.isnan(a_) & np.isnan(e_)))
        else:
            changed |= (a.astype(str) != e.astype(str)).to_numpy()
    assert changed.mean() <= max_changed_choices, (
        f"a search chose differently in {int(changed.sum())} of {len(changed)} rows: more than ties explain")
    for column in expected.columns:
        a, e = actual[column], expected[column]
        if column in choices:
            continue
        if column in counts:
            tol = one_sample_tolerance if one_sample_tolerance is not None else 0.0
            a_, e_ = a.to_numpy(float), e.to_numpy(float)
            bad = ~(np.isnan(a_) & np.isnan(e_)) & ~(np.abs(a_ - e_) <= tol) & ~changed
            assert not bad.any(), f"{column} moved by more than one validation sample in rows {np.flatnonzero(bad).tolist()}"
            if cells:
                means = pd.DataFrame({"a": a_, "e": e_, **{k: expected[k] for k in cells}}).groupby(list(cells))[["a", "e"]].mean()
                off = means[(means.a - means.e).abs() > cell_tolerance]
                assert off.empty, f"mean {column} moved by more than {cell_tolerance}: {off.to_dict('index')}"
        elif column in continuous:
            assert_scores(a, e, exact=False, what=column)
        else:
            pd.testing.assert_series_equal(a, e, check_dtype=False, check_exact=False, rtol=1e-12, atol=0)
