"""Inference-time steering against the exact reward-tilted mixture.

Run ``interpolant bench steering [particles|search|compute|events ...]`` (or ``python -m
interpolant.bench.steering``). Prior: the ``aniso2d`` mixture with its exact denoiser on
VPLinear; reward ``r(x) = -|x - (1, 1)|^2 / 2`` (tilt ``exp(r)``), whose tilted law is the
exact mixture :func:`interpolant.guidance.tilted`.

- ``particles``: FK steering (difference / max / sum potentials, DDPM 60 steps, ESS-triggered
  systematic resampling) and twisted SMC with the exact twist and tilted proposal, against
  particle count ``K``, beside DriftLite (Feynman-Kac correctors on the annealed tilt, EM 60
  steps) with no drift, reward guidance and variance-controlling guidance: ``mean err`` (RMS over runs of ``|weighted mean - exact mean|``),
  ``mass err`` (mean L1 error of the mode masses), ``ESS/K`` at the end, NFE per run (all
  particles); the last column is ``sqrt(tr Cov / K)``, an exact sampler's RMS mean error.
- ``search``: best-of-N (DPM-Solver++(2M), 20 steps) for a linear reward: mean reward against
  ``E[max of N]`` of the sampler's own reward law (order statistics of 200k samples) and of
  the exact mixture's.
- ``compute``: mean reward against NFE per output for every method of
  :func:`interpolant.guidance.steer`, and FK steering's error to the tilted law.
- ``events``: ``P(x_1 > c)`` by tilted SMC beside its exact value and plain Monte Carlo.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch

import interpolant as ip
from interpolant.guidance import (LinearReward, QuadraticReward, best_of_n, event_probability,
                                  driftlite, exact_twist, halfspace_probability, path_search,
                                  smc, steer, tilted, zero_order)

F64 = torch.float64
GMM = ip.oracle.GaussianMixture.preset("aniso2d")
PATH = ip.paths.VPLinear()
QUAD = QuadraticReward(torch.eye(2, dtype=F64), [1.0, 1.0])
LIN = LinearReward([1.0, 0.5])
RUNS = 8


def _errors(runs: list, target: ip.oracle.GaussianMixture) -> tuple[float, float, float]:
    mu = target.weights @ target.means
    comps = [torch.distributions.MultivariateNormal(m, c) for m, c in
             zip(target.means, target.covs)]
    mean_err, mass_err, ess = [], [], []
    for p in runs:
        w = p.log_weights.exp()
        mean_err.append(float((p.mean() - mu).pow(2).sum()))
        resp = torch.softmax(torch.stack([c.log_prob(p.x) for c in comps], 1)
                             + target.weights.log(), 1)
        mass_err.append(float((w @ resp - target.weights).abs().sum()))
        ess.append(1.0 / float(w.pow(2).sum()) / p.x.shape[0])
    return math.sqrt(np.mean(mean_err)), float(np.mean(mass_err)), float(np.mean(ess))


def particles_table() -> str:
    target = tilted(GMM, QUAD)
    mu = target.weights @ target.means
    tr = float((target.weights[:, None] * (target.covs.diagonal(dim1=1, dim2=2)
                                            + target.means**2)).sum() - mu.pow(2).sum())
    den = GMM.denoiser(PATH)
    variants = [("FK difference", {}), ("FK max", {"potential": "max"}),
                ("FK sum", {"potential": "sum"}),
                ("SMC exact twist", {"potential": exact_twist(GMM, QUAD, PATH),
                                     "proposal": target.denoiser(PATH)}),
                *[(f"DriftLite {c}", {"control": c}) for c in ("none", "guidance", "vcg")]]
    lines = ["| sampler | K | mean err | mass err | ESS/K | NFE | s | exact-sampler err |",
             "|---|---|---|---|---|---|---|---|"]
    for name, opts in variants:
        for k in (4, 16, 64, 256):
            start = time.perf_counter()
            runs = []
            for rep in range(RUNS):
                g = torch.Generator().manual_seed(1000 * k + rep)
                run = driftlite if "control" in opts else smc
                runs.append(run(den, torch.randn(k, 2, generator=g, dtype=F64), QUAD, steps=60,
                                grid="quadratic", generator=g, **opts))
            secs = (time.perf_counter() - start) / RUNS
            err, mass, ess = _errors(runs, target)
            lines.append(f"| {name} | {k} | {err:.4f} | {mass:.4f} | {ess:.2f} | "
                         f"{runs[0].nfe * k} | {secs:.2f} | {math.sqrt(tr / k):.4f} |")
    return "\n".join(lines)


def _expected_max(sorted_r: torch.Tensor, n: int) -> float:
    m = sorted_r.numel()
    j = torch.arange(1, m + 1, dtype=F64)
    return float(((j / m) ** n - ((j - 1) / m) ** n) @ sorted_r)


def search_table() -> str:
    den = GMM.denoiser(PATH)
    g = torch.Generator().manual_seed(0)
    ref = LIN(ip.sample(den, torch.randn(200_000, 2, generator=g, dtype=F64),
                        solver="dpm++2m", steps=20)).sort().values
    exact = LIN(GMM.sample(200_000, g)).sort().values
    lines = ["| N | best-of-N mean reward | +- SE | E[max N] sampler | E[max N] exact mixture | "
             "NFE/output |", "|---|---|---|---|---|---|"]
    for n in (1, 4, 16, 64):
        res = best_of_n(den, torch.randn(2000, n, 2, generator=g, dtype=F64), LIN, steps=20)
        se = float(res.reward.std()) / math.sqrt(2000)
        lines.append(f"| {n} | {float(res.reward.mean()):.4f} | {se:.4f} | "
                     f"{_expected_max(ref, n):.4f} | {_expected_max(exact, n):.4f} | {res.nfe} |")
    return "\n".join(lines)


def compute_table() -> str:
    den = GMM.denoiser(PATH)
    target = tilted(GMM, QUAD)
    mu = target.weights @ target.means
    g = torch.Generator().manual_seed(9)
    model = float(QUAD(GMM.sample(200_000, g)).mean())
    tilted_r = float(QUAD(target.sample(200_000, g)).mean())
    lines = [f"mean reward of the model {model:.4f}, of the exact tilted law {tilted_r:.4f} "
             "(FK's target; search methods maximise instead)",
             "| method | particles | mean reward | err of mean vs tilted | NFE/output |",
             "|---|---|---|---|---|"]
    for method in ("best-of-n", "zero-order", "paths", "fk"):
        for k in (2, 8, 32):
            g = torch.Generator().manual_seed(k)
            z = torch.randn(200, k, 2, generator=g, dtype=F64)
            if method == "fk":
                x = steer(den, z[:, 0], QUAD, "fk", particles=k, steps=40, generator=g)
                nfe = 40 * k
            else:
                search = {"best-of-n": best_of_n, "paths": path_search}.get(method)
                res = (search(den, z, QUAD, generator=g) if search else
                       zero_order(den, z[:, 0], QUAD, neighbours=k, rounds=3, generator=g))
                x, nfe = res.x, res.nfe
            lines.append(f"| {method} | {k} | {float(QUAD(x).mean()):.4f} | "
                         f"{float((x.mean(0) - mu).norm()):.4f} | {nfe} |")
    return "\n".join(lines)


def events_table() -> str:
    gmm = ip.oracle.GaussianMixture(
        torch.tensor([[-1.0, 0.0], [1.0, 0.5]]),
        torch.tensor([[[0.25, 0.0], [0.0, 0.25]], [[0.3, 0.1], [0.1, 0.2]]]),
        torch.tensor([0.6, 0.4]))
    event = LinearReward([1.0, 0.0])
    lines = ["| c | exact P | estimate | SE | plain MC SE (same samples) | scale | kernel |",
             "|---|---|---|---|---|---|---|"]
    for c in (2.0, 2.5, 3.0):
        p = halfspace_probability(gmm, [1.0, 0.0], c)
        for solver in ("euler-maruyama", "ddpm"):
            est = event_probability(gmm.denoiser(PATH), (2,), event, c, particles=256,
                                    replicates=8, solver=solver, grid="quadratic",
                                    generator=torch.Generator().manual_seed(0))
            lines.append(f"| {c} | {p:.3e} | {est.probability:.3e} | {est.stderr:.1e} | "
                         f"{math.sqrt(p * (1 - p) / 2048):.1e} | {est.scale:.2f} | {solver} |")
    return "\n".join(lines)


TABLES = {"particles": particles_table, "search": search_table, "compute": compute_table,
          "events": events_table}


def main(argv: list[str] | None = None) -> int:
    """Print the tables named in ``argv`` (all by default)."""
    torch.set_num_threads(1)
    for name in argv or list(TABLES):
        if name not in TABLES:
            raise ip.InterpolantError(f"unknown table {name!r}; choose from {', '.join(TABLES)}")
        print(f"## {name}\n" + TABLES[name](), "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
