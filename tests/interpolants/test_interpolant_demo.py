"""``interpolant demo interpolant --quick``: the report page with both sections, every model
row, and the demo's refusal to replace a folder it did not make."""

from __future__ import annotations

import pytest
import torch

from interpolant.app.interpolant_demo import METHODS, TASKS, _clear, interpolant_demo
from interpolant.app.straightness import COUPLINGS
from interpolant.errors import InterpolantError


def test_quick_demo_writes_the_comparison_and_straightness_pages(tmp_path):
    threads = torch.get_num_threads()
    page = interpolant_demo(tmp_path / "demo", quick=True, threads=1)
    torch.set_num_threads(threads)
    html = page.read_text()
    assert "Data-dependent interpolant vs Gaussian base" in html
    assert "Trajectory straightness per coupling" in html
    for source in TASKS.values():
        assert f"interpolant from {source}" in html
    assert f"gaussian + {METHODS[0]}" in html and "independent (exact field)" in html
    assert all(f">{coupling}</td>" in html for coupling in COUPLINGS)
    for name in ("interpolant_inpaint.png", "interpolant_sr.png", "straightness_ot.png"):
        assert (tmp_path / "demo" / "pages" / name).is_file()
    _clear(tmp_path / "demo")  # a second demo replaces its own folder
    assert [p.name for p in (tmp_path / "demo").iterdir()] == ["DEMO_RUN"]


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(InterpolantError, match="not a run the demo made"):
        interpolant_demo(tmp_path, quick=True, threads=1)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
