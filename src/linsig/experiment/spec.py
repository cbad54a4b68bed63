"""Experiment files: parse, validate and resolve a declarative TOML/YAML description of a grid.

An experiment file names datasets (``[data.NAME]``), the tasks on each, and one ``[settings]``
block (the :class:`~linsig.evaluation.Settings` of ``linsig run``, with ``split`` allowed to be a
list). An optional ``[pretraining]`` table turns it into the S4 experiment. See
``docs/experiments.md`` for the format. Every error names the file and the key at fault.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from linsig.errors import LinsigInputError
from linsig.evaluation import Settings
from linsig.signal import SIGNAL_MODES as SIGNALS
from linsig.tasks import PRESETS as TASK_PRESETS
from linsig.validation import InvalidSetting

SUFFIXES = (".toml", ".yaml", ".yml")
TOP_KEYS = ("name", "description", "data", "tasks", "settings", "pretraining")
TASK_KEYS = ("label", "group", "classes", "min_groups", "pairwise_top", "preset")
SOURCE_KEYS = ("path", "simulate", "example")
DATASET_KEYS = {
    "path": ("path", "metadata", "orientation", "n_top_genes", "scale", "normalize", "missing", "na_values", "name",
             "tasks"),
    "example": ("example", "n_top_genes", "scale", "normalize", "missing", "na_values", "name", "tasks"),
    "simulate": ("simulate", "samples", "features", "groups", "shift", "balance", "seed", "name", "tasks"),
}
# file key -> (Settings field, type)
SETTINGS_KEYS = {
    "models": ("models", "str_list"), "seeds": ("seeds", "int_list"), "folds": ("n_folds", int),
    "fractions": ("fractions", "float_list"), "split": ("split", "str_list"), "signals": ("signals", "str_list"),
    "recipe": ("recipe", str), "tuning": ("tuning", str), "epochs": ("max_epochs", int), "batch_size": ("batch_size", int),
    "patience": ("patience", int), "device": ("device", str), "precision": ("precision", str), "lr": ("lr", float),
    "weight_decay": ("weight_decay", float),
}
if "threads" in Settings.__dataclass_fields__:  # torch threads per training, where Settings has them
    SETTINGS_KEYS["threads"] = ("threads", int)
DEVICES = ("auto", "cpu", "cuda")
# words of Settings' own error messages -> the file key to name
_MESSAGE_KEYS = (("recipe", "recipe"), ("model", "models"), ("tuning", "tuning"), ("signal", "signals"), ("split", "split"),
                 ("seeds", "seeds"), ("fractions", "fractions"), ("n_folds", "folds"), ("max_epochs", "epochs"),
                 ("batch_size", "batch_size"), ("threads", "threads"), ("precision", "precision"))
# file key of a [data.NAME] simulation -> argument of linsig.data.simulate.simulate
SIMULATION_ARGS = {"simulate": "kind", "samples": "n_samples", "features": "n_features", "groups": "n_groups",
                   "shift": "shift", "balance": "class_balance", "seed": "seed"}
PRETRAINING_KEYS = ("proportions",)
DEFAULT_PROPORTIONS = (0.4, 0.4, 0.2)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of an experiment: where the data come from and which tasks run on it."""

    key: str  # the NAME of [data.NAME]
    source: dict  # canonical, JSON-like: what the unit hash and the worker see
    tasks: tuple[dict, ...]


@dataclass
class Experiment:
    name: str
    description: str
    origin: str  # the file (or preset) it came from
    datasets: list[DatasetSpec]
    settings: list[Settings]  # one per split mode
    pretraining: dict | None = None  # {"proportions": [...]} for the S4 experiment
    document: dict = field(default_factory=dict)  # the resolved file, for the run's summary.json
    permutations: int = 0  # label permutations per task (settings.permutations)

    def to_dict(self) -> dict:
        return {"experiment": self.name, "origin": self.origin, "document": self.document}


# ---------------------------------------------------------------------------------------------
# Shipped presets
# ---------------------------------------------------------------------------------------------

def _preset_dir():
    return resources.files("linsig.experiment") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name.rsplit(".", 1)[0] for p in _preset_dir().iterdir() if p.name.endswith(SUFFIXES))


def preset_path(name: str) -> Path:
    for suffix in SUFFIXES:
        candidate = _preset_dir() / f"{name}{suffix}"
        if candidate.is_file():
            return Path(str(candidate))
    raise LinsigInputError(f"no experiment file or preset {name!r}; presets: {', '.join(preset_names())}")


