"""The strong recipe's networks: the paper's ``mlp3``/``mlp5`` architectures, trained with a modern recipe.

What changes against the paper's training, and why (measured, see ``docs/method.md``):

* **AdamW** instead of Adam with coupled weight decay behind a 0.01 gradient-norm clip: the clip
  scaled the loss gradient by ~6e-3 but not the decay, which then acted ~100× stronger than its
  value (issue 9's diagnosis). No clipping.
* **Batches sized from the data**: ``ceil(n / 8)`` samples (8 ≤ batch ≤ 128), and an epoch is at
  least eight steps (a small training set is cycled through more than once), so an epoch is eight
  steps for any training set from ~400 up to ~1,000 samples. Larger batches also cost 2.5× less
  per sample than batches of 16 on CPU (``benchmarks/bench_recipes.py``).
* **Small training sets get more steps**: an epoch also visits at least 400 samples, so below
  ~400 samples it has more than eight (small, noisy) steps: 31 at 100 samples. The number is
  fixed from the outer training set before the search (``steps_per_epoch``), so an epoch count
  means the same number of optimiser steps in the inner runs, the outer fit and every
  training-set fraction, and the training length chosen on the inner folds carries over.
* **Warm-up + cosine decay** planned over ``max_epochs``.
* **No early stopping on a small tune set**: the training length (``epochs``) is a
  hyperparameter, chosen with the learning rate by nested group-wise CV on the pooled predictions
  of all inner validation folds (every training sample is scored once), not by the noisy loss of
  ~20 held-out samples that stopped the paper's runs at epochs 13–14 or let them hit the cap.

* **Batch norm's statistics re-estimated without dropout** before a network predicts (``mlp5``;
  also in the search's every-epoch scoring): the running statistics collected while dropout is on
  left ``mlp5`` predicting one class after linear removal on small training sets
  (:func:`recalibrate_batch_norm`).

Inputs are used as given (0–1 scaled genes): centring them hurt ``mlp3`` on ALL sex (0.91 → 0.78
balanced accuracy) while it helped only learning rates that the search discards anyway.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from linsig.metrics import balanced_accuracy
from linsig.models.base import Tunable, full_label_set
from linsig.models.networks import build_network
from linsig.models.torch_model import TorchModel
from linsig.training import TrainConfig, TrainResult, autocast, predict_scores, train

STEPS_PER_EPOCH = 8
MIN_BATCH, MAX_BATCH = 8, 128
# An epoch visits at least this many samples. With batches of n / 8 a small training set takes
# small, noisy steps, and AdamW needs more of them: on ALL sex (100 training samples, batches of
# 13) mlp3 / mlp5 trained for the whole default schedule reached 0.853 / 0.866 balanced accuracy
# over seeds 0–4 with 8 steps an epoch, 0.889 / 0.874 with four times the steps (strong logreg:
# 0.901); the same number of samples in larger batches (50, 100) did worse (0.82–0.84).
MIN_EPOCH_SAMPLES = 400
# Learning rates the search tries, smallest first (the order ties are broken in; the first is the
# candidate a search tries alone while it is perfect on every inner fold, see linsig.search). 1e-4 is what
# mlp3 needs after linear signal removal on the mixed simulation (higher rates stall at chance
# there); 1e-3 is AdamW's usual; 3e-3 is what mlp3 reaches its best with on small real data
# (ALL sex). The fast search drops the last.
LEARNING_RATES = (1e-4, 1e-3, 3e-3)
# mlp5 puts batch norm after every linear layer, which removes a constant shift of each unit's
# pre-activation, and with it the reason for 1e-4 and for centring: centred inputs give the same
# forward pass and the same weight gradients (they differ only by rounding, which Adam's
# normalisation amplifies: after one epoch on ALL sex the same labels, probabilities within
# 0.013). Its rates are half-decades around AdamW's usual 1e-3; untuned on ALL sex (seeds 0-4,
# whole schedule) 3e-4 reached 0.887 and 1e-3 0.873 balanced accuracy.
MLP5_LEARNING_RATES = (3e-4, 1e-3, 3e-3)
# The fourth candidate: centred inputs at AdamW's usual rate. It learns the mixed simulation after
# removal within 3 epochs, where uncentred inputs learn only at 1e-4 and only after a long
# plateau; on ALL sex it is worse (mlp3 0.78 against 0.87), so the search decides.
CENTRED_LEARNING_RATE = 1e-3
# A tuning run stops when it has not made progress (below) for `patience` epochs, or after this
# many epochs of a perfect inner validation score: the objective cannot improve any more.
MIN_LOSS_GAIN, MIN_ACCURACY_GAIN, PERFECT_EPOCHS = 0.001, 0.01, 5
# No run stops for lack of progress before this fraction of its schedule: after removal the
# non-linear signal is learnt after a plateau (mlp5 on the mixed simulation, 400 × 200: chance-like
# 0.64–0.72 for epochs 10–30, 0.92 by epoch 60), and one inner fold's run cut at epoch 28 took every
# later epoch off the pooled candidates (0.875 → 0.978 balanced accuracy with this floor).
EARLIEST_STOP = 0.3
# The outer fit continues past the chosen length for this fraction of it, its learning rate
# falling linearly to 0. The search scores each length on a run that goes on past it, where the
# learning rate is still large, and a schedule cut there leaves a network that swings from one
# epoch to the next: mlp3 on one ALL sex fold (lr 1e-3, 100 training samples) scored 0.944 /
# 0.778 / 0.844 / 0.556 / 0.913 / 0.667 cut at epochs 30 / 40 / 45 / 49 / 55 / 60, and 0.944 at the
# schedule's end. Untuned, 12 random states (each its own folds and initialisation) × 5 folds:
# mlp3 cut at 45 / 55 epochs 0.868 / 0.890 (sd over states 0.047 / 0.026), cooled down 0.890 /
# 0.893 (0.025 / 0.028); mlp5 (seeds 0-4, 45 epochs) cut 0.846, cooled down 0.870.
COOLDOWN = 0.2
# Batch norm's statistics are re-estimated after training, from at most this many training
# samples with dropout off (below).
RECALIBRATION_SAMPLES = 1024


@torch.no_grad()
def recalibrate_batch_norm(module: torch.nn.Module, X: torch.Tensor, precision: str = "fp32") -> None:
    """Re-estimate every batch norm's running mean and variance on ``X`` with dropout off.

    The paper's ``mlp5`` puts dropout before each following linear layer and batch norm: the
    running variance is collected while dropout doubles the surviving activations, and prediction
    runs without dropout, so the statistics used at prediction are those of another distribution
    (Li et al., CVPR 2019, "variance shift"). Where the classes differ in the spread of the
    activations — the signal left after linear removal — that shift alone pushed every prediction
    to one class: mixed simulation after removal, 266 training samples, lr 3e-4, scores 0.50 on
    the held-out fold at every epoch with the running statistics and 1.00 from epoch 5 with
    statistics re-estimated this way (training accuracy with the running statistics: 0.50–0.96).
    One forward pass over training samples; networks without batch norm are left as they are.
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or X.shape[0] < 2:  # one sample has no variance: keep what training measured
        return
    was_training = module.training
    momenta = [m.momentum for m in norms]
    module.eval()  # dropout off
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes below
        m.train()
    # near-equal chunks, so that none is a single sample (batch norm cannot normalise one)
    for chunk in torch.tensor_split(X, math.ceil(X.shape[0] / RECALIBRATION_SAMPLES)):
        with autocast(precision, X.device):
            module(chunk)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    module.train(was_training)


