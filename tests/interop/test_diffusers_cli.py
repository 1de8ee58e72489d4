"""``interpolant sample --diffusers DIR``: a pipeline saved by diffusers (built offline from a
config, random weights) is sampled, evaluated and reported like a trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import interpolant as ip
from interpolant.app.draw import generators
from support.cli import run_cli

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def _pipeline(folder, prediction="v_prediction"):
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"))
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                                    beta_start=0.00085, beta_end=0.012,
                                    prediction_type=prediction)
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)


def _images(folder, n=6, size=8):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def test_sample_eval_report_a_saved_diffusers_pipeline(tmp_path, capsys):
    _pipeline(tmp_path / "pipe")
    _images(tmp_path / "imgs")
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, out, err = run_cli(capsys, "sample", "--diffusers", tmp_path / "pipe", "--run-dir",
                                 run, "--data", tmp_path / "imgs", "--solver", "dpm++2m",
                                 "--nfe", "3", "--n", "5", "--seed", "7")
        assert code == 0, err
        config = json.loads((run / "config.json").read_text())
        assert config["model"] == "diffusers" and config["target"] == "v"
        samples = load_file(str(run / "samples" / "dpm++2m_3.safetensors"))["samples"]
        # the same samples as the library on the loaded pipeline, from the same noise
        den = ip.interop.load_diffusers(tmp_path / "pipe")
        gens = generators(7, 5)
        x1 = torch.stack([torch.randn(3, 8, 8, generator=g) for g in gens]) * float(
            den.path.sigma(1.0))
        with torch.no_grad():
            expected = ip.sample(den, x1, solver="dpm++2m", steps=3, generator=gens)
        assert samples.shape == (5, 3, 8, 8)
        torch.testing.assert_close(samples, expected, rtol=0, atol=0)
        # eval and report read the run like a trained one (no --diffusers needed any more)
        code, out, err = run_cli(capsys, "eval", "--run-dir", run, "--solvers", "ddim",
                                 "--nfe", "2", "--n", "6", "--no-progress")
        assert code == 0, err
        rows = json.loads((run / "eval.json").read_text())["rows"]
        assert rows[0]["nfe"] == 2 and rows[0]["sliced_w2"] > 0
        code, out, err = run_cli(capsys, "report", "--run-dir", run)
        assert code == 0, err
        assert "diffusers" in (run / "report" / "index.html").read_text()
    finally:
        torch.set_num_threads(threads)


def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys):
    _pipeline(tmp_path / "pipe")
    _images(tmp_path / "big", n=2, size=16)
    base = ["sample", "--solver", "ddim", "--nfe", "2", "--n", "2"]

    def refused(*argv):
        code, _, err = run_cli(capsys, *base, *argv)
        assert code == 2 and err.startswith("interpolant: error: ") and err.count("\n") == 1
        return err

    assert "save_pretrained" in refused("--diffusers", tmp_path / "none", "--run-dir",
                                        tmp_path / "r1")
    assert "holds no diffusers model" in refused("--diffusers", tmp_path / "big",
                                                 "--run-dir", tmp_path / "r2")
    assert "shape (3, 16, 16)" in refused("--diffusers", tmp_path / "pipe", "--data",
                                          tmp_path / "big", "--run-dir", tmp_path / "r3")
    assert "with --diffusers" in refused("--data", tmp_path / "big", "--run-dir",
                                         tmp_path / "r4")
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3", "r4"))
    # a run made without reference data samples, and eval asks for the data
    code, _, err = run_cli(capsys, *base, "--diffusers", tmp_path / "pipe", "--run-dir",
                           tmp_path / "r5")
    assert code == 0, err
    code, _, err = run_cli(capsys, "eval", "--run-dir", tmp_path / "r5", "--solvers", "ddim",
                           "--nfe", "2", "--n", "2")
    assert code == 2 and "--data PATH" in err


def test_a_class_conditional_model_folder_gets_its_labels_in_turn(tmp_path, capsys):
    """A DiT model folder (weights and config) with a flow-matching scheduler config beside it:
    sample i has label i mod 10, as the library samples it with those labels."""
    torch.manual_seed(0)
    dit = diffusers.DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=3, out_channels=6,
        num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=10)
    dit.save_pretrained(tmp_path / "dit")
    diffusers.FlowMatchEulerDiscreteScheduler().save_pretrained(tmp_path / "dit")
    code, _, err = run_cli(capsys, "sample", "--diffusers", tmp_path / "dit", "--run-dir",
                           tmp_path / "run", "--solver", "euler", "--nfe", "2", "--n", "12")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["target"] == "velocity"
    samples = load_file(str(tmp_path / "run" / "samples" / "euler_2.safetensors"))["samples"]
    den = ip.interop.load_diffusers(tmp_path / "dit")
    gens = generators(0, 12)
    x1 = torch.stack([torch.randn(3, 8, 8, generator=g) for g in gens])
    labels = torch.arange(12) % 10
    with torch.no_grad():
        expected = ip.sample(den, x1, solver="euler", steps=2, cond=labels, generator=gens)
        other = ip.sample(den, x1, solver="euler", steps=2, cond=labels.roll(1), generator=gens)
    torch.testing.assert_close(samples, expected, rtol=0, atol=0)
    assert not torch.allclose(samples, other)  # the labels matter
