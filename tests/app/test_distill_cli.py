"""interpolant distill: every method makes a student run that sample and eval use like any
run; the run reloads to the network distillation made; bad input is refused in one line and
leaves nothing behind."""

from __future__ import annotations

import json
import re

import pytest
import torch

from interpolant import paths
from interpolant.app.distill import BOUNDARY
from interpolant.app.runs import load_trained
from support.cli import run_cli


def _distill(capsys, teacher, out, method, *extra):
    return run_cli(capsys, "distill", "--teacher", teacher, "--method", method, "--run-dir",
                   out, "--steps", 2, "--batch-size", 8, "--pairs", 16, "--threads", 1, *extra)


@pytest.mark.parametrize("method,solver,nfe", [("cd", "ddim", 2), ("ct", "ddim", 1),
                                               ("pd", "ddim", 2), ("reflow", "euler", 2),
                                               ("mmd", "ddim", 2), ("mlcm", "ddim", 2),
                                               ("scott", "ddim", 2), ("slam", "ddim", 1)])
def test_each_method_makes_a_run_that_eval_uses(capsys, digits_run, tmp_path, method, solver,
                                                nfe):
    code, out, err = _distill(capsys, digits_run, tmp_path / "s", method)
    assert code == 0, err
    assert f"--solvers {solver}" in out
    info = json.loads((tmp_path / "s" / "student.json").read_text())
    assert info["method"] == method and info["cpu_seconds"] >= 0
    code, out, err = run_cli(capsys, "eval", "--run-dir", tmp_path / "s", "--solvers", solver,
                             "--nfe", nfe, "--n", 20, "--no-progress")
    assert code == 0, err
    row = json.loads((tmp_path / "s" / "eval.json").read_text())["rows"][0]
    assert row["nfe"] == nfe and row["digits_fd"] > 0


def test_student_run_reloads_as_the_teachers_model_it_started_from(capsys, digits_run,
                                                                   tmp_path):
    """At a negligible learning rate the students keep the teacher's weights, so the reloaded
    runs are exactly: pd the teacher's unconditional denoiser; cd LCM's consistency function
    f = alpha_min (c_skip x / alpha + (1 - c_skip) x0^) of the teacher's x0^ (sigma_data from
    student.json); reflow the teacher's network read as a velocity on the linear path; mlcm
    the teacher's denoiser again (its consistency function is a DDIM step of it)."""
    teacher = load_trained(digits_run).denoiser
    for method in ("pd", "cd", "reflow", "mlcm"):
        assert _distill(capsys, digits_run, tmp_path / method, method, "--lr", 1e-30)[0] == 0
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0.05, 0.95, 6)
    with torch.no_grad():
        want = teacher(x, t)
        for method in ("pd", "mlcm"):
            same = load_trained(tmp_path / method).denoiser
            assert torch.allclose(same(x, t), want, atol=1e-6)
        cd = load_trained(tmp_path / "cd").denoiser
        sd = json.loads((tmp_path / "cd" / "student.json").read_text())["sigma_data"]
        path = teacher.path
        a, s = path.alpha(t.double())[:, None, None, None], path.sigma(t.double())[:, None,
                                                                                  None, None]
        a_min = path.alpha(path.t_min)
        skip = sd**2 / ((s / a - path.sigma(path.t_min) / a_min) ** 2 + sd**2)
        lcm = a_min * (skip * x.double() / a + (1 - skip) * want.double())
        assert torch.allclose(cd(x, t).double(), lcm, atol=1e-5)
        # LCM's narrow boundary: away from t_min f starts as the teacher's own x0^
        far = t >= 0.2
        assert sd == BOUNDARY and torch.allclose(cd(x[far], t[far]), a_min * want[far],
                                                 atol=1e-2)
        flow = load_trained(tmp_path / "reflow").denoiser
        assert type(flow.path).__name__ == "Linear" and flow.prediction == "velocity"
        assert torch.allclose(flow(x, t, target="velocity"),
                              teacher.model(x, t.to(x.dtype)), atol=1e-6)


