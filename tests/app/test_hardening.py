"""Issue 17 through the command itself: nothing an earlier run wrote is lost, budgets are kept
or refused, mistakes end in one clear line, samples do not depend on how many were drawn."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from interpolant.app import runs
from interpolant.app.cli import main
from support.cli import run_cli

TINY = ('data = "moons"\nmodel = "mlp"\npath = "linear"\ntarget = "velocity"\nn = 512\n'
        'model_options = { hidden = 32, depth = 2 }\n[train]\nsteps = 6\nbatch_size = 64\n'
        'checkpoint_every = 2\nkeep_checkpoints = 3\nlog_every = 1\nwarmup = 0\n')


@pytest.fixture(autouse=True)
def _keep_thread_count():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)



def _one_error_line(err: str, words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
    assert words in lines[0], err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at steps 2, 4, 6; metrics for steps 1..6."""
    root = tmp_path_factory.mktemp("trained")
    (root / "tiny.toml").write_text(TINY)
    assert main(["train", "--run-dir", str(root / "run"), "--config", str(root / "tiny.toml"),
                 "--no-progress"]) == 0
    return root / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run, free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- data loss (#17.1-5) ---------------------------------------------------------------------
def test_demo_does_not_replace_a_run_that_train_made(run, capsys):
    before = _files(run)
    code, _, err = run_cli(capsys, "demo", "--quick", "--out", run)
    assert code == 2
    _one_error_line(err, "not a run the demo made")
    assert _files(run) == before


def test_eval_refuses_an_empty_list_and_keeps_earlier_results(run, capsys):
    assert run_cli(capsys, "eval", "--run-dir", run, "--solvers", "ddim", "--nfe", "3", "--n",
                "40", "--no-progress")[0] == 0
    before = (run / "eval.json").read_bytes()
    for option in ("--nfe", "--solvers"):
        code, _, err = run_cli(capsys, "eval", "--run-dir", run, option, "", "--no-progress")
        assert code == 2 and "non-empty" in err
        assert (run / "eval.json").read_bytes() == before


@pytest.mark.parametrize("bad", [["--target", "foo"], ["--lr", "-1"], ["--steps", "0"],
                                 ["--batch-size", "0"], ["--batch-size", "100000"],
                                 ["--config", "{tmp}/string.toml"]])
def test_a_refused_train_option_leaves_nothing_and_the_retry_works(tmp_path, capsys, bad):
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "string.toml").write_text(TINY.replace("steps = 6", 'steps = "5"'))
    target = tmp_path / "r"
    argv = ["train", "--run-dir", target, "--no-progress"]
    bad = [a.replace("{tmp}", str(tmp_path)) for a in bad]
    config = [] if "--config" in bad else ["--config", tmp_path / "tiny.toml"]
    code, _, err = run_cli(capsys, *argv, *config, *bad)
    assert code == 2 and err.startswith("interpolant: error:"), err
    assert not (target / "config.json").exists() and not (target / "checkpoints").exists()
    code, _, err = run_cli(capsys, *argv, "--config", tmp_path / "tiny.toml", "--steps", "2")
    assert code == 0, err


def test_resume_without_latest_takes_the_newest_good_checkpoint(run, capsys):
    # killed after step 5 was logged and before the step-6 checkpoint; LATEST lost as well
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    (run / "checkpoints" / "LATEST").unlink()
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:5]) + "\n" + lines[5][:9])  # step 6 cut short mid-write
    code, out, err = run_cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 0, err
    assert "step_00000004" in out
    assert _steps(run) == [1, 2, 3, 4, 5, 6]  # steps 5 and 6 logged once, not twice
    assert (run / "checkpoints" / "LATEST").read_text().strip() == "step_00000006"


def test_resume_past_a_corrupt_checkpoint_says_so_and_refuses_when_none_verifies(run, capsys):
    model = run / "checkpoints" / "step_00000006" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-5])
    code, out, err = run_cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 0, err
    assert "step_00000004" in out and "skipped" in out and "truncated" in out
    assert _steps(run) == [1, 2, 3, 4, 5, 6]
    for step in (2, 4, 6):
        manifest = run / "checkpoints" / f"step_{step:08d}" / "manifest.json"
        manifest.write_text(json.dumps({"format": "interpolant-checkpoint", "step": step}))
    before = _files(run)
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--resume", "--no-progress")
    assert code == 2
    _one_error_line(err, "verifies")
    assert _files(run) == before


# -- budgets and counts (#17.9) ----------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["sample", "--solver", "heun", "--nfe", "1"], "heun spends at least 2 NFE"),
    (["sample", "--solver", "dpm-adaptive", "--nfe", "3"], "NFE"),
    (["sample", "--nfe", "0"], "positive"),
    (["sample", "--nfe", "-3"], "positive"),
    (["sample", "--n", "0"], "--n"),
    (["sample", "--n", "-1"], "--n"),
    (["eval", "--n", "-1"], "--n"),
    (["eval", "--solvers", "ddim,heun", "--nfe", "4,1"], "heun spends at least 2 NFE"),
])
def test_budgets_and_counts_are_kept_or_refused_alike(run, capsys, argv, words):
    before = _files(run)
    code, _, err = run_cli(capsys, argv[0], "--run-dir", run, *argv[1:])
    assert code == 2
    _one_error_line(err, words)
    assert _files(run) == before  # no picture, no eval.json


