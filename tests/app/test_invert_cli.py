"""``interpolant invert`` on the tiny digits run: exact inversions reconstruct, the saved noise
samples back to the reconstruction, interpolation frames; one-line refusals that write nothing."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import interpolant as ip
from interpolant.app.runs import load_data, load_trained
from support.cli import run_cli


def _psnr(text):
    return float(re.search(r"PSNR (-?[\d.]+) dB", text).group(1))


def test_exact_inversion_and_the_saved_noise(digits_run, tmp_path, capsys):
    code, text, err = run_cli(capsys, "invert", "--run-dir", digits_run, "--index", "4",
                              "--method", "bdia", "--steps", "10", "--out", tmp_path / "b")
    assert code == 0, err
    assert _psnr(text) > 60 and set(load_file(str(tmp_path / "b.safetensors"))) == {"z0", "z1"}
    code, text, err = run_cli(capsys, "invert", "--run-dir", digits_run, "--index", "4",
                              "--steps", "10", "--to", "7", "--frames", "3",
                              "--out", tmp_path / "d")
    assert code == 0, err
    assert (tmp_path / "d.png").is_file() and (tmp_path / "d_to7.png").is_file()
    # the saved DDIM noise, sampled back with the image's label, is the reconstruction
    run = load_trained(digits_run)
    x, labels = load_data(run.config, "test")
    z = load_file(str(tmp_path / "d.safetensors"))["z0"]
    back = ip.sample(run.denoiser, z, "ddim", 10, cond=labels[4:5]).detach()
    mse = float((back - x[4:5]).pow(2).mean())
    assert abs(10 * np.log10(4.0 / mse) - _psnr(text)) < 0.01


def test_png_input(digits_run, tmp_path, capsys):
    x, _ = load_data(load_trained(digits_run).config, "test")
    Image.fromarray(((x[2, 0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(
        tmp_path / "digit.png")
    code, text, err = run_cli(capsys, "invert", "--run-dir", digits_run, "--image",
                              tmp_path / "digit.png", "--method", "edict", "--steps", "6",
                              "--out", tmp_path / "e")
    assert code == 0, err
    assert _psnr(text) > 60


@pytest.mark.parametrize("argv, words", [
    (["--index", "0", "--method", "ddpm"], "cannot invert"),
    (["--index", "0", "--grid", "1.0,0.5,0.001"], "strictly increasing"),
    (["--index", "0", "--method", "nope"], "unknown inversion method"),
    (["--index", "100000"], "not a held-out image"),
    (["--image", "big.png"], "resize it first"),
    (["--image", "loud.safetensors"], "must lie in [-1, 1]"),
])
def test_bad_invert_requests(digits_run, tmp_path, capsys, files_under, argv, words):
    Image.fromarray(np.zeros((9, 8), dtype=np.uint8)).save(tmp_path / "big.png")
    save_file({"image": torch.full((1, 1, 8, 8), 3.0)}, str(tmp_path / "loud.safetensors"))
    argv = [str(tmp_path / a) if a.endswith(("png", "safetensors")) else a for a in argv]
    before = files_under(digits_run) | files_under(tmp_path)
    code, _, err = run_cli(capsys, "invert", "--run-dir", digits_run, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
    assert words in lines[0], lines[0]
    assert files_under(digits_run) | files_under(tmp_path) == before
