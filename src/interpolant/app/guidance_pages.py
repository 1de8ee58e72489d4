"""The demo's guidance comparison and composition pages.

- :func:`guidance_methods_page`: label accuracy against Digits-FD over a scale sweep for CFG,
  CFG inside the guidance interval (Kynkäänniemi et al. 2024, the paper's EDM2 interval on the
  run's path) and autoguidance by the run's oldest kept checkpoint (Karras et al. 2024), all
  from one noise: the trade-off curves of the papers, as a plot and a table.
- :func:`composition_page`: 8x24 MultiDiffusion panoramas of the 8x8 model (Bar-Tal et al.
  2023) and visual anagrams (Geng et al. 2024) read by the digits classifier.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import guidance, images, metrics, plots
from ..solvers import sample
from ..training.checkpoint import step_dirs
from . import report
from .guide import default_interval, load_guide
from .pages import label_accuracy, num_classes
from .runs import RunConfig, TrainedRun, load_data

__all__ = ["ANAGRAMS", "composition_page", "guidance_methods_page"]

# (label seen as drawn, label seen under the view, view): pairs a person also reads both ways
ANAGRAMS = ((6, 9, "rot180"), (2, 5, "flip-ud"))
PANORAMA_LABELS = (0, 3, 7)


def _weak(run_dir: Path, den: Any, config: RunConfig,
          guide: Path | None) -> tuple[Any, str] | None:
    """The weak denoiser and what it is: ``guide``, else the run's oldest checkpoint
    (``None`` when only one is kept)."""
    steps = step_dirs(run_dir / "checkpoints")
    run = TrainedRun(config, den, (), run_dir / "checkpoints", [])
    if guide is not None:
        return load_guide(guide, run), str(guide)
    if len(steps) < 2:
        return None
    return load_guide(steps[0], run), f"the run's oldest kept checkpoint, {steps[0].name}"


def _plot(rows: list[dict], file: Path) -> Path:
    fig, ax = plots.new_figure()
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ax.plot([r["digits_fd"] for r in mine], [r["label_accuracy"] for r in mine], "o-",
                label=method)
        for r in mine:
            ax.annotate(f"{r['scale']:g}", (r["digits_fd"], r["label_accuracy"]), fontsize=7)
    ax.set_xlabel("Digits-FD (lower is better)")
    ax.set_ylabel("label accuracy")
    ax.legend()
    return plots.save_figure(fig, file)


def guidance_methods_page(den: Any, config: RunConfig, run_dir: Path, out: Path,
                          scales: Sequence[float], per_label: int, steps: int,
                          seed: int = 0, cfg_rows: Sequence[dict] = (),
                          guide: Path | None = None) -> tuple[report.Section, list[dict]]:
    """CFG-interval and autoguidance at every scale from one noise (module doc), beside
    ``cfg_rows``: the guidance page's CFG rows (:func:`.pages.guidance_page`, same noise, same
    steps), which are not sampled again. ``guide``: the weak model of autoguidance, a
    checkpoint folder or a run directory (default: the run's oldest kept checkpoint)."""
    k = num_classes(den)
    labels = torch.arange(k * per_label) % k
    test_x, _ = load_data(config, "test")
    x1 = torch.randn((len(labels), *test_x.shape[1:]),
                     generator=torch.Generator().manual_seed(seed))
    lo, hi = default_interval(den.path)
    methods = {"cfg-interval": lambda w: guidance.CFG(den, w, interval=(lo, hi))}
    weak = _weak(Path(run_dir), den, config, guide)
    if weak is not None:
        methods["autoguidance"] = lambda w: guidance.AutoGuidance(den, weak[0], w)
    rows = [{"method": "cfg", **r} for r in cfg_rows if r["scale"] in scales]
    cells: dict = {}
    for name, make in methods.items():
        for w in scales:
            g, start = make(w), time.perf_counter()
            with torch.no_grad():
                x = sample(g, x1, "dpm++2m", steps, cond=labels).clamp(-1, 1)
            seconds = time.perf_counter() - start
            cells[(name, f"w = {w:g}")] = images.save_grid(
                x, out / f"methods_{name}_{w:g}.png", nrow=k, clip=True)
            rows.append({"method": name, "scale": w, "label_accuracy": label_accuracy(x, labels),
                         "digits_fd": metrics.digits_fd(x, test_x), "nfe": g.nfe,
                         "seconds": round(seconds, 3)})
    cells[("trade-off", f"w = {scales[0]:g}")] = _plot(rows, out / "methods_tradeoff.png")
    grid = report.ImageGrid([*methods, "trade-off"], [f"w = {w:g}" for w in scales], cells,
                            "method", "scale", caption="labels 0..9 in columns, one noise")
    weak_text = (f"autoguidance is guided by {weak[1]}" if weak else
                 "autoguidance needs an earlier checkpoint (only one is kept: skipped)")
    text = (f"Guidance methods from the guidance sweep's noise, DPM-Solver++(2M) with {steps} "
            f"steps, {per_label} samples per label. cfg-interval guides only for {lo:.3f} < "
            f"t <= {hi:.3f}, the sigma interval (0.28, 5.42] of Kynkäänniemi et al. on this "
            f"path by log-SNR; {weak_text}. The plot traces label accuracy against Digits-FD "
            "over the scales (numbers on the points); NFE counts network passes of the batch.")
    return report.Section("Guidance methods", [text], [grid], tables=[report.Table(
        rows, caption="label accuracy (higher is better) and Digits-FD (lower is better) "
        "per method and scale")]), rows


def composition_page(den: Any, config: RunConfig, out: Path, scale: float, steps: int,
                     count: int, seed: int = 0) -> tuple[report.Section, list[dict]]:
    """8x24 MultiDiffusion panoramas (windows 8x8, stride 4, CFG at ``scale``) for
    :data:`PANORAMA_LABELS` and ``count`` anagrams of each pair of :data:`ANAGRAMS`."""
    shape = tuple(load_data(config, "test")[0].shape[1:])
    g = torch.Generator().manual_seed(seed)
    cfg = guidance.CFG(den, scale)
    rows, cells = [], {}
    pano = guidance.MultiDiffusion(cfg, shape[-2:], (shape[-2], shape[-1] // 2))
    for label in PANORAMA_LABELS:
        x1 = torch.randn((2, *shape[:-1], 3 * shape[-1]), generator=g)
        with torch.no_grad():
            x = sample(pano, x1, "dpm++2m", steps, cond=torch.full((2,), label))
        cells[("panorama", f"label {label}")] = images.save_grid(
            x, out / f"panorama_{label}.png", nrow=1, clip=True)
    for a, b, view in ANAGRAMS:
        ana = guidance.Anagram(cfg, ["identity", view])
        x1 = torch.randn((count, *shape), generator=g)
        with torch.no_grad():
            x = sample(ana, x1, "dpm++2m", steps, cond=torch.tensor([[a, b]] * count))
        seen = guidance.view_permutation(view, shape)
        turned = x.flatten(1)[:, seen].view_as(x)
        cells[("anagram", f"{a} / {b} ({view})")] = images.save_grid(
            x, out / f"anagram_{a}{b}.png", nrow=count, clip=True)
        cells[("anagram, viewed", f"{a} / {b} ({view})")] = images.save_grid(
            turned, out / f"anagram_{a}{b}_view.png", nrow=count, clip=True)
        rows.append({"anagram": f"{a} / {b} ({view})",
                     "reads_first": label_accuracy(x, torch.full((count,), a)),
                     "reads_second": label_accuracy(turned, torch.full((count,), b)),
                     "nfe": ana.nfe})
    columns = [f"label {c}" for c in PANORAMA_LABELS] + [f"{a} / {b} ({v})"
                                                         for a, b, v in ANAGRAMS]
    grid = report.ImageGrid(["panorama", "anagram", "anagram, viewed"], columns, cells,
                            "", "", caption="8x24 panoramas; anagrams as drawn and viewed")
    text = (f"Panoramas: an 8x24 canvas fused from 8x8 windows at stride 4 (MultiDiffusion), "
            f"each window guided to the label (CFG w = {scale:g}), two per label. Anagrams: "
            f"{count} images that the model draws as the first label and, under the view, as "
            f"the second (visual anagrams); DPM-Solver++(2M), {steps} steps.")
    return report.Section("Panoramas and anagrams", [text], [grid], tables=[report.Table(
        rows, caption="share of anagrams the digits classifier reads as the first label as "
        "drawn and as the second under the view")]), rows
