import json
import re
from pathlib import Path

import pytest
import yaml

from matssl.config import ConfigError, json_schema, parse_schema, read_config
from matssl.validate import load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def demo() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_demo_config_is_valid():
    cfg = load_config(ROOT / "config.yaml")
    assert "scratch" in cfg.pretrain.methods and cfg.properties["dielectric"].folds == "matbench"


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_benchmark_config_is_of_this_schema(path, monkeypatch):
    # its methods and named comparisons are checked too; its datasets are read from ../shared/data, which a clean
    # checkout has not (the imported encoders are in bench/parts, paths from the repository root)
    from matssl.validate import check_confirmatory, check_methods

    cfg = parse_schema(read_config(path))
    monkeypatch.chdir(ROOT)
    check_methods(cfg)
    check_confirmatory(cfg)


def test_committed_schema_is_current():
    assert json.loads((ROOT / "workflow/schemas/config.schema.json").read_text()) == json_schema()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["finetune"].update(learning_rate=1), "finetune.learning_rate: Extra inputs are not permitted"),
        (lambda c: c["graphs"].update(cutoff=-1), "graphs.cutoff: Input should be greater than 0"),
        (lambda c: c["pretrain"]["methods"].update(x={"objective": "nope"}), "objective 'nope': allowed"),
        (lambda c: c["pretrain"]["methods"]["crystalclr"]["params"].update(tau=1), "unknown parameter(s) ['tau']"),
        (lambda c: c["pretrain"].update(pool="missing"), "pretrain.pool 'missing' is not one of datasets"),
        (lambda c: c["pretrain"]["methods"].pop("scratch"), "must contain 'scratch'"),
        (lambda c: c.update(results="../elsewhere"), "results: Value error, results must be a non-empty relative path"),
        (lambda c: c.update(results="r$(touch /tmp/x)"), "results: Value error, results must be a non-empty relative path"),
        (lambda c: c.update(results="my results"), "results: Value error, results must be a non-empty relative path"),
        (lambda c: c.update(results=""), "results: Value error, results must be a non-empty relative path"),
        (lambda c: c.update(results="/tmp/x"), "results: Value error, results must be a non-empty relative path"),
        (lambda c: c["datasets"]["dielectric"].update(task="../../../../tmp/x/pwn"), "datasets.dielectric.matbench.task: String"),
        (lambda c: c["datasets"]["dielectric"].update(kind="ftp"), "datasets.dielectric: Input tag 'ftp'"),
        (lambda c: c["properties"].update({"../../etc": c["properties"]["dielectric"]}), "properties.../../etc: names may"),
        (lambda c: c["pretrain"].update(exclude_match=["smell"]), "pretrain.exclude_match.0: Input should be 'id'"),
        (lambda c: c["probes"].update(models=["svm"]), "probes.models.0: Input should be 'ridge'"),
        (lambda c: c["finetune"].update(folds=[0, 5]), "finetune.folds [0, 5]: property 'dielectric' has folds 0 to 4"),
        (lambda c: c["finetune"]["optim"].update(lrs=[]), "lrs must be a non-empty list"),
        (lambda c: c["pretrain"].update(seeds=[]), "pretrain.seeds: List should have at least 1 item"),
        (lambda c: c["finetune"].update(seeds=[0, 0]), "finetune.seeds: Value error, [0, 0]: each value once"),
        (lambda c: c["finetune"].update(folds=[]), "finetune.folds: List should have at least 1 item"),
        (lambda c: c["finetune"]["optim"].update(patience=10, warmup_steps=20), "patience (10) must exceed warmup_steps (20)"),
        (
            lambda c: c["finetune"].update(small_data={"patience": 20}),
            "finetune.small_data.patience (20) must exceed finetune.optim.warmup_steps (20)",
        ),
        (lambda c: c["finetune"].update(small_data={"final": "mean"}), "finetune.small_data.final: Input should be 'average'"),
        (
            lambda c: c["pretrain"]["methods"]["dssl"]["params"].update(micro_property="stifness"),
            "pretrain.methods.dssl.params.micro_property: 'stifness' is not one of ['none', 'stiffness', 'valence']",
        ),
        (
            lambda c: c["pretrain"]["methods"]["crystalclr"]["params"].update(temperature="0.1"),
            "pretrain.methods.crystalclr.params.temperature: '0.1' is not a float",
        ),
        (lambda c: c["pretrain"]["methods"]["negnn"].update(params={"distance_bins": 40.5}), "distance_bins: 40.5 is not a int"),
        (lambda c: c["pretrain"]["methods"]["fingerprint"]["params"].update(descriptor="gmp"), "'gmp' is not one of ['wacsf'"),
        (lambda c: c["fingerprints"].update(kinds=["acsf", "wacsf"]), "'acsf' is now 'acsf_geometry' (geometry only)"),
        (lambda c: c["probes"].update(baselines=["soap", "magpie"]), "'soap' and 'acsf' are now 'fingerprints'"),
        (lambda c: c["pretrain"]["methods"]["dssl"]["params"].update(mask_weight="0.5"), "mask_weight: '0.5' is not a value"),
        (
            lambda c: c["properties"]["dielectric"].update(column="refractive_index"),
            "properties.dielectric.column 'refractive_index': not a label column of data/matbench_dielectric.json.gz",
        ),
        (
            lambda c: c["properties"]["dielectric"].update(column="N"),
            "not a label column of data/matbench_dielectric.json.gz (did you mean 'n'?)",
        ),
        (
            lambda c: c["properties"]["dielectric"].update(column="crystal_system"),
            "metadata of data/matbench_dielectric.json.gz (text): a classification may use it, a regression not",
        ),
        (
            lambda c: c["properties"]["dielectric"].update(kind="classification", transform="log10"),
            "a classification property takes neither transform nor per_atom",
        ),
        (lambda c: c["properties"]["dielectric"].update(threshold=2.0), "threshold makes two classes of a numeric column"),
        (
            lambda c: (
                c.update(predict={"dielectric": {"dataset": "dielectric", "method": "negnn"}})
                or c["properties"]["dielectric"].update(kind="classification", column="crystal_system")
            ),
            "predict.dielectric: predictions of a classification property are not implemented yet",
        ),
        # comparisons named beforehand: against scratch or a control, a mean names no property
        (
            lambda c: c.update(statistics={"confirmatory": [{"method": "negnn", "against": "dssl"}]}),
            "statistics.confirmatory[0].against 'dssl': 'scratch' or a control among the methods ['control']",
        ),
        (
            lambda c: c.update(statistics={"confirmatory": [{"method": "negnn", "against": "nope"}]}),
            "statistics.confirmatory[0].against 'nope': 'scratch' or a control among the methods ['control']",
        ),
        (
            lambda c: c.update(statistics={"confirmatory": [{"method": "negnn", "across": True, "property": "dielectric"}]}),
            "negnn: across (the mean across the properties) names no property ('dielectric')",
        ),
        (
            lambda c: c.update(statistics={"confirmatory": [{"method": "chgnet"}]}),
            "statistics.confirmatory[0].method 'chgnet': one of the methods pretrained here",
        ),
        (
            lambda c: c.update(statistics={"confirmatory": [{"method": "scratch"}]}),
            "statistics.confirmatory.0: Value error, scratch: a method is not compared with itself",
        ),
        # dielectric: 3,811 structures per training fold, 0.3 % of them are 12: 10 validate and 2 train
        (
            lambda c: c["finetune"].update(fractions=[0.003, 1.0]),
            "finetune.fractions: 0.003 of property 'dielectric' (matbench_dielectric): 12 labelled training structures leave "
            "fewer than min_val=10 for training beside 10 for validation; the smallest usable fraction is about 0.00525",
        ),
    ],
)
def test_config_errors_name_the_key(edit, message):
    cfg = demo()
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert message in str(err.value)


