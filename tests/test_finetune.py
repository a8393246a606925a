"""Finetuning chooses its learning rate and step without the test labels; its target scaling and its start."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from matssl.finetune import Averaged, FeatureRegressor, Regression, inner_folds, load_model, save_model
from matssl.stages import Plan
from matssl.table import read_table, write_table
from matssl.target import Scaling, Target
from matssl.validate import parse_config

from .test_resume import stage_command


def test_predictions_stay_within_the_training_targets_range():
    """A log1p target: an output far above every training target would come back through expm1 as an astronomically
    large value; it is clipped, in the learnt space, to the largest training target (and likewise below)."""
    y = pd.Series([10.0, 20.0, 40.0, 80.0, 1600.0], index=list("abcde"))
    df = pd.DataFrame({"id": list("abcde"), "numbers": [[1]] * 5})
    task = Regression(y, Target("y", transform="log1p"), df)
    target = task.fit_on(list("abcde")).numpy()
    assert task.values(target, list("abcde"))[0] == pytest.approx(y.to_numpy(), rel=1e-5)  # inside the range: unchanged
    far = np.array([1e3, -1e3, 0.0])
    assert task.values(far, list("abc")) == (pytest.approx([1600.0, 10.0, 40.0]), 2)  # 0: the median; the others clipped
    assert Scaling().back(far).tolist() == far.tolist()  # logits (a classification): never clipped
    # a diverged output (NaN) is held at the median, and counted with the clipped ones
    assert task.values(np.array([np.nan, 0.0]), list("ab")) == (pytest.approx([40.0, 40.0]), 1)
    metrics, _ = task.score(np.array([np.nan, 1e3, 0.0, target[3]]), list("abcd"), list("abcde"))
    assert metrics["n_test_clipped"] == 2 and np.isfinite(metrics["mae"])
    # validation is strict: weights with a NaN output on a validation structure score NaN, and are never chosen
    assert np.isnan(task.val_score(np.array([np.nan, 0.0]), list("ab")))
    assert task.val_score(np.array([1e3, 0.0]), list("ab")) == pytest.approx((1590.0 + 20.0) / 2)


def test_a_model_saved_without_its_scaling_is_refused(tmp_path):
    model = FeatureRegressor(8, head_width=16, features="chgnet")
    save_model(model, Scaling(), tmp_path / "model.pt")
    assert load_model(tmp_path / "model.pt")[1] == Scaling()
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    del ckpt["scaling"]
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="without its target scaling by an older matssl"):
        load_model(tmp_path / "old.pt")
    torch.save({"scaling": ckpt_scaling(tmp_path)}, tmp_path / "other.pt")  # a file of something else
    with pytest.raises(ValueError, match="not a finetuned model of matssl"):
        load_model(tmp_path / "other.pt")


def test_an_averaged_model_saves_and_loads_with_its_shrunk_scaling(tmp_path):
    torch.manual_seed(0)
    members = [FeatureRegressor(8, head_width=16, features="chgnet") for _ in range(3)]
    for m in members:
        torch.nn.init.normal_(m.head[2].weight)  # (a zero output layer would make every member the same)
    model = Averaged(members).eval()
    x = torch.randn(5, 8)
    expected = torch.stack([m(x) for m in members]).mean(0)
    save_model(model, Scaling(1.0, 2.0, shrink=0.25), tmp_path / "model.pt")
    loaded, scaling = load_model(tmp_path / "model.pt")
    assert isinstance(loaded, Averaged) and len(loaded.members) == 3 and scaling.shrink == 0.25
    assert torch.allclose(loaded.eval()(x), expected)
    assert scaling.learnt(np.array([4.0])).tolist() == [1.0 + 0.25 * 2.0 * 4.0]  # the shrink pulls toward the centre


def test_shrinkage_is_chosen_by_the_validation_score():
    y = pd.Series([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], index=list("abcdef"))
    task = Regression(y, Target("y"), pd.DataFrame({"id": list("abcdef"), "numbers": [[1]] * 6}))
    exact = task.fit_on(list("abcdef")).numpy()
    assert task.shrink(exact, list("abcdef")) == 1.0  # outputs that are the targets: nothing to shrink
    noise = -exact  # anti-correlated outputs: any shrinkage helps, the most helps most
    assert task.shrink(noise, list("abcdef")) == 0.0 and task.values(noise[:2], list("ab"))[0].tolist() == [35.0, 35.0]
    half = 2 * exact  # twice too far from the median: half of it is the targets
    assert task.shrink(half, list("abcdef")) == pytest.approx(0.5)


def test_inner_folds_cover_the_rows_once_and_keep_the_classes():
    folds = inner_folds(23, 5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23)) and {len(f) for f in folds} == {4, 5}
    classes = np.array(["a"] * 15 + ["b"] * 5)
    for held in inner_folds(20, 5, seed=0, classes=classes):
        assert (classes[held] == "b").sum() == 1  # stratified: each fold one of the five b
    assert all((a == b).all() for a, b in zip(inner_folds(23, 5, seed=3), folds, strict=True))  # fixed by the seed


def ckpt_scaling(tmp_path):
    return torch.load(tmp_path / "model.pt", weights_only=True)["scaling"]


def test_an_untrained_head_predicts_the_centre():
    torch.manual_seed(0)
    model = FeatureRegressor(8, head_width=16)
    out = model(torch.randn(5, 8))
    assert torch.equal(out, torch.zeros(5))  # * scale + center: the training median, the median dummy
    out.sum().backward()
    assert model.head[2].weight.grad.abs().sum() > 0  # and it trains


@pytest.mark.e2e
def test_model_selection_never_reads_test_labels(workflow_run):
    """The same run with every test label replaced by nonsense: the learning rate, the stopping step, the
    learning curves and the test predictions are identical; only the test metrics change."""
    workdir, cfg = workflow_run
    stage = next(
        s for s in Plan(parse_config(cfg)).finetune["n"] if s.params["method"] == "scratch" and s.params["fraction"] == 1.0
    )
    spec = stage.spec()
    test_ids = set(json.loads((workdir / stage.upstream["splits"].dir / "folds.json").read_text())["folds"][0]["test"])

    poisoned = workdir / "results" / "poisoned-structures"
    shutil.copytree(workdir / stage.upstream["structures"].dir, poisoned, dirs_exist_ok=True)
    table = read_table(poisoned / "structures.parquet")
    hit = table["id"].isin(test_ids)
    assert hit.sum() == len(test_ids) > 0
    table.loc[hit, "n"] = 1000.0 + 37.0 * table.loc[hit, "n"]
    write_table(pa.Table.from_pandas(table, preserve_index=False), poisoned / "structures.parquet")
    spec_poisoned = json.loads(json.dumps(spec))
    spec_poisoned["upstream"]["structures"] = str(poisoned.relative_to(workdir))

    runs = {}
    for name, s in (("clean", spec), ("poisoned", spec_poisoned)):
        out = f"results/selection-{name}"
        subprocess.run(stage_command(s, out), cwd=workdir, check=True, capture_output=True)
        runs[name] = (
            json.loads((workdir / out / "metrics.json").read_text()),
            pd.read_parquet(workdir / out / "predictions.parquet"),
        )
    (clean, pred_clean), (poison, pred_poison) = runs["clean"], runs["poisoned"]
    strip = lambda g: [{k: v for k, v in r.items() if k != "history"} for r in g]  # noqa: E731
    assert len(clean["grid"]) == 2 and strip(clean["grid"]) == strip(poison["grid"])
    assert (clean["lr"], clean["best_step"], clean["val_mae"]) == (poison["lr"], poison["best_step"], poison["val_mae"])
    assert pred_clean["y_pred"].tolist() == pred_poison["y_pred"].tolist()
    assert poison["mae"] > 100 * clean["mae"]  # the test labels were read, after the model was chosen


class Blows(torch.nn.Module):
    """A linear model that outputs NaN once a weight has grown past 3: a learning rate that large diverges."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.w
        return out * float("nan") if self.w.abs().max() > 3 else out


