"""The networks' arithmetic (issue 25, lever 1): ``--precision auto|fp32|bf16``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from linsig import tasks
from linsig.cli import main
from linsig.data import simulate as sim
from linsig.data.preprocess import preprocess
from linsig.errors import LinsigInputError
from linsig.evaluation import Settings, Unit, run_unit
from linsig.experiment.spec import load_experiment
from linsig.models import make_model
from linsig.training import BF16_MIN_FEATURES, bf16_is_fast, resolve_precision


def test_auto_resolves_to_bf16_only_where_the_hardware_is_fast_at_it():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if bf16_is_fast(cpu) else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", cpu)
    # narrow networks stay float32 under auto: converting costs more than bf16 products save there
    assert resolve_precision("auto", cpu, n_features=BF16_MIN_FEATURES - 1) == "fp32"
    assert resolve_precision("auto", cpu, n_features=BF16_MIN_FEATURES) == resolve_precision("auto", cpu)
    m = make_model("mlp3", "strong", max_epochs=1, precision="auto", classes=np.arange(2))
    assert m.fit(np.random.default_rng(0).random((20, 8), dtype=np.float32), np.arange(20) % 2).precision_ == "fp32"


def test_each_recipe_has_its_default_and_a_bad_value_is_refused():
    # fp32 unless asked: the same numbers on every CPU, the paper's bit for bit
    assert Settings().precision == "fp32" and Settings(recipe="paper").precision == "fp32"
    assert Settings(precision="auto").precision == "auto"  # resolved where the network trains
    assert Settings(recipe="paper", precision="bf16").precision == "bf16"
    with pytest.raises(LinsigInputError, match="precision"):
        Settings(precision="fp16")
    res = CliRunner().invoke(main, ["run", "--data", "x.h5ad", "--label", "y", "--precision", "fp16", "--out", "o"])
    assert res.exit_code == 2 and "fp16" in res.output


def test_an_experiment_file_and_the_command_line_set_it(tmp_path):
    spec = tmp_path / "e.toml"
    spec.write_text('[data.sim]\nsimulate = "mixed"\nsamples = 60\nfeatures = 8\n\n'
                    '[settings]\nmodels = ["mlp3"]\nprecision = "bf16"\n')
    assert {s.precision for s in load_experiment(str(spec)).settings} == {"bf16"}
    assert {s.precision for s in load_experiment(str(spec), {"settings.precision": "fp32"}).settings} == {"fp32"}


def _mixed(n=240, d=40, seed=0):
    adata = preprocess(sim.simulate("mixed", n_samples=n, n_features=d, n_groups=12, seed=seed), n_top_genes=None)
    return tasks.make_task(adata, label="label", group="group")


def test_rows_record_the_arithmetic_each_model_trained_with():
    task = _mixed(120, 12)
    s = Settings(models=("logreg", "mlp3"), seeds=(0,), n_folds=3, fractions=(1.0,), signals=("none",),
                 tuning="off", max_epochs=3, precision="bf16")
    rows = run_unit(task, Unit("mlp3", 0, 0), s) + run_unit(task, Unit("logreg", 0, 0), s)
    assert [r["precision"] for r in rows] == ["bf16", ""]  # scikit-learn's solvers: not torch's arithmetic


@pytest.mark.parametrize("model", ["mlp3", "mlp5"])
def test_bf16_networks_learn_what_fp32_ones_learn(model):
    """Float32 weights and optimiser state; only the matrix products round to bfloat16."""
    task = _mixed()
    rng = np.random.default_rng(1)
    val = rng.permutation(task.n_samples)[:80]
    train = np.setdiff1d(np.arange(task.n_samples), val)
    scores = {}
    for precision in ("fp32", "bf16"):
        m = make_model(model, "strong", max_epochs=30, random_state=0, precision=precision, classes=np.arange(2))
        m.fit(task.X[train], task.y[train])
        assert m.precision_ == precision and m.module_[0].weight.dtype == torch.float32
        scores[precision] = float(np.mean(m.predict(task.X[val]) == task.y[val]))
    assert scores["fp32"] >= 0.9 and scores["bf16"] >= scores["fp32"] - 0.05, scores


def test_the_paper_recipe_in_fp32_ignores_the_hardware():
    """fp32 goes through no autocast at all: the paper's numbers are the stored ones (test_recipes)."""
    m = make_model("mlp3", "paper", max_epochs=1, random_state=0)
    assert m.get_params()["precision"] == "fp32"
    X = np.random.default_rng(0).random((40, 6), dtype=np.float32)
    y = np.arange(40) % 2
    a = m.fit(X, y).decision_function(X)
    b = make_model("mlp3", "paper", max_epochs=1, random_state=0, precision="fp32").fit(X, y).decision_function(X)
    assert np.array_equal(a, b)


def test_the_estimate_calibrates_each_precision_on_its_own():
    from linsig import estimate as E

    assert E.fingerprint(1, "cpu", "bf16") != E.fingerprint(1, "cpu", "fp32")
    assert json.dumps(E.fingerprint(1, "cpu", "bf16"), sort_keys=True)


# --------------------------------------------------------------------------------------------
# Batch norm's statistics for prediction (issue 25, item 3)
# --------------------------------------------------------------------------------------------

def test_batch_norm_statistics_are_those_of_the_training_data_without_dropout():
    from linsig.models.networks import build_network
    from linsig.models.strong_networks import recalibrate_batch_norm

    torch.manual_seed(0)
    net = build_network("mlp5", 16, 2, 0.5, packed_dropout=True)
    X = torch.rand(300, 16)
    net.train()
    for _ in range(5):
        net(X[torch.randperm(300)[:32]])  # running statistics collected with dropout on
    recalibrate_batch_norm(net, X)
    assert net.training and net[1].momentum == 0.1  # the module's own state is given back
    # the first batch norm sees the first linear layer's output: its statistics are exactly X's
    with torch.no_grad():
        h = net[0](X)
    assert torch.allclose(net[1].running_mean, h.mean(0), atol=1e-6)
    assert torch.allclose(net[1].running_var, h.var(0, unbiased=True), rtol=1e-4)
    # the next one sees the activations without dropout (normalised by the batch's statistics)
    with torch.no_grad():
        a = torch.relu(torch.nn.functional.batch_norm(h, None, None, net[1].weight, net[1].bias, training=True))
        deeper = net[4](a)
    assert torch.allclose(net[5].running_mean, deeper.mean(0), atol=1e-5)
    assert torch.allclose(net[5].running_var, deeper.var(0, unbiased=True), rtol=1e-4)


def test_a_fitted_mlp5_predicts_with_recalibrated_statistics():
    from linsig.models.strong_networks import recalibrate_batch_norm

    X = np.random.default_rng(0).random((200, 24), dtype=np.float32)
    y = np.arange(200) % 2
    m = make_model("mlp5", "strong", max_epochs=3, random_state=0, classes=np.arange(2)).fit(X, y)
    before = m.module_[5].running_var.clone()
    recalibrate_batch_norm(m.module_, m._inputs(X))  # again: nothing left to change
    assert torch.allclose(m.module_[5].running_var, before)
