"""Training recipes: how hard each model is trained, and how its hyperparameters are searched.

* ``strong`` (the default) — every model trained to what its class can reach: linear models
  solved to their optimum, networks with a modern recipe, hyperparameters (including the
  training length of the networks) chosen by nested group-wise CV on each signal mode's own
  training data, with one objective for every model. See ``docs/method.md``.
* ``paper`` — the paper's training exactly (Adam, batch 16, gradient norm clipped to 0.01,
  ≤ 50 epochs, patience 7 on a held-out tune part; lr and weight decay from 25 random trials
  chosen on the *uncorrected* data), to reproduce its figures.

A recipe fixes the defaults that ``Settings`` leaves open (``None`` / ``"auto"``): the tuning
level, the epoch budget, the batch size and the patience.
"""

from __future__ import annotations

from dataclasses import dataclass

from linsig.errors import LinsigInputError


@dataclass(frozen=True)
class Recipe:
    name: str
    tunings: tuple[str, ...]  # the tuning levels it accepts, the default first
    max_epochs: int
    batch_size: int | None  # None: the model picks it from the training-set size
    patience: int
    description: str


RECIPES: dict[str, Recipe] = {
    "strong": Recipe(
        "strong", tunings=("full", "fast", "off"), max_epochs=100, batch_size=None, patience=20,
        description="every model at its capacity: converged linear models, AdamW + cosine networks, "
                    "nested group-wise CV per signal mode"),
    "paper": Recipe(
        "paper", tunings=("paper", "fast", "off"), max_epochs=50, batch_size=16, patience=7,
        description="the paper's exact training (Adam, batch 16, clipping 0.01, early stopping, "
                    "lr/weight decay tuned on uncorrected data)"),
}
# Bumped whenever the strong recipe's training or search changes (same settings, other numbers):
# it is part of an experiment unit's key, so a resumed run never mixes results of two revisions.
STRONG_REVISION = 1
TUNINGS = ("auto",) + tuple(dict.fromkeys(t for r in RECIPES.values() for t in r.tunings))


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise LinsigInputError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def resolve_tuning(recipe: str, tuning: str) -> str:
    """The concrete tuning level: ``auto`` becomes the recipe's default."""
    r = get_recipe(recipe)
    if tuning == "auto":
        return r.tunings[0]
    if tuning not in r.tunings:
        hint = ("; it is the paper's protocol: use --recipe paper" if tuning == "paper"
                else "; it belongs to the strong recipe" if tuning in RECIPES["strong"].tunings else "")
        raise LinsigInputError(f"tuning {tuning!r} does not go with recipe {recipe!r} "
                               f"(choose auto, {', '.join(r.tunings)}){hint}")
    return tuning