def test_a_learning_rate_that_diverges_loses_the_grid_and_the_run_goes_on(tmp_path):
    """Both selections (a validation split; cross-validation of a small subset): the diverged rate is recorded as
    such, its best weights before it diverged still compete, and the other rate wins."""
    from matssl.config import FinetuneConfig
    from matssl.finetune import select_by_cv, select_on_split

    rng = np.random.default_rng(0)
    ids = [f"s{k}" for k in range(60)]
    x = torch.tensor(rng.standard_normal((60, 2)), dtype=torch.float32)
    y = pd.Series((x @ torch.tensor([0.5, -0.3])).numpy() + 0.01 * rng.standard_normal(60), index=ids)
    task = Regression(y, Target("y"), pd.DataFrame({"id": ids, "numbers": [[1]] * 60}))
    learnt = task.fit_on(ids)
    ft = FinetuneConfig(optim={"lrs": [10.0, 0.01], "max_steps": 200, "patience": 50, "warmup_steps": 0, "batch_size": 8})
    pos = np.arange(60)

    def inputs(at: np.ndarray) -> torch.Tensor:
        return x[at]

    cpu = torch.device("cpu")
    _, chosen, grid, _ = select_on_split(
        task, Blows(), inputs, (pos[:48], ids[:48]), (pos[48:], ids[48:]), learnt, ft, 0, cpu, tmp_path
    )
    assert grid[0]["stopped"] == "diverged" and grid[1]["stopped"] != "diverged" and chosen["lr"] == 0.01
    _, chosen, grid = select_by_cv(task, Blows(), inputs, pos, ids, learnt, ft, 0, cpu, None)
    assert grid[0]["stopped"] == "diverged" and grid[1]["stopped"] != "diverged" and chosen["lr"] == 0.01


