"""What every linsig model offers the tuning routine and the result table, beyond scikit-learn's API.

A model declares its own search space (:meth:`Tunable.search_space`) and produces predictions on
an inner validation fold for each candidate (:meth:`Tunable.candidate_predictions`). The default
fits one clone per candidate; models that can score a whole path at about the cost of one fit
override it (a warm-started regularisation path, all ``k`` of a nearest-neighbour query, every
epoch of one network run). One routine, :func:`linsig.tuning.tune`, then scores every model with
the same objective.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone


class Tunable:
    """Mixin: search space, per-candidate predictions and a summary of the last fit."""

    #: a parameter whose values one run scores together (``epochs``: one network run scored after
    #: every epoch; ``C``: one warm-started penalty path), for counting the cost of a search
    path_axis: str | None = None
    #: smooth the objective along ``path_axis`` before choosing, so that a one-epoch spike of a
    #: noisy learning curve is not mistaken for the best training length
    smooth_path: bool = False
    #: every candidate (every path) is a run of its own, so a search may stop running one on the
    #: remaining inner folds once it clearly trails (racing, :func:`linsig.search.by_pooled_balanced_accuracy`);
    #: False where one run scores many candidates together (a warm-started penalty path)
    separate_runs: bool = False

    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        """Candidate parameter sets for a tuning level ("full" or "fast"), preferred first.

        Lists run from the most regularised (simplest) model to the least; a tie in the objective
        goes to the model's own parameters when they are a candidate (:meth:`default_candidate`),
        else to the middle of the tied candidates in this order (the centre of a plateau).
        """
        return [{}]

    def default_candidate(self, plan: list[dict]) -> dict | None:
        """The candidate of ``plan`` that is this model's own parameters (None: none is).

        The strong search keeps it unless another candidate is better by more than the noise of
        the comparison (:func:`linsig.search.by_pooled_balanced_accuracy`). A model whose own
        parameters are not one candidate (a network's training length is a path of epochs) is not
        held to it.
        """
        own = self.get_params()
        for candidate in plan:
            if all(k in own and _same(own[k], v) for k, v in candidate.items()):
                return candidate
        return None

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates: list[dict]) -> list[tuple[dict, np.ndarray]]:
        """``(params, predictions on X_va)`` for every candidate, each fitted on ``(X_tr, y_tr)``.

        ``y_va`` is there for models that watch the validation fold while training (the networks
        stop runs that no longer improve); the predictions are scored by the caller. For a model
        with ``separate_runs`` along a ``path_axis``, a candidate may carry a value on that axis:
        its run need not go further along the path (the search asks for no point that an earlier
        inner fold did not produce).
        """
        out = []
        for params in candidates:
            model = clone(self).set_params(**params)
            model.fit(X_tr, y_tr, groups=g_tr)
            out.append((dict(params), model.predict(X_va)))
        return out

    def fit_summary(self) -> dict:
        """Result-row fields describing the last fit (iterations, convergence)."""
        return {"epochs_trained": int(getattr(self, "n_iter_", 0)), "best_epoch": int(getattr(self, "n_iter_", 0)),
                "diverged": False, "converged": bool(getattr(self, "converged_", True))}

    def chosen_params(self) -> dict:
        """The hyperparameters a tuning search may set, with their current values (for the results)."""
        keys = sorted({k for c in self.search_space("full") for k in c})
        params = self.get_params()
        return {k: params[k] for k in keys if k in params}


def _same(a, b) -> bool:
    """Parameter values equal, floats to rounding (a grid's 1.0 from ``np.logspace``)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return bool(np.isclose(a, b, rtol=1e-9, atol=0.0))
    return a == b


def full_label_set(estimator, y) -> np.ndarray:
    """The classes a fit must know: ``classes`` when given (a subset may lack one), else y's own."""
    labels = np.unique(y)
    if getattr(estimator, "classes", None) is None:
        return labels
    classes = np.asarray(estimator.classes)
    unknown = np.setdiff1d(labels, classes)
    if unknown.size:
        raise ValueError(f"labels {list(unknown)} are not in classes={list(classes)}")
    return classes
