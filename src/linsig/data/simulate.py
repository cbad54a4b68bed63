"""The paper's three simulated datasets (Heil et al. 2023, Methods, "Data simulation").

* ``linear`` — every feature carries linear signal: class 0 ~ N(0, 1), class 1 ~ N(shift, 1).
* ``mixed`` — half the features as in ``linear``; the other half non-linear: class 0 ~ N(0, 1),
  class 1 ~ N(+shift, 1) or N(−shift, 1) with equal probability, drawn per value. A single
  threshold cannot separate such a feature (two are needed), so after the class means are
  regressed out only a non-linear model can use it.
* ``noise`` — every value N(0, 1) whatever the class: the negative control.

The paper's datasets are 1000 samples × 5000 features ("linear" has its 2,500 linear features);
by default each sample is its own study, as in the paper's code.
"""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd

from linsig.errors import LinsigInputError
from linsig.validation import MAX_SEED

KINDS = ("mixed", "linear", "noise")


class InvalidSimulation(LinsigInputError):
    """A bad simulation parameter; ``field`` is the argument of :func:`simulate`."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def check_simulation(kind: str = "mixed", n_samples: int = 1000, n_features: int = 5000, n_groups: int | None = None,
                     shift: float = 6.0, class_balance: float = 0.5, seed: int = 0) -> None:
    """Raise :class:`InvalidSimulation` for the first parameter :func:`simulate` cannot use."""
    if kind not in KINDS:
        raise InvalidSimulation("kind", f"unknown simulation {kind!r}; choose one of {', '.join(KINDS)}")
    if n_samples < 2:
        raise InvalidSimulation("n_samples", f"need at least 2 samples, got {n_samples}")
    if n_features < 1:
        raise InvalidSimulation("n_features", f"need at least 1 feature, got {n_features}")
    if n_groups is not None and not 1 <= n_groups <= n_samples:
        raise InvalidSimulation("n_groups", f"must be between 1 and the number of samples ({n_samples}), got {n_groups}")
    if not math.isfinite(shift):
        raise InvalidSimulation("shift", f"must be a finite number, got {shift}")
    if not 0 < class_balance < 1:
        raise InvalidSimulation("class_balance", f"the fraction of class 1 must be in (0, 1), got {class_balance}")
    n_pos = int(round(n_samples * class_balance))
    if min(n_pos, n_samples - n_pos) < 2:  # one class (or one sample of it): nothing to cross-validate
        raise InvalidSimulation("class_balance", f"{class_balance:g} of {n_samples} samples leaves "
                                f"{n_pos} in class 1 and {n_samples - n_pos} in class 0; each class needs at "
                                "least 2 (raise the balance towards 0.5, or the number of samples)")
    if not 0 <= seed <= MAX_SEED:
        raise InvalidSimulation("seed", f"must be an integer from 0 to 2**32 - 1, got {seed}")


def simulate(
    kind: str = "mixed",
    n_samples: int = 1000,
    n_features: int = 5000,
    n_groups: int | None = None,
    shift: float = 6.0,
    class_balance: float = 0.5,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate one of the paper's datasets as AnnData (float32, ``obs['label']``, ``obs['group']``).

    Parameters
    ----------
    kind
        ``"mixed"``, ``"linear"`` or ``"noise"``.
    n_samples, n_features
        Matrix size. For ``mixed`` the first ``n_features // 2`` features are linear, the rest
        non-linear (the feature order is recorded in ``var['signal']``).
    n_groups
        Number of groups (studies) the samples are spread over, round-robin within each class
        so every group holds both classes; ``None`` makes each sample its own group.
    shift
        Mean shift of the signal features (6 in the paper).
    class_balance
        Fraction of samples in class ``1``.
    seed
        Seed of the NumPy generator; the same seed gives the same data.
    """
    check_simulation(kind, n_samples, n_features, n_groups, shift, class_balance, seed)
    rng = np.random.default_rng(seed)
    n_pos = int(round(n_samples * class_balance))
    y = np.zeros(n_samples, dtype=np.int64)
    y[rng.permutation(n_samples)[:n_pos]] = 1

    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    signal = np.full(n_features, "noise", dtype=object)
    if kind != "noise":
        n_linear = n_features if kind == "linear" else n_features // 2
        signal[:n_linear] = "linear"
        signal[n_linear:] = "nonlinear" if kind == "mixed" else "noise"
        pos = y == 1
        X[np.ix_(pos, np.arange(n_linear))] += shift
        if kind == "mixed":
            nonlinear = np.arange(n_linear, n_features)
            signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(pos.sum(), nonlinear.size))
            X[np.ix_(pos, nonlinear)] += shift * signs

    if n_groups is None:
        groups = np.arange(n_samples)
    else:
        # Round-robin within each class so that every group holds both classes where possible.
        groups = np.empty(n_samples, dtype=np.int64)
        for cls in (0, 1):
            idx = np.flatnonzero(y == cls)
            groups[idx] = np.arange(idx.size) % n_groups
    obs = pd.DataFrame(
        {"label": pd.Categorical(y.astype(str)), "group": pd.Categorical([f"study{g}" for g in groups])},
        index=[f"sample{i}" for i in range(n_samples)],
    )
    var = pd.DataFrame({"signal": pd.Categorical(signal.astype(str))}, index=[f"feature{j}" for j in range(n_features)])
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["linsig"] = {
        "dataset": f"sim-{kind}",
        "simulation": {"kind": kind, "n_samples": n_samples, "n_features": n_features,
                        "n_groups": n_groups if n_groups is not None else n_samples,
                        "shift": shift, "class_balance": class_balance, "seed": seed},
    }
    return adata
