"""Study 2's rate-distortion comparison end to end on a small slice, and its byte accounting."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.offline import lossy_codecs, stream_codecs
from consumer.offline.studies import rate_distortion as rd
from consumer.offline.studies import rate_distortion_plot, rate_distortion_text
from consumer.offline.studies.common import bundled, load_model, load_sample
from emulator.runtime.defaults import ZOO

MODEL = ZOO / "AE_3D_200_ptetaphie"


@pytest.fixture(scope="module")
def sample():
    return load_sample("qcd", [bundled("qcd")], max_events=400)


def test_block_is_the_sink_commit_and_blocks_partition_the_jets(sample) -> None:
    from consumer.sink.service import SinkConfig

    assert rd.BLOCK_EVENTS == SinkConfig.__dataclass_fields__["commit_events"].default == 50000
    x = sample.take(["pt", "eta"])
    blocks = rd.split_blocks(x, sample.counts, 150)
    assert [len(b.counts) for b in blocks] == [150, 150, 100]
    np.testing.assert_array_equal(np.concatenate([b.x for b in blocks]), x)
    assert [b.n_jets for b in blocks] == [int(b.counts.sum()) for b in blocks]
    assert len(rd.split_blocks(x, sample.counts)) == 1  # a small sample is one block


def test_streams_are_real_bytes_and_counted_by_len(sample) -> None:
    variables = ("pt", "eta", "phi", "e")
    blocks = rd.split_blocks(sample.take(variables), sample.counts, 150)
    cfg = rd.LossyConfig.uniform("SZ3", 1e-2, variables)
    streams = [cfg.encode(b) for b in blocks]
    counted = sum(sum(rd.nbytes(s).values()) for s in streams)
    assert counted == sum(len(b) for s in streams for parts in s.values() for b in parts)
    assert all(isinstance(b, bytes) for s in streams for parts in s.values() for b in parts)
    # lossless: the point's bytes are the independently compressed columns + the counts stream
    ll = rd.LosslessConfig("zstd-19", variables)
    ll_streams, decoded, _, _ = rd.measure(ll, blocks, 0.0)
    point = rd._point("lossless", "zstd-19", "zstd-19", variables, blocks, ll_streams, decoded, 0.0, 0.0, 1000.0)
    import uproot

    expect = sum(len(bytes(uproot.ZSTD(19).compress(np.ascontiguousarray(b.x[:, i]).tobytes())))
                 for b in blocks for i in range(len(variables)))
    expect += sum(len(bytes(uproot.ZSTD(19).compress(b.counts.astype(np.uint16).tobytes()))) for b in blocks)
    assert point["stream_bytes_total"] == expect
    np.testing.assert_array_equal(decoded, np.concatenate([b.x for b in blocks]))


def test_ae_streams_decode_and_fallback_is_exact(sample) -> None:
    model = load_model(MODEL)
    blocks = rd.split_blocks(sample.take(model.variables), sample.counts, 150)
    threshold = 0.0  # every event with jets flagged: the decoded jets must then be the raw ones
    for storage in rd.STORAGES:
        cfg = rd.AEConfig(model, storage, "shuffle+zstd-19", threshold)
        for b in blocks:
            s = cfg.encode(b)
            np.testing.assert_array_equal(cfg.decode(s, len(b.counts)), b.x)
    cfg = rd.AEConfig(model, "float16", "zstd-19", model.threshold(fpr=1e-3))
    s = cfg.encode(blocks[0])
    counts, flag, latent, raw = cfg.unpack(s, len(blocks[0].counts))
    np.testing.assert_array_equal(counts, blocks[0].counts)
    assert raw.shape == (int(counts[flag].sum()), len(model.variables))
    assert latent.shape == (blocks[0].n_jets, model.latent_dim)


def test_end_to_end_small_slice(sample, tmp_path) -> None:
    result = rd.run([sample], [str(MODEL)], quick=True, min_seconds=0.0)
    key = "pt,eta,phi,e"
    st = result["samples"]["qcd"]["sets"][key]
    kinds = {p["kind"] for p in st["points"]}
    assert kinds == {"lossy", "lossless", "AE", "matched"}
    matched = [p for p in st["points"] if p["kind"] == "matched"]
    assert len(matched) == len(rd.STORAGES) * len(rd.GOAL_FAMILIES) and all(p["matched"] for p in matched)
    fams = {p["family"] for p in st["points"] if p["kind"] == "lossy"}
    assert fams == set(lossy_codecs.FAMILIES)
    model = load_model(MODEL)
    for p in st["points"]:
        assert p["stream_bytes"]["bookkeeping"] > 0 and p["cpu"]["cycles_per_jet"] > 0
        if p["kind"] in ("lossy", "matched"):  # the point-wise bound, as measured by the study itself
            assert all(p["max_error"][v] <= p["bounds"][v] for v in p["variables"])
        if p["kind"] == "matched":  # tuned to an AE: at least as accurate on every variable
            ae = next(q for q in st["points"] if q["config"] == p["matched_to"])
            assert p["matched"] == all(rd.width(p, v) <= rd.width(ae, v) for v in p["variables"])
        if p["kind"] == "AE":
            mb = rd.model_bytes(model)
            assert p["model_bytes"] == mb > 100_000
            diff = rd.stream_bytes_per_jet(p) - rd.stream_bytes_per_jet(p, 10**9)
            assert diff == pytest.approx(mb * p["n_events"] * (1e-6 - 1e-9) / p["n_jets"])
            # the headline (front, ratio) is what the sink's writer records for the same jets
            assert rd.bytes_per_jet(p) == p["sink"]["bytes_per_jet"] > 0
            assert "fallback" in p["stream_bytes"]
    ae = st["comparison"]["ae"]
    assert len(ae) == len(rd.STORAGES)
    assert st["comparison"]["best_lossless"] in stream_codecs.LOSSLESS
    text = rate_distortion_text.conclusion(result)
    assert "wins" in text and "loses" in text and "goal" in text
    md = rate_distortion_text.markdown(result)
    assert md.count("\n|") >= len(st["points"]) + 1
    figs = rate_distortion_plot.plot_all(result, str(tmp_path), {})
    assert any(f.endswith(".png") for f in figs) and all((tmp_path / f.split("/")[-1]).is_file() for f in figs)


RD_MODEL = ZOO / "RD_AE_l2"


def test_rate_model_counts_its_entropy_coded_bytes(sample) -> None:
    """A rate-trained AE's payload is the exact ANS buffer of latent_coding.code_jets (the sink's bytes), its
    size within 1 % + a word of the ideal code length, decoded bit-exactly; the model's bytes include the
    entropy model its card carries; the float storages do not apply to it."""
    from models.runtime import latent_coding as lc

    model = load_model(RD_MODEL)
    assert rd.ae_storages(model) == (rd.CODED_STORAGE,)
    assert rd.ae_storages(load_model(MODEL)) == rd.STORAGES
    blocks = rd.split_blocks(sample.take(model.variables), sample.counts, 150)
    cfg = rd.ae_config(model, rd.CODED_STORAGE, "zstd-19", model.threshold(fpr=1e-3))
    entropy = lc.load_entropy_model(RD_MODEL)
    for b in blocks:
        streams = cfg.encode(b)
        (payload,) = streams["payload"]
        assert payload == lc.code_jets(RD_MODEL, b.x)
        q = lc.quantise(lc.encoder_session(RD_MODEL).run(["latent"], {"x": b.x})[0], entropy)
        assert 8 * len(payload) <= 1.01 * lc.ideal_bits(q, entropy) + 32
        counts, flag, latent, raw = cfg.unpack(streams, len(b.counts))
        np.testing.assert_array_equal(latent, lc.dequantise(q, entropy))
        decoded = cfg.decode(streams, len(b.counts))
        np.testing.assert_array_equal(decoded[np.repeat(flag, counts)], raw)
        np.testing.assert_allclose(decoded[~np.repeat(flag, counts)],
                                   lc.decode_jets(RD_MODEL, payload, b.n_jets)[~np.repeat(flag, counts)],
                                   rtol=1e-6, atol=1e-6)
    table = len(lc.entropy_model_text(model.card, []))
    assert rd.model_bytes(model) == (RD_MODEL / "decoder.onnx").stat().st_size + len(model.card_json.encode())
    assert len(model.card_json.encode()) > table  # the card carries the table


def test_end_to_end_with_a_rate_model(sample) -> None:
    result = rd.run([sample], [str(RD_MODEL)], quick=True, min_seconds=0.0)
    st = result["samples"]["qcd"]["sets"]["pt,eta,phi,e"]
    ae = [p for p in st["points"] if p["kind"] == "AE"]
    assert [p["storage"] for p in ae] == [rd.CODED_STORAGE]
    (p,) = ae
    assert p["stream_bytes"]["payload"] == len(lc_code(sample, p))
    assert p["model_bytes"] == rd.model_bytes(load_model(RD_MODEL))


def lc_code(sample, point) -> bytes:
    from models.runtime import latent_coding as lc

    return lc.code_jets(RD_MODEL, sample.take(point["variables"]))
