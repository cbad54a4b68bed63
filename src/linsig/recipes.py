"""Training recipes: how hard each model is trained, and how its hyperparameters are searched.

* ``strong`` (the default) — every model trained to what its class can reach: linear models
  solved to their optimum, networks with a modern recipe, hyperparameters (including the
  training length of the networks) chosen by nested group-wise CV on each signal mode's own
  training data, with one objective for every model. See ``docs/method.md``.
* ``paper`` — the paper's training exactly (Adam, batch 16, gradient norm clipped to 0.01,
  ≤ 50 epochs, patience 7 on a held-out tune part; lr and weight decay from 25 random trials
  chosen on the *uncorrected* data), to reproduce its figures.

A recipe is a strategy object, the one place that knows what it means: which estimator class a
model name stands for, the search plan and how its winner is chosen, whether a search runs once
per unit or once per signal mode, the default learning rate and weight decay, and whether its
units are checked against the converged logistic regression (under-training). It also fixes the
defaults that ``Settings`` leaves open (``None`` / ``"auto"``): the tuning level, the epoch
budget, the batch size and the patience. Callers ask the recipe (``settings.training``) and
never compare its name; a new recipe is one object added to :data:`RECIPES`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from linsig.errors import LinsigInputError
from linsig.models import get_family, is_linear
from linsig.search import (
    DEFAULT_WITHIN_SE,
    RACE_WITHIN_SE,
    TuningResult,
    by_mean_loss,
    by_pooled_balanced_accuracy,
    candidates,
    get_preset,
)

# Inner folds of the strong recipe's searches (also the scikit-learn reference's, scripts/).
STRONG_INNER_FOLDS = 3
# Bumped whenever the strong recipe's training or search changes (same settings, other numbers):
# it is part of an experiment unit's key, so a resumed run never mixes results of two revisions.
# 2: a best candidate within one paired SE of the model's own parameters keeps them;
# 3: batch norm's statistics re-estimated without dropout before every prediction (mlp5);
# 4: gbdt splits on 20 % of the features, rf stops once its out-of-bag votes hold (issue 25);
# 5: the networks' searches race: runs that clearly trail after an inner fold stop there (issue 25);
# 6: a network's first learning rate perfect on every inner fold wins without the others (issue 25)
STRONG_REVISION = 6


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its defaults and every decision that depends on it."""

    name: str
    tunings: tuple[str, ...]  # the tuning levels it accepts, the default first
    max_epochs: int
    batch_size: int | None  # None: the model picks it from the training-set size
    patience: int
    description: str
    #: which estimator of each model family it trains (``linsig.models.ModelFamily.estimators``)
    estimators: str = "strong"
    #: True: one search per signal mode, on that mode's own corrected data; False: one per unit,
    #: on the uncorrected data, reused for every signal mode
    tunes_per_signal: bool = True
    #: part of every unit key: a change to how the recipe trains recomputes its units (None: none)
    revision: int | None = None
    #: settings its searches choose, with the values that mean "not given" (a given one would be ignored)
    searched: dict = field(default_factory=lambda: {"lr": (None,)})
    #: the networks' arithmetic when a run does not choose (``linsig.training.PRECISIONS``). fp32
    #: for both recipes: bf16 was 1.6–1.8× faster per step at 5,000 genes but lower by 0.01–0.02
    #: balanced accuracy in 8 of 12 seed-paired comparisons (docs/performance.md), and a default
    #: that follows the hardware would make the same command give other numbers on another CPU
    precision: str = "fp32"
    #: a search keeps the model's own parameters unless a candidate beats them by more than this
    #: many paired standard errors of pooled balanced accuracy (None: the best always wins)
    default_within_se: float | None = DEFAULT_WITHIN_SE
    #: after each inner fold, a candidate run trailing the leader by more than this many paired
    #: standard errors is not run on the later folds (``Tunable.separate_runs`` models; None: no racing)
    race_within_se: float | None = RACE_WITHIN_SE

    # -- models ---------------------------------------------------------------------------------
    def estimator_class(self, model: str) -> type:
        """The estimator class a model name means under this recipe."""
        return get_family(model).estimator_class(self.estimators)

    def optimiser_params(self, lr: float | None, weight_decay: float | None) -> dict:
        """The learning rate and weight decay a run passes to its estimators (absent: the model's default)."""
        out = {}
        if lr is not None:
            out["lr"] = lr
        if weight_decay is not None:
            out["weight_decay"] = weight_decay
        return out

    def default_weight_decay(self, weight_decay: float | None) -> float | None:
        return weight_decay

    # -- search ---------------------------------------------------------------------------------
    def resolve_tuning(self, tuning: str) -> str:
        """The concrete tuning level: ``auto`` becomes the recipe's default."""
        if tuning == "auto":
            return self.tunings[0]
        if tuning not in self.tunings:
            owners = [r.name for r in RECIPES.values() if tuning in r.tunings]
            hint = f"; it belongs to recipe {owners[0]!r}: use --recipe {owners[0]}" if owners else ""
            raise LinsigInputError(f"tuning {tuning!r} does not go with recipe {self.name!r} "
                                   f"(choose auto, {', '.join(self.tunings)}){hint}")
        return tuning

    def search_plan(self, estimator, level: str, seed: int, n_samples: int | None = None) -> tuple[list[dict], int]:
        """The candidates a search tries and its number of inner folds (``[]``: no search)."""
        if level == "off":
            return [], 0
        return estimator.search_space(level, n_samples), STRONG_INNER_FOLDS

    def nothing_to_choose(self, estimator, plan: list[dict]) -> bool:
        """A search of one candidate with no path along it: inner fits would only score it.

        (``rf``'s fast search was 6 of a demo unit's 12 forests.) A network's single learning rate
        still has its training length to choose, so it is searched.
        """
        axis = getattr(estimator, "path_axis", None)
        return len(plan) == 1 and (axis is None or axis in plan[0])

    def choose(self, estimator, X, y, groups, plan, folds, prepare=None) -> TuningResult | None:
        """The winner of ``plan`` on the inner ``folds`` (None: no candidate could be scored)."""
        return by_pooled_balanced_accuracy(estimator, X, y, groups, plan, folds, prepare, self.default_within_se,
                                           self.race_within_se)

    def search_cost(self, estimator, level: str, n_signals: int) -> tuple[int, int, int]:
        """``(candidate runs, inner folds, searches)`` of one unit, for the dry run's plan.

        A candidate that scores a whole path (the penalty path of ``logreg``, every epoch of a
        network run) counts once.
        """
        plan, folds = self.search_plan(estimator, level, 0)
        if plan and self.nothing_to_choose(estimator, plan):
            return 0, folds, 0
        axis = getattr(estimator, "path_axis", None)
        paths = {json.dumps({k: v for k, v in p.items() if k != axis}, sort_keys=True) for p in plan}
        return len(paths), folds, (n_signals if self.tunes_per_signal else 1)

    # -- the under-training check ---------------------------------------------------------------
    #: the recipe whose converged ``logreg`` a unit is checked against (None: no check)
    reference: str | None = None

    def checks_undertraining(self, model: str, models) -> bool:
        """Whether a unit of ``model`` also fits the converged ``logreg`` on its splits.

        Once per (seed, fold): in the ``logreg`` unit, or the ``svm`` unit when the run has no ``logreg``.
        """
        return self.reference is not None and is_linear(model) and (model == "logreg" or "logreg" not in models)

    def unit_key(self) -> dict:
        """What the recipe adds to an experiment unit's key."""
        return {} if self.revision is None else {"recipe_revision": self.revision}


