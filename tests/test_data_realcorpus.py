"""The real-song corpus: built from a git checkout by the manifest, trained on in the feature domain (tiny, seconds)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ailive.models.data import build_corpus, featurecorpus
from ailive.models.data.real import ManifestError

RATE = 16000

MANIFEST = """
version = 1
sample_rate = 16000

[[source]]
name = "made"
repository = "example/made"
commit = "{commit}"
licence = "CC0-1.0"
licence_file = "LICENSE"

[[channel]]
name = "vocal"
role = "lead_vocal"
match = ["^VOX"]

[[channel]]
name = "drums"
role = "snare"
match = ["KICK", "SNARE"]

[[channel]]
name = "bass"
role = "bass"
match = ["BASS"]
{songs}
"""

SONG = """
[[song]]
name = "{name}"
source = "made"
folder = "{name}"
prefix = "{name}_"
suffix = ".wav"
split = "{split}"
"""


def made_repo(root: Path, songs: dict[str, str], stems=("VOX LEAD", "KICK", "SNARE", "BASS"), seconds=14.0) -> str:
    """A git repository of stereo 22.05 kHz WAV stems (noise bursts and tones), one folder per song; its commit."""
    rng = np.random.default_rng(0)
    for name in songs:
        (root / name).mkdir(parents=True)
        for index, stem in enumerate(stems):
            t = np.arange(int(seconds * 22050)) / 22050
            signal = 0.1 * (index + 1) * np.sin(2 * np.pi * 110 * (index + 1) * t) + 0.02 * rng.standard_normal(t.size)
            sf.write(root / name / f"{name}_{stem}.wav", np.stack([signal, signal], axis=1), 22050)
    (root / "LICENSE").write_text("CC0 1.0 Universal\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "stems"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stems")
    songs = {"alpha": "train", "beta": "train", "gamma": "validation"}
    commit = made_repo(root, songs)
    manifest = root.parent / "manifest.toml"
    manifest.write_text(MANIFEST.format(commit=commit, songs="".join(SONG.format(name=n, split=s) for n, s in songs.items())))
    out = root.parent / "corpus"
    assert build_corpus.main(["--manifest", str(manifest), "--checkout", f"made={root}", "--out", str(out)]) == 0
    return out


def test_the_manifest_groups_stems_into_channels_and_keeps_the_split(corpus):
    train = featurecorpus.load_corpus(corpus, "train")
    validation = featurecorpus.load_corpus(corpus, "validation")
    assert sorted(s.name for s in train) == ["alpha", "beta"] and [s.name for s in validation] == ["gamma"]
    song = train[0]
    assert song.channels == ("vocal", "drums", "bass") and song.roles == ("lead_vocal", "snare", "bass")
    hops = int(14.0 * RATE) // int(RATE * 0.01)
    assert song.mel_db.shape == (3, hops, 64) and song.frame_ms.shape == (3, 280)
    # KICK and SNARE sum into one channel: louder than either of the single-stem channels around them.
    assert song.level_db[1] > song.level_db[0]
    audio, rate = featurecorpus.song_audio(validation[0])
    assert rate == RATE and audio.shape == (3, int(14.0 * RATE))


def test_a_stem_no_channel_takes_is_named(tmp_path):
    root = tmp_path / "repo"
    commit = made_repo(root, {"alpha": "train"}, stems=("VOX LEAD", "THEREMIN"), seconds=2.0)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(MANIFEST.format(commit=commit, songs=SONG.format(name="alpha", split="train")))
    with pytest.raises(ManifestError, match="THEREMIN"):
        build_corpus.build(tmp_path / "corpus", {"made": root}, manifest_path=manifest)


def test_an_unlisted_licence_is_refused(tmp_path):
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(MANIFEST.format(commit="0" * 40, songs=SONG.format(name="alpha", split="train")).replace('"CC0-1.0"', '"proprietary"'))
    with pytest.raises(ManifestError, match="proprietary"):
        build_corpus.build(tmp_path / "corpus", {}, manifest_path=manifest)


def test_feature_examples_undo_the_input_gains(corpus):
    from ailive.models.train.featurebatch import FeatureStream

    stream = FeatureStream(featurecorpus.load_corpus(corpus, "train"), seconds=4.0, batch=3, seed=1, max_channels=4)
    batch = next(stream)
    assert batch.input_power.shape == (3, 4, 400, 64) and batch.target_power.shape == (3, 400, 64)
    assert not batch.present[:, 3].any()
    # Real songs: the target fader is minus the input gain, so the input power times the target fader is
    # the clean source, whatever gain was drawn (bleed aside: it adds at most a few tenths of a dB).
    for b in range(3):
        gains = batch.target_gain_db[b][batch.active[b]]
        assert np.all(np.abs(gains) <= 12.0 + 1e-6)


def test_the_bleed_range_sets_how_much_of_the_others_each_input_carries(corpus, tmp_path):
    from ailive.models.train.featurebatch import draw_example
    from ailive.models.train.train import TrainConfig, TrainConfigError

    song = featurecorpus.load_corpus(corpus, "train")[0]

    def channel_power(bleed_db):
        # The same seed draws the same segment, channels, gains and delays; only the severity differs.
        return draw_example(song, np.random.default_rng(5), 40, bleed_db).input_power.sum(axis=(1, 2))

    nearly_clean = channel_power((-60.0, -60.0))
    share = {db: 10 * np.log10(channel_power((db, db)) / nearly_clean - 1.0) for db in (-10.0, -25.0)}
    # Bleed adds the others' power in proportion to 10^(severity/10): 15 dB apart, channel by channel.
    assert np.allclose(share[-10.0] - share[-25.0], 15.0, atol=0.1)
    assert -16.0 < np.median(share[-10.0]) < -4.0
    config = tmp_path / "bleed.toml"
    config.write_text("bleed_db = [-30.0, -10.0]\n")
    assert TrainConfig.read(config).bleed_db == (-30.0, -10.0)
    config.write_text("bleed_db = [-10.0, -30.0]\n")
    with pytest.raises(TrainConfigError, match="bleed_db"):
        TrainConfig.read(config)
    config.write_text("keep_steps = [1150, 0]\n")
    with pytest.raises(TrainConfigError, match="keep_steps must be positive"):
        TrainConfig.read(config)


def test_training_in_the_feature_domain_runs_resumes_and_exports(corpus, tmp_path, monkeypatch):
    import torch

    from ailive.models.train import train as train_module
    from ailive.models.train.export import export_checkpoint
    from ailive.models.train.train import CHECKPOINT, TrainConfig, Trainer

    saved: list[tuple[str, int]] = []
    save = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint",
                        lambda path, *args, **kwargs: (saved.append((path.name, kwargs["step"])), save(path, *args, **kwargs)))
    config = TrainConfig.read(Path("models/train/configs/smoke.toml"), corpus=str(corpus), steps=2, seconds=3.0,
                              keep_steps=[1, 2], checkpoint_every=2)
    out = tmp_path / "run"
    Trainer(config, out).run(progress=False)
    header = (out / "loss.csv").read_text().splitlines()[0]
    assert "mix_logmel_db" in header
    assert [path.name for path in sorted(out.glob("step-*.pt"))] == ["step-1.pt", "step-2.pt"]
    assert torch.load(out / "step-1.pt", weights_only=True)["step"] == 1
    # Step 2 is both a periodic checkpoint and the last step: written once, kept as a copy.
    assert saved == [("step-1.pt", 1), (CHECKPOINT, 2)]
    assert (out / "step-2.pt").read_bytes() == (out / CHECKPOINT).read_bytes()
    monkeypatch.undo()
    resumed = Trainer(TrainConfig.read(Path("models/train/configs/smoke.toml"), corpus=str(corpus), steps=3, seconds=3.0), out)
    assert resumed.step == 2
    resumed.run(progress=False)
    assert len((out / "loss.csv").read_text().splitlines()) == 4
    export_checkpoint(out / CHECKPOINT, tmp_path / "model")
    assert (tmp_path / "model" / "fast.onnx").is_file()


def test_the_loudness_residual_starts_as_loudness_equalisation():
    import torch

    from ailive.models.train.model import Alm, AlmConfig

    model = Alm(AlmConfig(d_model=32, heads=2, ff=64, gru_hidden=32, encoder_channels=(4, 8, 16, 32), residual="loudness"))
    patches = torch.full((1, 3, 2, 96, 64), -60.0)
    patches[:, 0] += 12.0  # 12 dB louder than the other two in every band
    gains = model(patches, torch.full((1, 3, 12), -30.0), torch.ones(1, 3, dtype=torch.bool))
    # The mean level is 4 dB above the quiet pair: the loud one comes down 8 dB, the others up 4.
    assert torch.allclose(gains[0, :, -1], torch.tensor([-8.0, 4.0, 4.0]), atol=1e-3)


def test_train_on_a_folder_that_is_no_corpus_is_one_line(tmp_path):
    from click.testing import CliRunner

    from ailive.bridge.cli import main

    result = CliRunner().invoke(main, ["train", "--config", "models/train/configs/smoke.toml", "--corpus", str(tmp_path),
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1  # a user mistake: one line, exit 1 (the CLI's error boundary)
    assert "corpus.json" in result.output and "Traceback" not in result.output


def test_the_real_evaluation_sets_undo_the_input_gains_and_record_the_drift(tmp_path):
    from ailive.models.data import realeval
    from ailive.models.data.heldout import read_example, verify

    root = tmp_path / "repo"
    commit = made_repo(root, {"delta": "validation"}, seconds=45.0)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(MANIFEST.format(commit=commit, songs=SONG.format(name="delta", split="validation")))
    assert build_corpus.main(["--manifest", str(manifest), "--checkout", f"made={root}", "--out", str(tmp_path / "corpus")]) == 0
    out = tmp_path / "eval"
    assert realeval.main(["--corpus", str(tmp_path / "corpus"), "--out", str(out), "--excerpts", "2", "--seed", "7"]) == 0
    sets = {kind: verify(out / kind) for kind in ("balance", "riding")}
    assert [len(folders) for folders in sets.values()] == [2, 2]
    song = featurecorpus.load_corpus(tmp_path / "corpus", "validation")[0]
    audio, rate = featurecorpus.song_audio(song)
    starts = realeval.excerpt_starts(song, realeval.EXCERPT_S["balance"], 2)
    for folder, start in zip(sets["balance"], starts):
        example = read_example(folder)
        clean = audio[:, int(start * rate): int(start * rate) + example.direct.shape[1]]
        # Each channel's input gain, measured on its own source, is what its target fader undoes (up to one offset).
        input_db = 10 * np.log10(np.mean(example.direct ** 2, axis=1) / np.mean(clean ** 2, axis=1))
        undone = (input_db + example.target_gain_db)[example.active]
        assert example.active.sum() >= 2 and np.ptp(undone) < 0.05
    drift = json.loads((sets["riding"][0] / "example.json").read_text())["drift"]
    assert 3.0 <= abs(drift["db"][1]) <= 6.0
    with pytest.raises(SystemExit):
        realeval.main(["--corpus", str(tmp_path / "corpus"), "--out", str(out), "--excerpts", "0"])


def test_role_offsets_learned_on_the_train_songs_close_the_loudness_floor_of_a_song_mixed_alike(corpus, tmp_path):
    from ailive.models.data import realeval

    # Every made-up song has the same stems at the same levels, so its produced balance sits the same way
    # off equal loudness: the train songs' role offsets must explain the validation song's balance.
    offsets = realeval.role_offsets(featurecorpus.load_corpus(corpus, "train"))
    assert set(offsets) == {"lead_vocal", "snare", "bass"}
    folders = [tmp_path / n for n in realeval.write_set(featurecorpus.load_corpus(corpus, "validation"), tmp_path,
                                                        "balance", excerpts=1, seed=3)]
    plain, with_roles = realeval.loudness_floor(folders), realeval.loudness_floor(folders, offsets)
    assert plain.size == with_roles.size == 3
    assert np.max(plain) > 3.0 and np.max(with_roles) < 0.5
