"""The feature-domain mix: the fader of control step k scales the power from frame k + 1, and the level is not scored."""
import torch

from ailive.models.train.featureloss import mix_logmel_loss, produced_power


def test_a_fader_scales_power_from_the_next_frame():
    power = torch.ones(1, 1, 15, 2)  # three 50 ms frames of five hops
    gains = torch.tensor([[[-10.0, -20.0, -30.0]]])  # one fast step per frame (MR)
    mix = produced_power(power, gains, fast_every=1)[0, :, 0]
    assert torch.allclose(mix[:5], torch.ones(5))  # frame 0: nothing decided yet, 0 dB
    assert torch.allclose(mix[5:10], torch.full((5,), 0.1))  # frame 1: step 0's -10 dB
    assert torch.allclose(mix[10:], torch.full((5,), 0.01))  # frame 2: step 1's -20 dB


def test_the_mix_loss_ignores_the_level_and_sees_the_balance():
    target = torch.rand(2, 50, 8) + 0.1
    assert mix_logmel_loss(target * 4.0, target, 0) < 1e-5  # 6 dB louder, same balance
    tilted = target.clone()
    tilted[..., :4] *= 10.0  # the low half 10 dB up
    assert mix_logmel_loss(tilted, target, 0) > 4.0
