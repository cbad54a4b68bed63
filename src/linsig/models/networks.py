"""The paper's network architectures, sized from the input width d.

* ``linear`` — one Linear(d, k) layer (logistic regression, or the linear SVM with a hinge loss).
* ``mlp3`` — Linear(d, d/2) → ReLU → Dropout → Linear(d/2, d/4) → ReLU → Dropout → Linear(d/4, k);
  2500 and 1250 hidden units for d = 5000.
* ``mlp5`` — four hidden layers d/2, d/2, d/2, d/4, each Linear → BatchNorm1d → ReLU → Dropout,
  then Linear(d/4, k).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ARCHITECTURES = ("linear", "mlp3", "mlp5")
_BIT_SHIFTS = torch.arange(32, dtype=torch.int32)


def fair_coins(shape: torch.Size) -> torch.Tensor:
    """0/1 integers of ``shape``, each 1 with probability 1/2, from 32 random bits per draw.

    Every bit of a uniform 32-bit word is an independent fair coin, so one draw of torch's
    generator serves 32 elements instead of one.
    """
    n = shape.numel()
    words = torch.randint(-2**31, 2**31, ((n + 31) // 32, 1), dtype=torch.int32)
    return ((words >> _BIT_SHIFTS) & 1).view(-1)[:n].view(shape)


class PackedDropout(nn.Dropout):
    """Inverted dropout whose CPU masks come from packed random bits (same distribution as ``nn.Dropout``).

    torch's CPU ``bernoulli_`` draws one random number per element at ~10 ns each: 24 % of an
    ``mlp5`` training step at 500 inputs (``benchmarks/bench_recipes.py``). At p = 1/2, the
    architecture's, a mask takes one 32-bit draw per 32 elements (forward + backward of a
    100 × 250 layer: 370 → 100 µs); other p compare uniforms with p (3× faster than
    ``bernoulli_``). On a GPU torch's own kernel is used. The masks differ from ``nn.Dropout``'s
    for the same seed, so the paper recipe keeps ``nn.Dropout`` (its results stay bit for bit).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu" or self.p >= 1:
            return F.dropout(x, self.p, True, self.inplace)
        keep = fair_coins(x.shape) if self.p == 0.5 else torch.rand(x.shape) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


def hidden_sizes(architecture: str, n_features: int) -> tuple[int, ...]:
    half, quarter = max(1, n_features // 2), max(1, n_features // 4)
    return {"linear": (), "mlp3": (half, quarter), "mlp5": (half, half, half, quarter)}[architecture]


def build_network(architecture: str, n_features: int, n_classes: int, dropout: float = 0.5,
                  packed_dropout: bool = False) -> nn.Module:
    """A freshly initialised network; seed torch before calling for repeatable weights.

    ``packed_dropout``: :class:`PackedDropout` instead of ``nn.Dropout`` (faster on the CPU,
    different masks for the same seed).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    sizes = hidden_sizes(architecture, n_features)
    batch_norm = architecture == "mlp5"
    layers: list[nn.Module] = []
    width = n_features
    for size in sizes:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.ReLU())
        if dropout:
            layers.append(PackedDropout(dropout) if packed_dropout else nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