@dataclass(frozen=True)
class PaperRecipe(Recipe):
    """The paper's protocol: lr and weight decay by mean inner loss on the uncorrected data, once per unit."""

    estimators: str = "paper"
    tunes_per_signal: bool = False
    reference: str | None = "strong"
    # 0.0 is the weight decay Settings itself fills in for the paper recipe
    searched: dict = field(default_factory=lambda: {"lr": (None,), "weight_decay": (None, 0.0)})

    def optimiser_params(self, lr, weight_decay):
        # the paper's estimators take lr=None as "the paper's default" explicitly
        return {"lr": lr, **super().optimiser_params(None, weight_decay)}

    def default_weight_decay(self, weight_decay):
        return 0.0 if weight_decay is None else weight_decay

    def search_plan(self, estimator, level, seed, n_samples=None):
        if level == "off":
            return [], 0
        preset = get_preset(level)
        return candidates(preset, seed), preset.inner_folds

    def nothing_to_choose(self, estimator, plan):
        return False

    def choose(self, estimator, X, y, groups, plan, folds, prepare=None):
        return by_mean_loss(estimator, X, y, groups, plan, folds)


RECIPES: dict[str, Recipe] = {
    "strong": Recipe(
        "strong", tunings=("full", "fast", "off"), max_epochs=100, batch_size=None, patience=20,
        description="every model at its capacity: converged linear models, AdamW + cosine networks, "
                    "nested group-wise CV per signal mode", revision=STRONG_REVISION),
    "paper": PaperRecipe(
        "paper", tunings=("paper", "fast", "off"), max_epochs=50, batch_size=16, patience=7,
        description="the paper's exact training (Adam, batch 16, clipping 0.01, early stopping, "
                    "lr/weight decay tuned on uncorrected data)"),
}
TUNINGS = ("auto",) + tuple(dict.fromkeys(t for r in RECIPES.values() for t in r.tunings))


def get_recipe(recipe: str | Recipe) -> Recipe:
    """The recipe named ``recipe`` (a :class:`Recipe` is returned as it is)."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise LinsigInputError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[recipe]


def resolve_tuning(recipe: str | Recipe, tuning: str) -> str:
    """The concrete tuning level: ``auto`` becomes the recipe's default."""
    return get_recipe(recipe).resolve_tuning(tuning)
