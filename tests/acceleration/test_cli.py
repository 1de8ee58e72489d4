"""``interpolant tune`` and ``interpolant sample --cache/--quantize/--compile`` on a tiny
digits run: the tuned choice is what sampling then uses, caching at interval 1 and 32-bit
quantization are the identity through the command line, and bad requests end in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.cli import run_cli, train_tiny_run

import interpolant as ip
from interpolant.acceleration import SearchResult
from interpolant.app.draw import generators
from interpolant.app.runs import load_trained

TINY = ('data = "digits"\nmodel_options = { base_channels = 8, attention_levels = [] }\n'
        '[train]\nsteps = 8\nbatch_size = 16\nlr = 3e-3\nwarmup = 2\nlog_every = 8\n'
        'checkpoint_every = 8\n')
TUNE = ("--nfe", 4, "--solvers", "dpm++2m,unipc", "--n", 4, "--refine", 1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("accel"), TINY)


def samples_of(capsys, run_dir: Path, out: Path, *options) -> torch.Tensor:
    code, stdout, err = run_cli(capsys, "sample", "--run-dir", run_dir, "--n", 3, "--out", out,
                                *options)
    assert code == 0, err
    return load_file(str(out.with_suffix(".safetensors")))["samples"]


def test_tune_saves_a_choice_that_sample_then_uses(capsys, run_dir, tmp_path):
    code, out, err = run_cli(capsys, "tune", "--run-dir", run_dir, *TUNE)
    assert code == 0, err
    saved = json.loads((run_dir / "tuned.json").read_text())["choices"]["4"]
    assert saved["error"] <= saved["default_error"]  # the default is among the scored
    code, _, _ = run_cli(capsys, "tune", "--run-dir", run_dir, *TUNE)
    assert json.loads((run_dir / "tuned.json").read_text())["choices"]["4"] == saved

    choice = SearchResult.from_dict(saved)
    by_default = samples_of(capsys, run_dir, tmp_path / "a.png", "--nfe", 4)
    # the same draw by hand: sample i from generator (seed, i), labels in turn, the saved grid
    run = load_trained(run_dir)
    gens = generators(0, 3)
    x1 = torch.stack([torch.randn(run.shape, generator=g) for g in gens])
    x1 = x1 * float(run.denoiser.path.sigma(1.0))
    k = run.denoiser.model.config["num_classes"]
    with torch.no_grad():
        by_hand = ip.sample(run.denoiser, x1, cond=torch.arange(3) % k, generator=gens,
                            **choice.sample_kwargs())
    torch.testing.assert_close(by_default, by_hand, rtol=1e-5, atol=1e-5)
    plain = samples_of(capsys, run_dir, tmp_path / "b.png", "--nfe", 4, "--solver", "dpm++2m")
    assert not torch.allclose(plain, by_default)  # a different grid (and maybe solver)


def test_cache_interval_one_and_32_bits_are_the_identity(capsys, run_dir, tmp_path):
    base = ("--nfe", 5, "--solver", "dpm++2m")
    plain = samples_of(capsys, run_dir, tmp_path / "plain.png", *base)
    cached1 = samples_of(capsys, run_dir, tmp_path / "c1.png", *base, "--cache", "deepcache:1")
    assert torch.equal(cached1, plain)
    fake32 = samples_of(capsys, run_dir, tmp_path / "q32.png", *base, "--quantize", "fake32")
    torch.testing.assert_close(fake32, plain, rtol=1e-5, atol=1e-6)
    cached2 = samples_of(capsys, run_dir, tmp_path / "c2.png", *base, "--cache", "deepcache:2",
                         "--quantize", "int8")
    assert not torch.equal(cached2, plain)
    assert (cached2 - plain).abs().max() < 0.5 * plain.abs().max()  # close, not the same


@pytest.mark.parametrize("options, message", [
    (("--cache", "block"), "block caching needs a transformer"),
    (("--cache", "deepcache:0"), "interval after ':' must be an integer >= 1"),
    (("--cache", "fora"), "unknown cache 'fora'"),
    (("--quantize", "int4"), "no int4 kernels"),
    (("--quantize", "fake40"), "2 to 32 bits"),
    (("--quantize", "fake4ta"), "unknown quantization 'fake4ta'"),
    (("--quantize", "eda40"), "2 to 32 bits"),
    (("--solver", "tuned", "--nfe", 7), "no tuned choice for --nfe 7"),
    (("--solver", "tuned", "--label", 1), "unguided sampling"),
    (("--solver", "heun", "--nfe", 1), "more than the budget of 1"),
    (("--early-exit", "0.1"), "early exit needs a transformer"),
    (("--early-exit", "-1"), "--early-exit must be a finite number >= 0"),
    (("--early-exit", "0.1", "--cache", "deepcache"), "does not combine with --cache"),
    (("--time-shift", "--label", 1), "--time-shift transform unguided sampling"),
    (("--dc-solver", "--solver", "heun", "--nfe", 8), "solvers with one evaluation per step"),
])
def test_bad_sample_requests_end_in_one_line(capsys, run_dir, tmp_path, options, message):
    code, _, err = run_cli(capsys, "sample", "--run-dir", run_dir, "--n", 2,
                           "--out", tmp_path, *options)
    assert code == 2 and err.count("\n") == 1 and err.startswith("interpolant: error:")
    assert message in err
    assert not list(tmp_path.iterdir())


def test_bad_tune_requests_end_in_one_line(capsys, run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.json", bare / "config.json")
    for argv, message in [
        (("--run-dir", bare, "--nfe", 4), "holds no checkpoint"),
        (("--run-dir", tmp_path / "none", "--nfe", 4), "does not exist"),
        (("--run-dir", run_dir, "--nfe", 0), "--nfe must be a positive integer"),
        (("--run-dir", run_dir, "--nfe", 1, "--solvers", "heun"), "heun cannot run within 1"),
        (("--run-dir", run_dir, "--nfe", 4, "--solvers", "dpm++9m"), "unknown solver"),
    ]:
        code, _, err = run_cli(capsys, "tune", *argv)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in bare.iterdir()) == ["config.json"]
