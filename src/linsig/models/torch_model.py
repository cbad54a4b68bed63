"""What every torch-backed estimator shares, whichever recipe trains it: predictions from its network."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from linsig.training import predict_scores, resolve_device, resolve_precision


class TorchModel:
    """Mixin for estimators with a fitted ``module_`` on ``device_``, ``classes_`` and ``train_result_``."""

    def _place(self, n_features: int) -> None:
        """Where a new fit trains and in which arithmetic: ``device_`` and ``precision_`` (``auto``
        resolved for this hardware and a network of ``n_features`` inputs)."""
        self.device_ = resolve_device(self.device)
        self.precision_ = resolve_precision(self.precision, self.device_, n_features)

    def _tensor(self, X) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=self.device_)

    def _inputs(self, X) -> torch.Tensor:
        """The network's input tensor for validated rows ``X`` (subclasses may transform them)."""
        return self._tensor(X)

    def _scores(self, X) -> torch.Tensor:
        check_is_fitted(self, "module_")
        return predict_scores(self.module_, self._inputs(validate_data(self, X, dtype=np.float32, reset=False)),
                              precision=getattr(self, "precision_", "fp32"))

    def decision_function(self, X) -> np.ndarray:
        scores = self._scores(X).cpu().numpy()
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict_proba(self, X) -> np.ndarray:
        """Softmax of the network's scores (calibrated only for the cross-entropy models)."""
        return torch.softmax(self._scores(X).double(), dim=1).cpu().numpy()

    def predict(self, X) -> np.ndarray:
        winners = self._scores(X).argmax(dim=1).cpu().numpy()
        return self.classes_[winners]

    def fit_summary(self) -> dict:
        """Result-row fields describing the last fit."""
        r = self.train_result_
        return {"epochs_trained": int(r.epochs_trained), "best_epoch": int(r.best_epoch), "diverged": bool(r.diverged),
                "converged": not r.diverged, "precision": getattr(self, "precision_", "fp32")}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
