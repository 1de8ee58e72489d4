"""``interpolant demo interpolant``: the data-dependent interpolant against the Gaussian base.

Three U-Nets of one size are trained on the 8x8 digits with the same velocity loss on the
linear interpolant ``x_t = (1 - t) x_0 + t x_1``; only the source ``x_1`` differs:

* ``gaussian``: ``x_1 ~ N(0, I)`` (rectified flow), which restores a measurement ``y`` by the
  inverse-problem solvers of :func:`interpolant.inverse.restore` (DDNM, PiGDM, DPS);
* ``digits-masked`` and ``digits-lowres``: the data-dependent couplings of Albergo et al.
  (2024), which restore by transport from ``A^+ y`` with noise in what ``A`` loses
  (:mod:`interpolant.app.interpolant_run`), with ``heun``.

Both see the same measurements of held-out digits (top half observed; 2x average pooling;
noise std ``SIGMA_Y``) and are scored by PSNR against the truth, Digits-FD against the
held-out set, label accuracy of the digits classifier, and NFE. A second page measures the
straightness of the flows that couplings give (:mod:`.straightness`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import images, inverse, metrics
from ..errors import InterpolantError
from . import report
from .interpolant_run import source_of, transport
from .runs import RunConfig, load_data, load_trained
from .workflows import DEMO_MARK, set_threads, train_run

TASKS = {"inpaint": "digits-masked", "sr": "digits-lowres"}
METHODS = ("ddnm", "pigdm", "dps")
NFES = (4, 10, 20)
SIGMA_Y = 0.05
FULL = {"steps": 1000, "batch_size": 64, "count": 40, "shown": 10}
QUICK = {"steps": 6, "batch_size": 16, "count": 4, "shown": 4}
MODEL = {"base_channels": 16, "channel_mults": [1, 2], "attention_levels": []}


def configs(sizes: dict[str, int]) -> dict[str, RunConfig]:
    """The three runs: the Gaussian base and one interpolant per task."""
    train = {"steps": sizes["steps"], "batch_size": sizes["batch_size"], "lr": 2e-3,
             "warmup": 50, "ema_halflife": 10_000, "label_dropout": 1.0,
             "log_every": max(sizes["steps"] // 10, 1), "checkpoint_every": sizes["steps"]}
    out = {"gaussian": RunConfig(path="linear", target="velocity", model_options=MODEL,
                                 train=dict(train))}
    for source in TASKS.values():
        out[source] = RunConfig(path="linear", target="velocity", model_options=MODEL,
                                train=dict(train), process="interpolant", source=source)
    return out


def _measure(task: str, truth: Tensor, seed: int) -> tuple[Any, Tensor]:
    """The operator of ``task`` and noisy measurements ``y = A x + SIGMA_Y n`` of ``truth``."""
    from .pages import operator

    op = operator(task, tuple(truth.shape[1:]))
    y = op(truth.double())
    g = torch.Generator().manual_seed(seed)
    return op, (y + SIGMA_Y * torch.randn(y.shape, generator=g, dtype=y.dtype)).float()


def _row(model: str, task: str, x: Tensor, truth: Tensor, labels: Tensor, held: Tensor,
         nfe: int, seconds: float) -> dict[str, Any]:
    from .pages import label_accuracy, psnr

    return {"task": task, "model": model, "nfe": nfe, "psnr": float(psnr(x, truth).mean()),
            "digits_fd": metrics.digits_fd(x.clamp(-1, 1).float(), held),
            "label_accuracy": label_accuracy(x, labels), "seconds": round(seconds, 2)}


def restoration_pages(out: Path, sizes: dict[str, int]) -> tuple[report.Section, list]:
    """Restore the same measurements with the Gaussian base (each method, each NFE) and with
    the task's interpolant (heun, each NFE); a picture per task and one table."""
    from .pages import held_out

    base_run = load_trained(out / "gaussian")
    base, config = base_run.denoiser, base_run.config
    truth, labels = held_out(config, sizes["count"])
    held = load_data(config, "test")[0]
    nfes = NFES[:1] if sizes is QUICK else NFES
    rows, pictures = [], []
    for task, source in TASKS.items():
        op, y = _measure(task, truth, seed=1)
        run = load_trained(out / source, interpolant=True)
        zeta = torch.randn(truth.shape, generator=torch.Generator().manual_seed(2))
        x1 = source_of(run.config, tuple(truth.shape[1:])).from_measurement(y, zeta)
        shown = [op.pinv(y.double()).float(), truth]
        for nfe in nfes:
            start = time.perf_counter()
            x, spent = transport(run.denoiser, x1, "heun", nfe)
            rows.append(_row(f"interpolant from {source}", task, x, truth, labels, held, spent,
                             time.perf_counter() - start))
            if nfe == nfes[-1]:
                shown.append(x)
        for method in METHODS[:1] if sizes is QUICK else METHODS:
            for nfe in nfes:
                start, before = time.perf_counter(), base.nfe
                g = torch.Generator().manual_seed(3)
                x = torch.cat([inverse.restore(base, op, y[i], SIGMA_Y, method=method, steps=nfe,
                                               generator=g, shape=truth.shape[1:]).detach()
                               for i in range(len(y))])
                rows.append(_row(f"gaussian + {method}", task, x, truth, labels, held,
                                 (base.nfe - before) // len(y), time.perf_counter() - start))
                if nfe == nfes[-1]:
                    shown.append(x)
        k = sizes["shown"]
        file = images.save_grid(torch.cat([s[:k] for s in shown]), out / "pages" /
                                f"interpolant_{task}.png", nrow=k, clip=True)
        order = ", ".join(["measurement", "truth", "interpolant"] +
                          [f"gaussian + {m}" for m in METHODS[:len(shown) - 3]])
        pictures.append(report.Picture(file, f"{task}: rows {order} ({nfes[-1]} NFE)", True))
    section = report.Section(
        "Data-dependent interpolant vs Gaussian base: inpainting and super-resolution",
        paragraphs=[f"{sizes['count']} held-out digits, measurement noise std {SIGMA_Y}. The "
                    "same U-Net, loss and linear interpolant; the interpolant's source is the "
                    "degraded digit (noise where information is lost), the base's is N(0, I) "
                    "and it restores with DDNM, PiGDM or DPS (ddpm steps). Digits-FD against "
                    "the held-out digits (lower is better)."],
        images=pictures, tables=[report.Table(rows, "PSNR (dB), Digits-FD, label accuracy, "
                                                    "NFE per restoration")])
    return section, rows


def _clear(out: Path) -> None:
    """Make ``out`` empty but for the demo's mark; a folder the demo did not make (no mark, or
    other files) is refused."""
    if out.exists():
        if not out.is_dir():
            raise InterpolantError(f"{out} exists and is not a directory; choose another --out")
        entries = {p.name for p in out.iterdir()}
        mine = {DEMO_MARK, "gaussian", "pages", "report", *TASKS.values()}
        if entries and (DEMO_MARK not in entries or not entries <= mine):
            raise InterpolantError(f"{out} is not empty and not a run the demo made; choose "
                                   "another --out (the demo replaces only its own runs)")
        for name in entries:
            shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("made by `interpolant demo interpolant`, which may replace "
                                 "this folder\n")


def interpolant_demo(out: str | Path = "runs/demo-interpolant", quick: bool = False,
                     threads: int | None = None) -> Path:
    """Train the three runs into ``out/RUN``, compare their restorations, measure the
    straightness per coupling and write ``out/report/index.html``."""
    from .straightness import straightness_page

    out, sizes = Path(out), QUICK if quick else FULL
    start = time.perf_counter()
    _clear(out)
    set_threads(threads)
    for name, config in configs(sizes).items():
        print(f"interpolant demo: training the {name} model ({sizes['steps']} steps)")
        train_run(config, out / name, progress=not quick, threads=threads)
    print("restoring held-out digits with both kinds of model")
    restorations, rows = restoration_pages(out, sizes)
    for r in rows:
        print(f"{r['task']:8s} {r['model']:32s} NFE {r['nfe']:3d}  PSNR {r['psnr']:6.2f} dB  "
              f"Digits-FD {r['digits_fd']:8.2f}")
    print("straightness of the flows per coupling (2-D)")
    straight = straightness_page(out, quick)
    minutes = (time.perf_counter() - start) / 60
    return report.write_report(out / "report", "interpolant demo: stochastic interpolants",
                               [restorations, straight],
                               subtitle=f"{minutes:.1f} min on this machine")