def test_comparisons_named_beforehand_may_be_against_a_control_or_a_mean():
    cfg = demo()
    named = [{"method": "negnn", "against": "control", "across": True}, {"method": "fingerprint", "property": "dielectric"}]
    cfg["statistics"] = {"confirmatory": named}
    parsed = parse_config(cfg).statistics.confirmatory
    assert [(c.method, c.property, c.against, c.across) for c in parsed] == [
        ("negnn", None, "control", True),
        ("fingerprint", "dielectric", "scratch", False),
    ]
    # in a budget sweep, named as the runs are: '<method>-e<epochs>'
    cfg["pretrain"]["budgets"] = [1, 4]
    with pytest.raises(ConfigError, match="method 'negnn': one of the methods pretrained here"):
        parse_config(cfg)
    cfg["statistics"] = {"confirmatory": [{"method": "negnn-e4", "against": "control-e4", "across": True}]}
    assert parse_config(cfg).statistics.confirmatory[0].against == "control-e4"
    for method, against in (("negnn-e1", "control-e4"), ("control-e1", "control-e4")):  # another budget; a control
        cfg["statistics"] = {"confirmatory": [{"method": method, "against": against}]}
        with pytest.raises(ConfigError, match="is compared with the control of its own pretraining epochs"):
            parse_config(cfg)


