"""The one place that checks a run's parameters, before any data are read or a model trained.

:class:`linsig.evaluation.Settings` calls :func:`check_settings` when it is made, so a value from
the command line, an experiment file or the Python API is refused the same way and at once,
instead of as a traceback from inside torch or scikit-learn after hours of training (throwing
away the units already computed). Models and tuning presets are looked up in their registries
(:mod:`linsig.models`, :mod:`linsig.recipes`), so adding one needs no change here.

Errors are :class:`InvalidSetting`: the field at fault and the problem, so that each front end
names it its own way (``--epochs`` on the command line, ``settings.epochs`` in a file).

:data:`BOUNDS` is the one table of what every numeric setting may be — of a run, an experiment,
a report — read by :func:`check_settings`, by the command-line options (:func:`check_bound`
through :class:`linsig.cli.options.Bounded`) and by ``docs/guarantees.md``. Upper bounds exist
where a value that is finite but huge does harm before any result (``--permutations 1e9`` plans
a billion units, ``--threads 100000`` starts threads until the machine stalls). NaN is never
inside a bound.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter

from linsig.errors import LinsigInputError

#: Seeds feed NumPy's legacy ``RandomState`` (scikit-learn's ``random_state``): 32 bits.
MAX_SEED = 2**32 - 1
#: An exact permutation test's p-value cannot go below 1/(N + 1): 10,000 permutations resolve
#: p = 0.0001, and already cost 10,000 times the removed-signal grid (each one a unit per seed,
#: fold and model: more would only fill memory with a plan that can never finish).
MAX_PERMUTATIONS = 10_000
#: Threads of one training (torch, BLAS): more than a large server's cores only adds switching
#: (100,000 started some 32,000 threads and never progressed).
MAX_THREADS = 1024


class Bound:
    """A closed or open numeric range; ``integer``: whole numbers only."""

    def __init__(self, low=None, high=None, integer=False, low_open=False, high_open=False, note=""):
        self.low, self.high, self.integer = low, high, integer
        self.low_open, self.high_open, self.note = low_open, high_open, note

    def contains(self, value) -> bool:
        if not (_is_int(value) if self.integer else _is_real(value)):
            return False
        if not self.integer and not math.isfinite(value):  # NaN fails every comparison: refuse it here
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            where = f"in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low is not None:
            where = f"{'above' if self.low_open else 'of at least'} {self.low:g}"
        elif self.high is not None:
            where = f"{'below' if self.high_open else 'of at most'} {self.high:g}"
        else:
            return kind
        return f"{kind} {where}"


#: Every numeric setting: Settings fields (seeds, fractions, n_folds, …), and the options of
#: the commands around them (permutations, rope, jobs, lock_timeout, …).
BOUNDS: dict[str, Bound] = {
    "seeds": Bound(0, MAX_SEED, integer=True),
    "fractions": Bound(0, 1, low_open=True),
    "n_folds": Bound(2, 1000, integer=True),
    "max_epochs": Bound(1, 100_000, integer=True),
    "batch_size": Bound(1, 1_000_000, integer=True),
    "patience": Bound(1, 100_000, integer=True),
    "threads": Bound(1, MAX_THREADS, integer=True),
    "lr": Bound(0, None, low_open=True),
    "weight_decay": Bound(0, None),
    "permutations": Bound(0, MAX_PERMUTATIONS, integer=True),
    "rope": Bound(0, 1),
    "jobs": Bound(1, 1024, integer=True),
    "lock_timeout": Bound(1, None),
    "n_top_genes": Bound(0, None, integer=True),
    "min_groups": Bound(1, None, integer=True),
    "pairwise_top": Bound(2, None, integer=True),
}


def check_bound(name: str, value) -> None:
    """Raise :class:`InvalidSetting` (field ``name``) when ``value`` is outside ``BOUNDS[name]``."""
    bound = BOUNDS[name]
    if not bound.contains(value):
        raise InvalidSetting(name, f"must be {bound.describe()}, got {value!r}")


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
    if not BOUNDS["seeds"].contains(value):
        raise InvalidSetting("seeds", f"a seed must be an integer from 0 to 2**32 - 1 ({MAX_SEED}), got {value!r}")


def _fraction(value) -> None:
    if not BOUNDS["fractions"].contains(value):  # also refuses NaN
        raise InvalidSetting("fractions", f"training fractions must be in (0, 1], got {value!r}")


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
    from linsig.training import PRECISIONS

    if settings.precision is not None and settings.precision not in PRECISIONS:
        raise InvalidSetting("precision", f"unknown precision {settings.precision!r}; choose from {', '.join(PRECISIONS)}")
    _list("seeds", settings.seeds, _seed)
    _list("fractions", settings.fractions, _fraction)
    for field in ("n_folds", "max_epochs", "batch_size", "patience", "threads", "lr", "weight_decay"):
        if getattr(settings, field) is not None or field in ("n_folds", "threads"):  # None: the recipe's default
            check_bound(field, getattr(settings, field))
    _searched(settings)


def _searched(settings) -> None:
    """A value the hyperparameter search chooses cannot also be given: it would be ignored.

    Both recipes' searches choose the learning rate (the paper recipe also the weight decay), so
    ``--lr`` with a search would be recorded as the search's pick and the user's value dropped
    without a word; as scikit-learn's ``GridSearchCV`` overrides a parameter it searches, the
    honest answer is to refuse the pair and say how to get either.
    """
    from linsig.recipes import get_recipe

    recipe = get_recipe(settings.recipe)
    if recipe.resolve_tuning(settings.tuning) == "off":
        return
    for field, unset in recipe.searched.items():
        if getattr(settings, field) not in unset:
            raise InvalidSetting(field, f"is chosen by the hyperparameter search (tuning {settings.tuning!r}, "
                                        f"recipe {settings.recipe!r}), so a value given here would be ignored; "
                                        "give --tuning off (settings.tuning = \"off\") to train with it, or leave it out")
