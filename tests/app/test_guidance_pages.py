"""The demo's guidance-methods and composition pages (quick sizes) on the tiny digits run."""

from __future__ import annotations

from pathlib import Path

import pytest

from interpolant.app.guidance_pages import composition_page, guidance_methods_page
from interpolant.app.pages import guidance_page
from interpolant.app.runs import load_trained


@pytest.fixture(scope="module")
def trained(digits_run):
    return load_trained(digits_run)


def test_methods_page_beside_cfg(trained, digits_run, tmp_path):
    """The CFG rows come from the guidance page; autoguidance by the run's own checkpoint is
    the conditional model at every scale (same Digits-FD as CFG at w = 1); the interval
    spends fewer passes than CFG."""
    den, config = trained.denoiser, trained.config
    _, cfg_rows = guidance_page(den, config, tmp_path, (1.0, 3.0), 1, 4)
    ckpt = sorted((Path(digits_run) / "checkpoints").glob("step_*"))[-1]
    section, rows = guidance_methods_page(den, config, Path(digits_run), tmp_path, (1.0, 3.0),
                                          1, 4, cfg_rows=cfg_rows, guide=ckpt)
    by = {(r["method"], r["scale"]): r for r in rows}
    assert set(by) == {(m, w) for m in ("cfg", "cfg-interval", "autoguidance")
                       for w in (1.0, 3.0)}
    assert by[("autoguidance", 3.0)]["digits_fd"] == pytest.approx(by[("cfg", 1.0)]["digits_fd"],
                                                                   abs=1e-6)
    assert by[("cfg-interval", 3.0)]["nfe"] < by[("cfg", 3.0)]["nfe"]
    assert all(Path(p).is_file() for p in section.grids[0].cells.values())


def test_composition_page(trained, tmp_path):
    section, rows = composition_page(trained.denoiser, trained.config, tmp_path, 2.0, 3, 2)
    assert [r["nfe"] for r in rows] == [2 * 2 * 3] * 2  # two views, two CFG passes, 3 steps
    assert all(0.0 <= r["reads_first"] <= 1.0 and 0.0 <= r["reads_second"] <= 1.0 for r in rows)
    cells = section.grids[0].cells
    assert len(cells) == 3 + 2 * 2 and all(Path(p).is_file() for p in cells.values())


@pytest.mark.parametrize("name", ["vp-cosine", "vp-linear", "edm"])
def test_default_interval_is_the_papers_sigma_interval(name):
    """Kynkäänniemi et al. guide for EDM sigma in (0.28, 5.42]; on any path that is the same
    log-SNR, sigma / alpha = exp(-lam)."""
    import math

    from interpolant import paths
    from interpolant.app.guide import default_interval

    path = paths.get(name)
    lo, hi = default_interval(path)
    assert lo < hi
    for t, sigma in ((lo, 0.28), (hi, 5.42)):
        assert math.exp(-float(path.lam(t))) == pytest.approx(sigma, rel=1e-9)
