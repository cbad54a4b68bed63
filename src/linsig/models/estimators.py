"""scikit-learn estimators around the paper's PyTorch models.

All models share one training loop (:func:`linsig.training.train`) and differ only in their
architecture and loss, so their comparison is fair — the paper's point. They follow the
scikit-learn API (``fit``/``predict``/``predict_proba``/``decision_function``, ``get_params``),
so they work with ``clone``, ``cross_val_score`` and pipelines.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from linsig import splits
from linsig.models.base import full_label_set
from linsig.models.networks import build_network
from linsig.models.torch_model import TorchModel
from linsig.training import TrainConfig, TrainResult, mean_loss, train


class TorchClassifier(TorchModel, ClassifierMixin, BaseEstimator):
    """Base class: a network trained with Adam, class-weighted loss and early stopping.

    Parameters
    ----------
    lr : float or None
        Adam learning rate; ``None`` uses the model's default (``default_lr``).
    weight_decay : float
        Adam weight decay (L2 penalty; makes ``logreg`` a ridge logistic regression).
    max_epochs : int
        Upper bound on epochs (paper: 50).
    batch_size : int
        Mini-batch size (paper: 16).
    patience : int
        Epochs without improvement of the tune loss before stopping (paper: 7).
    validation_fraction : float
        Fraction of the training groups held out as the early-stopping tune set (paper: ~0.2).
        ``0`` disables early stopping. Too few groups (< 5) also disables it.
    clip_grad_norm : float or None
        Max gradient norm per step (paper: 0.01).
    dropout : float
        Dropout probability of the hidden layers (paper: 0.5; unused by linear models).
    classes : array-like or None
        The full label set, when a training subset may lack a class that must still be predicted.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    random_state : int
        Seeds weight initialisation, shuffling, dropout and the tune split.
    warm_start : bool
        Continue from the current weights when ``fit`` is called again (pretraining).
    precision : str
        ``"fp32"`` (the paper's), ``"bf16"`` (bfloat16 matrix products, float32 weights) or
        ``"auto"`` (bf16 where the hardware is fast at it).
    """

    architecture = "linear"
    loss = "cross_entropy"
    default_lr = 1e-3

    def __init__(self, lr=None, weight_decay=0.0, max_epochs=50, batch_size=16, patience=7,
                 validation_fraction=0.2, clip_grad_norm=0.01, dropout=0.5, classes=None,
                 device="cpu", random_state=0, warm_start=False, precision="fp32"):
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.clip_grad_norm = clip_grad_norm
        self.dropout = dropout
        self.classes = classes
        self.device = device
        self.random_state = random_state
        self.warm_start = warm_start
        self.precision = precision

    # -- helpers ---------------------------------------------------------------------------
    def _encode(self, y) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes_)}
        try:
            return np.fromiter((index[v] for v in y), dtype=np.int64, count=len(y))
        except KeyError as exc:
            raise ValueError(f"label {exc.args[0]!r} is not one of the classes {list(self.classes_)}") from None

    def _config(self) -> TrainConfig:
        return TrainConfig(
            lr=self.default_lr if self.lr is None else float(self.lr),
            weight_decay=float(self.weight_decay), max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size), patience=int(self.patience),
            clip_grad_norm=self.clip_grad_norm, loss=self.loss, seed=int(self.random_state or 0),
            precision=getattr(self, "precision_", "fp32"),  # set by a fit
        )

    # -- scikit-learn API --------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Fit on X (samples × features) and labels y; ``groups`` make the early-stopping split group-wise."""
        X, y = validate_data(self, X, y, dtype=np.float32, reset=not (self.warm_start and hasattr(self, "module_")))
        check_classification_targets(y)
        if not (self.warm_start and hasattr(self, "module_")):
            self.classes_ = full_label_set(self, y)
            self._place(X.shape[1])
            torch.manual_seed(int(self.random_state or 0))
            self.module_ = build_network(self.architecture, X.shape[1], len(self.classes_), self.dropout).to(self.device_)
        y_codes = self._encode(y)
        if groups is not None and len(groups) != len(y):
            raise ValueError(f"groups has {len(groups)} entries for {len(y)} samples")
        held = splits.holdout(y_codes, None if groups is None else np.asarray(groups),
                              float(self.validation_fraction), int(self.random_state or 0))
        config = self._config()
        if held is None:
            Xt, yt, Xv, yv = X, y_codes, None, None
        else:
            fit_idx, tune_idx = held
            Xt, yt, Xv, yv = X[fit_idx], y_codes[fit_idx], X[tune_idx], y_codes[tune_idx]
        self.train_result_: TrainResult = train(
            self.module_, self._tensor(Xt), torch.as_tensor(yt, device=self.device_), len(self.classes_), config,
            None if Xv is None else self._tensor(Xv), None if yv is None else torch.as_tensor(yv, device=self.device_),
        )
        self.n_epochs_ = self.train_result_.epochs_trained
        return self

    def loss_score(self, X, y) -> float:
        """Class-weighted mean training loss on (X, y): the tuning objective (lower is better)."""
        check_is_fitted(self, "module_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        y_codes = torch.as_tensor(self._encode(y), device=self.device_)
        return mean_loss(self.module_, self._tensor(X), y_codes, self.loss, len(self.classes_), self.precision_)

    def chosen_params(self) -> dict:
        return {"lr": float(self.default_lr if self.lr is None else self.lr), "weight_decay": float(self.weight_decay)}


class LogisticRegressionClassifier(TorchClassifier):
    """Ridge (L2 via weight decay) multinomial logistic regression: the paper's linear baseline."""

    architecture = "linear"
    loss = "cross_entropy"
    default_lr = 1e-3


class LinearSVMClassifier(TorchClassifier):
    """Linear SVM: one linear layer trained with the multiclass hinge loss (``MultiMarginLoss``)."""

    architecture = "linear"
    loss = "multi_margin"
    default_lr = 1e-3


class MLP3Classifier(TorchClassifier):
    """Three-layer ReLU network with dropout (hidden d/2 and d/4)."""

    architecture = "mlp3"
    loss = "cross_entropy"
    default_lr = 1e-4


class MLP5Classifier(TorchClassifier):
    """Five-layer ReLU network with batch norm and dropout (hidden d/2, d/2, d/2, d/4)."""

    architecture = "mlp5"
    loss = "cross_entropy"
    default_lr = 1e-3  # batch norm tolerates (and, measured on the simulations, needs) a larger step
