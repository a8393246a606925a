"""The training loop's budget: early stopping, the step cap and the learning-rate schedule, on constructed
validation curves."""

import math

import numpy as np
import pytest
import torch

from matssl.train import Budget, Trainer


def scripted(curve: list[float], n_items: int, budget: Budget):
    """A one-weight model trained with `budget`, whose validation score follows `curve`: the untrained model's,
    then epoch by epoch; returns the trainer and the weight at each validation."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    trainer = Trainer(model, budget, seed=0, device=torch.device("cpu"))
    weights, scores = [], iter(curve)

    def step(idx: np.ndarray):
        return (model.weight.sum() - 10.0) ** 2, {}

    def validate() -> float:
        weights.append(model.weight.item())
        return next(scores)

    trainer.fit(n_items, step, validate)
    return trainer, weights


def test_early_stopping_keeps_the_best_step():
    curve = [6, 5, 4, 3, 2, 2.5, 2.6, 2.7, 2.1, 9, 9, 9]  # step 0, then best after epoch 4; one step per epoch
    budget = Budget(lr=0.1, batch_size=2, max_steps=100, patience=4)
    trainer, weights = scripted(curve, 2, budget)
    assert trainer.stopped == "early" and trainer.best_step == 4 and trainer.step == 8  # 4 steps without a better score
    assert [h["step"] for h in trainer.history] == list(range(0, 9))
    assert trainer.model.weight.item() == weights[4]  # the weights of the best step are loaded


def test_the_untrained_model_is_kept_when_no_step_beats_it():
    budget = Budget(lr=0.1, batch_size=2, max_steps=100, patience=3)
    trainer, weights = scripted([1.0, 2, 3, 4, 5, 6], 2, budget)
    assert trainer.stopped == "early" and trainer.best_step == 0 and trainer.step == 3
    assert trainer.model.weight.item() == weights[0] != weights[1]  # back to the initial weights


def test_the_step_cap_ends_a_run_that_still_improves():
    budget = Budget(lr=0.1, batch_size=2, max_steps=10, patience=50)
    trainer, _ = scripted([10 - k for k in range(20)], 6, budget)  # 3 steps per epoch
    assert trainer.stopped == "cap" and trainer.step == 10 and trainer.best_step == 10
    assert [h["step"] for h in trainer.history] == [0, 3, 6, 9, 10]  # the last epoch is cut at the cap


def test_step_budget_is_independent_of_the_data_size():
    budget = Budget(lr=0.1, batch_size=4, max_steps=12, patience=100)
    small, _ = scripted(list(range(100, 0, -1)), 4, budget)  # 1 step per epoch: 12 epochs
    large, _ = scripted(list(range(100, 0, -1)), 40, budget)  # 10 steps per epoch: 2 epochs
    assert small.step == large.step == 12 and len(small.history) == 13 and len(large.history) == 3  # + step 0


def test_warmup_then_cosine_to_zero():
    b = Budget(lr=1.0, batch_size=2, max_steps=110, warmup_steps=10, cosine=True)
    assert b.lr_at(0, 110) == pytest.approx(0.1) and b.lr_at(9, 110) == pytest.approx(1.0)
    assert b.lr_at(10, 110) == pytest.approx(1.0) and b.lr_at(60, 110) == pytest.approx(0.5)
    assert b.lr_at(110, 110) == pytest.approx(0.0, abs=1e-12)
    flat = Budget(lr=0.3, batch_size=2, epochs=3)
    assert flat.lr_at(0, 30) == flat.lr_at(29, 30) == 0.3 and flat.total_steps(10) == 30
    assert math.isclose(b.lr_at(35, 110), 0.5 * (1 + math.cos(math.pi * 25 / 100)))


def test_a_slurm_job_that_asked_for_a_gpu_and_sees_none_fails(monkeypatch):
    from matssl.train import check_gpu_request

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with pytest.raises(RuntimeError, match=r"asked for 1 GPU\(s\) but PyTorch sees none .*device: cpu"):
        check_gpu_request(1, "auto")
    check_gpu_request(1, "cpu")  # a config that wants the CPU says so
    check_gpu_request(0, "auto")  # the profile asked for none (gpu=0)
    monkeypatch.delenv("SLURM_JOB_ID")
    check_gpu_request(1, "auto")  # on one machine the gpu resource is only a counter


def test_a_loss_that_is_not_a_finite_number_stops_the_run():
    model = torch.nn.Linear(1, 1, bias=False)
    trainer = Trainer(model, Budget(lr=0.1, batch_size=2, max_steps=10), seed=0, device=torch.device("cpu"))
    with pytest.raises(FloatingPointError, match="the training loss is nan at step 1"):
        trainer.fit(4, lambda idx: (model.weight.sum() * float("nan"), {}))
