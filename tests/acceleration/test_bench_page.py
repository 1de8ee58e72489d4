"""The acceleration benchmark's report page: ratios to the plain model of the same run, the
goal (2x faster at <= 10% worse Digits-FD) judged from them, and a page that shows them."""

from __future__ import annotations

import json

import pytest
import torch

from interpolant.bench.acceleration_page import summarise, write_page
from interpolant.errors import InterpolantError

MEASURED = [
    {"method": "plain", "nfe": 20, "seconds": 0.010, "wall": 0.02, "fd": 2.0, "error": None},
    {"method": "deepcache 3", "nfe": 20, "seconds": 0.004, "wall": 0.005, "fd": 2.1,
     "error": 0.03},
    {"method": "int8", "nfe": 20, "seconds": 0.008, "fd": 1.9, "error": 0.01},
    {"method": "tiny", "nfe": 5, "seconds": 0.0025, "fd": 2.4, "error": None},
]


def test_ratios_refer_to_the_plain_model_and_judge_the_goal():
    rows = summarise(MEASURED)
    for row, m in zip(rows, MEASURED):
        assert row["speed-up"] == pytest.approx(0.010 / m["seconds"])  # > 1: faster
        assert row["FD ratio"] == pytest.approx(m["fd"] / 2.0)  # > 1: worse
        assert row["CPU ms / sample"] == pytest.approx(1e3 * m["seconds"])
    assert [r["goal"] for r in rows] == ["", "yes", "", ""]  # 2.5x at 1.05; 1.25x; 4x at 1.2
    assert rows[1]["max per-call error"] == "3.00e-02" and rows[0]["max per-call error"] == "-"
    assert [r["wall speed-up"] for r in rows] == ["1.00x", "4.00x", "-", "-"]  # no wall: -


def test_the_page_shows_every_method_and_the_verdict(tmp_path):
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    page = write_page(tmp_path / "r", MEASURED, {m["method"]: images for m in MEASURED},
                      ["trained 20 s"])
    text = page.read_text()
    assert "Methods reaching the goal" in text and "deepcache 3." in text
    for m in MEASURED:
        assert m["method"] in text
    assert "2.5" in text and "trained 20 s" in text
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["measured"][1]["seconds"] == 0.004
    assert len(list((tmp_path / "r" / "samples").glob("*.png"))) == len(MEASURED)


def test_bad_measurements_and_a_file_as_folder_are_refused(tmp_path):
    with pytest.raises(InterpolantError, match="first must be the plain model"):
        summarise([])
    with pytest.raises(InterpolantError, match="must be positive"):
        summarise([{**MEASURED[0], "fd": 0.0}])
    (tmp_path / "f").write_text("")
    with pytest.raises(InterpolantError, match="is a file"):
        write_page(tmp_path / "f", MEASURED, {})
