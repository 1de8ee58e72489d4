"""Cheaper classifier-free guidance against plain CFG, same model, same seeds.

Run ``interpolant bench guidance [oracle] [digits RUN_DIR]`` (or ``python -m
interpolant.bench.guidance``). DPM-Solver++(2M), 20 steps, guidance scale 3, one starting noise
for every row:

- ``CFG``: both branches at every step (the reference);
- ``CFG, fewer steps``: plain CFG at about the NFE of the cheaper methods (the fair
  baseline at equal cost);
- ``AG tau``: Adaptive Guidance (Castillo et al. 2023), the unconditional pass dropped once the
  branches' cosine passes ``tau``;
- ``LinearAG``: the unconditional pass of the last half of the evaluations estimated from the
  run's past, coefficients fitted on a separate calibration batch of full CFG.

Columns: network passes per sample (``NFE``), seconds per sample and the ratio to CFG, the RMS
deviation from the CFG samples (``dev``) and the quality of the samples: label accuracy (the
exact classifier of the oracle; the digits classifier) and, on digits, Digits-FD against the
held-out digits. ``oracle``: the ``aniso2d`` mixture in three classes with its exact denoiser on
VPLinear (4,000 samples); ``digits``: a trained class-conditional run (default ``runs/demo``,
300 samples).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

import interpolant as ip
from interpolant.guidance import CFG, AdaptiveCFG, LinearAG

STEPS, SCALE, SOLVER = 20, 3.0, "dpm++2m"


def _methods(den: Any, calib: torch.Tensor, calib_labels: torch.Tensor) -> list[tuple]:
    half = range(STEPS // 2, STEPS)
    linear = LinearAG.fit(den, SCALE, calib, calib_labels, half, SOLVER, STEPS)
    return [("CFG", CFG(den, SCALE), STEPS), ("CFG, fewer steps", CFG(den, SCALE), 18),
            ("CFG, fewer steps", CFG(den, SCALE), 15),
            ("AG 0.99", AdaptiveCFG(den, SCALE, threshold=0.99), STEPS),
            ("AG 0.999", AdaptiveCFG(den, SCALE, threshold=0.999), STEPS),
            ("LinearAG", linear, STEPS)]


def table(den: Any, x1: torch.Tensor, labels: torch.Tensor, calib: torch.Tensor,
          calib_labels: torch.Tensor, read: Any, fd: Any = None) -> str:
    """One row per method (module doc); ``read(x) -> predicted labels``, ``fd(x) -> float``."""
    lines = ["| method | steps | NFE | s/sample | time ratio | dev | label acc |"
             + (" Digits-FD |" if fd else ""), "|---|---|---|---|---|---|---|"
             + ("---|" if fd else "")]
    ref, ref_time = None, None
    for name, g, steps in _methods(den, calib, calib_labels):
        start = time.perf_counter()
        with torch.no_grad():
            x = ip.sample(g, x1, SOLVER, steps, cond=labels)
        secs = (time.perf_counter() - start) / x1.shape[0]
        if ref is None:
            ref, ref_time = x, secs
        dev = float((x - ref).flatten(1).pow(2).sum(1).mean().sqrt())
        acc = float((read(x) == labels).double().mean())
        lines.append(f"| {name} | {steps} | {g.nfe / 1:.1f} | {secs * 1e3:.3f} ms | "
                     f"{secs / ref_time:.2f} | {dev:.4f} | {acc:.3f} |"
                     + (f" {fd(x):.3f} |" if fd else ""))
    return "\n".join(lines)


def oracle() -> str:
    base = ip.oracle.GaussianMixture.preset("aniso2d")
    gmm = ip.oracle.GaussianMixture(base.means, base.covs, base.weights,
                                    labels=torch.arange(8) % 3)
    path = ip.paths.VPLinear()
    g = torch.Generator().manual_seed(0)
    n = 4000
    x1, calib = (torch.randn(n, 2, dtype=torch.float64, generator=g) for _ in range(2))
    labels, calib_labels = torch.arange(n) % 3, torch.arange(n) % 3
    classifier = gmm.classifier(path)
    t0 = torch.full((n,), path.t_min, dtype=torch.float64)
    return table(gmm.denoiser(path), x1, labels, calib, calib_labels,
                 lambda x: classifier(x, t0).argmax(1))


def digits(run_dir: str = "runs/demo") -> str:
    from interpolant.app.runs import load_data, load_trained

    run = load_trained(run_dir)
    test_x, _ = load_data(run.config, "test")
    g = torch.Generator().manual_seed(0)
    n = 300
    x1, calib = (torch.randn(n, *run.shape, generator=g) for _ in range(2))
    labels = torch.arange(n) % 10
    return table(run.denoiser, x1, labels, calib[:100], labels[:100],
                 lambda x: ip.metrics.digits_logits(x.clamp(-1, 1)).argmax(1),
                 lambda x: ip.metrics.digits_fd(x.clamp(-1, 1), test_x))


def main(argv: list[str] | None = None) -> int:
    """``oracle`` and/or ``digits [RUN_DIR]`` (default: oracle, and digits if runs/demo
    exists)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    if not argv:
        argv = ["oracle"] + (["digits"] if Path("runs/demo").is_dir() else [])
    print(f"guidance scale {SCALE}, {SOLVER}; NFE = network passes of the whole batch per "
          "run (a two-branch call counts 2)\n")
    for i, name in enumerate(argv):
        if name == "oracle":
            print("oracle (aniso2d in 3 classes, exact denoiser, VPLinear)\n" + oracle(), "\n")
        elif name == "digits":
            run = argv[i + 1] if i + 1 < len(argv) and argv[i + 1] not in ("oracle",) \
                else "runs/demo"
            print(f"digits ({run})\n" + digits(run), "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
