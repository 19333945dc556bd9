"""Study 2's bytes per jet, counted on segments the sink's writer makes, agree with a live `aetrig run`.

Same sample (the bundled qcd.root, 20 000 events, one loop), same model (the default, RD_AE_g23, ANS-coded
latents), the sink's default compression and score bits. Commit-size assumption: one commit holds the whole
sample on both sides (the study commits every ``--commit-events`` default of 50 000 events, so the 20 000 events
are one commit; the live run gets ``--commit-events 20000 --commit-ms 600000`` so that neither count nor clock
cuts it earlier). What still differs, and why the figures are close but not equal: the live run flags with the
default event-level model EVT_AE_ht (its scores and flagged events differ, and the real run manifest is stored),
the study with the compression model's own per-jet max error at FPR 1e-3. Both store the same two cards: the study
is told to store EVT_AE_ht's card as the anomaly card (a fixed 17 kB, 0.24 B/jet on these 70 552 jets, that would
otherwise be the whole difference; format 4 stores a model's own card once when it scored the events).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.offline.recording_bytes import CATEGORIES
from consumer.offline.studies.common import load_sample
from consumer.offline.studies.rate_distortion import FALLBACK_FPR
from consumer.offline.studies.rate_distortion_sink import model_sink_bytes
from emulator.runtime.defaults import DEFAULT_ANOMALY_MODEL, DEFAULT_MODEL, DEFAULT_SAMPLE, ZOO
from models.runtime.card import load_model_dir

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 0.05


@pytest.mark.timeout(240)
def test_study_and_live_run_agree_in_bytes_per_jet(tmp_path: Path) -> None:
    sample = load_sample("qcd", [DEFAULT_SAMPLE])
    event_card = load_model_dir(DEFAULT_ANOMALY_MODEL, level="event").card_json  # what the live run stores
    study = model_sink_bytes(sample, str(DEFAULT_MODEL), FALLBACK_FPR, anomaly_card_text=event_card)
    assert study["settings"]["latent_codec_used"] == "ans"
    assert study["events"] == sample.n_events and study["jets"] == sample.n_jets
    assert study["settings"]["commit_events"] >= sample.n_events  # one commit, as in the live run below

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "emulator.cli", "run", "--out", str(out), "--loops", "1", "--rate", "0",
           "--commit-events", str(sample.n_events), "--commit-ms", "600000", "--lossless-events", "0",
           "--status-interval", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=200, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    live = json.loads((out / "summary.json").read_text())["recording_bytes"]
    assert live["events"] == sample.n_events and live["jets"] == sample.n_jets

    study_b, live_b = study["per_jet"]["total"], live["per_jet"]["total"]
    detail = {k: (round(study["per_jet"][k], 3), round(live["per_jet"][k], 3)) for k in CATEGORIES}
    assert abs(study_b / live_b - 1) <= TOLERANCE, f"study {study_b:.3f} vs live {live_b:.3f} B/jet: {detail}"
    # the latents are the same bytes: same model, same ANS coder, one block of the same jets on both sides
    assert study["by_category"]["latents"] == live["by_category"]["latents"], detail


def test_study_points_carry_the_sink_figure_and_its_text() -> None:
    from consumer.offline.studies import rate_distortion as rd
    from consumer.offline.studies import rate_distortion_text

    sample = load_sample("qcd", [DEFAULT_SAMPLE], max_events=600)
    result = rd.run([sample], [str(DEFAULT_MODEL)], quick=True, min_seconds=0.0)
    (key, st), = result["samples"]["qcd"]["sets"].items()
    (p,) = [q for q in st["points"] if q["kind"] == "AE"]
    # quick: the sample once; independently written again here, the same bytes
    again = model_sink_bytes(sample, str(DEFAULT_MODEL), rd.FALLBACK_FPR, rd.BLOCK_EVENTS)
    assert p["sink"]["bytes"] == again["bytes"] and p["sink"]["events"] == 600
    assert p["sink"]["bytes_per_jet"] == pytest.approx(again["bytes"] / sample.n_jets)
    comp = st["comparison"]["ae"][p["config"]]
    assert comp["sink_bytes_per_jet"] == p["sink"]["bytes_per_jet"]
    assert comp["sink_ratio_vs_best_lossless"] == pytest.approx(
        st["comparison"]["best_lossless_bytes_per_jet"] / p["sink"]["bytes_per_jet"])
    text = "\n".join(rate_distortion_text._set_sentences("qcd", key, st))
    assert f"{p['sink']['bytes_per_jet']:.2f} B/jet" in text and "as the sink records it" in text


def test_looping_keeps_every_commit_free_of_repeated_jets() -> None:
    float_model = str(ZOO / "AE_3D_200_ptetaphie")  # float32 latents + zstd: repeats in a basket would show
    sample = load_sample("qcd", [DEFAULT_SAMPLE], max_events=3000)
    looped = model_sink_bytes(sample, float_model, FALLBACK_FPR, events=9000)
    assert looped["events"] == 9000 and looped["jets"] == 3 * sample.n_jets
    assert looped["settings"]["commit_events"] == 3000
    assert 3000 % looped["settings"]["message_events"] == 0
    once = model_sink_bytes(sample, float_model, FALLBACK_FPR)
    # three passes, each its own commit, cost three times one pass's latents (within basket-header noise);
    # one 9 000-event commit would let zstd code the second and third pass almost for free
    assert looped["by_category"]["latents"] == pytest.approx(3 * once["by_category"]["latents"], rel=0.01)
