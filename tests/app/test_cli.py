"""The command line end to end on tiny budgets, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
import sys

import pytest
import torch

from support.cli import run_cli



def test_train_sample_eval_report_on_points(tmp_path, capsys):
    run = tmp_path / "moons"
    config = tmp_path / "run.toml"
    config.write_text('data = "moons"\nmodel = "mlp"\npath = "linear"\ntarget = "velocity"\n'
                      'n = 2000\nmodel_options = { hidden = 64, depth = 2 }\n'
                      '[train]\nsteps = 300\nbatch_size = 256\nlr = 3e-3\n')
    code, out, err = run_cli(capsys, "train", "--run-dir", run, "--config", config, "--no-progress")
    assert code == 0, err
    assert (run / "config.json").is_file() and (run / "metrics.jsonl").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 300

    code, out, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", "heun", "--nfe", "10",
                          "--n", "500")
    assert code == 0, err
    assert (run / "samples" / "heun_10.png").is_file()

    code, out, err = run_cli(capsys, "eval", "--run-dir", run, "--solvers", "euler,heun",
                          "--nfe", "4,16", "--n", "1000", "--no-progress")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    rows = {(r["solver"], r["budget"]): r for r in result["rows"]}
    assert set(rows) == {("euler", 4), ("euler", 16), ("heun", 4), ("heun", 16)}
    assert rows[("heun", 4)]["nfe"] == 4 and rows[("euler", 16)]["nfe"] == 16
    # trained flow samples are far closer to moons than the N(0, I) prior is
    from interpolant import data, metrics
    prior = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    worst_prior = metrics.sliced_wasserstein(prior, data.toy("moons", 1000, seed=1), seed=0)
    assert rows[("heun", 16)]["sliced_w2"] < 0.5 * worst_prior

    code, out, err = run_cli(capsys, "report", "--run-dir", run)
    assert code == 0, err
    page = (run / "report" / "index.html").read_text()
    assert "heun" in page and "sliced_w2" in page
    assert "1000 real training samples against the same" in page  # how the floor is made


def test_demo_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = Path("demo")  # relative, as `make demo` runs it
    code, text, err = run_cli(capsys, "demo", "--quick", "--out", out)
    assert code == 0, err
    result = json.loads((out / "eval.json").read_text())
    assert {r["budget"] for r in result["rows"]} == {5, 10, 20}
    assert len({r["solver"] for r in result["rows"]}) >= 4
    assert all("digits_fd" in r for r in result["rows"])
    assert (out / "report" / "index.html").is_file()
    for row in result["rows"]:
        assert (out / row["path"]).is_file()
        # even an untrained network must not blow up at the noise end (alpha(1) = 0)
        assert row["max_abs"] < 10.0, row
    # a second demo replaces the first instead of failing on the existing run
    assert run_cli(capsys, "demo", "--quick", "--out", out, "--steps", "2")[0] == 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["sample", "--run-dir", "{tmp}/nope"], "does not exist"),
        (["eval", "--run-dir", "{tmp}"], "not a run directory"),
        (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/bad.json"], "unknown key"),
        (["train", "--run-dir", "{tmp}/r", "--data", "mnist"], "unknown data set"),
        (["train", "--run-dir", "{tmp}/r", "--config", "{tmp}/missing.json"], "does not exist"),
        (["train", "--run-dir", "/proc/interpolant-run", "--steps", "1"], "cannot write"),
        (["demo", "--out", "{tmp}/file.txt"], "not a directory"),
    ],
)
def test_user_mistakes_give_one_clear_line(tmp_path, capsys, argv, words):
    (tmp_path / "bad.json").write_text('{"data": "digits", "learning_rate": 0.1}')
    (tmp_path / "file.txt").write_text("x")
    code, out, err = run_cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interpolant: error:") and words in lines[0]


def test_unknown_solver_and_help_through_the_installed_command(tmp_path):
    exe = [sys.executable, "-m", "interpolant"]
    help_text = subprocess.run(exe + ["eval", "--help"], capture_output=True, text=True).stdout
    assert "--nfe" in help_text and "default: 5,10,20" in help_text
    done = subprocess.run(exe + ["sample", "--run-dir", str(tmp_path), "--solver", "dpm9"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown solver" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_names_are_listed_and_unknown_ones_refused(capsys):
    code, text, _ = run_cli(capsys, "demo", "--list")
    assert code == 0 and text.split()[0] == "digits"
    code, _, err = run_cli(capsys, "demo", "no-such-demo")
    assert code == 2 and "unknown demo 'no-such-demo'" in err and "digits" in err
