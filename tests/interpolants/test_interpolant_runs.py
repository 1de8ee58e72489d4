"""``interpolant train --process interpolant --source ...``: a tiny data-dependent run that
samples restorations of held-out digits, the commands that refuse it, and bad sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from interpolant.app.interpolant_run import source_draws
from interpolant.app.runs import open_run

from support.cli import run_cli

TINY = ('model_options = { base_channels = 8, attention_levels = [] }\n[train]\n'
        'steps = 4\nbatch_size = 32\nlog_every = 2\ncheckpoint_every = 4\n')


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interpolant")
    (root / "tiny.toml").write_text(TINY)
    threads = torch.get_num_threads()
    code = run_cli_plain("train", "--run-dir", root / "run", "--config", root / "tiny.toml",
                         "--process", "interpolant", "--source", "digits-masked",
                         "--no-progress", "--threads", "1")
    torch.set_num_threads(threads)
    assert code == 0
    return root / "run"


def run_cli_plain(*argv) -> int:
    from interpolant.app.cli import main

    return main([str(a) for a in argv])


def test_a_masked_run_records_its_process_and_restores_held_out_digits(masked_run, capsys,
                                                                       tmp_path):
    config = open_run(masked_run)
    assert (config.process, config.source, config.path, config.target) == (
        "interpolant", "digits-masked", "linear", "velocity")
    out = tmp_path / "restored.png"
    code, stdout, _ = run_cli(capsys, "sample", "--run-dir", masked_run, "--n", 6, "--nfe", 4,
                              "--solver", "euler", "--out", out)
    assert code == 0 and "4 NFE" in stdout and "PSNR" in stdout and out.is_file()
    restored = load_file(str(out.with_suffix(".safetensors")))["samples"]
    # the source of a held-out digit is its top half (the measurement) over noise
    x1, truth, _ = source_draws(config, (1, 8, 8), 6, 0)
    assert torch.equal(x1[..., :4, :], truth[..., :4, :])
    assert restored.shape == (6, 1, 8, 8) and bool(torch.isfinite(restored).all())


def test_eval_measures_each_solver_and_budget(masked_run, capsys):
    code, stdout, _ = run_cli(capsys, "eval", "--run-dir", masked_run, "--n", 6, "--nfe", "2,4")
    assert code == 0, stdout
    result = json.loads((masked_run / "interpolant_eval.json").read_text())
    assert [(r["solver"], r["nfe"]) for r in result["rows"]] == [
        ("euler", 2), ("euler", 4), ("heun", 2), ("heun", 4)]
    assert all(r["psnr"] > 0 and r["digits_fd"] >= 0 for r in result["rows"])


@pytest.mark.parametrize("argv,message", [
    (("eval", "--solvers", "ddim"), "sampled with euler or heun"),
    (("edit", "--index", "1", "--to-label", "2"), "stochastic-interpolant run"),
    (("restore",), "stochastic-interpolant run"),
    (("sample", "--solver", "dpm++2m"), "sampled with euler or heun"),
    (("sample", "--solver", "heun", "--nfe", "1"), "give --nfe 2 or more"),
    (("sample", "--solver", "heun", "--label", "3"), "class-conditional Gaussian-path run"),
])
def test_commands_that_need_a_gaussian_run_refuse_it_in_one_line(masked_run, capsys,
                                                                files_under_run, argv, message):
    before = files_under_run(masked_run)
    code, _, err = run_cli(capsys, argv[0], "--run-dir", masked_run, *argv[1:])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert files_under_run(masked_run) == before


@pytest.mark.parametrize("argv,message", [
    (("--process", "interpolant", "--source", "photos-masked"), "same shape"),
    (("--process", "interpolant", "--data", "moons", "--source", "moons-lowres"),
     "not images"),
    (("--process", "interpolant", "--source", "digits-blur"), "unknown source"),
    (("--source", "digits-masked"), "add --process interpolant"),
    (("--process", "interpolant", "--path", "vp-cosine"), "--path linear or trig"),
    (("--process", "interpolant", "--target", "eps"), "learns the velocity"),
])
def test_bad_interpolant_runs_are_refused_before_anything_is_written(capsys, tmp_path, argv,
                                                                     message):
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "run", "--steps", 1, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_old_run_configs_load_as_gaussian_runs(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"data": "moons", "model": "mlp"}))
    config = open_run(tmp_path)
    assert (config.process, config.source) == ("gaussian", "noise")


@pytest.fixture
def files_under_run():
    return lambda folder: {p for p in Path(folder).rglob("*") if p.is_file()}