def test_plan_wires_the_leakage_guard_and_hashes_stably():
    from matssl.stages import Plan

    cfg = demo()
    plain = Plan(parse_config(cfg))
    assert plain.leakage is None and "leakage" not in plain.pretrain["crystalclr"][0].upstream
    cfg["pretrain"]["exclude_test_structures"] = True
    guarded = Plan(parse_config(cfg))
    # one leakage stage (the pool's structures and every property's test structures) upstream of every pretraining job
    assert {"splits:dielectric", "structures:dielectric", "structures"} == set(guarded.leakage.upstream)
    trained = [m for m in guarded.pretrain if m != "scratch"]
    assert {guarded.pretrain[m][0].upstream["leakage"].key for m in trained} == {guarded.leakage.key}
    assert "leakage" not in guarded.pretrain["scratch"][0].upstream  # scratch does not see the pool
    assert guarded.pretrain["scratch"][0].key == plain.pretrain["scratch"][0].key
    # found once for every pretraining setting: its key depends on the pool, the test folds and how it matches
    cfg["encoder"]["width"] = 8
    cfg["pretrain"]["exclude_match"] = ["composition_volume", "id", "id"]  # order and repeats change nothing
    assert Plan(parse_config(cfg)).leakage.key == guarded.leakage.key
    cfg["pretrain"].update(exclude_match=["id"], volume_tolerance=0.1)  # a tolerance it does not use changes nothing
    assert (
        Plan(parse_config(cfg)).leakage.key
        == Plan(parse_config({**cfg, "pretrain": {**cfg["pretrain"], "volume_tolerance": 0.02}})).leakage.key
    )
    cfg["pretrain"]["methods"] = {"scratch": {"objective": "scratch"}}  # nothing trains on the pool: no matching
    assert not any(kind == "leakage" for kind, _ in Plan(parse_config(cfg)).stages)
    # the guard changes pretraining (and what follows), not the data stages
    assert guarded.pretrain["crystalclr"][0].key != plain.pretrain["crystalclr"][0].key
    assert guarded.graphs["dielectric"].key == plain.graphs["dielectric"].key
    assert Plan(parse_config(demo())).pretrain["crystalclr"][0].key == plain.pretrain["crystalclr"][0].key


def test_nested_results_folder_is_allowed():
    cfg = demo()
    cfg["results"] = "runs/bench-1.2"
    assert parse_config(cfg).results == "runs/bench-1.2"


def test_every_shell_argument_is_quoted():
    """Config-derived text reaches the rules' shell commands as {params.*}, {log} and {output}: each is quoted
    ({x:q}), so a results folder or spec cannot inject a command or split into two arguments."""
    import re

    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for command in re.findall(r"^\s*shell:\s*\n\s*(\".*\")", smk.read_text(), re.M):
            for field in re.findall(r"\{([^{}]+)\}", command):
                assert field.endswith(":q") or field == "threads", f"{smk.name}: {{{field}}} is not quoted in {command}"


