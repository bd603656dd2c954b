"""ailive eval: models streamed through engine, policy and desk simulator; the metrics; the report; bad folders."""
import json
import math

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ailive.bridge.cli import main
from ailive.bridge.offline.evalreport import JSON_KEYS, json_object, produced_mix, score, summarise, write_report
from ailive.bridge.offline.evaluate import ARM_FADER_DB, EvalError, Run, load_items, run_all
from ailive.models.base import frame_samples
from ailive.models.data import load_song, make_example, render_songs
from ailive.models.data.heldout import write_example

SECONDS = 9.0


@pytest.fixture(scope="module")
def example_set(tmp_path_factory):
    """Two examples as a folder of example folders (fast bleed, random input gains)."""
    root = tmp_path_factory.mktemp("set")
    paths = render_songs(tmp_path_factory.mktemp("songs"), 2, seed=31, seconds=SECONDS)
    for index, path in enumerate(paths):
        song = load_song(path)
        example = make_example(song, np.random.default_rng(index), SECONDS, start_s=0.0)
        write_example(example, root / f"{index:02d}-{song.name}", song.programs)
    return root


@pytest.fixture(scope="module")
def evaluated(example_set):
    name, items = load_items(str(example_set))
    runs = run_all(items, ["unity", "loudness", "oracle"])
    scores = {m: [score(item, runs[m][item.name]) for item in items] for m in runs}
    return name, items, runs, scores, {m: summarise(s) for m, s in scores.items()}


def test_the_oracle_scores_zero_and_unity_does_not(evaluated):
    _, items, runs, scores, summaries = evaluated
    assert len(items) == 2 and all(len(r) == 2 for r in runs.values())
    oracle, unity = summaries["oracle"], summaries["unity"]
    assert oracle.gain_error_median_db < 0.3 and oracle.gain_error_p90_db < 1.0
    assert unity.gain_error_median_db > oracle.gain_error_median_db + 1.0
    assert unity.gain_error_p90_db > 4.0
    assert oracle.mrstft < unity.mrstft
    assert unity.travel_db_per_min == 0.0 and unity.writes_per_min == 0.0
    assert oracle.writes_per_min > 0.0 and summaries["loudness"].travel_db_per_min > 0.0


def test_the_desk_really_moved_and_only_after_arming(evaluated):
    _, items, runs, _, _ = evaluated
    run = runs["oracle"][items[0].name]
    before = run.times_s <= run.armed_at_s
    assert np.all(run.faders_db[before] == pytest.approx(ARM_FADER_DB, abs=0.05))
    assert np.ptp(run.faders_db[-1]) > 1.0  # the faders spread out to the balance
    assert run.writes > 0


def test_a_fader_applies_from_the_next_frame():
    rate = 8000
    hop = frame_samples(rate)
    inputs = np.ones((1, 4 * hop), dtype=np.float32)
    from ailive.bridge.offline.evaluate import Multitrack

    item = Multitrack("x", (), rate, inputs, inputs, None, None, np.array([True]), ("",))
    run = Run("m", np.array([0.05, 0.10, 0.15, 0.20]), np.array([[0.0], [-6.0], [-6.0], [-6.0]]), 0.0, 0, 0.0)
    mix = produced_mix(item, run)
    assert mix[:hop] == pytest.approx(10 ** (ARM_FADER_DB / 20))  # frame 0 plays before any step decided
    assert mix[hop:2 * hop] == pytest.approx(1.0)  # frame 1: what step 0 set after hearing frame 0
    assert mix[2 * hop:] == pytest.approx(10 ** (-6 / 20), rel=1e-4)


def test_report_files_and_json_shape(evaluated, tmp_path):
    name, items, runs, scores, summaries = evaluated
    files = write_report(tmp_path, name, items, runs, scores, summaries)
    obj = json_object(summaries)
    assert set(obj) == {"models"} and set(obj["models"]) == {"unity", "loudness", "oracle"}
    assert all(tuple(v) == JSON_KEYS for v in obj["models"].values())
    saved = json.loads(files["json"].read_text())
    assert saved["models"] == json.loads(json.dumps(obj))["models"]
    assert "| oracle |" in files["markdown"].read_text()
    plots = sorted((tmp_path / "plots").glob("*.png"))
    assert len(plots) == 2 and all(p.stat().st_size > 10_000 for p in plots)


def test_cli_json_on_a_folder(example_set, tmp_path):
    result = CliRunner().invoke(main, ["eval", "--models", "unity,oracle", "--set", str(example_set),
                                       "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert obj["models"]["oracle"]["gain_error_median_db"] < 0.3
    assert (tmp_path / "out" / "results.md").is_file()


def _recorded(folder, example_dir, *, with_mix=True):
    """Per-channel WAVs of an example as a recording, with its mix made at known gains."""
    from ailive.models.data.heldout import read_example

    example = read_example(example_dir)
    folder.mkdir()
    for i, channel in enumerate(example.inputs):
        sf.write(folder / f"ch{i + 1:02d}.wav", channel, example.sample_rate, subtype="FLOAT")
    gains = np.linspace(-6.0, 3.0, example.inputs.shape[0])
    if with_mix:
        sf.write(folder / "mix.wav", (10 ** (gains / 20)) @ example.inputs, example.sample_rate, subtype="FLOAT")
    return gains


def test_a_recorded_folder_with_its_mix(example_set, tmp_path):
    gains = _recorded(tmp_path / "rec", sorted(example_set.iterdir())[0])
    _, [item] = load_items(str(tmp_path / "rec"))
    assert len(item.channel_paths) == gains.size and all(p.stem != "mix" for p in item.channel_paths)
    fitted = item.target_gain_db[item.active]
    assert fitted - fitted.mean() == pytest.approx((gains - gains[item.active].mean())[item.active], abs=0.05)
    runs = run_all([item], ["oracle"])
    assert score(item, runs["oracle"][item.name]).gain_error_median_db < 0.3


def test_a_recorded_folder_without_a_mix_scores_stability_only(example_set, tmp_path):
    _recorded(tmp_path / "rec", sorted(example_set.iterdir())[0], with_mix=False)
    _, [item] = load_items(str(tmp_path / "rec"))
    assert item.target_gain_db is None
    runs = run_all([item], ["loudness", "oracle"])
    assert runs["oracle"] == {}
    result = score(item, runs["loudness"][item.name])
    assert math.isnan(result.gain_error_median_db) and result.writes_per_min > 0


def test_bad_folders_are_one_clear_line(tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    sf.write(odd / "a.wav", np.zeros(8000), 8000)
    sf.write(odd / "b.wav", np.zeros(9000), 8000)
    with pytest.raises(EvalError, match="b.wav has 9000 samples but a.wav has 8000"):
        load_items(str(odd))
    rates = tmp_path / "rates"
    rates.mkdir()
    sf.write(rates / "a.wav", np.zeros(8000), 8000)
    sf.write(rates / "b.wav", np.zeros(8000), 16000)
    with pytest.raises(EvalError, match="b.wav is 16000 Hz but a.wav is 8000 Hz"):
        load_items(str(rates))
    result = CliRunner().invoke(main, ["eval", "--set", str(odd), "--models", "unity"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and result.output.startswith("ailive: error:")
    result = CliRunner().invoke(main, ["eval", "--models", "nope", "--set", str(odd)])
    assert result.exit_code == 1 and "unknown model 'nope'" in result.output
