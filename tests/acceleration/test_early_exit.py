"""Early exit for the DiT (after DeeDiff): a zero threshold keeps every block (bitwise the
plain network), every calibrated call's exit error is within the threshold, a looser threshold
exits earlier, and networks without blocks are refused."""

from __future__ import annotations

import pytest
import torch

import interpolant as ip
from interpolant.acceleration import calibrate_exits, calibration_inputs, network_of
from interpolant.acceleration.early_exit import EarlyExitDiT, exit_errors
from interpolant.errors import InterpolantError

KW = {"solver": "dpm++2m", "steps": 6}


def test_threshold_zero_is_the_plain_network(dit_denoiser, images):
    early = calibrate_exits(dit_denoiser, images, 0.0, **KW)
    assert set(network_of(early).depths) == {3}
    with torch.no_grad():
        assert torch.equal(ip.sample(early, images, **KW), ip.sample(dit_denoiser, images, **KW))


def test_calibrated_exits_keep_the_error_within_the_threshold(dit_denoiser, images):
    dit = network_of(dit_denoiser)
    cal = calibration_inputs(dit_denoiser, images, 16, **KW)
    errors = [exit_errors(dit, x, t, c) for x, t, c in cal]
    assert all(e[-1] == 0.0 and e[0] > 0.0 for e in errors)
    threshold = sorted(e[2] for e in errors)[3]  # some calls may stop after 2 blocks
    early = network_of(calibrate_exits(dit_denoiser, images, threshold, **KW))
    assert min(early.depths) < 3
    for (x, t, _), e in zip(cal, errors):
        with torch.no_grad():
            got = (early(x, t).double() - dit(x, t).double()).norm() / dit(x, t).double().norm()
        assert float(got) <= threshold + 1e-12
        assert early.depth(float(t.max())) == next(k for k, v in enumerate(e) if v <= threshold)


def test_bad_input_is_refused(unet_denoiser, dit_denoiser, images):
    with pytest.raises(InterpolantError, match="early exit needs a transformer"):
        calibrate_exits(unet_denoiser, images, 0.1, **KW)
    with pytest.raises(InterpolantError, match="threshold must be a finite number"):
        calibrate_exits(dit_denoiser, images, -1.0, **KW)
    with pytest.raises(InterpolantError, match="depths must be within"):
        EarlyExitDiT(network_of(dit_denoiser), [0.5], [4])
