"""Bleed: the closed form and the room simulation agree on a stage, delays and levels are where the geometry puts them."""
import numpy as np
import pytest

from ailive.models.data.bleed import apply_bleed, closed_form_paths
from ailive.models.data.room import RoomBank, apply_room, load_bank, save_bank, simulate_room
from ailive.models.data.stage import SPEED_OF_SOUND_M_S, random_stage

RATE = 16000


@pytest.fixture(scope="module")
def stage_and_room():
    stage = random_stage(np.random.default_rng(3), 4)
    return stage, simulate_room(stage, RATE)


def test_closed_form_bleed_level_agrees_with_the_image_source_room(stage_and_room):
    stage, room = stage_and_room
    closed = closed_form_paths(stage, RATE, np.random.default_rng(0)).bleed_ratio_db()
    simulated = room.bleed_ratio_db()
    assert np.all(closed < -3.0) and np.all(simulated < -3.0)
    assert np.median(np.abs(closed - simulated)) < 1.5
    assert np.max(np.abs(closed - simulated)) < 3.0


def test_a_click_reaches_another_mic_after_the_extra_distance(stage_and_room):
    stage, _ = stage_and_room
    paths = closed_form_paths(stage, RATE, np.random.default_rng(0))
    sources = np.zeros((4, RATE), dtype=np.float32)
    sources[1, 1000] = 1.0
    mics = apply_bleed(sources, paths)
    distance = stage.distances_m()
    expected = 1000 + round((distance[0, 1] - distance[0, 0]) / SPEED_OF_SOUND_M_S * RATE)
    assert int(np.argmax(np.abs(mics[0]))) == expected
    assert mics[0, expected] == pytest.approx(paths.gain[0, 1], rel=1e-3)
    assert mics[1, 1000] == pytest.approx(1.0, abs=1e-3)  # its own mic: on time, at unit gain
    assert np.max(np.abs(mics[0, :expected - 1])) < 1e-6  # nothing arrives before sound can (FFT rounding aside)


def test_severity_sets_the_median_bleed_and_leaves_the_own_source_alone(stage_and_room):
    stage, room = stage_and_room
    paths = closed_form_paths(stage, RATE, np.random.default_rng(0))
    for wanted in (-25.0, -10.0):
        assert np.median(paths.scaled(wanted).bleed_ratio_db()) == pytest.approx(wanted)
        assert np.median(room.scaled(wanted).bleed_ratio_db()) == pytest.approx(wanted, abs=1e-3)
    assert np.all(np.diag(paths.scaled(-25.0).gain) == 1.0)


def test_room_convolution_keeps_each_own_source_time_aligned(stage_and_room):
    _, room = stage_and_room
    rng = np.random.default_rng(1)
    sources = rng.standard_normal((4, RATE)).astype(np.float32)
    mics, own = apply_room(sources, room)
    for i in range(4):
        lag = int(np.argmax(np.correlate(own[i, :4000], sources[i, :4000], mode="full"))) - 3999
        assert lag == 0
    assert np.all(np.mean((mics - own) ** 2, axis=1) > 0)


def test_the_bank_survives_the_cache(stage_and_room, tmp_path):
    _, room = stage_and_room
    bank = RoomBank(RATE, (room,))
    save_bank(bank, tmp_path / "bank.npz")
    back = load_bank(tmp_path / "bank.npz")
    assert back.sample_rate == RATE and np.allclose(back.rooms[0].irs, room.irs, atol=1e-3)
    assert np.allclose(back.rooms[0].stage.mics_m, room.stage.mics_m)
