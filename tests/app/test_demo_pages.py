"""The demo report's guidance, restoration and edit pages, computed on a tiny trained run."""

from __future__ import annotations

import json

from interpolant.app import pages
from interpolant.app.evaluate import write_run_report
from interpolant.app.runs import load_trained


def test_guidance_page_trades_label_accuracy(digits_run, tmp_path):
    run = load_trained(digits_run)
    section, rows = pages.guidance_page(run.denoiser, run.config, tmp_path, (0.0, 1.0, 4.0),
                                        per_label=3, steps=8)
    assert [r["scale"] for r in rows] == [0.0, 1.0, 4.0]
    by_scale = {r["scale"]: r for r in rows}
    # w = 0 is the unconditional model (about chance); guidance makes the label readable
    assert by_scale[4.0]["label_accuracy"] > by_scale[0.0]["label_accuracy"] + 0.4
    assert by_scale[4.0]["nfe"] == 2 * by_scale[1.0]["nfe"]  # both branches at w != 1
    assert all(r["digits_fd"] > 0 for r in rows)
    assert all(path.is_file() for path in section.grids[0].cells.values())


def test_demo_pages_in_the_report(digits_run, tmp_path):
    run = load_trained(digits_run)
    sections = pages.demo_pages(run.denoiser, run.config, tmp_path, quick=True)
    assert [s.heading for s in sections] == ["Guidance sweep", "Guidance methods",
                                             "Panoramas and anagrams", "Restorations",
                                             "Edits of real digits"]
    table = json.loads((tmp_path / "pages" / "pages.json").read_text())
    assert len(table["guidance"]) == 4
    # no earlier checkpoint in tmp_path: CFG (from the sweep) and CFG-interval, no autoguidance
    assert {r["method"] for r in table["methods"]} == {"cfg", "cfg-interval"}
    assert len(table["composition"]) == 2
    assert {(r["task"], r["method"]) for r in table["restore"]} == {
        (t, m) for t in ("inpaint", "sr", "blur") for m in ("ddnm", "pigdm", "dps")}
    assert [r["method"] for r in table["edit"]] == ["ode", "sdedit"]
    assert all(r["nfe"] > 0 and r["psnr"] == r["psnr"] for r in table["restore"])
    # `interpolant report` rebuilds them from pages.json
    again = pages.saved_pages(tmp_path)
    assert [s.heading for s in again] == [s.heading for s in sections]
    assert again[3].tables[0].rows == sections[3].tables[0].rows
    page = write_run_report(tmp_path, run.config, None, pages=again).read_text()
    for words in ("Guidance sweep", "Restorations", "Edits of real digits", "label_accuracy",
                  "reconstruction_psnr", "assets/inpaint_ddnm-"):
        assert words in page


def test_ddim_edit_reconstructs_and_changes_the_label(digits_run):
    run = load_trained(digits_run)
    x0, labels = pages.held_out(run.config, 10)
    assert sorted(labels.tolist()) == list(range(10))  # one held-out digit per class
    done = pages.edits(run.denoiser, run.config, "ode", x0, labels, (labels + 5) % 10, steps=10)
    assert done["row"]["reconstruction_psnr"] > 15.0
    assert done["row"]["edit_accuracy"] >= 0.5  # the classifier reads the new label
