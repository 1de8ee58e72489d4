"""``interpolant sample --steer`` on the tiny class-conditional digits run."""

from __future__ import annotations

import json

import pytest

from support.cli import run_cli


def test_steering_writes_samples_and_reward_against_compute(digits_run, tmp_path, capsys):
    """Best-of-N on stroke mass with up to 4 candidates: rows for 1, 2, 4 candidates whose NFE
    per sample double, the most compute buying more ink than one chain; the picture, the plot
    and the table are written."""
    code, text, err = run_cli(capsys, "sample", "--run-dir", digits_run, "--steer", "stroke",
                              "--steer-method", "best-of-n", "--particles", "4", "--n", "6",
                              "--nfe", "4", "--out", tmp_path)
    assert code == 0, err
    table = json.loads((tmp_path / "steer_stroke.json").read_text())
    rows = table["rows"]
    assert [r["particles"] for r in rows] == [1, 2, 4]
    assert rows[1]["nfe"] == 2 * rows[0]["nfe"] and rows[2]["nfe"] == 4 * rows[0]["nfe"]
    assert rows[2]["reward"] > rows[0]["reward"], rows
    assert (tmp_path / "steer_stroke.png").is_file()
    assert (tmp_path / "steer_stroke_best-of-n_4.png").is_file() and "stroke reward" in text


@pytest.mark.parametrize("argv, words", [
    (["--steer", "stroke", "--particles", "0"], "--particles must be a positive integer"),
    (["--steer", "beauty"], "unknown reward 'beauty'"),
    (["--steer", "confidence"], "needs --label"),
    (["--steer", "stroke", "--steer-method", "magic"], "unknown steering method 'magic'"),
])
def test_bad_steering_requests_write_nothing(digits_run, tmp_path, capsys, files_under, argv,
                                             words):
    before = files_under(digits_run)
    code, _, err = run_cli(capsys, "sample", "--run-dir", digits_run, "--n", "2", "--out",
                           tmp_path, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("interpolant: error:"), err
    assert words in lines[0]
    assert files_under(digits_run) == before and not any(tmp_path.iterdir())