def test_pretrain_seeds_multiply_trained_methods_not_scratch():
    from matssl.stages import Plan

    cfg = demo()
    cfg["pretrain"]["seeds"] = [0, 1]
    plan = Plan(parse_config(cfg))
    assert len(plan.pretrain["scratch"]) == 1 and len(plan.pretrain["crystalclr"]) == 2
    assert len({s.key for s in plan.pretrain["crystalclr"]}) == 2
    methods = cfg["pretrain"]["methods"]
    ft = cfg["finetune"]
    per_encoder = len(ft["folds"]) * len(ft["fractions"]) * len(ft["seeds"])
    trained = [m for m, v in methods.items() if v["objective"] not in ("scratch", "foundation")]
    assert len(plan.finetune["dielectric"]) == (len(methods) - len(trained) + 2 * len(trained)) * per_encoder
    assert {s.params["pretrain_seed"] for s in plan.finetune["dielectric"]} == {0, 1}
    cfg["pretrain"]["methods"]["negnn"]["seeds"] = [5, 6, 7]  # a method's own seeds
    assert [s.params["seed"] for s in Plan(parse_config(cfg)).pretrain["negnn"]] == [5, 6, 7]


def test_budget_sweep_pretrains_each_trained_method_at_each_budget():
    from matssl.stages import Plan

    cfg = demo()
    cfg["pretrain"]["budgets"] = [16, 1, 4]
    plan = Plan(parse_config(cfg))
    assert [k for k in plan.pretrain if k.startswith("negnn-")] == ["negnn-e1", "negnn-e4", "negnn-e16"]
    assert "scratch" in plan.pretrain and "scratch-e1" not in plan.pretrain
    assert [s.params["optim"]["epochs"] for s in plan.pretrain["negnn-e4"]] == [4]
    runs = [s for s in plan.finetune["dielectric"] if s.params["base_method"] == "negnn"]
    assert {s.params["method"] for s in runs} == {"negnn-e1", "negnn-e4", "negnn-e16"}
    assert {s.params["pretrain_epochs"] for s in runs} == {1, 4, 16}
    # a budget of the method's own epochs is the stage it has without a sweep: adding a sweep re-uses it
    own = cfg["pretrain"]["optim"]["epochs"]
    cfg["pretrain"]["budgets"] = [1, own]
    swept, plain = Plan(parse_config(cfg)), Plan(parse_config({**cfg, "pretrain": {**cfg["pretrain"], "budgets": None}}))
    assert swept.pretrain[f"negnn-e{own}"][0].dir == plain.pretrain["negnn"][0].dir
    assert swept.pretrain["negnn-e1"][0].dir != plain.pretrain["negnn"][0].dir


def test_check_config_reports_unreadable_files_in_one_message(tmp_path):
    from matssl.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(SystemExit) as err:
        main(["check-config", str(bad)])
    assert f"{bad}: not valid YAML" in str(err.value)
    # a key written twice in one mapping (YAML loaders keep the last silently: half a section would be lost)
    twice = (ROOT / "config.yaml").read_text() + "\ngraphs:\n  cutoff: 6.0\n"
    bad.write_text(twice)
    with pytest.raises(SystemExit) as err:
        main(["check-config", str(bad)])
    assert "key 'graphs' appears twice in one mapping" in str(err.value)
    with pytest.raises(SystemExit) as err:
        main(["check-config", str(tmp_path / "missing.yaml")])
    assert "missing.yaml: cannot read the config (No such file or directory)" in str(err.value)
    bad.write_text("- a list\n")
    with pytest.raises(SystemExit) as err:
        main(["check-config", str(bad)])
    assert "a config is a mapping of keys" in str(err.value)


def test_library_versions_are_in_the_stage_hash(monkeypatch):
    """A torch upgrade re-runs what torch computes (training), not the data stages."""
    from matssl import stages

    before = stages.Plan(parse_config(demo()))
    real = stages.compute_versions
    monkeypatch.setattr(
        stages, "compute_versions", lambda kind: {**real(kind), **({"torch": "99.0"} if "torch" in real(kind) else {})}
    )
    after = stages.Plan(parse_config(demo()))
    assert after.graphs["dielectric"].key == before.graphs["dielectric"].key
    assert after.pretrain["negnn"][0].key != before.pretrain["negnn"][0].key
    assert after.finetune["dielectric"][0].key != before.finetune["dielectric"][0].key


