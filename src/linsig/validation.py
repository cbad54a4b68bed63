"""The one place that checks a run's parameters, before any data are read or a model trained.

:class:`linsig.evaluation.Settings` calls :func:`check_settings` when it is made, so a value from
the command line, an experiment file or the Python API is refused the same way and at once,
instead of as a traceback from inside torch or scikit-learn after hours of training (throwing
away the units already computed). Models and tuning presets are looked up in their registries
(:mod:`linsig.models`, :mod:`linsig.recipes`), so adding one needs no change here.

Errors are :class:`InvalidSetting`: the field at fault and the problem, so that each front end
names it its own way (``--epochs`` on the command line, ``settings.epochs`` in a file).
"""

from __future__ import annotations

import math
import numbers
from collections import Counter

from linsig.errors import LinsigInputError

#: Seeds feed NumPy's legacy ``RandomState`` (scikit-learn's ``random_state``): 32 bits.
MAX_SEED = 2**32 - 1


class InvalidSetting(LinsigInputError):
    """A setting with a bad value; ``field`` is the :class:`~linsig.evaluation.Settings` field."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _list(field: str, values, check=None) -> None:
    """A non-empty list without repeats (a repeat would duplicate result rows), each value checked."""
    values = list(values)
    if not values:
        raise InvalidSetting(field, "no values given")
    repeated = [v for v, n in Counter(values).items() if n > 1]
    if repeated:
        raise InvalidSetting(field, f"{repeated[0]!r} is given more than once")
    for value in values:
        if check is not None:
            check(value)


def _seed(value) -> None:
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise InvalidSetting("seeds", f"a seed must be an integer from 0 to 2**32 - 1 ({MAX_SEED}), got {value!r}")


def _fraction(value) -> None:
    if not _is_real(value) or not 0 < value <= 1:  # also refuses NaN
        raise InvalidSetting("fractions", f"training fractions must be in (0, 1], got {value!r}")


def _at_least(field: str, value, low: int) -> None:
    if not _is_int(value) or value < low:
        raise InvalidSetting(field, f"must be an integer of at least {low}, got {value!r}")


def check_settings(settings) -> None:
    """Raise :class:`InvalidSetting` for the first bad field of ``settings``."""
    from linsig.recipes import TUNINGS, get_recipe, resolve_tuning
    from linsig.signal import SIGNAL_MODES
    from linsig.splits import get_splitter

    def registered(field, lookup):
        def check(value):
            try:
                lookup(value)
            except LinsigInputError as exc:
                raise InvalidSetting(field, str(exc)) from None
        return check

    registered("recipe", get_recipe)(settings.recipe)
    _list("models", settings.models, registered("models", lambda m: get_recipe(settings.recipe).estimator_class(m)))
    if settings.tuning not in TUNINGS:
        raise InvalidSetting("tuning", f"unknown tuning {settings.tuning!r}; choose from {', '.join(TUNINGS)}")
    registered("tuning", lambda t: resolve_tuning(settings.recipe, t))(settings.tuning)

    def signal(value):
        if value not in SIGNAL_MODES:
            raise InvalidSetting("signals", f"unknown signal mode {value!r}; choose from {', '.join(SIGNAL_MODES)}")

    _list("signals", settings.signals, signal)
    registered("split", get_splitter)(settings.split)
    _list("seeds", settings.seeds, _seed)
    _list("fractions", settings.fractions, _fraction)
    _at_least("n_folds", settings.n_folds, 2)
    for field in ("max_epochs", "batch_size", "patience", "threads"):
        if getattr(settings, field) is not None or field == "threads":  # None: the recipe's default
            _at_least(field, getattr(settings, field), 1)
    if settings.lr is not None and not (_is_real(settings.lr) and math.isfinite(settings.lr) and settings.lr > 0):
        raise InvalidSetting("lr", f"the learning rate must be a positive number, got {settings.lr!r}")
    wd = settings.weight_decay
    if wd is not None and not (_is_real(wd) and math.isfinite(wd) and wd >= 0):
        raise InvalidSetting("weight_decay", f"must be a number of at least 0, got {wd!r}")
