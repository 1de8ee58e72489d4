"""``interpolant train --size``: a folder of images of mixed sizes trains once resized; without
the flag the refusal names it; the size is recorded in the run, so sampling reloads the same
images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from interpolant import data
from interpolant.data.sources import with_size
from interpolant.errors import InterpolantError
from support.cli import run_cli


def _mixed(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i, (h, w) in enumerate([(8, 8), (12, 10), (9, 16), (8, 8)]):
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(folder / f"{i}.png")


def test_train_size_resizes_a_folder_of_mixed_sizes(tmp_path, capsys):
    _mixed(tmp_path / "imgs")
    run = tmp_path / "run"
    (tmp_path / "small.json").write_text(json.dumps(
        {"model_options": {"base_channels": 8, "attention_levels": []}}))
    base = ["train", "--run-dir", run, "--steps", "1", "--batch-size", "2", "--no-progress",
            "--threads", "1", "--config", tmp_path / "small.json", "--data", tmp_path / "imgs"]
    code, _, err = run_cli(capsys, *base)
    assert code == 2 and "different sizes" in err and "--size 32" in err
    assert not run.exists()
    threads = torch.get_num_threads()
    try:
        code, _, err = run_cli(capsys, *base, "--size", "6x4")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    recorded = json.loads((run / "config.json").read_text())["data"]
    assert recorded == f"{tmp_path / 'imgs'}:size=6x4"
    # the recorded string reloads the images the run trained on: 6x4, gray
    x, _ = data.load(recorded)
    assert x.shape == (4, 1, 6, 4)
    pixels = np.asarray(Image.open(tmp_path / "imgs" / "0.png").resize((4, 6), Image.BICUBIC),
                        dtype=np.float32)
    np.testing.assert_allclose(x[0, 0].numpy(), np.clip(pixels / 127.5 - 1, -1, 1), atol=1e-6)


def test_size_replaces_a_size_written_in_the_path_and_keeps_other_options(tmp_path):
    _mixed(tmp_path / "imgs")
    spec = with_size(f"{tmp_path / 'imgs'}:channels=3,size=5", "7")
    assert spec == f"{tmp_path / 'imgs'}:channels=3,size=7"
    assert data.load(spec)[0].shape == (4, 3, 7, 7)


@pytest.mark.parametrize("spec", ["digits", "FILE"])
def test_size_refuses_what_is_not_a_folder(tmp_path, spec):
    if spec == "FILE":
        spec = str(tmp_path / "a.npy")
        np.save(spec, np.zeros((3, 2), np.float32))
    with pytest.raises(InterpolantError, match="--size resizes the images of a folder"):
        with_size(spec, "8")
    _mixed(tmp_path / "imgs")
    with pytest.raises(InterpolantError, match="size"):
        with_size(str(tmp_path / "imgs"), "big")
