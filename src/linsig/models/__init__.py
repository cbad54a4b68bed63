"""Model registry: the names used on the command line and in result tables, per recipe.

Every model is a scikit-learn estimator. A name stands for a *model class* (ridge logistic
regression, a three-layer ReLU network, …); the recipe decides how it is trained:

* ``paper`` — the paper's PyTorch models and training loop (``logreg``, ``svm``, ``mlp3``, ``mlp5``);
  the paper had no other models, so the others have no paper recipe;
* ``strong`` — every model trained to what its class can reach (:mod:`linsig.models.linear`,
  :mod:`linsig.models.strong_networks`, :mod:`linsig.models.nonlinear`).

Estimator classes are imported when first used, so that listing models stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from linsig.errors import LinsigInputError
from linsig.models.estimators import (
    LinearSVMClassifier,
    LogisticRegressionClassifier,
    MLP3Classifier,
    MLP5Classifier,
    TorchClassifier,
)


@dataclass(frozen=True)
class ModelFamily:
    name: str
    linear: bool
    strong: str  # "module:Class" of the strong recipe's estimator
    paper: str | None  # "module:Class" of the paper recipe's estimator (None: not in the paper)
    description: str

    @property
    def estimators(self) -> dict[str, str | None]:
        """The estimator classes of this family, by the estimator set a recipe trains."""
        return {"strong": self.strong, "paper": self.paper}

    def estimator_class(self, estimators: str) -> type:
        """The class of the estimator set ``estimators`` (a recipe's ``estimators``)."""
        if estimators not in self.estimators:
            raise LinsigInputError(f"no estimator set {estimators!r}; choose one of {', '.join(self.estimators)}")
        path = self.estimators[estimators]
        if path is None:
            raise LinsigInputError(f"model {self.name!r} has no {estimators} recipe (the paper did not use it); "
                                   "use --recipe strong")
        module, _, cls = path.partition(":")
        return getattr(importlib.import_module(module), cls)


_E, _L, _S, _N = ("linsig.models.estimators", "linsig.models.linear", "linsig.models.strong_networks",
                  "linsig.models.nonlinear")
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    ModelFamily("logreg", True, f"{_L}:RidgeLogisticRegression", f"{_E}:LogisticRegressionClassifier",
                "ridge multinomial logistic regression"),
    ModelFamily("svm", True, f"{_L}:LinearSVM", f"{_E}:LinearSVMClassifier", "linear SVM"),
    ModelFamily("mlp3", False, f"{_S}:StrongMLP3", f"{_E}:MLP3Classifier",
                "the paper's 3-layer ReLU network"),
    ModelFamily("mlp5", False, f"{_S}:StrongMLP5", f"{_E}:MLP5Classifier",
                "the paper's 5-layer ReLU network with batch norm"),
    ModelFamily("rbf_svm", False, f"{_N}:RBFSVM", None, "RBF-kernel SVM"),
    ModelFamily("knn", False, f"{_N}:BalancedKNN", None, "k nearest neighbours"),
    ModelFamily("gbdt", False, f"{_N}:GradientBoostedTrees", None, "gradient-boosted trees"),
    ModelFamily("rf", False, f"{_N}:RandomForest", None, "random forest"),
)}
MODELS = tuple(FAMILIES)
LINEAR_MODELS = tuple(name for name, f in FAMILIES.items() if f.linear)
PAPER_MODELS = tuple(name for name, f in FAMILIES.items() if f.paper)
DEFAULT_MODELS = ("logreg", "svm", "mlp3", "mlp5")


def get_family(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise LinsigInputError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}")
    return FAMILIES[name]


def model_order(models) -> list[str]:
    """The paper's models first (logreg, svm, mlp3, mlp5), then any others by name."""
    models = set(models)
    return [m for m in DEFAULT_MODELS if m in models] + sorted(models - set(DEFAULT_MODELS))


def is_linear(name: str) -> bool:
    """Linear models are the baseline; every other model counts as non-linear in the verdict."""
    return name in LINEAR_MODELS


def make_model(name: str, recipe="strong", **params):
    """Instantiate a registered model for a recipe; parameters the estimator does not take are dropped.

    ``recipe``: a :class:`linsig.recipes.Recipe`, or the name of an estimator set (``"strong"``,
    ``"paper"``: the built-in recipes' own). Dropping lets one call site pass the run's whole
    training setup (epochs, device, threads, …) to every model, each taking what it uses.
    """
    cls = get_family(name).estimator_class(getattr(recipe, "estimators", recipe))
    accepted = cls().get_params()
    return cls(**{k: v for k, v in params.items() if k in accepted})


def parse_models(spec: str | list[str]) -> list[str]:
    names = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    for name in names:
        get_family(name)
    if not names:
        raise LinsigInputError("no models given")
    return names


__all__ = ["FAMILIES", "MODELS", "LINEAR_MODELS", "PAPER_MODELS", "DEFAULT_MODELS", "ModelFamily", "get_family",
           "is_linear", "model_order", "make_model", "parse_models", "TorchClassifier", "LogisticRegressionClassifier",
           "LinearSVMClassifier", "MLP3Classifier", "MLP5Classifier"]
