"""The pretraining-budget sweep and the collapse signal, end to end on the tiny workflow."""

import json

import pytest
import torch

from matssl.pretrain import collapse_signals, convergence

from .workflow import bench, snakemake, tiny_config, write_config


def test_collapse_signals_by_construction():
    torch.manual_seed(0)
    collapsed = collapse_signals(torch.ones(64, 16) * 3.0)
    assert collapsed["embedding_spread"] == pytest.approx(0.0, abs=1e-6) and collapsed["embedding_rank"] <= 1 / 16
    spread = collapse_signals(torch.randn(4096, 16))
    assert spread["embedding_spread"] == pytest.approx(1.0, abs=0.05) and spread["embedding_rank"] > 0.95
    line = collapse_signals(torch.randn(4096, 1) * torch.ones(1, 16) + 1e-4 * torch.randn(4096, 16))  # one direction
    assert line["embedding_rank"] < 0.1  # dimensional collapse: the rank sees it ...
    assert line["embedding_spread"] > 0.9  # ... the spread does not (two antipodal points are spread)


def test_convergence_flags_a_loss_still_falling():
    def history(losses, spread=0.8):
        return [{"epoch": k + 1, "loss": x, "embedding_spread": spread} for k, x in enumerate(losses)]

    levelled = convergence(history([4.0, 2.0, 1.5, 1.3, 1.25, 1.24, 1.23, 1.23, 1.23, 1.23]))
    assert levelled["flags"] == [] and levelled["late_share"] == pytest.approx(0.0)
    linear = convergence(history([10.0 - k for k in range(10)]))  # the last 2 of 10 epochs: 2 of its 9 fallen
    assert linear["late_share"] == pytest.approx(2 / 9) and linear["flags"] == [
        "still learning: the last 2 of 10 epochs made 22% of the loss's fall"
    ]
    assert convergence(history([3.0, 3.1, 3.2]))["flags"][0].startswith("the loss rose again at the end")
    assert convergence(history([4.0, 2.0, 1.0, 1.0, 1.6]))["flags"][0].startswith("the loss rose again at the end")
    assert convergence(history([3.0, 3.0, 2.995]))["flags"][0].startswith("the loss did not fall after the first epoch")
    assert convergence(history([3.0, float("nan"), 2.0]))["flags"] == ["the loss is not a finite number"]
    assert convergence(history([3.0, 2.0, 1.0], spread=float("nan")))["flags"][-1].startswith("collapsed")
    assert convergence(history([3.0, 2.0]))["flags"] == ["2 epochs: too few to tell whether the loss levelled off"]
    collapsed = convergence(history([4.0, 2.0, 1.0, 1.0, 1.0], spread=0.01))
    assert len(collapsed["flags"]) == 1 and collapsed["flags"][0].startswith("collapsed")
    assert convergence([]) == {"late_share": None, "flags": []}


@pytest.mark.e2e
def test_budget_sweep_reaches_the_report_and_a_summary_of_parts(tiny_demo, tmp_path):
    cfg = tiny_config(tiny_demo)
    cfg["pretrain"]["methods"] = {
        "scratch": {"objective": "scratch"},
        "negnn": {"objective": "negnn"},
        "control": {"objective": "fingerprint_control", "params": {"descriptor": "wacsf"}},
    }
    cfg["pretrain"]["budgets"] = [1, 2]
    cfg["fingerprints"]["kinds"] = ["wacsf"]
    cfg["finetune"].update(fractions=[1.0], seeds=[0, 1])
    cfg["probes"] = {"enabled": False}
    write_config(tmp_path, cfg)
    snakemake(tmp_path, "--cores", "2", "all")
    prop = json.loads((tmp_path / "results/properties/n.json").read_text())
    assert {(r["method"], r["pretrain_epochs"]) for r in prop["runs"]} == {
        ("scratch", 0),
        ("negnn-e1", 1),
        ("negnn-e2", 2),
        ("control-e1", 1),
        ("control-e2", 2),
    }
    histories = [json.loads(p.read_text()) for p in (tmp_path / "results/pretrain").glob("negnn-*/history.json")]
    assert sorted(len(h) for h in histories) == [1, 2] and all(
        0 <= r["embedding_spread"] <= 1.5 and 0 < r["embedding_rank"] <= 1 for h in histories for r in h
    )
    html = (tmp_path / "results/report.html").read_text()
    assert 'alt="pretraining budget of n"' in html
    # the change per doubling of the budget, per method swept, and each method against the control of its budget
    budget = html[html.index('id="budget-property-table"') :].split("</table>")[0]
    assert budget.count("<tr>") == 3 and ">negnn<" in budget and ">control<" in budget and "1, 2" in budget
    control = html[html.index('id="control-property-table"') :].split("</table>")[0]
    assert ">negnn-e1<" in control and ">control-e1<" in control and ">negnn-e2<" in control and ">control-e2<" in control
    assert "late fall" in html and "1 epoch: too few to tell whether the loss levelled off" in html  # the 1-epoch encoder

    # bench/summarize_mp.py --parts draws it too (parts have no report)
    parts, out = tmp_path / "parts", tmp_path / "out"
    out.mkdir()
    common = ["--config", str(tmp_path / "config.yaml"), "--parts-dir", str(parts)]
    for cmd in (
        ["parts.py", "save", "--name", "sweep", "--commit", "abc1234", *common],
        ["summarize_mp.py", "--parts", "sweep", "--name", "sweep", "--out", str(out), *common],
    ):
        proc = bench(*cmd, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    md = (out / "sweep_benchmark.md").read_text()  # (the controls known from the parts' pretraining manifests)
    assert "Change per doubling of the pretraining budget, per property" in md
    assert "Against the control of the same budget, per property" in md and "| n | negnn-e2 | control-e2 |" in md
    figure = out / "sweep_budget_n.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](sweep_budget_n.png)" in (out / "sweep_benchmark.md").read_text()
