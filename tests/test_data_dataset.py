"""The streaming PyTorch dataset: padded channels with masks, distinct examples per worker, repeatable runs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from ailive.models.data import render_songs  # noqa: E402
from ailive.models.train.dataset import ExampleDataset  # noqa: E402


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    return render_songs(tmp_path_factory.mktemp("songs"), 4, seed=21, seconds=4.0)


def test_batches_of_songs_with_different_channel_counts(songs):
    data = ExampleDataset(songs, 2.0, seed=1, examples_per_song=1, examples_per_epoch=6)
    batches = list(DataLoader(data, batch_size=3))
    assert len(batches) == 2
    batch = batches[0]
    assert batch["inputs"].shape == batch["direct"].shape == (3, 8, 88200)
    assert batch["target_mix"].shape == (3, 88200) and batch["target_gain_db"].shape == (3, 8)
    channels = batch["channels"]
    assert channels.dtype == torch.bool and (channels.sum(dim=1) >= 2).all()
    assert not batch["active"][~channels].any()  # padding is never active
    assert (batch["inputs"][~channels] == 0).all()
    counts = {int(c) for b in batches for c in b["channels"].sum(dim=1)}
    assert len(counts) > 1  # the songs really differ in channel count


def test_workers_draw_different_examples_and_a_run_repeats(songs):
    def targets(workers, epoch=0):
        data = ExampleDataset(songs, 1.0, seed=2, examples_per_song=2, examples_per_epoch=8)
        data.set_epoch(epoch)
        loader = DataLoader(data, batch_size=None, num_workers=workers)
        return [tuple(np.round(item["target_mix"][:64].numpy(), 6)) for item in loader]

    two = targets(2)
    assert len(two) == 8 and len(set(two)) == 8
    assert targets(2) == two
    assert set(targets(2, epoch=1)).isdisjoint(two)
