"""The ONNX runtime refuses bad model folders and streams with one clear line, and never emits a non-finite gain."""
import json
import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from ailive.models.registry import UnknownModelError, load_model  # noqa: E402
from ailive.models.runtime import AlmRuntime, ModelLoadError, ModelStreamError, file_sha256  # noqa: E402


@pytest.fixture
def model_copy(exported_models, tmp_path):
    _, folder = exported_models["mr"]
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    return copy


def edit_card(folder, **changes):
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))


def noise(channels, rate=48000, level=0.1, seed=0):
    return (level * np.random.default_rng(seed).standard_normal((channels, rate // 20))).astype(np.float32)


def run(runtime, frames, channels=4, rate=48000):
    state = runtime.initial_state(channels, rate)
    out = []
    for frame in frames:
        gains, state = runtime.step(state, frame)
        out.append(gains)
    return np.array(out), state


def test_missing_graph(model_copy):
    (model_copy / "fast.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"fast.onnx: missing \(fast graph\)"):
        AlmRuntime(model_copy)


def test_missing_card_and_missing_folder(model_copy, tmp_path):
    (model_copy / "card.json").unlink()
    with pytest.raises(ModelLoadError, match="card.json: missing"):
        AlmRuntime(model_copy)
    with pytest.raises(ModelLoadError, match="does not exist"):
        AlmRuntime(tmp_path / "nowhere")


def test_a_damaged_graph_fails_its_checksum(model_copy):
    with (model_copy / "slow.onnx").open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelLoadError, match="checksum does not match"):
        AlmRuntime(model_copy)


def test_a_graph_onnx_runtime_cannot_load_is_one_line(model_copy):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(model_copy / "fast.onnx"))
    graph.opset_import[0].version = 99  # an opset no runtime knows
    onnx.save(graph, str(model_copy / "fast.onnx"))
    edit_card(model_copy, sha256={"slow": file_sha256(model_copy / "slow.onnx"), "fast": file_sha256(model_copy / "fast.onnx")})
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load it") as info:
        AlmRuntime(model_copy)
    assert "\n" not in str(info.value)


def test_a_card_that_does_not_match_the_graphs(model_copy):
    edit_card(model_copy, slow_width=999)
    with pytest.raises(ModelLoadError, match="width 32, the card says 999"):
        AlmRuntime(model_copy)


@pytest.mark.parametrize("change, message", [
    ({"format": "something-else"}, "is not 'ailive-alm'"),
    ({"version": 7}, "card version 7 is not supported"),
    ({"frame_s": 0.02}, "does not match the bridge's 0.05 s control frame"),
    ({"features": {"bands": "many"}}, "missing or malformed"),
    ({"gain_range_db": [-90.0, 24.0]}, r"gain_range_db \[-90, 24\] is not within the bridge's \[-48, 24\] dB"),
    ({"gain_range_db": "wide"}, "missing or malformed"),
])
def test_malformed_cards(model_copy, change, message):
    edit_card(model_copy, **change)
    with pytest.raises(ModelLoadError, match=message):
        AlmRuntime(model_copy)


def test_the_card_bounds_the_gains(model_copy):
    """A model whose card promises a narrower range never reports a gain outside it."""
    edit_card(model_copy, gain_range_db=[-6.0, 3.0])
    runtime = AlmRuntime(model_copy)
    assert (runtime.card.min_gain_db, runtime.card.max_gain_db) == (-6.0, 3.0)
    state = runtime.initial_state(4, 48000)
    noise = np.random.default_rng(3).standard_normal((4, 2400)).astype(np.float32) * np.array([[1.0], [0.1], [0.01], [0.3]], np.float32)
    seen = [runtime.step(state, noise)[0] for _ in range(30)]
    finite = np.concatenate([g[np.isfinite(g)] for g in seen])
    assert finite.size and finite.min() >= -6.0 and finite.max() <= 3.0


def test_a_card_that_is_not_json(model_copy):
    (model_copy / "card.json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        AlmRuntime(model_copy)


def test_stream_at_an_unsupported_rate_or_too_many_channels(exported_models):
    runtime = AlmRuntime(exported_models["mr"][1])
    with pytest.raises(ModelStreamError, match="22050 Hz is not supported"):
        runtime.initial_state(4, 22050)
    with pytest.raises(ModelStreamError, match="takes 1..64 channels; this show analyses 65"):
        runtime.initial_state(65, 48000)


def test_all_zero_input_is_no_opinion_not_a_gain(exported_models):
    runtime = AlmRuntime(exported_models["mr"][1])
    gains, _ = run(runtime, [np.zeros((4, 2400), np.float32)] * 30)
    assert np.isnan(gains).all()


def test_clipped_input_gives_finite_bounded_gains(exported_models):
    runtime = AlmRuntime(exported_models["mr"][1])
    clipped = np.clip(noise(4, level=5.0), -1.0, 1.0)
    gains, _ = run(runtime, [clipped] * 30)
    assert np.isfinite(gains[-1]).all()
    assert (gains[-1] >= runtime.card.min_gain_db).all() and (gains[-1] <= runtime.card.max_gain_db).all()


def test_nan_audio_holds_that_channel_and_does_not_poison_the_others_or_the_memory(exported_models):
    runtime = AlmRuntime(exported_models["mr"][1])
    clean = [noise(4, seed=k) for k in range(40)]
    reference, _ = run(runtime, clean)
    broken = [frame.copy() for frame in clean]
    for frame in broken[20:22]:
        frame[1, 100:200] = np.nan
        frame[2, 5] = np.inf
    gains, state = run(runtime, broken)
    assert np.isnan(gains[20:22, 1:3]).all()  # no opinion while the audio is not finite: the policy holds
    assert np.isfinite(gains[20:22, [0, 3]]).all()
    assert np.isfinite(state.gru).all() and np.isfinite(state.features.ring).all()
    assert np.isfinite(gains[25:]).all()  # and it comes back


@pytest.mark.parametrize("on_worker", [True, False])
def test_a_re_patched_channel_starts_with_a_fresh_memory(exported_models, on_worker):
    runtime = AlmRuntime(exported_models["mr"][1], slow_on_worker=on_worker)  # activity is known on the slow frame either way
    frames = [noise(3, seed=k) for k in range(40)]
    for frame in frames[10:70]:
        frame[0] = 0.0
    frames += [noise(3, seed=100 + k) for k in range(20)]
    for frame in frames[40:50]:
        frame[0] = 0.0  # heard, then silent for 2 s (frames 10..49), then back
    state = runtime.initial_state(3, 48000)
    seen_reset = False
    for k, frame in enumerate(frames):
        before = state.gru[0].copy()
        _, state = runtime.step(state, frame)
        if k >= 50 and k % 6 == 0 and not seen_reset and state.active[0]:
            seen_reset = True
            assert not np.allclose(before, 0.0)  # it had a memory ...
    assert seen_reset


def test_registry_loads_a_folder_by_path_and_names_what_exists(exported_models):
    model = load_model(str(exported_models["mr"][1]))
    assert model.card.name == "alm-mr"
    with pytest.raises(UnknownModelError, match="known: dugan, loudness, unity"):
        load_model("nonsense")


class HeldSlowGraph:
    """The slow graph's session, run only once the test lets it: proves the control step does not wait for it."""

    def __init__(self, session) -> None:
        self.session = session
        self.release = threading.Event()
        self.started = threading.Event()
        self.threads: list[int] = []

    def run(self, outputs, inputs):
        self.threads.append(threading.get_ident())
        self.started.set()
        assert self.release.wait(60), "the test never let the slow graph run"
        return self.session.run(outputs, inputs)


def test_the_slow_graph_runs_off_the_control_step_and_counts_from_the_next_frame(exported_models):
    runtime = AlmRuntime(exported_models["mr"][1], slow_on_worker=True)
    assert runtime.slow_on_worker
    held = runtime._slow = HeldSlowGraph(runtime._slow)
    state = runtime.initial_state(4, 48000)
    held.release.set()
    for k in range(6):  # frame 0's slow step, taken up on frame 1
        _, state = runtime.step(state, noise(4, seed=k))
    held.release.clear()
    before = state.slow.copy()
    gains, state = runtime.step(state, noise(4, seed=6))  # frame 6: a slow step, started, not waited for
    assert held.started.wait(60)
    assert state.pending is not None and not state.pending.done()
    np.testing.assert_array_equal(state.slow, before)  # frame 6's gains came from frame 0's embedding
    assert np.isfinite(gains).all()
    held.release.set()
    _, state = runtime.step(state, noise(4, seed=7))  # frame 7 takes frame 6's embedding up
    assert state.pending is None and not np.array_equal(state.slow, before)
    assert set(held.threads) != {threading.get_ident()}


def test_inline_slow_graph_by_default_and_for_models_whose_fast_step_waits_as_long(exported_models, monkeypatch):
    monkeypatch.delenv("AILIVE_SLOW_GRAPH", raising=False)
    inline = AlmRuntime(exported_models["mr"][1])
    held = inline._slow = HeldSlowGraph(inline._slow)
    held.release.set()
    state = inline.initial_state(4, 48000)
    before = state.slow.copy()
    _, state = inline.step(state, noise(4))
    assert state.pending is None and not np.array_equal(state.slow, before)  # taken up on its own frame
    assert held.threads == [threading.get_ident()]
    assert not AlmRuntime(exported_models["sr"][1], slow_on_worker=True).slow_on_worker  # a frame late: a slow period late
    monkeypatch.setenv("AILIVE_SLOW_GRAPH", "worker")
    assert AlmRuntime(exported_models["mr"][1]).slow_on_worker
    monkeypatch.setenv("AILIVE_SLOW_GRAPH", "sideways")
    with pytest.raises(ModelLoadError, match="AILIVE_SLOW_GRAPH must be 'inline' or 'worker', not 'sideways'"):
        AlmRuntime(exported_models["mr"][1])