def auto_batch_size(n_samples: int) -> int:
    return int(min(MAX_BATCH, max(MIN_BATCH, math.ceil(n_samples / STEPS_PER_EPOCH))))


def auto_steps_per_epoch(n_samples: int, batch_size: int | None = None) -> int:
    """The fewest steps an epoch takes: eight, and enough to visit ``MIN_EPOCH_SAMPLES`` samples."""
    batch = int(batch_size or auto_batch_size(n_samples))
    return int(max(STEPS_PER_EPOCH, math.ceil(MIN_EPOCH_SAMPLES / batch)))


class NetworkClassifier(TorchModel, Tunable, ClassifierMixin, BaseEstimator):
    """A paper architecture trained by the strong recipe (scikit-learn estimator).

    Parameters
    ----------
    lr : float
        Peak AdamW learning rate.
    weight_decay : float
        AdamW's decoupled weight decay.
    dropout : float
        Dropout probability of the hidden layers (the paper's architecture: 0.5).
    center : bool
        Subtract the training samples' mean from every input. Adam's per-coordinate steps on
        thousands of all-positive inputs move a unit's pre-activation coherently, so without
        centring only small learning rates learn some data (the mixed simulation after removal).
    max_epochs : int
        Length of the warm-up + cosine schedule.
    epochs : int or None
        Where the schedule is cut (the training length chosen by tuning); ``None`` trains the
        whole schedule.
    cooldown : float or None
        A schedule cut before its end (``epochs < max_epochs``) continues for this fraction of
        ``epochs`` more, its learning rate falling linearly to 0 (0: stop at the cut). ``None``:
        the class's ``default_cooldown`` (0.2).
    batch_size : int or None
        ``None``: ``ceil(n / 8)`` clipped to [8, 128] (about eight steps per epoch).
    steps_per_epoch : int or None
        The fewest optimiser steps an epoch takes (more when the data need more batches).
        ``None``: eight, or enough to visit 400 samples (:func:`auto_steps_per_epoch`); tuning
        fixes it from the outer training set so that inner and outer epochs are the same length.
    patience : int
        Tuning only: an inner run stops when neither its validation loss nor its balanced
        accuracy improved for this many epochs, counted from 30 % of the schedule (epochs of eight steps: with
        more batches per epoch than ``steps_per_epoch``, on more than ~1,000 samples,
        proportionally fewer, at least 3).
    classes : array-like or None
        The full label set (a training subset may lack a class that must still be predicted).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    random_state : int
        Seeds initialisation, shuffling and dropout.
    warm_start : bool
        Continue from the current weights when ``fit`` is called again (pretraining).
    precision : str
        ``"fp32"``, ``"bf16"`` (bfloat16 matrix products under autocast; weights, AdamW's state and
        the loss stay float32) or ``"auto"``: bf16 where the hardware multiplies it natively
        (:func:`linsig.training.bf16_is_fast`).
    """

    architecture = "mlp3"
    path_axis = "epochs"
    smooth_path = True
    separate_runs = True
    #: the learning rates the search tries (``fast``: the first two) and whether it also tries
    #: centred inputs at ``CENTRED_LEARNING_RATE``
    learning_rates = LEARNING_RATES
    centred_candidate = True
    #: the cool-down of ``cooldown=None``
    default_cooldown = COOLDOWN

    def __init__(self, lr=1e-3, weight_decay=1.0, dropout=0.5, center=False, max_epochs=100, epochs=None,
                 cooldown=None, batch_size=None, steps_per_epoch=None, patience=20, classes=None, device="cpu",
                 random_state=0, warm_start=False, precision="fp32"):
        self.lr = lr
        self.center = center
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.epochs = epochs
        self.cooldown = cooldown
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.patience = patience
        self.classes = classes
        self.device = device
        self.random_state = random_state
        self.warm_start = warm_start
        self.precision = precision

    # -- helpers ---------------------------------------------------------------------------
    def _codes(self, y) -> torch.Tensor:
        codes = np.searchsorted(self.classes_, y)
        if np.any(codes >= self.classes_.size) or np.any(self.classes_[np.minimum(codes, self.classes_.size - 1)] != y):
            raise ValueError(f"labels outside the classes {list(self.classes_)}")
        return torch.as_tensor(codes, device=self.device_)

    def _config(self, n: int, epochs: int) -> TrainConfig:
        batch = int(self.batch_size or auto_batch_size(n))
        # a schedule cut before its end gets a cool-down (none for the full schedule or tuning runs)
        fraction = self.default_cooldown if self.cooldown is None else float(self.cooldown)
        cooldown = math.ceil(fraction * epochs) if epochs < int(self.max_epochs) else 0
        return TrainConfig(
            lr=float(self.lr), weight_decay=float(self.weight_decay), max_epochs=int(epochs),
            batch_size=batch, clip_grad_norm=None, loss="cross_entropy",
            seed=int(self.random_state or 0), optimizer="adamw", schedule="cosine",
            planned_epochs=int(self.max_epochs),
            min_steps_per_epoch=int(self.steps_per_epoch or auto_steps_per_epoch(n, batch)),
            cooldown_epochs=cooldown, precision=getattr(self, "precision_", "fp32"),  # set by a fit
        )

    def _start(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32, reset=not (self.warm_start and hasattr(self, "module_")))
        check_classification_targets(y)
        if not (self.warm_start and hasattr(self, "module_")):
            self.classes_ = full_label_set(self, y)
            self._place(X.shape[1])
            torch.manual_seed(int(self.random_state or 0))
            self.module_ = build_network(self.architecture, X.shape[1], len(self.classes_), self.dropout,
                                         packed_dropout=True).to(self.device_)
            self.shift_ = X.mean(axis=0) if self.center else np.zeros(X.shape[1], dtype=np.float32)
        return X, y

    def _inputs(self, X) -> torch.Tensor:
        return self._tensor(X - self.shift_)

    # -- scikit-learn API --------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Train for ``epochs`` (default: the whole schedule); ``groups`` are not needed."""
        X, y = self._start(X, y)
        epochs = self.max_epochs if self.epochs is None else min(int(self.epochs), int(self.max_epochs))
        inputs = self._inputs(X)
        self.train_result_: TrainResult = train(self.module_, inputs, self._codes(y), len(self.classes_),
                                                self._config(len(y), epochs))
        recalibrate_batch_norm(self.module_, inputs, self.precision_)
        return self

    # -- tuning protocol ---------------------------------------------------------------------
    def search_space(self, level: str, n_samples: int | None = None) -> list[dict]:
        rates = self.learning_rates if level == "full" else self.learning_rates[:2]
        space = [{"lr": lr} for lr in rates]
        if self.centred_candidate:
            space.append({"lr": CENTRED_LEARNING_RATE, "center": True})
        if n_samples is None or self.steps_per_epoch:
            return space
        # not searched: the epoch length of the outer training set, shared by the inner runs
        steps = auto_steps_per_epoch(n_samples, self.batch_size)
        return [{**params, "steps_per_epoch": steps} for params in space]

    def candidate_predictions(self, X_tr, y_tr, g_tr, X_va, y_va, candidates):
        """One run per candidate over the whole schedule; its predictions after every epoch.

        Each ``(params, epochs)`` pair is a candidate of its own, so the search chooses the
        training length with the learning rate. A run stops once neither its validation loss
        nor its balanced accuracy improved for ``patience`` epochs; only the epochs it ran are
        candidates (pooled over inner folds: the epochs every fold's run reached). A candidate
        with ``epochs`` also stops there: its run is the first ``epochs`` epochs of the whole one.
        """
        out = []
        for requested in candidates:
            params = {k: v for k, v in requested.items() if k != "epochs"}
            last = int(requested.get("epochs") or self.max_epochs)
            model = self.__class__(**{**self.get_params(), **params, "epochs": None, "warm_start": False})
            X, y = model._start(X_tr, y_tr)
            Xv = model._inputs(np.asarray(X_va, dtype=np.float32))
            config = model._config(len(y), int(self.max_epochs))
            steps = config.steps_per_epoch(len(y))
            # a slow start (a small learning rate still warming up, a plateau before the
            # non-linear features are found) is not the end of a run
            no_stop_before = max(math.ceil(config.warmup * config.max_epochs), int(EARLIEST_STOP * config.max_epochs))
            patience = max(3, math.ceil(int(self.patience) * config.min_steps_per_epoch / steps))
            codes = model._codes(np.asarray(y_va))
            history: list[np.ndarray] = []
            best = {"loss": math.inf, "accuracy": -1.0, "epoch": 0, "perfect": 0}

            inputs = model._inputs(X)
            # the statistics every prediction is made with: re-estimated as after a fit (a sample
            # of the inner training part: one forward pass of at most RECALIBRATION_SAMPLES)
            calibration = inputs[torch.randperm(len(inputs), generator=torch.Generator().manual_seed(0))[:RECALIBRATION_SAMPLES].to(inputs.device)]

            def monitor(epoch, module):
                recalibrate_batch_norm(module, calibration, model.precision_)
                scores = predict_scores(module, Xv, precision=model.precision_)
                history.append(model.classes_[scores.argmax(dim=1).cpu().numpy()])
                loss = float(torch.nn.functional.cross_entropy(scores, codes))
                accuracy = balanced_accuracy(y_va, history[-1])
                # Progress that counts: the loss down by 0.1 % or the balanced accuracy up by 0.01. A
                # loss that creeps down while every validation sample is already right (separable
                # data) kept runs going to the end of the schedule: 68–100 of 100 epochs.
                if loss < best["loss"] * (1 - MIN_LOSS_GAIN) or accuracy >= best["accuracy"] + MIN_ACCURACY_GAIN:
                    best["epoch"] = epoch
                best["loss"], best["accuracy"] = min(best["loss"], loss), max(best["accuracy"], accuracy)
                best["perfect"] = best["perfect"] + 1 if accuracy == 1.0 else 0
                return (not math.isfinite(loss) or best["perfect"] >= PERFECT_EPOCHS or epoch >= last
                        or epoch - max(best["epoch"], no_stop_before) >= patience)

            train(model.module_, inputs, model._codes(y), len(model.classes_), config, monitor=monitor)
            out += [({**params, "epochs": epoch}, predictions) for epoch, predictions in enumerate(history, 1)]
        return out

    def chosen_params(self) -> dict:
        return {"lr": float(self.lr), "weight_decay": float(self.weight_decay), "dropout": float(self.dropout),
                "center": bool(self.center), "epochs": int(self.max_epochs if self.epochs is None else self.epochs),
                **({"steps_per_epoch": int(self.steps_per_epoch)} if self.steps_per_epoch else {})}


class StrongMLP3(NetworkClassifier):
    """The paper's three-layer ReLU network (d/2, d/4 hidden units, dropout), strong recipe."""

    architecture = "mlp3"


class StrongMLP5(NetworkClassifier):
    """The paper's five-layer ReLU network with batch norm (d/2, d/2, d/2, d/4), strong recipe."""

    architecture = "mlp5"
    learning_rates = MLP5_LEARNING_RATES
    centred_candidate = False
