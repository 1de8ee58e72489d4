"""Discrete latent conditions against the plain denoiser on a mixture: DisCo-Diff (one
4-way latent, Gumbel-softmax) and Learning Quantized Adaptive Conditions (2 sign bits) beside the
same MLP trained without latents, at equal steps, batch and learning rate.

Run ``interpolant bench latents [--steps 400] [--seeds 0,1]``. Data: 8192 samples of four
isotropic components (std 0.3) at the corners of a square of side 4; rectified-flow path, x0
target. Each contestant's samples (8000, Euler from the same noise; latents from the prior fitted
on the encoder's codes) are scored by sliced W2 to 8000 fresh data points at 1, 2, 4 and 8 NFE
(two data draws of that size are ~0.02 apart); the first rows are the exact fields without and
with the ideal latent (the component). ``agree`` is the share of data whose code names its
component after the best relabelling; ``s/step`` the CPU time of a training step and its ratio to
the plain net's (same process, same inputs).
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

import interpolant as ip

from ..metrics.distances import sliced_wasserstein
from ..models import MLP
from ..oracle import GaussianMixture
from ..training import TrainConfig, Trainer
from ..interpolants.latents import ideal_latent_mixture
from ..models.latent import LatentMLP
from ..training.disco import DisCoObjective, DiscreteEncoder, LatentPrior
from ..training.qac import BinaryEncoder, QACObjective

F64 = torch.float64
NFES = (1, 2, 4, 8)


def corners() -> GaussianMixture:
    means = 2.0 * torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=F64)
    return GaussianMixture(means, 0.09 * torch.eye(2, dtype=F64).expand(4, 2, 2).clone())


def _agreement(codes: torch.Tensor, comp: torch.Tensor) -> float:
    index = (codes * 2 ** torch.arange(codes.shape[1] - 1, -1, -1)).sum(1)
    return max((torch.tensor(p)[index] == comp).double().mean().item()
               for p in itertools.permutations(range(4)))


def _train(kind: str, x0: torch.Tensor, steps: int, seed: int):
    """``(denoiser, prior or None, encoder codes or None, CPU s/step)``."""
    path = ip.paths.Linear()
    config = TrainConfig(target="x0", steps=steps, batch_size=256, lr=3e-3, clip_grad=None,
                         label_dropout=0.0, progress=False, log_every=10 * steps, seed=seed)
    torch.manual_seed(seed)
    encoder: torch.nn.Module | None = None
    if kind == "plain":
        net: torch.nn.Module = MLP(2, hidden=32, depth=2).double()
        objective = None
    elif kind == "disco":
        encoder = DiscreteEncoder(2, 1, 4, hidden=32).double()
        net = LatentMLP(2, 1, 4, hidden=32, depth=2).double()
        objective = DisCoObjective(encoder, path, "x0")
    else:
        encoder = BinaryEncoder(2, 2, hidden=32).double()
        net = LatentMLP(2, 2, 2, hidden=32, depth=2).double()
        objective = QACObjective(encoder, path, "x0")
    start = time.process_time()
    Trainer(net, path, x0, None, config, objective=objective).run()
    seconds = (time.process_time() - start) / steps
    if encoder is None:
        return ip.Denoiser(net, path, prediction="x0"), None, None, seconds
    codes = encoder.codes(x0)
    prior = LatentPrior(codes.shape[1], 4 if kind == "disco" else 2).fit(codes)
    return ip.Denoiser(net, path, prediction="x0"), prior, codes, seconds


def _scores(den, x1, data, cond=None) -> list[float]:
    out = []
    for nfe in NFES:
        with torch.no_grad():
            x = ip.sample(den, x1, cond=cond, solver="euler", steps=nfe)
        out.append(sliced_wasserstein(x, data, n_projections=32))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="interpolant bench latents", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="training steps per contestant")
    p.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    gmm, path = corners(), ip.paths.Linear()
    x0, comp = gmm.sample(8192, torch.Generator().manual_seed(0), return_labels=True)
    data = gmm.sample(8000, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(8000, 2, generator=g, dtype=F64)
    ideal = torch.multinomial(gmm.weights, 8000, replacement=True, generator=g)
    head = "".join(f"  W2@{n}NFE" for n in NFES)
    print(f"{'contestant':<14}{'seed':>5}{'agree':>7}{'s/step':>9}{'ratio':>7}{head}")
    rows = [("exact", gmm.denoiser(path), None), ("exact+latent",
                                                  ideal_latent_mixture(gmm).denoiser(path), ideal)]
    for name, den, cond in rows:
        scores = "".join(f"{s:>10.3f}" for s in _scores(den, x1, data, cond))
        print(f"{name:<14}{'-':>5}{'-':>7}{'-':>9}{'-':>7}{scores}")
    _train("qac", x0, 2, 0)  # warm-up, so the first timed step is not the process's first
    for seed in (int(s) for s in args.seeds.split(",")):
        base = None
        for kind in ("plain", "disco", "qac"):
            den, prior, codes, sec = _train(kind, x0, args.steps, seed)
            base = sec if base is None else base
            cond = None if prior is None else prior.sample(8000, torch.Generator().manual_seed(4))
            agree = "-" if codes is None else f"{_agreement(codes, comp):.2f}"
            scores = "".join(f"{s:>10.3f}" for s in _scores(den, x1, data, cond))
            print(f"{kind:<14}{seed:>5}{agree:>7}{sec * 1e3:>7.1f}ms{sec / base:>7.2f}{scores}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
