"""DPM-OT's expressway vs DDIM from pure noise at equal NFE, on a mixture of narrow modes.

The data are 8 Gaussian modes (std 0.05) on the unit circle, ``VPLinear``, the exact mixture
denoiser as the model, ``--train`` training points. DPM-OT (:mod:`interpolant.fewstep.dpm_ot`)
maps noise to the training points diffused to ``t_s`` by the semi-discrete OT map (no network
call) and runs DDIM from ``t_s``; DDIM runs from ``t = 1``; both on the log-SNR grid, at the
same NFE and the same noise. Columns:

* ``W2``: exact 2-Wasserstein distance to fresh exact samples (floor: two exact sample sets);
* ``mixed``: mode-mixture rate, the fraction of samples farther than 4 std from every mode;
* ``copies``: the fraction of samples within 0.001 of a training point (memorisation);
* ``OT s``: CPU seconds of the dual fit (once per ``t_s``).

    interpolant bench dpm_ot            # 1000 dual steps, 1000 samples (~3 CPU minutes)
    interpolant bench dpm_ot --quick
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import interpolant as ip
from interpolant.fewstep.dpm_ot import dpm_ot
from interpolant.metrics import wasserstein

NFES = (1, 2, 4, 8)


def ring(k: int = 8, std: float = 0.05) -> ip.oracle.GaussianMixture:
    angle = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    means = torch.stack([angle.cos(), angle.sin()], 1)
    return ip.oracle.GaussianMixture(means, std ** 2 * torch.eye(2, dtype=torch.float64)
                                     .expand(k, 2, 2).clone())


def scores(x: torch.Tensor, gmm: ip.oracle.GaussianMixture, ref: torch.Tensor,
           train: torch.Tensor, std: float) -> tuple[float, float, float]:
    far = torch.cdist(x, gmm.means).min(1).values > 4 * std
    copies = torch.cdist(x, train).min(1).values < 1e-3
    return wasserstein(x, ref), float(far.double().mean()), float(copies.double().mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="300 dual steps, 400 samples")
    p.add_argument("--train", type=int, default=1000, help="training points (OT targets)")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--t-start", default="0.3,0.5,0.7", help="DPM-OT's t_s values")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n = args.samples or (400 if args.quick else 1000)
    dual = 300 if args.quick else 1000
    std = 0.05
    gmm, path = ring(std=std), ip.paths.VPLinear()
    g = torch.Generator().manual_seed(args.seed)
    train, ref, floor_set = (gmm.sample(m, generator=g) for m in (args.train, n, n))
    x1 = torch.randn(n, 2, dtype=torch.float64, generator=g)
    den = gmm.denoiser(path)
    print(f"8 modes (std {std}) on the circle, VPLinear, exact denoiser; {args.train} training "
          f"points, {n} samples")
    print(f"\n{'sampler':<22}{'NFE':>5}{'W2':>9}{'mixed':>8}{'copies':>8}{'OT s':>7}")
    print(f"{'exact samples (floor)':<22}{'-':>5}" + "".join(
        f"{v:>{w}.4f}" for v, w in zip(scores(floor_set, gmm, ref, train, std), (9, 8, 8))))
    for nfe in NFES:
        grid = ip.grids.make("logsnr", path, nfe)
        x = ip.sample(den, x1, solver="ddim", grid=grid)
        print(f"{'ddim from t=1':<22}{nfe:>5}" + "".join(
            f"{v:>{w}.4f}" for v, w in zip(scores(x, gmm, ref, train, std), (9, 8, 8))))
    for ts in (float(s) for s in args.t_start.split(",")):
        start = time.process_time()
        student = dpm_ot(den, train, t_start=ts, steps=dual, generator=g)
        cost = time.process_time() - start
        for nfe in NFES:
            vals = scores(student.sample(x1, nfe), gmm, ref, train, std)
            print(f"{f'dpm-ot t_s={ts:g}':<22}{nfe:>5}" + "".join(
                f"{v:>{w}.4f}" for v, w in zip(vals, (9, 8, 8))) + f"{cost:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
