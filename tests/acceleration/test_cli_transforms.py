"""``interpolant sample --early-exit/--time-shift/--dc-solver`` on a tiny DiT digits run:
threshold 0 is the plain sampler bitwise, window 0 to float precision, the others run and stay close.
(Their bad requests are in test_cli.py, on its U-Net run.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.cli import run_cli, train_tiny_run


TINY_DIT = ('data = "digits"\nmodel = "dit"\nmodel_options = { hidden = 32, depth = 2, '
            'heads = 2 }\n[train]\nsteps = 8\nbatch_size = 16\nlr = 3e-3\nwarmup = 2\n'
            'log_every = 8\ncheckpoint_every = 8\n')
BASE = ("--n", 3, "--nfe", 5, "--solver", "dpm++2m")


@pytest.fixture(scope="module")
def dit_run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("dit"), TINY_DIT)


def samples(capsys, run_dir: Path, out: Path, *options) -> torch.Tensor:
    code, _, err = run_cli(capsys, "sample", "--run-dir", run_dir, *BASE, "--out", out,
                           *options)
    assert code == 0, err
    return load_file(str(out.with_suffix(".safetensors")))["samples"]


def test_zero_threshold_and_zero_window_are_the_plain_sampler(capsys, dit_run, tmp_path):
    plain = samples(capsys, dit_run, tmp_path / "plain.png")
    assert torch.equal(samples(capsys, dit_run, tmp_path / "e0.png", "--early-exit", 0), plain)
    # window 0: the network sees the step's own time (cast to the samples' float32 once more)
    torch.testing.assert_close(samples(capsys, dit_run, tmp_path / "s0.png", "--time-shift", 0),
                               plain, rtol=1e-5, atol=1e-5)
    for option in (("--early-exit", 0.3), ("--time-shift",), ("--dc-solver",)):
        out = samples(capsys, dit_run, tmp_path / "x.png", *option)
        assert torch.isfinite(out).all()
        assert float((out - plain).norm() / plain.norm()) < 0.5, option
