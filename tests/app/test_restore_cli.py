"""``interpolant restore`` on a tiny class-conditional digits run."""

from __future__ import annotations

import json

import pytest

from support.cli import run_cli



@pytest.mark.parametrize("task, method", [("inpaint", "ddnm"), ("sr", "pigdm"), ("blur", "ddnm"),
                                          ("inpaint", "dps"), ("cs", "gdp")])
def test_restore_writes_a_grid_and_a_table(digits_run, tmp_path, capsys, task, method):
    out = tmp_path / "restored"
    code, text, err = run_cli(capsys, "restore", "--run-dir", digits_run, "--task", task,
                           "--method", method, "--n", "3", "--steps", "8", "--out", out)
    assert code == 0, err
    assert (out / f"restore_{task}_{method}.png").is_file()
    table = json.loads((out / f"restore_{task}_{method}.json").read_text())
    (row,) = table["rows"]
    assert (row["task"], row["method"]) == (task, method)
    assert row["nfe"] == 9  # 8 ancestral steps and the final denoising
    assert 0 <= row["label_accuracy"] <= 1 and row["seconds"] > 0
    # a blank image scores 5.9 dB against these digits, a grey one 7.4 dB; restorations that
    # keep the measurement score well above (DPS at 8 steps is too rough to promise it)
    if method != "dps":
        assert row["psnr"] > 10.0, row


@pytest.mark.parametrize("argv, words", [
    (["--task", "denoise"], "unknown restoration task"),
    (["--method", "magic"], "unknown restoration method"),
    (["--n", "0"], "positive integer"),
    (["--n", "100000"], "held-out images to use"),
    (["--steps", "-1"], "positive integer"),
    (["--sigma-y", "-0.1"], "non-negative"),
])
def test_bad_restore_requests_write_nothing(digits_run, capsys, files_under, argv, words):
    before = files_under(digits_run)
    code, _, err = run_cli(capsys, "restore", "--run-dir", digits_run, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
    assert words in lines[0]
    assert files_under(digits_run) == before


def test_compressed_sensing_and_an_estimated_noise_level(digits_run, tmp_path, capsys):
    """--task cs measures half as many random projections as pixels (PiGDM keeps well above the
    blank image's 5.9 dB); --estimate-sigma restores with the noise std found in each
    measurement (blur, true 0.1: the mean estimate is in the table and the printed line)."""
    code, _, err = run_cli(capsys, "restore", "--run-dir", digits_run, "--task", "cs",
                           "--method", "pigdm", "--n", "4", "--steps", "6", "--out", tmp_path)
    assert code == 0, err
    (row,) = json.loads((tmp_path / "restore_cs_pigdm.json").read_text())["rows"]
    assert row["psnr"] > 10.0 and "sigma_y_estimated" not in row, row
    code, text, err = run_cli(capsys, "restore", "--run-dir", digits_run, "--task", "blur",
                              "--method", "ddnm", "--n", "4", "--steps", "6", "--sigma-y",
                              "0.1", "--estimate-sigma", "--out", tmp_path)
    assert code == 0, err
    (row,) = json.loads((tmp_path / "restore_blur_ddnm.json").read_text())["rows"]
    assert 0.07 < row["sigma_y_estimated"] < 0.13 and "sigma_y estimated" in text, row