def test_a_budget_is_an_upper_bound_in_sample_and_eval(run, capsys):
    code, out, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", "heun", "--nfe", "5",
                          "--n", "20")
    assert code == 0, err
    assert "4 NFE (budget 5)" in out
    code, _, err = run_cli(capsys, "eval", "--run-dir", run, "--solvers", "heun,dpm-adaptive",
                        "--nfe", "7", "--n", "20", "--no-progress")
    assert code == 0 or "needed more than" in err, err
    if code == 0:
        rows = json.loads((run / "eval.json").read_text())["rows"]
        assert all(1 <= r["nfe"] <= r["budget"] for r in rows), rows


# -- clear errors (#17.11) ---------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["train", "--run-dir", "{tmp}/file.txt", "--data", "moons"], "is a file"),
    (["sample", "--run-dir", "{tmp}/file.txt"], "is a file, not a run directory"),
    (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/run.yaml"], "JSON (.json) or TOML"),
    (["report", "--run-dir", "{run}"], "not valid JSON"),
    (["sample", "--run-dir", "{run}", "--out", "{tmp}/s.gif"], "name it .png or .jpg"),
])
def test_mistakes_give_one_clear_line(run, tmp_path, capsys, argv, words):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "run.yaml").write_text("data: moons\n")
    (run / "eval.json").write_text("{not json")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(run)) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    _one_error_line(err, words)


@pytest.mark.parametrize("content", ["{}", '{"rows": []}', '{"rows": [{"solver": "ddim"}]}'])
def test_report_on_an_eval_json_without_rows_is_refused(run, capsys, content):
    (run / "eval.json").write_text(content)
    code, _, err = run_cli(capsys, "report", "--run-dir", run)
    assert code == 2
    _one_error_line(err, "no rows")


def test_a_manifest_without_files_is_a_clear_error(run, capsys):
    for step in (2, 4, 6):
        manifest = run / "checkpoints" / f"step_{step:08d}" / "manifest.json"
        raw = json.loads(manifest.read_text())
        del raw["files"]
        manifest.write_text(json.dumps(raw))
    code, _, err = run_cli(capsys, "sample", "--run-dir", run)
    assert code == 2
    _one_error_line(err, "manifest.json lacks")


def test_sample_out_a_folder_or_a_jpg(run, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    code, out, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", "ddim", "--nfe", "3",
                          "--n", "20", "--out", folder)
    assert code == 0, err
    assert (folder / "ddim_3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", "ddim", "--nfe", "3",
                          "--n", "20", "--out", tmp_path / "x.jpg")
    assert code == 0, err
    from PIL import Image

    with Image.open(tmp_path / "x.jpg") as picture:
        assert picture.format == "JPEG"


# -- one stream per sample (#17.15) ------------------------------------------------------------
@pytest.mark.parametrize("solver", ["euler-maruyama", "ddpm"])
def test_a_sample_does_not_depend_on_how_many_were_drawn(run, tmp_path, capsys, solver):
    drawn = {}
    for n in (3, 8):
        out = tmp_path / f"{n}.png"
        code, _, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", solver, "--nfe", "4",
                            "--n", n, "--seed", "5", "--out", out)
        assert code == 0, err
        drawn[n] = load_file(str(out.with_suffix(".safetensors")))["samples"]
    torch.testing.assert_close(drawn[8][:3], drawn[3], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(drawn[8][3], drawn[8][4])  # yet each sample has its own noise


# -- threads (#17.16) --------------------------------------------------------------------------
def test_threads_are_honoured_and_shown(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "r", "--config",
                        tmp_path / "tiny.toml", "--threads", "1", "--steps", "2")
    assert code == 0, err
    assert "train (1 thread" in err  # the progress line
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").open()]
    assert {r["threads"] for r in records} == {1}
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "s", "--threads", "0")
    assert code == 2 and "--threads" in err


def test_the_installed_command_restarts_once_with_threads_that_wait_passively(
        tmp_path, capsys, monkeypatch):
    # OpenMP threads that spin while they wait made training ~50x slower beside one busy
    # process on 2 cores; the installed command (argv from sys.argv) restarts itself once
    # with OMP_WAIT_POLICY=PASSIVE, which OpenMP reads only when torch loads
    from interpolant.app import cli

    started = []
    monkeypatch.setenv("OMP_WAIT_POLICY", "restored after the test")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr(cli.os, "execv", lambda exe, argv: started.append(argv))
    monkeypatch.setattr(sys, "argv", ["interpolant", "solvers"])
    assert cli.main() == 0 and started == []  # short commands run as they are
    monkeypatch.setattr(sys, "argv", ["interpolant", "train", "--run-dir", str(tmp_path / "r"),
                                      "--data", "nope"])
    assert cli.main() == 2 and started == [sys.orig_argv]
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    started.clear()
    assert cli.main() == 2 and started == []  # once: the policy is set now
    (tmp_path / "tiny.toml").write_text(TINY)
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "s", "--config",
                        tmp_path / "tiny.toml", "--steps", "2", "--threads", "1")
    assert code == 0 and "train (1 thread, passive wait)" in err


# -- a run's denoiser from its checkpoint alone (#9.7) -----------------------------------------
def test_the_denoiser_loads_without_reading_the_data(run, monkeypatch):
    _, reference = runs.load_denoiser(run)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 0.5)

    def no_data(*args, **kwargs):
        raise AssertionError("the training data were read")

    monkeypatch.setattr(runs, "load_data", no_data)
    monkeypatch.setattr(runs.datasets, "load", no_data)
    _, loaded = runs.load_denoiser(run)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, None, "x0"), reference(x, t, None, "x0"),
                                   rtol=0, atol=0)
    assert runs.load_trained(run).shape == (2,)  # the sample shape too