def test_bad_input_is_refused_in_one_line_and_writes_nothing(capsys, digits_run, tmp_path):
    out = tmp_path / "student"
    cases = [
        (("--method", "gan"), "unknown distillation method 'gan'"),
        (("--model", "mlp"), r"does not fit the teacher's data of shape \(1, 8, 8\)"),
        (("--model-options", '{"out_channels": 3}'), "data's shape"),
        (("--lr", "1e30", "--steps", "5"), r"diverged at step \d+ of 5"),
        (("--method", "pd", "--nfe", "3"), "power of two"),
        (("--method", "pd", "--nfe", "2", "--teacher-nfe", "6"),
         r"teacher's steps \(6\) must be --nfe \(2\) times a power of two"),
    ]
    for extra, message in cases:
        argv = ["cd", *extra] if extra[0] != "--method" else [extra[1], *extra[2:]]
        code, _, err = _distill(capsys, digits_run, out, *argv)
        assert code == 2 and err.count("\n") == 1 and err.startswith("interpolant: error:")
        assert re.search(message, err), err
        assert not out.exists() and not list(tmp_path.glob(".*"))
    code, _, err = _distill(capsys, tmp_path / "nothing", out, "cd")
    assert code == 2 and "does not exist" in err and not out.exists()
    (tmp_path / "empty").mkdir()
    code, _, err = _distill(capsys, tmp_path / "empty", out, "cd")
    assert code == 2 and "not a run directory" in err and not out.exists()
    code, _, err = _distill(capsys, digits_run, digits_run, "cd")
    assert code == 2 and "not an empty folder" in err


def test_a_cosine_students_grid_is_stored_and_sample_uses_it(capsys, digits_run, tmp_path):
    """The digits run is on the cosine path (alpha(1) = 0), whose 2-step log-SNR grid spends
    its first step at t = 1 -> 0.996: the student is distilled on the uniform grid instead and
    tuned.json holds it, so `interpolant sample --nfe 2` draws on that grid (not the path's
    default, which gives other samples)."""
    from safetensors.torch import load_file

    from interpolant.app.distill import student_grid
    from interpolant.app.draw import draw
    from interpolant.grids import make

    teacher = load_trained(digits_run).denoiser
    assert student_grid(teacher.path) == "uniform"
    assert student_grid(paths.VPLinear()) == "logsnr"
    run = tmp_path / "mlcm"
    assert _distill(capsys, digits_run, run, "mlcm", "--nfe", 2)[0] == 0
    uniform = make("uniform", teacher.path, 2)
    choice = json.loads((run / "tuned.json").read_text())["choices"]["2"]
    assert choice["solver"] == "ddim" and torch.allclose(torch.tensor(choice["grid"], dtype=torch.float64), uniform,
                                                           rtol=0, atol=1e-12)
    assert json.loads((run / "student.json").read_text())["grid"] == "uniform"
    code, out, err = run_cli(capsys, "sample", "--run-dir", run, "--nfe", 2, "--n", 4,
                             "--out", tmp_path / "s.png")
    assert code == 0 and "ddim, 2 steps" in out, err
    got = load_file(str(tmp_path / "s.safetensors"))["samples"]
    student = load_trained(run)
    on_uniform = draw(student.denoiser, "ddim", 2, 4, 0, student.shape, None, grid=uniform)[0]
    on_default = draw(student.denoiser, "ddim", 2, 4, 0, student.shape, None)[0]
    assert torch.equal(got, on_uniform) and not torch.allclose(got, on_default, atol=1e-3)
    # eval measures the student on the same stored grid: its ddim rows at 2 NFE say so and
    # their score is that of the uniform-grid samples (another solver keeps its own steps)
    from interpolant.app.evaluate import quality
    from interpolant.app.runs import load_data

    code, out, err = run_cli(capsys, "eval", "--run-dir", run, "--solvers", "ddim,euler",
                             "--nfe", 2, "--n", 24, "--no-progress")
    assert code == 0, err
    rows = {r["solver"]: r for r in json.loads((run / "eval.json").read_text())["rows"]}
    assert rows["ddim"].get("tuned") is True and "tuned" not in rows["euler"]
    samples = draw(student.denoiser, "ddim", 2, 24, 0, student.shape, None, grid=uniform)[0]
    test_x, _ = load_data(student.config, "test")
    expected = quality(student.config, samples, test_x)["digits_fd"]
    assert rows["ddim"]["digits_fd"] == pytest.approx(expected, rel=1e-6)
