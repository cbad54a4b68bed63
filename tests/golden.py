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


def assert_results(actual: pd.DataFrame, expected: pd.DataFrame, *, exact: bool,
                   one_sample_tolerance: np.ndarray | None = None,
                   continuous: tuple[str, ...] = (), counts: tuple[str, ...] = ("balanced_accuracy", "accuracy"),
                   ) -> None:
    """Compare result rows (same order) with the stored ones.

    ``counts``: metrics that count samples (may move by ``one_sample_tolerance`` per row off the
    recording machine); ``continuous``: float32-derived values (compared at float32 precision);
    every other column must be equal (the discrete choices: hyperparameters, epochs, statuses).
    """
    actual = actual[list(expected.columns)].reset_index(drop=True)
    expected = expected.reset_index(drop=True)
    assert len(actual) == len(expected), f"{len(actual)} rows, {len(expected)} stored"
    if exact:
        pd.testing.assert_frame_equal(actual, expected, check_dtype=False, rtol=0, atol=0)
        return
    for column in expected.columns:
        a, e = actual[column], expected[column]
        if column in counts:
            tol = one_sample_tolerance if one_sample_tolerance is not None else 0.0
            diff = np.abs(a.to_numpy(float) - e.to_numpy(float))
            both_nan = np.isnan(a.to_numpy(float)) & np.isnan(e.to_numpy(float))
            bad = ~both_nan & ~(diff <= tol)
            assert not bad.any(), f"{column} moved by more than one validation sample in rows {np.flatnonzero(bad).tolist()}"
        elif column in continuous:
            assert_scores(a, e, exact=False, what=column)
        else:
            pd.testing.assert_series_equal(a, e, check_dtype=False, check_exact=False, rtol=1e-12, atol=0)
