"""The HTML report, opened in headless Chromium as a person would open it.

Under CI the browser tests must run: a missing Chromium fails them (``make test`` installs it).
Elsewhere they are skipped when no Chromium is found.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from interpolant import images
from interpolant.app import report
from support import browser
from interpolant.errors import InterpolantError

HOSTILE = (
    "<script>document.documentElement.setAttribute('data-pwned', 'script')</script>"
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned', 'img')\">"
)
SOLVERS, NFES = ("ddim", "dpm++2m", "heun"), (5, 10, 20)
SHOT = (1000, 1400)


def _require_chromium() -> None:
    if browser.find_chromium() is not None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail("CI: Chromium is missing, so the report cannot be checked; run `make browser`")
    pytest.skip("no Chromium found (install the Debian package 'chromium' or run `make browser`)")


def _build(out_dir, outside_dir) -> tuple[os.PathLike, int]:
    """A report like the CLI's: solver x NFE sample grids, a plot, tables, config."""
    generator = torch.Generator().manual_seed(0)
    records = []
    for solver in SOLVERS:
        for nfe in NFES:
            batch = torch.rand(16, 1, 8, 8, generator=generator) * 2 - 1
            path = images.save_grid(batch, out_dir / "samples" / f"{solver}_{nfe}.png", nrow=4)
            records.append({"solver": solver, "nfe": nfe, "path": path.relative_to(out_dir)})
    points = torch.randn(200, 2, generator=generator)
    scatter = images.scatter_png(points, outside_dir / "scatter.png", reference=points * 1.1)
    rows = [{"solver": r["solver"], "nfe": r["nfe"], "W2": 1.0 / r["nfe"]} for r in records]
    page = report.write_report(
        out_dir,
        "Digits report",
        [
            report.Section(
                "Samples", paragraphs=["Same seeds everywhere."],
                grids=[report.ImageGrid.from_records(records, caption="16 per cell")],
            ),
            report.Section(
                HOSTILE,
                images=[report.Picture(scatter, "samples vs data")],
                tables=[rows, [{"name": HOSTILE, "value": 1.5}]],
            ),
            {"heading": "Run", "config": {"solver": "ddim", "note": HOSTILE}},
        ],
    )
    return page, len(records) + 1


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    """One report, one Chromium visit (DOM, status and screenshot), shared by the tests."""
    _require_chromium()
    out_dir = tmp_path_factory.mktemp("report")
    page, count = _build(out_dir, tmp_path_factory.mktemp("elsewhere"))
    shot = out_dir.parent / "shot.png"
    status = browser.visit(page, shot, *SHOT)
    return {"page": page, "images": count, "status": status, "shot": shot}


def test_report_loads_and_every_image_renders(opened):
    status = opened["status"]
    assert status["loaded"]
    assert status["images_total"] == opened["images"]  # the hostile <img> is not an element
    assert status["images_broken"] == 0 and status["broken"] == []


def test_report_has_no_console_output_or_script_errors(opened):
    assert opened["status"]["errors"] == []
    assert opened["status"]["console"] == []


def test_screenshot_shows_a_page_not_a_blank(opened):
    with Image.open(opened["shot"]) as picture:
        assert picture.size == SHOT
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    counts = Counter(map(tuple, pixels[::7]))
    assert len(counts) > 50  # text, plots and samples, not a flat fill
    assert counts.most_common(1)[0][1] < 0.8 * sum(counts.values())


def test_hostile_text_is_shown_as_text_and_never_runs(opened):
    dom = opened["status"]["dom"]
    assert not re.search(r"<html[^>]*data-pwned", dom)  # neither payload ran
    cells = re.findall(r"<td>(.*?)</td>", dom)
    assert "&lt;script&gt;document.documentElement" in "".join(cells)
    assert dom.count("&lt;script&gt;") >= 3  # heading, table cell and config
    assert "<h2>&lt;script&gt;" in dom


def test_a_broken_image_is_detected(tmp_path):
    """Negative control: the same checks must fail for a page whose picture is gone."""
    _require_chromium()
    images.save_grid(torch.zeros(4, 1, 8, 8), tmp_path / "a.png")
    images.save_grid(torch.ones(4, 1, 8, 8), tmp_path / "b.png")
    page = report.write_report(tmp_path, "t", [report.Section("s", images=["a.png", "b.png"])])
    (tmp_path / "b.png").unlink()
    status = browser.load_status(page)
    assert status["loaded"] and status["images_total"] == 2 and status["images_broken"] == 1
    assert len(status["broken"]) == 1 and status["broken"][0].endswith("/b.png")


def test_errors_on_a_page_without_the_probe_are_detected(tmp_path):
    """Negative control on a hand-written page: the probe is injected into a copy beside it."""
    _require_chromium()
    (tmp_path / "page.html").write_text(
        "<!doctype html><html><head><title>x</title></head><body><img src='missing.png'>"
        "<script>console.log('hello-log'); console.error('bad-thing'); "
        "undefinedFunction();</script></body></html>"
    )
    status = browser.load_status(tmp_path / "page.html")
    assert status["loaded"] and status["images_broken"] == 1
    assert any("bad-thing" in error for error in status["errors"])
    assert any("undefinedFunction" in error for error in status["errors"])
    assert any("hello-log" in line for line in status["console"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]  # probe copy removed


def test_pictures_are_linked_beside_the_page_and_outside_ones_copied(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    inside = images.save_grid(torch.zeros(1, 1, 2, 2), out / "img" / "in side.png")
    outside = images.save_grid(torch.ones(1, 1, 2, 2), elsewhere / "far.png")
    page = report.write_report(out, "t", [{"heading": "h", "images": [inside, outside]}])
    html = page.read_text()
    links = re.findall(r'<img src="([^"]+)"', html)
    assert links[0] == "img/in%20side.png"
    assert re.fullmatch(r"assets/far-[0-9a-f]{10}\.png", links[1])
    assert (out / links[1]).read_bytes() == outside.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["assets", "img", "index.html"]  # no temp
    with pytest.raises(InterpolantError, match="not found"):
        report.write_report(out, "t", [report.Section("h", images=["nope.png"])])
    with pytest.raises(InterpolantError, match="bad report section"):
        report.write_report(out, "t", [{"title": "no heading"}])


def test_image_grid_orders_nfe_numerically_and_leaves_gaps(tmp_path):
    records = [{"solver": s, "nfe": n, "path": "x.png"} for s, n in [("b", 20), ("a", 5), ("b", 5)]]
    grid = report.ImageGrid.from_records(records)
    assert list(grid.rows) == ["b", "a"] and list(grid.columns) == ["5", "20"]
    assert ("a", "20") not in grid.cells
    images.save_grid(torch.zeros(1, 1, 2, 2), tmp_path / "x.png")
    html = report.write_report(tmp_path, "t", [report.Section("h", grids=[grid])]).read_text()
    assert html.count('class="cell empty"') == 1 and html.count('<img src="x.png"') == 3


def test_numbers_are_right_aligned_and_rounded(tmp_path):
    table = report.Table([{"solver": "ddim", "nfe": 10, "fd": 0.123456789, "ok": True}])
    html = report.write_report(tmp_path, "t", [report.Section("h", tables=[table])]).read_text()
    assert '<td>ddim</td><td class="num">10</td><td class="num">0.1235</td><td>True</td>' in html


def test_find_chromium_honours_the_environment_variable(monkeypatch):
    monkeypatch.setenv("INTERPOLANT_CHROMIUM", "/nonexistent/chrome")
    with pytest.raises(InterpolantError, match="INTERPOLANT_CHROMIUM"):
        browser.find_chromium()
