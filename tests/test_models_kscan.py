"""The k-scans: one --ks syntax, training through train_model (not the CLI), and the recorded command text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.training.kscan import parse_int_list
from models.training.train_options import TrainOptions

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "producer" / "samples" / "qcd.root"


@pytest.mark.parametrize(("text", "expected"), [
    ("2-12", list(range(2, 13))), ("1,2,3", [1, 2, 3]), ("1,2,4-8", [1, 2, 4, 5, 6, 7, 8]), ("5", [5]),
    (" 3 , 1 ", [3, 1]), ("4-4", [4]),
])
def test_int_list_accepts_lists_and_ranges(text: str, expected: list[int]) -> None:
    assert parse_int_list(text) == expected


@pytest.mark.parametrize("text", ["", "1,,2", "a", "3-1", "1-2-3", "2,2", "1-3,3", "0"])
def test_int_list_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int_list(text, minimum=1)


def test_command_line_round_trips_through_the_cli_parser() -> None:
    from emulator import cli

    parser, _ = cli.build_parser("train")
    for options in (TrainOptions(input=["a.root", "b.root"], out="/tmp/x", variables="all", arch="wide", latent=4,
                                 epochs=3, lr=1e-3, loss_weights={"pt": 2.0}, weight_decay=1e-4, max_events=100),
                    TrainOptions(input=["a.root"], out="/tmp/y", level="event", jets=5, slots=3, latent=2, seed=4)):
        text = options.command_line()
        assert text.startswith("aetrig train")
        again = TrainOptions.from_namespace(parser.parse_args(text.split()[2:]))
        assert again == options


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[TrainOptions]:
    """Record every train_model call (the real training still runs); fail if a scan goes through the CLI."""
    from emulator import cli
    from models.training import train_command

    calls: list[TrainOptions] = []
    real = train_command.train_model

    def recording(options: TrainOptions) -> dict[str, Any]:
        calls.append(options)
        return real(options)

    monkeypatch.setattr(train_command, "train_model", recording)
    from models.training import event_kscan, kscan

    for scan in (kscan, event_kscan):  # the scans import the function by name
        if hasattr(scan, "train_model"):
            monkeypatch.setattr(scan, "train_model", recording)
    monkeypatch.setattr(cli, "main", lambda *a, **k: pytest.fail("a scan called emulator.cli.main"))
    return calls


@pytest.mark.slow
@pytest.mark.torch
def test_kscan_trains_through_train_model(tmp_path: Path, spy: list[TrainOptions]) -> None:
    from models.training import kscan

    out = tmp_path / "wk"
    assert kscan.main(["--input", str(SAMPLE), "--ks", "2,4-5", "--epochs", "1", "--max-events", "300",
                       "--batch-size", "256", "--out", str(out)]) == 0
    assert [(o.arch, o.variables, o.latent, o.epochs, o.progress) for o in spy] == \
        [("wide", "all", k, 1, False) for k in (2, 4, 5)]
    summary = json.loads((out / "kscan.json").read_text())
    assert [row["k"] for row in summary["scan"]] == [2, 4, 5]
    assert summary["scan"][0]["train_command"] == spy[0].command_line()
    assert "pt" in summary["variables"] and (out / "kscan.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.torch
def test_event_kscan_trains_through_train_model(tmp_path: Path, spy: list[TrainOptions]) -> None:
    from models.training import event_kscan

    out = tmp_path / "ek"
    assert event_kscan.main(["--input", str(SAMPLE), "--ks", "1", "--seeds", "0-1", "--epochs", "1",
                             "--max-events", "300", "--batch-size", "128", "--out", str(out)]) == 0
    assert [(o.level, o.latent, o.seed) for o in spy] == [("event", 1, 0), ("event", 1, 1)]
    summary = json.loads((out / "kscan.json").read_text())
    runs = summary["scan"][0]["runs"]
    assert [r["train_command"] for r in runs] == [o.command_line() for o in spy]
    assert runs[0]["train_command"].startswith("aetrig train --level event")
    assert 0 <= summary["scan"][0]["summary"]["signals"]["darkshower"]["auc"]["mean"] <= 1


def test_bad_ks_is_a_usage_error(tmp_path: Path) -> None:
    from models.training import event_kscan, kscan

    for scan in (kscan, event_kscan):
        with pytest.raises(SystemExit) as exit_info:
            scan.main(["--input", str(SAMPLE), "--ks", "3-1", "--out", str(tmp_path)])
        assert exit_info.value.code == 2
