"""The held-out set: written once with a manifest, read back exactly, refused when damaged."""
import json

import numpy as np
import pytest

from ailive.models.data import heldout


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """The real writer at small sizes: 2 songs, 6 s examples, 1 room."""
    patch = pytest.MonkeyPatch()
    for name, value in {"SONGS": 2, "SONG_SECONDS": 7.0, "EXAMPLE_SECONDS": 6.0, "ROOMS": 1}.items():
        patch.setattr(heldout, name, value)
    cache = tmp_path_factory.mktemp("cache")
    folder = heldout.ensure_heldout(cache)
    yield cache, folder
    patch.undo()


def test_written_once_with_a_manifest_and_playable_folders(small_set):
    cache, folder = small_set
    examples = heldout.verify(folder)
    assert len(examples) == 2
    manifest = json.loads((folder / heldout.MANIFEST).read_text())
    assert manifest["bleed"] == "room" and manifest["seed"] == heldout.SEED
    for example_dir in examples:
        channels = sorted(example_dir.glob("*.flac"))
        record = json.loads((example_dir / "example.json").read_text())
        assert [c.stem for c in channels] == record["channels"]
        assert len(record["target_gain_db"]) == len(channels)
    stamp = (folder / heldout.MANIFEST).stat().st_mtime_ns
    assert heldout.ensure_heldout(cache) == folder
    assert (folder / heldout.MANIFEST).stat().st_mtime_ns == stamp


def test_held_out_songs_come_from_the_held_out_split(small_set):
    from pathlib import Path

    from ailive.models.data.corpus import split_of

    cache, folder = small_set
    records = [json.loads(p.read_text()) for p in cache.glob("songs-heldout-*/*.json")]
    assert len(records) == 2 and all(r["split"] == "heldout" for r in records)
    for record in records:
        assert record["source"] == "band" or split_of(Path(record["source"])) == "heldout"
    held = {json.loads((d / "example.json").read_text())["song"] for d in heldout.verify(folder)}
    assert held == {r["name"] for r in records}


def test_an_example_reads_back_as_written(small_set, tmp_path):
    _, folder = small_set
    example = heldout.read_example(heldout.verify(folder)[0])
    files = heldout.write_example(example, tmp_path / "copy")
    again = heldout.read_example(tmp_path / "copy")
    assert np.allclose(again.inputs, example.inputs, atol=1e-6)
    assert np.allclose(again.target_mix, example.target_mix, atol=1e-6)
    assert np.array_equal(again.target_gain_db, example.target_gain_db, equal_nan=True)
    assert set(files) >= {"target/mix.flac", "example.json"}
    gains = np.where(example.active, 10 ** (np.nan_to_num(example.target_gain_db, nan=-np.inf) / 20), 0.0)
    assert np.allclose(gains @ example.direct, example.target_mix, atol=1e-4)


def test_a_damaged_set_is_refused(small_set, tmp_path):
    import shutil

    _, folder = small_set
    copy = tmp_path / "set"
    shutil.copytree(folder, copy)
    first = heldout.verify(copy)[0]
    record = json.loads((first / "example.json").read_text())
    record["target_gain_db"][0] = 99.0
    (first / "example.json").write_text(json.dumps(record))
    with pytest.raises(heldout.HeldoutError, match="example.json does not match its checksum"):
        heldout.verify(copy)
    (first / "example.json").unlink()
    with pytest.raises(heldout.HeldoutError, match="example.json is missing"):
        heldout.verify(copy)
    with pytest.raises(heldout.HeldoutError, match="no manifest.json"):
        heldout.verify(tmp_path)