def test_files_datasets_are_checked_before_any_job(tmp_path):
    """A folder without structure files, a labels CSV without `id` or without the property's column, a folder without
    labels: one message from the config check, not a traceback from a job."""
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "notes.txt").write_text("no structures here")
    cfg = demo()
    cfg["datasets"]["mine"] = {"kind": "files", "path": str(folder), "labels": str(tmp_path / "labels.csv")}
    cfg["properties"]["gap"] = {"dataset": "mine", "column": "band gap"}

    def error() -> str:
        with pytest.raises(ConfigError) as err:
            parse_config(cfg)
        return str(err.value)

    assert "no structure files matching '*'" in error()
    (folder / "a.cif").write_text("data_a\n")
    assert "labels.csv: cannot read the labels CSV" in error()
    (tmp_path / "labels.csv").write_text("name,band gap\na,1.0\n")
    assert "a labels CSV needs an `id` column" in error()
    (tmp_path / "labels.csv").write_text("id,band_gap\na,1.0\n")
    assert "properties.gap.column 'band gap': not a column of" in error() and "band_gap" in error()
    (tmp_path / "labels.csv").write_text("id,band gap\na,1.0\n")
    parse_config(cfg)
    del cfg["datasets"]["mine"]["labels"]
    assert "is a folder without `labels:`" in error()


def test_label_columns_of_a_labels_csv_are_checked_by_their_values(tmp_path):
    """Text in a regression's column, a threshold on text, one class, no value at all: refused by the config check
    with the column's values named; a classification of a text column is valid."""
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "a.cif").write_text("data_a\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("id,gap,phase,formula,empty\na,1.0,rocksalt,NaCl,\nb,oops,rocksalt,KCl,\nc,2.0,zincblende,ZnS,\n")
    cfg = demo()
    cfg["datasets"]["mine"] = {"kind": "files", "path": str(folder), "labels": str(labels)}

    def error(**prop) -> str:
        cfg["properties"]["p"] = {"dataset": "mine", **prop}
        with pytest.raises(ConfigError) as err:
            parse_config(cfg)
        return str(err.value)

    assert "label column 'phase' holds text ('rocksalt', 'zincblende', ...): a regression needs numbers" in error(column="phase")
    assert "a threshold makes two classes of a numeric column" in error(column="phase", kind="classification", threshold=1)
    assert "label column 'empty' has no values" in error(column="empty", kind="classification")
    assert "a classification needs two classes or more, found ['> 0']" in error(column="gap", kind="classification", threshold=0)
    for ok in ({"column": "phase", "kind": "classification"}, {"column": "gap"}):  # ('oops': that row's invalid label)
        cfg["properties"]["p"] = {"dataset": "mine", **ok}
        parse_config(cfg)


def test_an_empty_or_foreign_structure_file_is_refused_by_the_config_check(tmp_path):
    """A files dataset that is an empty extended-XYZ file (as a predictions' dataset often is, before it is filled),
    a corrupt .gz, or a file of another kind: one message from the config check."""
    cfg = demo()
    cfg["datasets"]["new"] = {"kind": "files", "path": str(tmp_path / "new.extxyz")}
    cfg["predict"] = {"dielectric": {"dataset": "new", "method": "negnn"}}
    for name, content, message in (
        ("new.extxyz", b"", "the file is empty"),
        ("new.extxyz", b"\n  \n", "the file is empty"),
        ("new.xyz.gz", b"not gzip", "cannot read the file (BadGzipFile"),
        ("new.csv", b"a,b\n", "a files dataset is a folder of structure files or an .extxyz"),
    ):
        (tmp_path / name).write_bytes(content)
        cfg["datasets"]["new"]["path"] = str(tmp_path / name)
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(cfg)
