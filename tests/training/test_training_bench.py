"""The training benchmark: times to multiples of the noise floor interpolated from the curves,
speed-ups against the default run, the goal verdict, the page; a seconds-long end-to-end run;
bad options and unknown recipes as one-line errors."""

from __future__ import annotations

import json

import pytest

from interpolant.bench import training
from interpolant.bench.training_contestants import recipe_names
from interpolant.bench.training_page import crossing, summarise, write_page
from interpolant.errors import InterpolantError

FLOOR = 2.0
# (CPU seconds, steps, Digits-FD)
MEASURED = [
    {"name": "default", "parameters": 10, "curve": [(0.0, 0, 100.0), (60.0, 100, 6.0),
                                                    (120.0, 200, 3.0)]},
    {"name": "fast", "parameters": 12, "curve": [(0.0, 0, 100.0), (60.0, 50, 4.0),
                                                 (150.0, 130, 2.4)]},
]


def test_crossing_interpolates_linearly_between_evaluations() -> None:
    points = [(0.0, 100.0), (60.0, 6.0), (120.0, 3.0)]
    assert crossing(points, 4.0) == pytest.approx(60 + 60 * (6 - 4) / (6 - 3))
    assert crossing(points, 200.0) == 0.0 and crossing(points, 2.0) is None


def test_summary_times_speed_up_and_goal() -> None:
    rows = summarise(MEASURED, FLOOR)
    default, fast = rows
    # 2x floor = 4: default crosses at 60 + 60 (6-4)/(6-3) = 100 s, fast at exactly 60 s
    assert default["CPU min to 2x floor"] == f"{100 / 60:.2f}"
    assert fast["CPU min to 2x floor"] == "1.00"
    assert fast["speed-up at 2x floor"] == f"{100 / 60:.2f}" and default[
        "speed-up at 2x floor"] == "1.00"
    # 1.25x floor = 2.5: only 'fast' reaches it, at 60 + 90 (4-2.5)/(4-2.4) s < 3 minutes
    assert default["CPU min to 1.25x floor"] == "-" and default["goal"] == "no"
    assert fast["CPU min to 1.25x floor"] == f"{(60 + 90 * 1.5 / 1.6) / 60:.2f}"
    assert fast["goal"] == "yes"
    assert fast["steps / CPU s"] == round(130 / 150, 2) and fast["best Digits-FD"] == 2.4
    with pytest.raises(InterpolantError, match="step-0 evaluation"):
        summarise([{"name": "x", "parameters": 1, "curve": [(0.0, 0, 1.0)]}], FLOOR)
    with pytest.raises(InterpolantError, match="floor must be positive"):
        summarise(MEASURED, 0.0)


def test_page_holds_table_plot_and_results(tmp_path) -> None:
    page = write_page(tmp_path / "r", MEASURED, FLOOR, ["a note"], {"minutes": 3})
    text = page.read_text()
    assert "fast" in text and "a note" in text and "digits_fd_vs_minutes.png" in text
    assert "within 3 CPU minutes: fast." in text
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["floor"] == FLOOR and saved["summary"][1]["goal"] == "yes"
    (tmp_path / "f").write_text("")
    with pytest.raises(InterpolantError, match="is a file"):
        write_page(tmp_path / "f", MEASURED, FLOOR)


def test_a_seconds_long_run_writes_the_page(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative --out, as on the command line
    assert {"default", "diffusers", "edm2", "repa", "mmdit", "dtr", "switch-dit", "sd3",
            "edm2-loss"} <= set(recipe_names())
    code = training.main(["--recipes", "default,edm2+repa", "--minutes", "0.002", "--evals", "1",
                          "--fd-samples", "40", "--fd-steps", "3", "--batch-size", "8",
                          "--chunk", "1", "--out", "b"])
    assert code == 0
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert [m["name"] for m in saved["measured"]] == ["default", "edm2+repa"]
    for m in saved["measured"]:  # the step-0 evaluation, then one after training
        assert m["curve"][0][1] == 0 and m["curve"][-1][1] > 0
        assert m["fd_2nfe"] > 0  # and the best 2-NFE grid's score
    row = saved["summary"][0]
    assert abs(row["2 NFE / end"] - row["Digits-FD at 2 NFE"] / row["Digits-FD at end"]) < 0.01
    assert "| default |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--recipes", "default,nosuch"], "unknown training recipe 'nosuch'"),
    (["--minutes", "0"], "--minutes must be positive"),
    (["--recipes", "edm2,edm2"], "distinct names"),
    (["--recipes", "repa+edm2-loss"], "both replace the loss"),
    (["--recipes", "default+edm2"], "unknown training recipe 'default'"),
])
def test_bad_options_are_one_line_errors(argv, message, capsys) -> None:
    assert training.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("interpolant: error:") and message in err and "\n" not in err


def test_contestants_are_sampled_from_their_ema_unless_raw_is_asked() -> None:
    """The default run samples its trainer's EMA; the diffusers loop keeps an EMA of the same
    half-life, which after k steps from the start weights is the exact recursion
    e_k = b e_{k-1} + (1 - b) theta_k with b = 0.5 ** (B / halflife)."""
    import torch

    from interpolant.app.workflows import TRAIN_DEFAULTS
    from interpolant.bench.training_contestants import contestant
    from interpolant.data import digits

    data = digits("train")[0][:64]
    run = contestant("default", data, 8, 2e-3)
    run.step()
    assert run.denoiser().model is run.trainer.ema.model
    assert run.denoiser(ema=False).model is run.model
    pytest.importorskip("diffusers")
    loop = contestant("diffusers", data, 8, 2e-3)
    start = [p.detach().clone() for p in loop.model.parameters()]
    b = 0.5 ** (8 / TRAIN_DEFAULTS["ema_halflife"])
    expected = start
    for _ in range(3):
        loop.step()
        expected = [b * e + (1 - b) * p.detach() for e, p in zip(expected, loop.model.parameters())]
    for e, got in zip(expected, loop.ema.model.parameters()):
        torch.testing.assert_close(got, e, rtol=0, atol=1e-6)
    assert not torch.equal(next(loop.ema.model.parameters()), next(loop.model.parameters()))
    x = torch.randn(2, 1, 8, 8)
    t = torch.full((2,), 0.5)
    ema_out, raw_out = loop.denoiser()(x, t), loop.denoiser(ema=False)(x, t)
    assert not torch.allclose(ema_out, raw_out)
