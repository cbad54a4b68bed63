"""Model registry: the names used on the command line and in result tables."""

from __future__ import annotations

from linsig.errors import LinsigInputError
from linsig.models.estimators import (
    LinearSVMClassifier,
    LogisticRegressionClassifier,
    MLP3Classifier,
    MLP5Classifier,
    TorchClassifier,
)

MODELS: dict[str, type[TorchClassifier]] = {
    "logreg": LogisticRegressionClassifier,
    "svm": LinearSVMClassifier,
    "mlp3": MLP3Classifier,
    "mlp5": MLP5Classifier,
}
LINEAR_MODELS = ("logreg", "svm")


def make_model(name: str, **params) -> TorchClassifier:
    """Instantiate a registered model by name with estimator parameters."""
    if name not in MODELS:
        raise LinsigInputError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](**params)


def parse_models(spec: str | list[str]) -> list[str]:
    names = [m.strip() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    for name in names:
        if name not in MODELS:
            raise LinsigInputError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    if not names:
        raise LinsigInputError("no models given")
    return names


__all__ = ["MODELS", "LINEAR_MODELS", "make_model", "parse_models", "TorchClassifier",
           "LogisticRegressionClassifier", "LinearSVMClassifier", "MLP3Classifier", "MLP5Classifier"]
