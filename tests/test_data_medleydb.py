"""The MedleyDB loader on a tiny fabricated tree in MedleyDB's own layout, with rendered parts as raw tracks."""
import logging

import numpy as np
import pytest
import soundfile as sf
import yaml

from ailive.models.data import load_song, make_example, render_songs
from ailive.models.data.medleydb import MedleyDBError, iter_medleydb, load_medleydb_song, role_of
from ailive.models.data.mixfit import fit_gains

RATE = 44100
MIX_GAINS_DB = np.array([0.0, -6.0, -12.0])
INSTRUMENTS = [("female singer", "melody"), ("electric bass", "bass"), ("drum set", "")]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    [path] = render_songs(tmp_path_factory.mktemp("songs"), 1, seed=4, seconds=6.0)
    song = load_song(path)
    return song.parts[:3]


def write_song(root, name, parts, *, drop=None, short=None):
    folder = root / name
    raw = folder / f"{name}_RAW"
    raw.mkdir(parents=True)
    stems = {}
    for index, ((instrument, component), audio) in enumerate(zip(INSTRUMENTS, parts), start=1):
        filename = f"{name}_RAW_{index:02d}_01.wav"
        stems[f"S{index:02d}"] = {"component": component, "filename": f"{name}_STEM_{index:02d}.wav", "instrument": instrument,
                                  "raw": {"R01": {"filename": filename, "instrument": instrument}}}
        if index != drop:
            sf.write(raw / filename, audio[: short] if index == 2 and short else audio, RATE)
    mix = (10 ** (MIX_GAINS_DB / 20)) @ parts
    sf.write(folder / f"{name}_MIX.wav", mix, RATE)
    meta = {"artist": "Test", "title": name, "mix_filename": f"{name}_MIX.wav", "raw_dir": f"{name}_RAW", "stems": stems}
    (folder / f"{name}_METADATA.yaml").write_text(yaml.safe_dump(meta))
    return folder


def test_a_song_loads_with_roles_and_the_human_balance(parts, tmp_path):
    medley = load_medleydb_song(write_song(tmp_path, "Good_Song", parts))
    assert medley.song.roles == ("lead_vocal", "bass", "overheads")
    assert medley.song.parts.shape == parts.shape and medley.song.sample_rate == RATE
    # The balance is each raw track's loudness at its fitted gain: the mix's own balance.
    from ailive.models.data.loudness import gated_loudness, step_energy
    wanted = gated_loudness(step_energy(parts, RATE)) + MIX_GAINS_DB
    assert medley.balance_lu - medley.balance_lu[0] == pytest.approx(wanted - wanted[0], abs=0.05)


def test_examples_from_medleydb_take_the_human_balance(parts, tmp_path):
    medley = load_medleydb_song(write_song(tmp_path, "Good_Song", parts))
    example = make_example(medley.song, np.random.default_rng(0), 4.0, balance_lu=medley.balance_lu)
    assert example.active.all()
    # Same balance, other input gains: the target gains undo the input gains and reapply the mix's.
    again = make_example(medley.song, np.random.default_rng(1), 4.0, balance_lu=medley.balance_lu, start_s=1.0)
    assert not np.allclose(example.target_gain_db, again.target_gain_db)


def test_a_tree_with_broken_songs_skips_them_with_reasons(parts, tmp_path, caplog):
    write_song(tmp_path, "A_Good", parts)
    write_song(tmp_path, "B_Missing", parts, drop=3)
    write_song(tmp_path, "C_Short", parts, short=RATE)
    (tmp_path / "D_NoMeta").mkdir()
    with caplog.at_level(logging.WARNING, logger="ailive.models.data.medleydb"):
        songs = list(iter_medleydb(tmp_path))
    assert [s.song.name for s in songs] == ["A_Good"]
    assert "B_Missing_RAW/B_Missing_RAW_03_01.wav is listed but missing" in caplog.text
    assert "C_Short_RAW_02_01.wav is 44100 samples" in caplog.text
    assert "no D_NoMeta_METADATA.yaml" in caplog.text
    with pytest.raises(MedleyDBError, match="listed but missing"):
        load_medleydb_song(tmp_path / "B_Missing")


def test_roles_from_medleydb_labels():
    assert role_of("male singer", "melody") == "lead_vocal"
    assert role_of("male singer") == "harmony"
    assert role_of("violin", "melody") == "lead_instrument"
    assert role_of("kick drum") == "kick" and role_of("snare drum") == "snare" and role_of("drum set") == "overheads"
    assert role_of("double bass") == "bass" and role_of("clean electric guitar") == "guitar"
    assert role_of("string section") == "pad" and role_of("theremin") == "harmony"


def test_fit_gains_recovers_a_mix_and_leaves_unused_channels_out(parts):
    channels = np.vstack([parts, parts[:1] * 0.5 + parts[1:2] * 0.1])
    mix = (10 ** (np.array([0.0, -6.0, -12.0]) / 20)) @ parts
    gains = fit_gains(channels, mix)
    assert np.isnan(gains[3])
    assert gains[:3] - gains[0] == pytest.approx([0.0, -6.0, -12.0], abs=0.01)
    assert np.mean(gains[:3]) == pytest.approx(0.0, abs=1e-9)
