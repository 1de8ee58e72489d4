"""interpolant demo fewstep --quick: a teacher run, student runs of every method that eval and
report read like any run, the table at 1, 2, 4 NFE beside the teacher, and the goal line."""

from __future__ import annotations

import json

import pytest
import torch

from interpolant.app.demo_fewstep import goal_line
from support.cli import run_cli


def test_quick_demo_writes_students_and_the_table(capsys, tmp_path):
    threads = torch.get_num_threads()
    code, out, err = run_cli(capsys, "demo", "fewstep", "--quick", "--out", tmp_path / "d",
                             "--threads", 1)
    torch.set_num_threads(threads)
    assert code == 0, err
    page = (tmp_path / "d" / "report" / "index.html").read_text()
    assert "Goal (a 2-NFE student within 1.5x" in page
    students = tmp_path / "d" / "students"
    for run, nfes in {"cd": [1, 2, 4], "ct": [1, 2, 4], "reflow": [1, 2, 4], "pd-4": [4],
                      "pd-2": [2], "pd-1": [1], "mmd-1": [1], "mmd-2": [2], "mmd-4": [4],
                      "mlcm-1": [1], "mlcm-2": [2], "mlcm-4": [4]}.items():
        rows = json.loads((students / run / "eval.json").read_text())["rows"]
        assert [r["nfe"] for r in rows] == nfes, run
    teacher = json.loads((tmp_path / "d" / "teacher" / "eval.json").read_text())["rows"]
    assert {(r["solver"], r["nfe"]) for r in teacher} == {
        (s, n) for s in ("ddim", "dpm++2m", "unipc") for n in (5, 10, 20)}
    code, _, err = run_cli(capsys, "report", "--run-dir", students / "pd-2")
    assert code == 0, err
    # a second run replaces the demo's own folder, but nothing else
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "demo", "fewstep", "--quick", "--out", tmp_path / "other")
    assert code == 2 and "not a fewstep demo" in err
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def _row(method, nfe, fd):
    return {"method": method, "nfe": nfe, "fd": fd}


@pytest.mark.parametrize("student_fd,verdict", [(14.9, "met"), (15.1, "not met")])
def test_goal_is_the_best_2_nfe_student_against_the_best_20_nfe_teacher(student_fd, verdict):
    rows = [_row("teacher ddim", 20, 12.0), _row("teacher dpm++2m", 20, 10.0),
            _row("teacher ddim", 5, 5.0), _row("cd", 2, 40.0), _row("reflow", 2, student_fd),
            _row("pd", 1, 1.0)]
    line = goal_line(rows)
    assert f": {verdict} — best 2-NFE student reflow" in line
    assert f"{student_fd / 10.0:.2f}x the teacher's 10 (teacher dpm++2m)" in line
