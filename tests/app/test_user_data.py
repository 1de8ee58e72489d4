"""``interpolant train --data PATH`` on the user's own files: train, then sample the run."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from support.cli import run_cli



def test_train_and_sample_on_an_image_folder_with_a_size(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i, (h, w) in enumerate([(8, 8), (12, 10)]):  # mixed sizes: needs size=8
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / label / f"{i}.png")
    run = tmp_path / "run"
    base = ["train", "--run-dir", run, "--steps", "2", "--batch-size", "2", "--no-progress"]
    code, _, err = run_cli(capsys, *base, "--data", tmp_path / "imgs")
    assert code == 2 and "different sizes" in err and "size=32" in err
    options = ["--model", "unet", "--config", tmp_path / "small.json"]
    (tmp_path / "small.json").write_text(json.dumps(
        {"model_options": {"base_channels": 8, "attention_levels": []}}))
    code, _, err = run_cli(capsys, *base, *options, "--data", f"{tmp_path / 'imgs'}:size=8")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["data"].endswith("imgs:size=8")
    code, _, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", "ddim", "--nfe", "2",
                          "--n", "4")
    assert code == 0, err
    assert (run / "samples" / "ddim_2.png").is_file()


def test_train_eval_report_on_a_csv_and_refuse_a_missing_path(tmp_path, capsys):
    rows = "\n".join(f"{i % 5},{(i * 7) % 3},{i % 2}" for i in range(40))
    (tmp_path / "t.csv").write_text("u,v,label\n" + rows + "\n")
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "r", "--data",
                        tmp_path / "t.csv", "--model", "mlp", "--steps", "3",
                        "--batch-size", "8", "--no-progress")
    assert code == 0, err
    code, _, err = run_cli(capsys, "eval", "--run-dir", tmp_path / "r", "--solvers", "ddim",
                        "--nfe", "2", "--n", "20", "--no-progress")
    assert code == 0, err
    rows = json.loads((tmp_path / "r" / "eval.json").read_text())["rows"]
    assert rows[0]["solver"] == "ddim" and rows[0]["nfe"] == 2 and "sliced_w2" in rows[0]
    code, _, err = run_cli(capsys, "report", "--run-dir", tmp_path / "r")
    assert code == 0, err
    assert (tmp_path / "r" / "report" / "index.html").is_file()
    code, _, err = run_cli(capsys, "train", "--run-dir", tmp_path / "s", "--data",
                        tmp_path / "missing.csv")
    assert code == 2 and "unknown data set" in err and "path of a file" in err
