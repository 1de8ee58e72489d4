"""PNG grids read back pixel by pixel, input validation, and plots that draw something."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from interpolant import images, plots
from interpolant.errors import InterpolantError


def _levels(values: list[list[int]]) -> torch.Tensor:
    """Pixels whose exact byte is known: level k in [0, 255] sits at 2 k / 255 - 1."""
    return torch.tensor(values, dtype=torch.float64) * (2.0 / 255.0) - 1.0


def test_grey_grid_round_trips_with_nearest_upsampling_and_padding(tmp_path):
    # Three 2x3 images, two per row, each pixel enlarged to a 2x2 block, 1 px white padding.
    levels = [
        [[0, 10, 20], [30, 40, 255]],
        [[255, 0, 7], [100, 200, 1]],
        [[5, 6, 7], [8, 9, 250]],
    ]
    batch = torch.stack([_levels(image) for image in levels])[:, None]  # (3, 1, 2, 3)
    path = images.save_grid(batch, tmp_path / "sub" / "grid.png", nrow=2, scale=2, padding=1)

    with Image.open(path) as picture:
        assert picture.mode == "L"
        pixels = np.asarray(picture)
    # width: pad + 2 tiles of (3*2) + pad after each; height: pad + 2 rows of (2*2 + pad)
    assert pixels.shape == (1 + 2 * (4 + 1), 1 + 2 * (6 + 1))
    expected = np.full(pixels.shape, 255, dtype=np.uint8)  # padding and the empty 4th cell
    for index, image in enumerate(levels):
        top, left = 1 + (index // 2) * 5, 1 + (index % 2) * 7
        for y in range(2):
            for x in range(3):
                block = (slice(top + 2 * y, top + 2 * y + 2), slice(left + 2 * x, left + 2 * x + 2))
                expected[block] = image[y][x]
    np.testing.assert_array_equal(pixels, expected)


def test_colour_grid_keeps_channel_order_and_default_layout(tmp_path):
    red, green, blue = _levels([[255]]), _levels([[0]]), _levels([[128]])
    batch = torch.stack([torch.stack([red, green, blue])] * 4)  # (4, 3, 1, 1)
    path = images.save_grid(batch, tmp_path / "rgb.png", scale=3, padding=0)
    with Image.open(path) as picture:
        assert picture.mode == "RGB"
        pixels = np.asarray(picture)
    assert pixels.shape == (6, 6, 3)  # 4 images -> 2 x 2 tiles of 3 x 3
    assert (pixels.reshape(-1, 3) == [255, 0, 128]).all()


def test_to_uint8_endpoints_and_clipping():
    values = torch.tensor([-1.0, 1.0, 2 * 100 / 255 - 1, -1.00001]).reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(images.to_uint8(values).ravel(), [0, 255, 100, 0])
    overshoot = torch.tensor([1.7, -3.0]).reshape(1, 1, 1, 2)
    np.testing.assert_array_equal(images.to_uint8(overshoot, clip=True).ravel(), [255, 0])


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (torch.zeros(1, 8, 8), r"\(B, C, H, W\).*x\[None\]"),
        (torch.zeros(2, 2, 8, 8), "1 or 3 channels"),
        (torch.zeros(0, 1, 8, 8), "empty"),
        (torch.full((1, 1, 2, 2), 1.5), r"\[-1, 1\].*clip=True"),
        (torch.tensor([[[[0.0, float("nan")]]]]), "non-finite"),
        (torch.tensor([[[[float("inf"), 0.0]]]]), "non-finite"),
        ([[0.0]], "torch.Tensor or numpy"),
    ],
)
def test_bad_images_are_refused_with_a_clear_message(tmp_path, batch, message):
    with pytest.raises(InterpolantError, match=message):
        images.save_grid(batch, tmp_path / "bad.png")
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(("option", "value"), [("scale", 0), ("padding", -1), ("nrow", 0)])
def test_bad_layout_options_are_refused(tmp_path, option, value):
    with pytest.raises(InterpolantError, match=option):
        images.save_grid(torch.zeros(2, 1, 4, 4), tmp_path / "bad.png", **{option: value})


def _pixels(path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def _has_colour(pixels: np.ndarray, hex_colour: str, tolerance: int = 40) -> bool:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(pixels.astype(int) - target).sum(axis=-1) < tolerance).any())


def test_scatter_draws_samples_over_reference(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(300, 2, generator=generator)
    path = images.scatter_png(data + 0.5, tmp_path / "s.png", reference=data)
    pixels = _pixels(path)
    assert pixels.shape == (400, 400, 3)
    assert _has_colour(pixels, "#1a73e8") and _has_colour(pixels, "#9aa0a6")
    with pytest.raises(InterpolantError, match=r"\(N, 2\)"):
        images.scatter_png(torch.zeros(5, 3), tmp_path / "bad.png")


def test_error_vs_nfe_draws_one_line_per_solver_and_is_deterministic(tmp_path):
    table = [
        {"solver": solver, "nfe": nfe, "value": scale / nfe}
        for solver, scale in (("ddim", 1.0), ("heun", 0.1))
        for nfe in (20, 5, 10)
    ]
    first = plots.error_vs_nfe(table, tmp_path / "a.png", ylabel="W2")
    second = plots.error_vs_nfe(table, tmp_path / "b.png", ylabel="W2")
    pixels = _pixels(first)
    assert pixels.shape == (420, 600, 3)
    assert _has_colour(pixels, plots.COLOURS[0]) and _has_colour(pixels, plots.COLOURS[1])
    assert not _has_colour(pixels, plots.COLOURS[2])  # only two solvers, so only two lines
    assert first.read_bytes() == second.read_bytes()
    with pytest.raises(InterpolantError, match="positive"):
        plots.error_vs_nfe([{"solver": "x", "nfe": 1, "value": 0.0}], tmp_path / "c.png")
    with pytest.raises(InterpolantError, match="lacks nfe"):
        plots.error_vs_nfe([{"solver": "x", "value": 1.0}], tmp_path / "c.png")


def test_training_curve_reads_jsonl_and_skips_other_records(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [{"step": step, "loss": 1.0 / (step + 1)} for step in range(50)]
    lines.insert(10, {"step": 10, "eval_fd": 3.0})
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    pixels = _pixels(plots.training_curve(log, tmp_path / "loss.png", smooth=5))
    assert pixels.shape == (420, 600, 3) and _has_colour(pixels, plots.COLOURS[0])
    with pytest.raises(InterpolantError, match="no records"):
        plots.training_curve([{"step": 1, "eval_fd": 2.0}], tmp_path / "none.png")
    log.write_text('{"step": 1, "loss": 0.5}\nnot json\n')
    with pytest.raises(InterpolantError, match=":2: not JSON"):
        plots.training_curve(log, tmp_path / "bad.png")


def test_metric_bars_colours_each_bar(tmp_path):
    pixels = _pixels(plots.metric_bars({"ddim": 3.0, "heun": 1.5}, tmp_path / "m.png", "FD"))
    assert _has_colour(pixels, plots.COLOURS[0]) and _has_colour(pixels, plots.COLOURS[1])
