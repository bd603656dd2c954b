"""Rendering multitracks: deterministic from the seed, cached, labelled, and loud about what it cannot use."""
import json
import logging

import numpy as np
import pytest

from ailive.models.data import SongError, load_song, render_songs
from ailive.models.data.arrangement import Part, notes_array
from ailive.models.data.band import band_arrangement
from ailive.models.data.corpus import corpus_paths, split_of
from ailive.models.data.roles import ROLES
from ailive.models.data.synth import PartRenderer, SoundFontError, builtin_soundfont


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, render_songs(cache, 3, seed=11, seconds=4.0)


def test_songs_are_labelled_multitracks_of_real_parts(rendered):
    _, paths = rendered
    for path in paths:
        song = load_song(path)
        channels = song.parts.shape[0]
        assert 2 <= channels <= 8 and song.parts.shape[1] == 4 * 44100
        assert all(role in ROLES for role in song.roles) and len(song.programs) == channels
        assert np.all(np.max(np.abs(song.parts), axis=1) > 1e-3)  # every part makes sound
        assert not np.allclose(song.parts[0], song.parts[1])
        assert song.step_energy is not None and song.step_energy.shape == (channels, 40)
        record = json.loads(path.read_text())
        assert record["soundfont"] and record["source"]


def test_rendering_is_deterministic_and_cached(rendered, tmp_path):
    cache, paths = rendered
    again = render_songs(tmp_path, 3, seed=11, seconds=4.0)
    for a, b in zip(paths, again):
        assert json.loads(a.read_text())["flac_sha256"] == json.loads(b.read_text())["flac_sha256"]
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert render_songs(cache, 3, seed=11, seconds=4.0) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps  # nothing rendered twice
    more = render_songs(cache, 4, seed=11, seconds=4.0)
    assert more[:3] == paths and more[3].is_file()


def test_another_seed_is_another_set_of_songs(rendered, tmp_path):
    _, paths = rendered
    other = render_songs(tmp_path, 1, seed=12, seconds=4.0)
    assert other[0].parent != paths[0].parent
    assert json.loads(other[0].read_text())["flac_sha256"] != json.loads(paths[0].read_text())["flac_sha256"]


def test_an_incomplete_song_is_refused_by_name(rendered, tmp_path):
    _, paths = rendered
    flac = tmp_path / paths[0].with_suffix(".flac").name
    flac.write_bytes(paths[0].with_suffix(".flac").read_bytes())
    with pytest.raises(SongError, match="json is missing"):
        load_song(flac)


def test_a_corrupt_soundfont_is_one_clear_error(tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00sfbk" + bytes(64))
    with pytest.raises(SoundFontError, match="broken.sf2 cannot be read"):
        PartRenderer(broken, 44100)
    with pytest.raises(SoundFontError, match="does not exist"):
        PartRenderer(tmp_path / "missing.sf2", 44100)


def test_render_songs_refuses_a_corrupt_soundfont(tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(bytes(100))
    with pytest.raises(SoundFontError, match="cannot be read"):
        render_songs(tmp_path / "cache", 1, seed=1, seconds=2.0, soundfonts=[broken])


def test_a_part_is_rendered_where_its_notes_are_and_nothing_rings_over_from_the_last():
    renderer = PartRenderer(builtin_soundfont(), 22050)
    renderer.render(Part("pad", 48, False, notes_array([(0.0, 1.9, 60, 100)])), 2.0)
    part = Part("keys", 0, False, notes_array([(0.5, 1.0, 60, 100)]))
    audio = renderer.render(part, 2.0)
    assert audio.shape == (44100,)
    assert np.max(np.abs(audio[: int(0.45 * 22050)])) == 0.0
    assert np.max(np.abs(audio[int(0.5 * 22050): int(0.8 * 22050)])) > 0.01


def test_a_silent_part_is_left_out_with_a_reason(tmp_path, caplog, monkeypatch):
    from ailive.models.data import songs

    real = songs.arrange

    def with_a_silent_part(seed, split, index, seconds, attempt=0):
        arrangement = real(seed, split, index, seconds, attempt)
        silent = Part("pad", 48, False, notes_array([]))
        return type(arrangement)(arrangement.name, arrangement.seconds, (*arrangement.parts, silent), arrangement.source)

    monkeypatch.setattr(songs, "arrange", with_a_silent_part)
    with caplog.at_level(logging.INFO, logger="ailive.models.data.songs"):
        [path] = render_songs(tmp_path, 1, seed=5, seconds=2.0)
    assert "pad part (program 48) is silent; left out" in caplog.text
    assert "pad" not in load_song(path).roles[-1:]


def test_band_line_ups_and_entries():
    for channels in range(3, 9):
        arrangement = band_arrangement(np.random.default_rng(channels), "b", 12.0, channels)
        roles = [p.role for p in arrangement.parts]
        assert len(roles) == channels and roles[1] == "bass" and roles[0].startswith("lead")
        if channels >= 5:
            assert {"kick", "snare", "overheads"} <= set(roles)
        assert all(p.notes.shape[0] > 0 and p.notes[:, 1].max() <= 12.0 for p in arrangement.parts)
    with pytest.raises(ValueError, match="3..8"):
        band_arrangement(np.random.default_rng(0), "b", 4.0, 9)


def test_held_out_corpus_pieces_are_never_training_pieces():
    train, heldout = corpus_paths("train"), corpus_paths("heldout")
    assert train and heldout
    assert not {(p.parent.name, p.name) for p in train} & {(p.parent.name, p.name) for p in heldout}
    assert all(split_of(p) == "heldout" for p in heldout)
    assert 0.05 < len(heldout) / (len(train) + len(heldout)) < 0.2
