"""`aetrig train`, `calibrate` and `import-pretrained` on the bundled background: loss decreases, runs are
deterministic, resume continues exactly, splits never overlap, calibration bumps the card version."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from emulator import cli
from models.runtime.card import ModelError, load_model_dir

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "producer" / "samples" / "qcd.root"
PRETRAINED = REPO / "models" / "pretrained" / "4D_TLA_leading.pth"  # shipped with the package
N_EVENTS = 1500
#: how producer/samples/qcd.root was made (producer/samples/README.md; the file's metadata says so too)
QCD_GENERATE = "aetrig generate --process qcd --events 20000 --seed 101 --jobs 2 --out producer/samples/qcd.root"


def _train(out: Path, *extra: str) -> int:
    return cli.main(["train", "--input", str(SAMPLE), "--max-events", str(N_EVENTS), "--variables", "pt,eta,phi,e",
                     "--epochs", "2", "--batch-size", "256", "--seed", "7", "--no-progress", "--out", str(out), *extra])


def test_splits_are_disjoint_complete_and_stable() -> None:
    from models.runtime.data import load_jets, split_events

    small = load_jets([SAMPLE], ["pt"], max_events=1000)
    big = load_jets([SAMPLE], ["pt"], max_events=3000)
    masks = split_events(big, seed=3)
    stacked = np.stack(list(masks.values()))
    assert np.all(stacked.sum(axis=0) == 1), "every event in exactly one split"
    keys = {name: set(zip(big.file_index[m], big.entry[m], strict=True)) for name, m in masks.items()}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    assert 0.75 < masks["train"].mean() < 0.85 and 0.07 < masks["test"].mean() < 0.13
    small_masks = split_events(small, seed=3)
    for name in masks:  # assignment depends on (file, entry) only, not on how much was read
        assert np.array_equal(small_masks[name], masks[name][:1000])
    assert not np.array_equal(split_events(big, seed=4)["test"], masks["test"])


@pytest.mark.torch
def test_train_decreases_loss_is_deterministic_and_exports(tmp_path: Path) -> None:
    assert _train(tmp_path / "a") == 0
    assert _train(tmp_path / "b") == 0
    card_a = load_model_dir(tmp_path / "a").card
    card_b = load_model_dir(tmp_path / "b").card
    history = card_a["training"]["history"]
    assert len(history) == 2 and history[1]["train"] < history[0]["train"] and history[1]["val"] < history[0]["val"]
    assert history == card_b["training"]["history"], "same seed must give the same run"
    assert card_a["files"]["model.pt"] == card_b["files"]["model.pt"]
    assert card_a["variables"] == [{"name": "pt", "unit": "GeV"}, {"name": "eta", "unit": ""},
                                   {"name": "phi", "unit": ""}, {"name": "e", "unit": "GeV"}]
    stats = card_a["metrics"]["test_split"]["all_jets"]
    assert set(stats) == {"pt", "eta", "phi", "e"} and stats["pt"]["kind"] == "relative"
    assert "aetrig train --input" in card_a["training"]["command"]
    # source.rebuild: the bundled sample's generate command (its metadata) and the training command
    assert card_a["source"]["rebuild"]["data"] == [QCD_GENERATE]
    assert card_a["source"]["rebuild"]["commands"] == [card_a["training"]["command"]]
    split = card_a["training"]["data"]["split"]
    assert split["train"]["events"] + split["val"]["events"] + split["test"]["events"] == N_EVENTS
    assert card_a["thresholds"]["sample"]["n_events"] == split["test"]["events"]
    assert not (tmp_path / "a" / "checkpoint.pt").exists()


@pytest.mark.torch
def test_resume_continues_exactly(tmp_path: Path) -> None:
    import torch

    from models.training.architectures import build
    from models.training.train import TrainConfig, train

    rng = np.random.default_rng(0)
    y = rng.normal(size=(3000, 4)).astype(np.float32)
    config = TrainConfig(kind="ae3d200", epochs=3, batch_size=256, seed=1, variables=["a", "b", "c", "d"])

    def fresh():
        torch.manual_seed(1)
        return build("ae3d200", 4)

    _, full = train(fresh(), y[:2500], y[2500:], config, tmp_path / "full", progress=False)
    _, first = train(fresh(), y[:2500], y[2500:], config, tmp_path / "cut", progress=False, stop_after=1)
    assert first.epoch == 1
    _, resumed = train(fresh(), y[:2500], y[2500:], config, tmp_path / "cut", resume=True, progress=False)
    assert resumed.epoch == 3 and resumed.history == full.history
    other = TrainConfig(kind="ae3d200", epochs=3, batch_size=512, seed=1, variables=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="different configuration"):
        train(fresh(), y[:2500], y[2500:], other, tmp_path / "cut", resume=True, progress=False)


def test_train_reports_missing_branch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", "--input", str(SAMPLE), "--variables", "pt,nosuch", "--out", str(tmp_path / "x")])
    assert code == 2 and "missing branch(es) ['jet_nosuch']" in capsys.readouterr().err


@pytest.mark.torch
def test_import_pretrained_and_calibrate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from models.training.pretrained_command import DEFAULT_PRETRAINED

    assert DEFAULT_PRETRAINED == PRETRAINED and PRETRAINED.is_file(), "the default is the shipped file"
    out = tmp_path / "tla"
    assert cli.main(["import-pretrained", "--background", str(SAMPLE), "--out", str(out)]) == 0  # default weights
    text = capsys.readouterr().out
    assert "leading jets" in text and "all jets" in text
    model = load_model_dir(out)
    assert model.variables == ["m", "pt", "phi", "eta"] and model.latent_dim == 3
    assert model.card["source"]["sha256"] == "f28cb56a5c39de34f4204bce9baa65cff8f2228d4d401e9e08dc9227d0b50249"
    assert model.card["source"]["rebuild"]["data"] == [QCD_GENERATE]
    imported = f"aetrig import-pretrained --out {out} --background {SAMPLE}"
    assert model.card["source"]["rebuild"]["commands"] == [imported]
    lead = model.card["metrics"]["background"]["leading_jets"]["pt"]["core_half_width"]
    every = model.card["metrics"]["background"]["all_jets"]["pt"]["core_half_width"]
    assert 0.02 < lead < 0.5 and every > lead
    # calibrate on a part of the background: new version, new table, files still verified
    argv = ["calibrate", "--model", str(out), "--background", str(SAMPLE), "--out", str(tmp_path / "cal")]
    monkeypatch.setattr(sys, "argv", ["aetrig", *argv])  # as typed: the card's source.rebuild gets the step
    assert cli.main(argv) == 0
    cal = load_model_dir(tmp_path / "cal").card
    assert cal["source"]["rebuild"]["commands"] == [*model.card["source"]["rebuild"]["commands"],
                                                    shlex.join(["aetrig", *argv])]
    assert cal["source"]["rebuild"]["data"] == [QCD_GENERATE]
    assert cal["source"]["sha256"] == model.card["source"]["sha256"]
    assert cal["version"] == model.card["version"] + 1
    assert cal["thresholds"]["sample"]["n_events"] == model.card["thresholds"]["sample"]["n_events"]
    assert cal["calibration_history"][0]["version"] == 1
    assert json.dumps(cal["thresholds"]["per_event"]) == json.dumps(model.card["thresholds"]["per_event"])


def test_tampered_weights_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "4D_TLA_leading.pth"
    shutil.copy(PRETRAINED, bad)
    with open(bad, "ab") as handle:
        handle.write(b"\0")
    assert cli.main(["import-pretrained", "--pretrained", str(tmp_path), "--background", str(SAMPLE),
                     "--out", str(tmp_path / "o")]) == 2
    assert "is not the published" in capsys.readouterr().err
    from models.training.pretrained import load_tla_network

    with pytest.raises(ModelError, match="refusing to load"):
        load_tla_network(bad)
