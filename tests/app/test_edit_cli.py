"""``interpolant edit`` on a tiny class-conditional digits run."""

from __future__ import annotations

import pytest
from PIL import Image

from support.cli import run_cli



def test_edit_writes_original_reconstruction_and_edit(digits_run, tmp_path, capsys):
    out = tmp_path / "edit.png"
    code, text, err = run_cli(capsys, "edit", "--run-dir", digits_run, "--index", "3",
                           "--to-label", "8", "--method", "ode", "--steps", "10", "--out", out)
    assert code == 0, err
    with Image.open(out) as picture:  # three 8x8 images side by side (scale 4, padding 1)
        assert picture.width > 2.5 * picture.height
    psnr = float(text.split("reconstruction PSNR ")[1].split(" dB")[0])
    assert psnr > 15.0, text  # DDIM inversion then sampling comes back to the image
    assert "40 NFE" not in text and "20 NFE" in text  # 10 steps each way


@pytest.mark.parametrize("argv, words", [
    (["--index", "3", "--to-label", "10"], "not a class the model was trained with"),
    (["--index", "100000", "--to-label", "1"], "not a held-out image"),
    (["--index", "3", "--to-label", "1", "--method", "magic"], "unknown edit method"),
    (["--index", "3", "--to-label", "1", "--steps", "0"], "positive integer"),
])
def test_bad_edit_requests_write_nothing(digits_run, capsys, files_under, argv, words):
    before = files_under(digits_run)
    code, _, err = run_cli(capsys, "edit", "--run-dir", digits_run, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
    assert words in lines[0]
    assert files_under(digits_run) == before


@pytest.mark.parametrize("method", ["bdia", "edit-friendly"])
def test_exact_inversions_reconstruct_the_image(digits_run, tmp_path, capsys, method):
    code, text, err = run_cli(capsys, "edit", "--run-dir", digits_run, "--index", "3",
                              "--to-label", "8", "--method", method, "--steps", "10",
                              "--out", tmp_path / "edit.png")
    assert code == 0, err
    psnr = float(text.split("reconstruction PSNR ")[1].split(" dB")[0])
    assert psnr > 60.0, text  # exact to rounding, where DDIM's round trip gives ~20-30 dB
