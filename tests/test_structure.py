"""The package's structure (issue 24): data flows one way, so the imports form no cycle, and each
decision has one home (recipe names are compared only in recipes.py, split names only in splits.py)."""

import ast
import re
from pathlib import Path

import linsig

SRC = Path(linsig.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module -> linsig modules it imports`` from the sources, function-level imports included
    (a cycle hidden in a function is still a cycle), each submodule import also importing its packages."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets.add(base)
                targets |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import submodule`
        edges = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
                parent = target.rpartition(".")[0]
                while parent:  # importing linsig.a.b runs linsig/a/__init__.py first
                    if parent != name and not name.startswith(parent + "."):
                        edges.add(parent)
                    parent = parent.rpartition(".")[0]
        graph[name] = edges - {"linsig"}  # the root package only holds the version
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_is_read_from_the_sources():
    graph = import_graph()
    assert "linsig.tuning" in graph["linsig.evaluation"] and "linsig.results" in graph["linsig.stats"]
    assert "linsig.experiment" in graph["linsig.cli.demo"]  # via linsig.experiment.driver


def test_no_import_cycle_under_src_linsig():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def _code_lines(path: Path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield number, code


RECIPE_NAMES = re.compile(r"""(==|!=)\s*["'](paper|strong)["']|["'](paper|strong)["']\s*(==|!=)""")
SPLIT_NAMES = re.compile(r"""(==|!=)\s*["'](study|sample)["']|["'](study|sample)["']\s*(==|!=)|split\w*\s+(not\s+)?in\s+\(""")


def test_recipe_names_are_compared_only_in_recipes_py():
    hits = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py") if p.name != "recipes.py"
            for n, code in _code_lines(p) if RECIPE_NAMES.search(code)]
    assert hits == []


def test_split_names_are_compared_at_most_twice_in_the_splitter_module():
    hits = {p.relative_to(SRC): [n for n, code in _code_lines(p) if SPLIT_NAMES.search(code) and "signal" not in code]
            for p in SRC.rglob("*.py")}
    outside = {str(p): lines for p, lines in hits.items() if lines and p.name != "splits.py"}
    assert outside == {}
    assert len(hits[Path("splits.py")]) <= 2


# --- extension points: a recipe is one object, a split is one class -----------------------------

def _tiny_task():
    import linsig.data.simulate as sim
    from linsig import tasks
    from linsig.data.preprocess import preprocess

    adata = preprocess(sim.simulate("mixed", n_samples=80, n_features=12, n_groups=8, seed=2), n_top_genes=None)
    return tasks.make_task(adata, label="label", group="group")


def test_a_new_recipe_is_one_object(monkeypatch):
    from linsig.evaluation import Settings, evaluate
    from linsig.recipes import RECIPES, Recipe

    quick = Recipe("quick", tunings=("fast", "off"), max_epochs=3, batch_size=None, patience=2,
                   description="the strong estimators, their small searches, three epochs")
    monkeypatch.setitem(RECIPES, "quick", quick)
    settings = Settings(models=("logreg", "mlp3"), recipe="quick", seeds=(0,), n_folds=2, fractions=(1.0,),
                        signals=("none", "removed"), device="cpu")
    assert (settings.tuning, settings.max_epochs, settings.patience) == ("fast", 3, 2)
    df = evaluate([_tiny_task()], settings, progress=False)
    assert set(df.recipe) == {"quick"} and (df.status == "ok").all() and df.params.str.len().gt(2).all()
    assert df[df.model == "mlp3"].epochs_trained.max() <= 3


def test_a_new_split_is_one_class(monkeypatch):
    import numpy as np
    from sklearn.model_selection import LeaveOneGroupOut

    from linsig import splits
    from linsig.evaluation import Settings, evaluate

    class LeaveOneStudyOut(splits.GroupSplitter):
        name, label = "leave-one-study-out", "leave-one-study-out split"

        def folds(self, y, groups, n_folds, seed):
            return list(LeaveOneGroupOut().split(np.zeros(len(y)), y, groups))

    monkeypatch.setitem(splits.SPLITTERS, LeaveOneStudyOut.name, LeaveOneStudyOut())
    task = _tiny_task()
    settings = Settings(models=("logreg",), split="leave-one-study-out", n_folds=task.n_groups, seeds=(0,),
                        fractions=(1.0,), signals=("none",), tuning="off")
    df = evaluate([task], settings, progress=False)
    assert len(df) == task.n_groups and set(df.n_val_groups) == {1}
    assert splits.is_grouped("leave-one-study-out")
