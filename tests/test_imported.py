"""Encoders trained elsewhere (`objective: pretrained`): checked against the config, hashed by their bytes."""

import shutil

import pytest

from matssl.config import ConfigError
from matssl.encoders import CGCNN, save_encoder
from matssl.stages import Plan
from matssl.validate import parse_config
from tests.workflow import tiny_config


def config_with(data, path) -> dict:
    raw = tiny_config(data)
    raw["pretrain"]["methods"] = {
        "scratch": {"objective": "scratch"},
        "imported": {"objective": "pretrained", "params": {"path": str(path)}},
    }
    return raw


def test_a_fitting_encoder_is_accepted_and_hashed_by_its_bytes(tmp_path, tiny_demo):
    path = tmp_path / "encoder.pt"
    save_encoder(CGCNN(width=16, layers=2, cutoff=6.0), str(path))  # the tiny config's encoder and graphs
    moved = tmp_path / "elsewhere" / "colleague.pt"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    a, b = Plan(parse_config(config_with(tiny_demo, path))), Plan(parse_config(config_with(tiny_demo, moved)))
    assert a.pretrain["imported"][0].key == b.pretrain["imported"][0].key  # same bytes, another path
    save_encoder(CGCNN(width=16, layers=2, cutoff=6.0), str(moved))  # other weights
    c = Plan(parse_config(config_with(tiny_demo, moved)))
    assert c.pretrain["imported"][0].key != a.pretrain["imported"][0].key
    assert a.pretrain["imported"][0].external == {"path": str(path)}


@pytest.mark.parametrize(
    "encoder, message",
    [
        (CGCNN(width=32, layers=2, cutoff=6.0), "width 32 (file) vs 16 (config)"),
        (CGCNN(width=16, layers=3, cutoff=8.0), "layers 3 (file) vs 2 (config); cutoff 8.0 (file) vs 6.0 (config)"),
        (CGCNN(width=16, layers=2, cutoff=6.0, max_z=94), "max_z 94 (file) vs 100 (config)"),
    ],
)
def test_an_incompatible_encoder_is_refused_naming_the_mismatch(tmp_path, tiny_demo, encoder, message):
    path = tmp_path / "encoder.pt"
    save_encoder(encoder, str(path))
    with pytest.raises(
        ConfigError, match="does not fit this config's encoder: .*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        parse_config(config_with(tiny_demo, path))


def test_an_encoder_with_the_right_settings_but_wrong_or_broken_weights_is_refused(tmp_path, tiny_demo):
    """Settings that match, tensors that do not (another shape, one missing) or are not numbers: refused by the config
    check, naming the tensors, not in a finetuning job as 'every run diverged'."""
    import torch

    enc = CGCNN(width=16, layers=2, cutoff=6.0)
    path = tmp_path / "encoder.pt"
    save_encoder(enc, str(path))
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.ndim == 2)
    for edit, message in (
        (lambda sd: sd.update({name: torch.zeros(3, 5)}), f"{name} (3, 5) (file) vs"),
        (lambda sd: sd.pop(name), f"tensors missing: {name}"),
        (lambda sd: sd[name].fill_(float("nan")), f"not finite numbers .* in {name}"),
    ):
        broken = {**ckpt, "state_dict": dict(ckpt["state_dict"])}
        broken["state_dict"][name] = broken["state_dict"][name].clone()
        edit(broken["state_dict"])
        torch.save(broken, path)
        with pytest.raises(
            ConfigError, match="does not fit this config's encoder: .*" + message.replace("(", r"\(").replace(")", r"\)")
        ):
            parse_config(config_with(tiny_demo, path))


def test_a_missing_or_foreign_file_is_refused(tmp_path, tiny_demo):
    with pytest.raises(ConfigError, match="is not a file"):
        parse_config(config_with(tiny_demo, tmp_path / "nothing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a matssl encoder.pt"):
        parse_config(config_with(tiny_demo, junk))


def test_predict_config_is_checked(tiny_demo):
    raw = tiny_config(tiny_demo)
    for entry, message in (
        ({"dataset": "tiny", "method": "nope"}, "predict.n.method .nope.: not a finetuned graph method"),
        ({"dataset": "other", "method": "negnn"}, "predict.n.dataset 'other' is not one of datasets"),
        ({"dataset": "tiny", "method": "negnn", "fraction": 0.3}, "not one of finetune.fractions"),
    ):
        raw["predict"] = {"n": entry}
        with pytest.raises(ConfigError, match=message):
            parse_config(raw)
    raw["predict"] = {"m": {"dataset": "tiny", "method": "negnn"}}
    with pytest.raises(ConfigError, match="predict.m: no property 'm'"):
        parse_config(raw)
    # named as the plan names finetuned methods: no frozen features, '-e<epochs>' in a budget sweep, scratch bare
    raw["pretrain"]["methods"]["chgnet"] = {"objective": "foundation"}
    raw["pretrain"]["budgets"] = [1, 4]
    for method, ok in (("chgnet", False), ("negnn", False), ("negnn-e4", True), ("scratch", True), ("scratch-e4", False)):
        raw["predict"] = {"n": {"dataset": "tiny", "method": method}}
        if ok:
            parse_config(raw)
        else:
            with pytest.raises(ConfigError, match="not a finetuned graph method"):
                parse_config(raw)


def test_ensemble_by_hand():
    import numpy as np

    from matssl.predict import ensemble

    mean, std = ensemble(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert mean.tolist() == [2.0, 4.0] and std.tolist() == [1.0, 2.0]


def test_input_file_digests_are_cached_by_size_mtime_and_inode(tmp_path, monkeypatch):
    """Re-planning hashes external inputs: a folder's digest is the same with and without the cache, and a warm
    cache reads no file; a changed file (same size, new content) is read again."""
    import hashlib
    import os

    from matssl import io

    monkeypatch.setenv("MATSSL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(io, "RACY_S", -1.0)  # the files are seconds old: cache them all the same
    folder = tmp_path / "cifs"
    (folder / "sub").mkdir(parents=True)
    for name, text in (("a.cif", "aaa"), ("b.cif", "bbbb"), ("sub/c.cif", "cc")):
        (folder / name).write_text(text)
    expect = hashlib.sha256()
    for name in ("a.cif", "b.cif", "sub/c.cif"):
        expect.update(name.encode())
        expect.update(hashlib.sha256((folder / name).read_bytes()).hexdigest().encode())
    reads = []
    real = io.sha256_file
    monkeypatch.setattr(io, "sha256_file", lambda f, *a: reads.append(f) or real(f, *a))
    assert io.sha256_tree(folder) == expect.hexdigest() and len(reads) == 3
    assert io.sha256_tree(folder) == expect.hexdigest() and len(reads) == 3  # warm: no file read
    (folder / "b.cif").write_text("BBBB")
    os.utime(folder / "b.cif", ns=(1, 1))
    changed = io.sha256_tree(folder)
    assert changed != expect.hexdigest() and len(reads) == 4
    assert io.sha256_tree(folder / "a.cif") == hashlib.sha256(b"aaa").hexdigest()


def test_a_file_modified_just_now_is_not_cached(tmp_path, monkeypatch):
    """A change within one timestamp tick would keep size and mtime: files younger than RACY_S are hashed again."""
    from matssl import io

    monkeypatch.setenv("MATSSL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.cif").write_text("aaa")
    reads = []
    real = io.sha256_file
    monkeypatch.setattr(io, "sha256_file", lambda f, *a: reads.append(f) or real(f, *a))
    io.sha256_tree(tmp_path / "a.cif")
    io.sha256_tree(tmp_path / "a.cif")
    assert len(reads) == 2
