"""The loss-side training recipes on the exact mixture: how close each trained denoiser gets to
the exact posterior mean at equal steps and batch, and what a step costs.

Run ``interpolant bench losses [--steps 400] [--recipes default,min-snr,p2,...]``. Every
contestant trains the same MLP (same seed, data, batch, lr, steps) on 8192 samples of the
``aniso2d`` mixture, with the recipe's settings, objective and network wrapper applied as
``interpolant train --recipe`` applies them (``default`` is the command line's run: cosine VP
path, ``v`` target, uniform times and weight). The score is the x0-error of the raw weights
against the exact ``E[x0 | x_t]`` on 4000 held-out ``(x0, t, eps)`` with ``t ~ U[0.02, 0.98]``,
relative to that of the trivial predictor ``E[x0]``, overall and on thirds of the time range;
``s/step`` is the CPU time of one training step (process time: steadier than wall time on a
shared machine) beside the first contestant's (same process, same inputs). NFE is not a training quantity; sampling is not run.
"""

from __future__ import annotations

import argparse
import time

import torch

import interpolant as ip

from ..models import MLP
from ..training import TrainConfig, Trainer, recipes

DEFAULT = ("default", "min-snr", "p2", "edm2-loss", "ant-uw", "etsdm", "smooth", "sd3",
           "sd3+p2")
BASE = {"steps": 400, "batch_size": 256, "lr": 3e-3, "warmup": 50, "label_dropout": 0.0,
        "progress": False, "log_every": 10_000, "ema_halflife": None}


def _train(spec: str, data: torch.Tensor, steps: int, seed: int = 0) -> tuple[ip.Denoiser, float]:
    """Train one contestant; returns its denoiser (raw weights) and CPU seconds per step."""
    run = {"path": "vp-cosine", "target": "v"}
    options = {**BASE, "steps": steps, "seed": seed}
    names = "" if spec == "default" else spec.replace("+", ",")
    if names:
        run.update(recipes.run_overrides(names))
        options.update(recipes.train_overrides(names, options))
        options.pop("ema_snapshot_every", None)  # snapshots need a run directory
    path = ip.paths.get(run["path"])
    config = TrainConfig(**{**options, "target": run["target"]})
    torch.manual_seed(seed)
    net: torch.nn.Module = MLP(2, hidden=64, depth=2)
    objective = None
    if names:
        net = recipes.wrap_network(names, net)
        objective = recipes.build_objective(names, path, config, net)
    trainer = Trainer(net, path, data, config=config, objective=objective)
    start = time.process_time()  # CPU seconds: steadier than wall time on a shared machine
    trainer.run()
    seconds = (time.process_time() - start) / steps
    return ip.Denoiser(net.eval(), path, prediction=run["target"]), seconds


def _errors(den: ip.Denoiser, gmm: ip.oracle.GaussianMixture, n: int = 4000) -> list[float]:
    """Relative x0-error (overall, then per third of [0.02, 0.98])."""
    g = torch.Generator().manual_seed(123)
    path = den.path
    x0 = gmm.sample(n, g)
    t = 0.02 + 0.96 * torch.rand(n, generator=g, dtype=torch.float64)
    xt = path.sample(x0, t, torch.randn(n, gmm.dim, generator=g, dtype=torch.float64))
    exact = gmm.posterior_mean(xt, path.alpha(t), path.sigma(t))
    with torch.no_grad():
        pred = den(xt.float(), t.float(), target="x0").double()
    err = (pred - exact).pow(2).sum(1)
    trivial = (exact - gmm.sample(20_000, g).mean(0)).pow(2).sum(1)
    out = [float(err.mean() / trivial.mean())]
    for lo, hi in ((0.0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.0)):
        sel = (t >= 0.02 + 0.96 * lo) & (t < 0.02 + 0.96 * hi)
        out.append(float(err[sel].mean() / trivial[sel].mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="interpolant bench losses", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="training steps per contestant")
    p.add_argument("--recipes", default=",".join(DEFAULT),
                   help="contestants: default and recipe names ('a+b' composes)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    for name in names:
        if name != "default":
            recipes.resolve(name.replace("+", ","))  # refuse unknown names before any work
    gmm = ip.oracle.GaussianMixture.preset("aniso2d")
    data = gmm.sample(8192, torch.Generator().manual_seed(0)).float()
    rows, base = [], None
    for name in names:
        den, seconds = _train(name, data, args.steps)
        errors = _errors(den, gmm)
        base = seconds if base is None else base
        rows.append((name, type(den.path).__name__, errors, seconds))
        print(f"trained {name}: {errors[0]:.4f}", flush=True)
    print(f"\naniso2d mixture, MLP 64x2, {args.steps} steps of 256: x0-error of the raw weights "
          "/ that of E[x0] (lower is better); s/step against the first contestant")
    print("| recipe | path | all t | t < 0.34 | middle | t > 0.66 | s/step | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path, e, s in rows:
        print(f"| {name} | {path} | {e[0]:.4f} | {e[1]:.4f} | {e[2]:.4f} | {e[3]:.4f} | "
              f"{s * 1e3:.2f} ms CPU | {s / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
