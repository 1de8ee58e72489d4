"""``interpolant sample --label/--guidance/--scale`` on a tiny class-conditional run."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from interpolant import metrics
from support.cli import run_cli

TINY_POINTS = ('data = "moons"\nmodel = "mlp"\nn = 256\nmodel_options = { hidden = 16, depth = 1 '
               '}\n[train]\nsteps = 2\nbatch_size = 32\nwarmup = 0\n')



def test_cfg_samples_show_the_label(digits_run, tmp_path, capsys):
    out = tmp_path / "sevens.png"
    code, text, err = run_cli(capsys, "sample", "--run-dir", digits_run, "--guidance", "cfg",
                           "--scale", "4", "--label", "7", "--n", "20", "--nfe", "20",
                           "--out", out)
    assert code == 0, err
    assert out.is_file() and "20 NFE" in text
    samples = load_file(str(out.with_suffix(".safetensors")))["samples"]
    assert samples.shape == (20, 1, 8, 8)
    read = metrics.digits_logits(samples.clamp(-1, 1)).argmax(1)
    assert float((read == 7).double().mean()) >= 0.8  # unguided samples read 7 ~10% of the time


@pytest.mark.parametrize("argv, words", [
    (["--label", "10"], "not a class the model was trained with"),
    (["--label", "-1", "--guidance", "cfg"], "not a class"),
    (["--guidance", "auto"], "unknown guidance"),
    (["--guidance", "cfg", "--scale", "nan"], "finite"),
    (["--guidance", "cfg", "--n", "0"], "positive integer"),
])
def test_bad_guidance_requests_write_nothing(digits_run, capsys, files_under, argv, words):
    before = files_under(digits_run)
    code, _, err = run_cli(capsys, "sample", "--run-dir", digits_run, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
    assert words in lines[0]
    assert files_under(digits_run) == before


def test_guidance_on_an_unconditional_run_is_refused(tmp_path, capsys, files_under):
    (tmp_path / "points.toml").write_text(TINY_POINTS)
    run = tmp_path / "points"
    assert run_cli(capsys, "train", "--run-dir", run, "--config", tmp_path / "points.toml",
                "--no-progress")[0] == 0
    before = files_under(run)
    code, _, err = run_cli(capsys, "sample", "--run-dir", run, "--guidance", "cfg", "--label", "1")
    assert code == 2 and err.startswith("interpolant: error:") and "class-conditional" in err
    assert files_under(Path(run)) == before
