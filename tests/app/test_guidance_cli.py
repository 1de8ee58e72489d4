"""``interpolant sample --label/--guidance/--scale`` on a tiny class-conditional run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
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
    (["--guidance", "autoguidance"], "unknown guidance"),
    (["--guidance", "auto"], "needs --guide-checkpoint"),
    (["--guidance", "auto", "--guide-checkpoint", "nowhere"], "neither a run directory"),
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


def _samples(capsys, run, tmp_path, name, *argv):
    out = tmp_path / f"{name}.png"
    code, text, err = run_cli(capsys, "sample", "--run-dir", run, "--label", "3", "--n", "6",
                              "--seed", "5", "--out", out, *argv)
    assert code == 0, err
    return load_file(str(out.with_suffix(".safetensors")))["samples"], text


def test_autoguidance_by_the_runs_own_checkpoint_is_the_conditional_model(digits_run,
                                                                          tmp_path, capsys):
    """D_weak + w (D_good - D_weak) with the weak model the good one is D_good: the samples
    of --guidance auto guided by the run's own checkpoint equal plain conditional samples
    (same seed, same 10 steps), whatever the scale."""
    ckpt = sorted((digits_run / "checkpoints").glob("step_*"))[-1]
    plain, _ = _samples(capsys, digits_run, tmp_path, "plain", "--nfe", "10")
    auto, text = _samples(capsys, digits_run, tmp_path, "auto", "--nfe", "20", "--guidance",
                          "auto", "--scale", "3", "--guide-checkpoint", ckpt)
    assert "20 NFE" in text
    torch.testing.assert_close(auto, plain, rtol=0, atol=1e-6)


def test_interval_covering_every_step_is_cfg(digits_run, tmp_path, capsys):
    """CFG guides at every step and so does the interval (0, 1]; the default interval (the
    paper's, on this path) skips some steps, so its samples differ."""
    cfg, _ = _samples(capsys, digits_run, tmp_path, "cfg", "--nfe", "20", "--guidance", "cfg")
    full, _ = _samples(capsys, digits_run, tmp_path, "full", "--nfe", "20", "--guidance",
                       "interval", "--interval", "0", "1")
    assert torch.equal(full, cfg)
    part, text = _samples(capsys, digits_run, tmp_path, "part", "--nfe", "20", "--guidance",
                          "interval")
    assert float((part - cfg).abs().max()) > 1e-3 and "20 NFE" not in text


def _copy(run, where, **changes):
    shutil.copytree(run, where)
    config = json.loads((where / "config.json").read_text())
    for key, value in changes.items():
        if key == "label_dropout":
            config.setdefault("train", {})[key] = value
        else:
            config[key] = value
    (where / "config.json").write_text(json.dumps(config))
    return where


def test_guidance_refusals_of_runs(digits_run, tmp_path, capsys, files_under):
    no_dropout = _copy(digits_run, tmp_path / "nodrop", label_dropout=0.0)
    other_path = _copy(digits_run, tmp_path / "otherpath", path="vp-linear")
    for argv, words in [
        (["--run-dir", no_dropout, "--guidance", "cfg"], "label dropout"),
        (["--run-dir", digits_run, "--guidance", "auto", "--guide-checkpoint", other_path],
         "share one path"),
        (["--run-dir", digits_run, "--guidance", "interval", "--interval", "0.5", "0.2"],
         "interval"),
    ]:
        before = files_under(tmp_path) | files_under(digits_run)
        code, _, err = run_cli(capsys, "sample", "--label", "2", *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
        assert words in lines[0], lines[0]
        assert files_under(tmp_path) | files_under(digits_run) == before


def test_classifier_guidance_at_scale_zero_is_the_conditional_model(digits_run, tmp_path,
                                                                    capsys):
    """--guidance classifier guides the conditional model by the run's noise-aware classifier
    (here an untrained one, saved where the command keeps it): at scale 0 it adds nothing."""
    from safetensors.torch import save_file

    from interpolant.guidance import NoiseAwareClassifier

    run = _copy(digits_run, tmp_path / "run")
    (run / "classifier").mkdir()
    net = NoiseAwareClassifier(64, 10)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(run / "classifier" / "classifier.safetensors"))
    plain, _ = _samples(capsys, run, tmp_path, "plain", "--nfe", "8")
    zero, _ = _samples(capsys, run, tmp_path, "zero", "--nfe", "8", "--guidance", "classifier",
                       "--scale", "0")
    assert torch.equal(zero, plain)
    pushed, _ = _samples(capsys, run, tmp_path, "pushed", "--nfe", "8", "--guidance",
                         "classifier", "--scale", "30")
    assert float((pushed - plain).abs().max()) > 1e-3
