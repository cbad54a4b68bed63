"""The paper's network architectures, sized from the input width d.

* ``linear`` — one Linear(d, k) layer (logistic regression, or the linear SVM with a hinge loss).
* ``mlp3`` — Linear(d, d/2) → ReLU → Dropout → Linear(d/2, d/4) → ReLU → Dropout → Linear(d/4, k);
  2500 and 1250 hidden units for d = 5000.
* ``mlp5`` — four hidden layers d/2, d/2, d/2, d/4, each Linear → BatchNorm1d → ReLU → Dropout,
  then Linear(d/4, k).
"""

from __future__ import annotations

from torch import nn

ARCHITECTURES = ("linear", "mlp3", "mlp5")


def hidden_sizes(architecture: str, n_features: int) -> tuple[int, ...]:
    half, quarter = max(1, n_features // 2), max(1, n_features // 4)
    return {"linear": (), "mlp3": (half, quarter), "mlp5": (half, half, half, quarter)}[architecture]


def build_network(architecture: str, n_features: int, n_classes: int, dropout: float = 0.5) -> nn.Module:
    """A freshly initialised network; seed torch before calling for repeatable weights."""
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
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)