def test_a_refit_that_diverges_gives_the_inner_models_averaged(monkeypatch):
    """`final: refit` trains one model on every row for the chosen steps, unvalidated: where that diverges (the inner
    models at the same rate did not), the run's model is the validated inner models averaged, and the grid row says so."""
    import matssl.finetune as finetune
    from matssl.config import FinetuneConfig

    rng = np.random.default_rng(0)
    ids = [f"s{k}" for k in range(40)]
    x = torch.tensor(rng.standard_normal((40, 2)), dtype=torch.float32)
    y = pd.Series((x @ torch.tensor([0.5, -0.3])).numpy(), index=ids)
    task = Regression(y, Target("y"), pd.DataFrame({"id": ids, "numbers": [[1]] * 40}))
    optim = {"lrs": [0.01], "max_steps": 60, "patience": 50, "warmup_steps": 0, "batch_size": 8}
    ft = FinetuneConfig(optim=optim, small_data={"final": "refit"})
    inner = finetune.train_epoch

    def on_every_row_diverges(model, opt, budget, rows, loss_of, step, stop, seed, epoch):
        if len(rows) == len(ids):  # (the refit: the inner models train on k - 1 folds of the rows)
            raise FloatingPointError(f"training loss nan at step {step + 1}")
        return inner(model, opt, budget, rows, loss_of, step, stop, seed, epoch)

    run = lambda: finetune.select_by_cv(  # noqa: E731
        task, Blows(), lambda at: x[at], np.arange(40), ids, task.fit_on(ids), ft, 0, torch.device("cpu"), None
    )
    model, chosen, _ = run()
    assert isinstance(model, Blows) and "refit" not in chosen and chosen["best_step"] > 0  # (its weights stay below 3)
    monkeypatch.setattr(finetune, "train_epoch", on_every_row_diverges)
    model, chosen, _ = run()
    assert isinstance(model, finetune.Averaged) and chosen["refit"].startswith("diverged (training loss nan at step 1)")
