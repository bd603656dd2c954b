"""An exported ALM model rides the simulator through `ailive run`, and a model that cannot be used stops nothing."""
import shutil

import pytest

import numpy as np
import soundfile as sf

from tests.test_cli import EXAMPLE, ailive, assert_one_line_error, desk_faders, make_stems, sim_process  # noqa: F401

pytest.importorskip("onnxruntime")


def test_run_with_an_exported_model_folder_runs_every_step(exported_models, sim_process, tmp_path):
    _, folder = exported_models["mr"]
    sim = sim_process("x32")
    stems = make_stems(tmp_path / "stems", seconds=4.0)
    result = ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}", "--arm",
                    "--arm-after", "1.2", "--headless", "--model", str(folder), "--journal", str(tmp_path / "j"),
                    timeout=90)
    assert result.returncode == 0, result.stderr
    journal = (tmp_path / "j" / "x32-demo.jsonl").read_text()
    assert '"model": "alm-mr"' in journal
    assert '"kind": "stop", "steps": 80' in journal
    assert "model-error" not in journal


async def test_the_engine_gets_exactly_the_runtime_gains(exported_models, x32_sim, tmp_path):
    """The bridge passes the analysed channels' frames to the model unchanged and shows its proposals."""
    from ailive.models.runtime import AlmRuntime
    from tests.test_engine import run_engine, write_stems

    _, folder = exported_models["mr"]
    stems = write_stems(tmp_path / "stems", [-8.0, -20.0, -14.0, -20.0, -26.0, -20.0, -20.0, -30.0], seconds=3.0)
    engine, status, show = await run_engine(x32_sim, stems, tmp_path, model=str(folder))
    assert status.model_errors == 0 and status.steps == 60
    proposed = np.array([c.proposed_db for c in status.channels])
    runtime = AlmRuntime(folder)
    audio = np.stack([sf.read(path, dtype="float32")[0] for path in sorted(stems.iterdir())])[:7]  # talkback excluded
    state = runtime.initial_state(7, 48000)
    for k in range(60):
        gains, state = runtime.step(state, audio[:, k * 2400:(k + 1) * 2400])
    np.testing.assert_allclose(proposed[:7], gains, atol=1e-4)
    assert np.isfinite(proposed[:7]).all()


def test_run_with_a_broken_model_folder_is_one_line_and_touches_nothing(exported_models, sim_process, tmp_path):
    _, folder = exported_models["mr"]
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "slow.onnx").unlink()
    sim = sim_process("x32")
    before = desk_faders(sim.port)
    stems = make_stems(tmp_path / "stems", seconds=1.0)
    assert_one_line_error(ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}",
                                 "--arm", "--model", str(broken)), r"slow\.onnx: missing \(slow graph\)")
    assert desk_faders(sim.port) == before


def test_run_with_a_stream_the_model_cannot_take_is_one_line(exported_models, sim_process, tmp_path):
    _, folder = exported_models["mr"]
    sim = sim_process("x32")
    stems = tmp_path / "stems"
    stems.mkdir()
    for index in range(8):
        sf.write(stems / f"{index + 1:02d}.wav", 0.1 * np.random.default_rng(index).standard_normal(22050), 22050)
    assert_one_line_error(ailive("run", str(EXAMPLE), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}",
                                 "--arm", "--model", str(folder)), r"22050 Hz is not supported")
