"""The one training loop shared by every linsig network (and the paper's linear models).

Both recipes run through :func:`train`:

* the paper's (shared/spec/anchor-parameters.md): Adam, a class-weighted loss, mini-batches of 16,
  gradient-norm clipping to 0.01, early stopping on a held-out ("tune") part with patience and
  best-weights restore;
* the strong recipe's: AdamW (decoupled weight decay), no clipping, a linear warm-up then cosine
  decay planned over ``planned_epochs``, stopped after ``max_epochs`` (the training length chosen by
  inner cross-validation), and a ``monitor`` called after every epoch (tuning records the inner
  validation predictions there and stops runs that no longer improve).

Data stay as tensors on the device for the whole fit; a mini-batch is one index_select, never
per-sample Python work.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

LOSSES = ("cross_entropy", "multi_margin")
#: ``auto``: bfloat16 where the hardware multiplies it fast, else float32 (see :func:`resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 50
    batch_size: int = 16
    patience: int = 7
    clip_grad_norm: float | None = 0.01
    loss: str = "cross_entropy"
    seed: int = 0
    optimizer: str = "adam"  # "adamw": weight decay decoupled from the gradient (Loshchilov & Hutter 2019)
    schedule: str = "constant"  # "cosine": linear warm-up, then cosine decay to 0 over planned_epochs
    planned_epochs: int | None = None  # length of the cosine schedule (default max_epochs)
    warmup: float = 0.05  # fraction of the planned steps spent warming up
    # Epochs added after ``max_epochs`` in which the learning rate falls linearly from where the
    # schedule was cut to 0: a schedule stopped mid-way keeps a large step size, and a short decay
    # at the end recovers what a schedule planned to that length reaches.
    cooldown_epochs: int = 0
    # An epoch is at least this many steps (cycling through the data more than once when it is
    # small), so that an epoch count means the same amount of training on every training size.
    min_steps_per_epoch: int | None = None
    # "bf16": the forward and backward matrix products in bfloat16 (autocast), the weights, the
    # optimiser's state and the loss in float32. A resolved precision: never "auto".
    precision: str = "fp32"

    def steps_per_epoch(self, n: int) -> int:
        """Optimiser steps in one epoch over ``n`` samples: one pass, or ``min_steps_per_epoch``."""
        return max(math.ceil(n / max(1, min(self.batch_size, n))), self.min_steps_per_epoch or 0)


@dataclass
class TrainResult:
    epochs_trained: int = 0
    best_epoch: int = 0
    train_loss: list[float] = field(default_factory=list)
    tune_loss: list[float] = field(default_factory=list)
    diverged: bool = False


def deterministic_kernels() -> None:
    """Make torch pick deterministic kernels (the paper's code: cudnn deterministic, benchmark off).

    Every fit seeds its own generators (initialisation, shuffling, dropout); this makes the GPU
    kernels repeatable too. Ops without a deterministic version warn instead of failing.
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from linsig.errors import LinsigInputError

        raise LinsigInputError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(device)


# ``auto`` chooses bf16 only for networks at least this wide: below ~500 inputs converting to and
# from bfloat16 costs more than the smaller products save (one thread, AVX-512 BF16: a step at 250
# inputs 0.6 → 1.3 ms, at 500 6.0 → 5.4 ms, at 1,000 17 → 11 ms, at 5,000 150 → 90 ms).
BF16_MIN_FEATURES = 1000


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively: CUDA with bf16, CPUs with AVX-512
    BF16 or AMX (elsewhere bfloat16 is emulated, and slower than float32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu", n_features: int | None = None) -> str:
    """The concrete precision of a fit: ``auto`` becomes ``bf16`` where :func:`bf16_is_fast` and the
    network has at least :data:`BF16_MIN_FEATURES` inputs (``None``: wide enough), else ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "auto":
        wide = n_features is None or n_features >= BF16_MIN_FEATURES
        return "bf16" if wide and bf16_is_fast(resolve_device(device)) else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    """The context a forward pass runs in: bfloat16 autocast for ``bf16``, nothing for ``fp32``
    (not a disabled autocast: it is entered at every step, and fp32 stays torch's plain path)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, scaled like scikit-learn's ``'balanced'``: n / (k · n_c).

    Classes absent from ``y`` get weight 0 (they contribute nothing either way).
    """
    counts = torch.bincount(y, minlength=n_classes).to(torch.float32)
    present = counts > 0
    weights = torch.zeros(n_classes, dtype=torch.float32, device=y.device)
    weights[present] = y.numel() / (present.sum() * counts[present])
    return weights


def make_loss(name: str, weights: torch.Tensor | None) -> nn.Module:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weights)
    if name == "multi_margin":
        # Crammer–Singer-style multiclass hinge, as the paper's PytorchSVM.
        return nn.MultiMarginLoss(weight=weights)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


@torch.no_grad()
def predict_scores(module: nn.Module, X: torch.Tensor, batch_size: int = 8192, precision: str = "fp32") -> torch.Tensor:
    """Decision scores (logits, float32) in eval mode, in large batches."""
    was_training = module.training
    module.eval()
    with autocast(precision, X.device):
        out = torch.cat([module(X[i : i + batch_size]).float() for i in range(0, X.shape[0], batch_size)])
    module.train(was_training)
    return out


@torch.no_grad()
def mean_loss(module: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str, n_classes: int,
              precision: str = "fp32") -> float:
    """Class-weighted mean loss of ``module`` on (X, y), weights from y's own class frequencies."""
    scores = predict_scores(module, X, precision=precision)
    return float(make_loss(loss, class_weights(y, n_classes))(scores, y))


def make_optimizer(module: nn.Module, config: TrainConfig, steps_per_epoch: int):
    """The optimizer and (for the cosine schedule) its per-step learning-rate scheduler."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {OPTIMIZERS}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}; choose one of {SCHEDULES}")
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    # The fused kernel does the update for all parameters in one call: with small batches the
    # per-step Python overhead, not the arithmetic, dominates small models.
    optimizer = kind(module.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if config.schedule == "constant":
        return optimizer, None
    total = max(1, (config.planned_epochs or config.max_epochs) * steps_per_epoch)
    warm = max(1, round(config.warmup * total))
    cut, cooldown = config.max_epochs * steps_per_epoch, config.cooldown_epochs * steps_per_epoch

    def planned(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, total - warm) / max(1, total - warm)))

    def factor(step: int) -> float:
        if cooldown and step >= cut:  # the factor of the schedule's last step, falling linearly towards 0
            return planned(cut - 1) * max(0.0, 1.0 - (step - cut + 1) / (cooldown + 1))
        return planned(step)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(
    module: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    config: TrainConfig,
    X_tune: torch.Tensor | None = None,
    y_tune: torch.Tensor | None = None,
    monitor: Callable[[int, nn.Module], bool] | None = None,
) -> TrainResult:
    """Train ``module`` in place; with a tune set, restore the weights of the best tune loss.

    ``X``/``y`` (and the tune set) must already be tensors on the module's device. Shuffling uses
    a generator seeded from ``config.seed``; dropout uses torch's global generator, seeded here,
    so a fit is repeatable bit for bit on the same device and thread count. ``monitor(epoch,
    module)`` runs after every epoch (1-based) and stops training by returning ``True``.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    weights = class_weights(y, n_classes)
    criterion = make_loss(config.loss, weights)
    n = X.shape[0]
    bs = max(1, min(config.batch_size, n))
    steps, passes, stop = config.steps_per_epoch(n), 1, n  # an epoch: one pass, the last batch possibly smaller
    if steps > math.ceil(n / bs):
        # small data: full batches drawn from as many concatenated permutations as the steps need
        passes, stop = math.ceil(steps * bs / n), steps * bs
    optimizer, scheduler = make_optimizer(module, config, steps)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    early_stopping = X_tune is not None and y_tune is not None and len(y_tune) > 0

    result = TrainResult()
    best_loss, best_state, since_best = math.inf, None, 0
    params = [p for p in module.parameters() if p.requires_grad]
    module.train()
    for epoch in range(config.max_epochs + config.cooldown_epochs):
        order = torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)]).to(X.device)
        # summed on the device: reading a loss back every step would make a GPU wait for each one
        total, seen = torch.zeros((), dtype=torch.float64, device=X.device), 0
        for start in range(0, stop, bs):
            idx = order[start : start + bs]
            if has_batchnorm and idx.numel() < 2:
                continue  # batch norm cannot normalise a batch of one sample
            xb, yb = X.index_select(0, idx), y.index_select(0, idx)
            optimizer.zero_grad(set_to_none=True)
            with autocast(config.precision, X.device):
                scores = module(xb)
            loss = criterion(scores.float(), yb)
            loss.backward()
            if config.clip_grad_norm:
                nn.utils.clip_grad_norm_(params, config.clip_grad_norm, foreach=True)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.detach().double() * idx.numel()
            seen += idx.numel()
        epoch_loss = float(total) / max(seen, 1)
        result.train_loss.append(epoch_loss)
        result.epochs_trained = epoch + 1
        if not math.isfinite(epoch_loss):
            result.diverged = True
            break
        if early_stopping:
            tune_loss = mean_loss(module, X_tune, y_tune, config.loss, n_classes, config.precision)
            result.tune_loss.append(tune_loss)
            if tune_loss < best_loss:
                best_loss, since_best, result.best_epoch = tune_loss, 0, epoch + 1
                best_state = copy.deepcopy(module.state_dict())
            else:
                since_best += 1
                if since_best >= config.patience:
                    break
        else:
            result.best_epoch = epoch + 1
        if monitor is not None and monitor(epoch + 1, module):
            break
    if early_stopping and best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return result