def locate(source: str | os.PathLike) -> Path:
    """A path to an experiment file, or the file of the shipped preset with that name."""
    path = Path(source)
    if path.is_file():
        return path
    if path.suffix.lower() in SUFFIXES:
        raise LinsigInputError(f"{path}: no such experiment file")
    # a folder named like the preset (often the preset's own --out) must not hide the preset
    return preset_path(str(source))


def read_document(path: Path) -> dict:
    try:
        text = path.read_text()
        doc = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LinsigInputError(f"{path}: not a valid {path.suffix.lstrip('.').upper()} file ({exc})") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise LinsigInputError(f"{path}: the top level must be a table/mapping")
    return doc


# ---------------------------------------------------------------------------------------------
# Overrides and variables
# ---------------------------------------------------------------------------------------------

def parse_assignments(items) -> dict[str, Any]:
    """``["a.b=1", "GTEX_H5AD=/x"]`` → ``{"a.b": 1, "GTEX_H5AD": "/x"}`` (values parsed as YAML scalars)."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise LinsigInputError(f"--set {item!r}: expected KEY=VALUE")
        try:
            parsed = yaml.safe_load(value) if value.strip() and "." in key else value
        except yaml.YAMLError:
            parsed = value
        out[key.strip()] = value if isinstance(parsed, dict) else parsed  # variables stay verbatim
    return out


def apply_overrides(doc: dict, overrides: dict[str, Any], origin: str) -> tuple[dict, dict[str, str]]:
    """Apply dotted-key overrides to ``doc``; keys without a dot are variables for ``${NAME}``.

    A scalar assigned to a dataset table (``data.gtex=/path/gtex.h5ad``) sets that dataset's ``path``.
    """
    variables = {}
    for key, value in overrides.items():
        if "." not in key:
            variables[key] = str(value)
            continue
        parts = key.split(".")
        node = doc
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise LinsigInputError(f"{origin}: --set {key}: {'.'.join(parts[:i + 1])} is not a table")
            node = child
        last = parts[-1]
        if isinstance(node.get(last), dict) and not isinstance(value, dict) and parts[0] == "data" and len(parts) == 2:
            node[last]["path"] = value
            node[last].pop("example", None)
            node[last].pop("simulate", None)
        else:
            node[last] = value
    return doc, variables


def _substitute(value, where: str, origin: str, variables: dict, strict: bool):
    if isinstance(value, dict):
        return {k: _substitute(v, f"{where}.{k}" if where else k, origin, variables, strict) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{where}[{i}]", origin, variables, strict) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match):
        name, default = match.group(1), match.group(2)
        if name in variables:
            return variables[name]
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        if strict:
            raise LinsigInputError(
                f"{origin}: {where}: variable ${{{name}}} is not set; export {name}=… or pass --set {name}=…"
            )
        return match.group(0)

    return _VAR.sub(repl, value)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

def _fail(origin: str, where: str, message: str):
    raise LinsigInputError(f"{origin}: {where}: {message}")


def _check_keys(table, allowed, where: str, origin: str) -> None:
    if not isinstance(table, dict):
        _fail(origin, where, f"expected a table/mapping, got {type(table).__name__}")
    unknown = [k for k in table if k not in allowed]
    if unknown:
        _fail(origin, f"{where}.{unknown[0]}" if where else unknown[0],
              f"unknown key; allowed keys: {', '.join(allowed)}")


def _convert(value, kind, where: str, origin: str):
    def one(v, typ):
        if typ is str and isinstance(v, bool):  # YAML reads an unquoted off/on as a boolean
            return "on" if v else "off"
        if typ is int and isinstance(v, bool) or typ is float and isinstance(v, bool):
            raise TypeError
        if typ is int and not (isinstance(v, int) or isinstance(v, str) and v.strip().lstrip("-").isdigit()):
            raise TypeError
        return typ(v.strip() if isinstance(v, str) else v)

    try:
        if kind in ("str_list", "int_list", "float_list"):
            typ = {"str_list": str, "int_list": int, "float_list": float}[kind]
            items = [s for s in value.split(",") if s.strip()] if isinstance(value, str) else (
                value if isinstance(value, list) else [value])
            return tuple(one(v, typ) for v in items)
        return one(value, kind)
    except (TypeError, ValueError):
        want = {"str_list": "a list of strings", "int_list": "a list of integers",
                "float_list": "a list of numbers", int: "an integer", float: "a number", str: "a string"}[kind]
        _fail(origin, where, f"expected {want}, got {value!r}")


def _permutations(table: dict, origin: str) -> int:
    """``settings.permutations``: label permutations per task, units of the grid (not a Settings
    field: a unit's own permutation index is part of its key, the count is not)."""
    from linsig.permutation import check_permutations

    if table.get("permutations") is None:
        return 0
    n = _convert(table["permutations"], int, "settings.permutations", origin)
    signals = _convert(table.get("signals", list(Settings().signals)), "str_list", "settings.signals", origin)
    try:
        check_permutations(n, signals, "settings.permutations")
    except LinsigInputError as exc:
        raise LinsigInputError(f"{origin}: {exc}") from None
    return n


def _settings(table: dict, origin: str) -> list[Settings]:
    _check_keys(table, tuple(SETTINGS_KEYS) + ("permutations",), "settings", origin)
    kwargs = {}
    for key, value in table.items():
        if key == "permutations":
            continue
        name, kind = SETTINGS_KEYS[key]
        # an explicit null means "the recipe's default" for the values a recipe fills in
        nullable = ("lr", "weight_decay", "epochs", "batch_size", "patience", "precision")
        kwargs[name] = None if key in nullable and value is None else _convert(value, kind, f"settings.{key}", origin)
    if kwargs.get("device", "auto") not in DEVICES:
        _fail(origin, "settings.device", f"must be one of {', '.join(DEVICES)}, not {kwargs['device']!r}")
    bad = [s for s in kwargs.get("signals", ()) if s not in SIGNALS]
    if bad:
        _fail(origin, "settings.signals", f"unknown signal mode {bad[0]!r}; choose from {', '.join(SIGNALS)}")
    split_modes = kwargs.pop("split", None) or (None,)
    out = []
    for split in split_modes:
        try:
            out.append(Settings(**kwargs) if split is None else Settings(split=split, **kwargs))
        except InvalidSetting as exc:
            key = next((k for k, (name, _) in SETTINGS_KEYS.items() if name == exc.field), None)
            _fail(origin, f"settings.{key}" if key else "settings", exc.problem if key else str(exc))
        except LinsigInputError as exc:
            key = next((k for word, k in _MESSAGE_KEYS if word in str(exc)), None)
            _fail(origin, f"settings.{key}" if key else "settings", str(exc))
    return out


def _task(table, where: str, origin: str) -> dict:
    _check_keys(table, TASK_KEYS, where, origin)
    task = {k: v for k, v in table.items() if v is not None}
    if "preset" in task:
        if task["preset"] not in TASK_PRESETS:
            _fail(origin, f"{where}.preset", f"unknown task preset {task['preset']!r}; choose one of {', '.join(TASK_PRESETS)}")
        if len(task) > 1:
            _fail(origin, where, "a task with a preset takes no other keys")
        return task
    if "label" not in task:
        _fail(origin, where, "a task needs a label column (label = …) or a preset (preset = …)")
    for key in ("label", "group"):
        if key in task and not isinstance(task[key], str):
            _fail(origin, f"{where}.{key}", f"expected a column name, got {task[key]!r}")
    if "classes" in task:
        task["classes"] = list(_convert(task["classes"], "str_list", f"{where}.classes", origin))
    for key, low in (("min_groups", 1), ("pairwise_top", 2)):
        if key in task:
            task[key] = _convert(task[key], int, f"{where}.{key}", origin)
            if task[key] < low:
                _fail(origin, f"{where}.{key}", f"must be at least {low}")
    return task


def _tasks(value, where: str, origin: str) -> tuple[dict, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        _fail(origin, where, "no tasks given")
    return tuple(_task(t, f"{where}[{i}]" if isinstance(value, list) else where, origin) for i, t in enumerate(items))


def _fingerprint(path: Path) -> dict:
    """What a unit key knows of a data file: its content (SHA-256, cached), never its mtime."""
    from linsig.data.identity import content_fingerprint

    return content_fingerprint(path)


def _file(value, where: str, origin: str, base: Path, check: bool) -> str:
    if not isinstance(value, str) or not value:
        _fail(origin, where, f"expected a file path, got {value!r}")
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = base / path
    if check and not path.is_file():
        _fail(origin, where, f"{path}: no such file")
    return str(path.resolve() if check else path)


def _preprocessing(table: dict, source: dict, where: str, origin: str) -> None:
    """``normalize``, ``missing`` and ``na_values`` of a file dataset; only non-defaults enter the source
    (unit keys stay put)."""
    from linsig.data.missing import MISSING_MODES
    from linsig.data.normalize import (
        NORMALIZATIONS,
        ContradictoryNormalization,
        normalization_key,
        resolve_normalization,
    )

    normalize = table.get("normalize")
    try:  # the group study-zscore needs is checked with the tasks (_normalize_group)
        method = resolve_normalization(normalize, table.get("scale", True))
    except ContradictoryNormalization as exc:
        _fail(origin, f"{where}.scale", str(exc))
    except LinsigInputError:
        _fail(origin, f"{where}.normalize", f"must be one of {', '.join(NORMALIZATIONS)}, not {normalize!r}")
    source.update(normalization_key(method))
    missing = table.get("missing", "error")
    if missing not in MISSING_MODES:
        _fail(origin, f"{where}.missing", f"must be one of {', '.join(MISSING_MODES)}, not {missing!r}")
    if missing != "error":
        source["missing"] = missing
    if table.get("na_values") is not None:  # metadata cells that mean missing, e.g. ["NA"] for R tables
        raw = table["na_values"]
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            # a number would be compared as Python writes it (1.0), not as the table does (1): ask for text
            _fail(origin, f"{where}.na_values", f"expected a list of strings (quoted, as written in the metadata "
                  f"table), got {raw!r}")
        na_values = list(dict.fromkeys(v.strip() for v in items if v.strip()))
        if na_values:
            source["na_values"] = na_values


def _normalize_group(tasks, where: str, origin: str) -> str:
    """The group column study-zscore uses: the one group column the dataset's tasks share."""
    groups = {t.get("group") or (TASK_PRESETS[t["preset"]].group if "preset" in t else None) for t in tasks}
    if len(groups) != 1 or None in groups:
        _fail(origin, f"{where}.normalize", "study-zscore standardises within the tasks' group column; every task "
              f"of this dataset must name the same group (found: {', '.join(sorted(map(str, groups)))})")
    return groups.pop()


def _dataset(key: str, table, origin: str, base: Path, default_tasks, check: bool) -> DatasetSpec:
    where = f"data.{key}"
    if isinstance(table, str):
        table = {"path": table}
    if not isinstance(table, dict):
        _fail(origin, where, "expected a table with path = …, simulate = … or example = …")
    kinds = [k for k in SOURCE_KEYS if k in table]
    if len(kinds) != 1:
        _fail(origin, where, "give exactly one of path = …, simulate = … or example = …")
    kind = kinds[0]
    _check_keys(table, DATASET_KEYS[kind], where, origin)
    source: dict[str, Any] = {}
    if kind == "simulate":
        from linsig.data.simulate import KINDS, InvalidSimulation, check_simulation

        if table["simulate"] not in KINDS:
            _fail(origin, f"{where}.simulate", f"unknown simulation {table['simulate']!r}; choose one of {', '.join(KINDS)}")
        source["simulate"] = table["simulate"]
        for name, typ in (("samples", int), ("features", int), ("groups", int), ("seed", int),
                          ("shift", float), ("balance", float)):
            if name in table and table[name] is not None:
                source[name] = _convert(table[name], typ, f"{where}.{name}", origin)
        try:  # now, not when the first unit simulates the data
            check_simulation(**{SIMULATION_ARGS[k]: v for k, v in source.items()})
        except InvalidSimulation as exc:
            _fail(origin, f"{where}.{next(k for k, v in SIMULATION_ARGS.items() if v == exc.field)}", exc.problem)
    else:
        if kind == "example":
            from linsig.data.examples import EXAMPLES, example_path

            if table["example"] not in EXAMPLES:
                _fail(origin, f"{where}.example", f"unknown example {table['example']!r}; choose one of {', '.join(EXAMPLES)}")
            source["path"] = str(example_path(table["example"]))
        else:
            source["path"] = _file(table["path"], f"{where}.path", origin, base, check)
            if table.get("metadata") is not None:
                source["metadata"] = _file(table["metadata"], f"{where}.metadata", origin, base, check)
            orientation = table.get("orientation", "auto")
            if orientation not in ("auto", "samples-by-genes", "genes-by-samples"):
                _fail(origin, f"{where}.orientation", f"must be auto, samples-by-genes or genes-by-samples, not {orientation!r}")
            source["orientation"] = orientation
        n_top = table.get("n_top_genes", 5000)
        source["n_top_genes"] = None if n_top in (None, 0) else _convert(n_top, int, f"{where}.n_top_genes", origin)
        if not isinstance(table.get("scale", True), bool):
            _fail(origin, f"{where}.scale", f"expected true or false, got {table['scale']!r}")
        _preprocessing(table, source, where, origin)
        if check:
            source["fingerprint"] = {
                name: _fingerprint(Path(source[name])) for name in ("path", "metadata") if name in source
            }
    if "tasks" in table:
        tasks = _tasks(table["tasks"], f"{where}.tasks", origin)
    elif default_tasks:
        tasks = default_tasks
    elif kind == "simulate":
        tasks = ({"label": "label", "group": "group"},)
    else:
        _fail(origin, f"{where}.tasks", "no tasks for this dataset (give tasks here or a top-level tasks list)")
    if source.get("normalize") == "study-zscore":
        source["normalize_group"] = _normalize_group(tasks, where, origin)
    if "name" in table:
        if not isinstance(table["name"], str) or not table["name"]:
            _fail(origin, f"{where}.name", f"expected a dataset name, got {table['name']!r}")
        source["name"] = table["name"]
    return DatasetSpec(key=key, source=source, tasks=tasks)


def parse_document(doc: dict, origin: str, base: Path, check_files: bool = True) -> Experiment:
    """Validate a (variable-resolved) document and build the :class:`Experiment`."""
    _check_keys(doc, TOP_KEYS, "", origin)
    data = doc.get("data")
    if not data or not isinstance(data, dict):
        _fail(origin, "data", "no datasets; add at least one [data.NAME] table")
    default_tasks = _tasks(doc["tasks"], "tasks", origin) if doc.get("tasks") is not None else None
    datasets = [_dataset(str(k), v, origin, base, default_tasks, check_files) for k, v in data.items()]
    settings = _settings(doc.get("settings") or {}, origin)
    permutations = _permutations(doc.get("settings") or {}, origin)
    pretraining = None
    if "pretraining" in doc:
        table = doc["pretraining"] if doc["pretraining"] is not None else {}
        _check_keys(table, PRETRAINING_KEYS, "pretraining", origin)
        props = _convert(table.get("proportions", list(DEFAULT_PROPORTIONS)), "float_list",
                         "pretraining.proportions", origin)
        if len(props) != 3 or any(p <= 0 for p in props):
            _fail(origin, "pretraining.proportions", f"expected three positive numbers (pretraining, training, validation), got {list(props)}")
        total = sum(props)
        pretraining = {"proportions": [p / total for p in props]}
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            _fail(origin, key, f"expected a string, got {doc[key]!r}")
    name = doc.get("name") or Path(origin).name.rsplit(".", 1)[0]
    if permutations and pretraining:
        _fail(origin, "settings.permutations", "label permutations are not available for the pretraining experiment")
    return Experiment(name=name, description=doc.get("description", ""), origin=origin, datasets=datasets,
                      settings=settings, pretraining=pretraining, document=doc, permutations=permutations)


def load_experiment(source: str | os.PathLike, overrides: dict[str, Any] | None = None,
                    check_files: bool = True) -> Experiment:
    """Read an experiment file (or shipped preset by name), apply ``--set`` overrides, validate.

    ``check_files=False`` (``--dry-run``) leaves unset ``${VARIABLES}`` in place and does not
    look at the data files, so that the size of a preset can be seen before its data exist.
    """
    path = locate(source)
    origin = str(path)
    overrides = {k: _from_shell(k, v) for k, v in dict(overrides or {}).items()}
    doc, variables = apply_overrides(read_document(path), overrides, origin)
    doc = _substitute(doc, "", origin, variables, strict=check_files)
    return parse_document(doc, origin, _relative_to(path), check_files=check_files)


def _relative_to(path: Path) -> Path:
    """The folder relative data paths of an experiment file are read from.

    A user's file: its own folder (the file and its data travel together). A shipped preset: the
    working folder — a preset lives inside the installed package, where no data are, and its
    paths come from the user's shell (``${GTEX_H5AD}``, ``--set data.gtex=…``).
    """
    try:
        if path.resolve().parent == Path(str(_preset_dir())).resolve():
            return Path.cwd()
    except OSError:
        pass
    return path.parent


def _from_shell(key: str, value):
    """A relative data path given with ``--set`` is relative to the working folder, where it was typed."""
    parts = key.split(".")
    is_path = parts[0] == "data" and (len(parts) == 2 or (len(parts) == 3 and parts[2] in ("path", "metadata")))
    if is_path and isinstance(value, str) and value and "${" not in value:
        expanded = os.path.expanduser(value)
        if not os.path.isabs(expanded):
            return str(Path.cwd() / expanded)
    return value
