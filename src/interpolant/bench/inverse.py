"""Restoration methods against the exact posterior of a Gaussian-mixture prior.

Run ``interpolant bench inverse [CASE ...]`` (or ``python -m interpolant.bench.inverse``): for
each case (prior, operator, noise) and method, ``n`` samples of
:func:`interpolant.inverse.restore` with the exact denoiser of the prior on VPLinear are
compared with ``n`` exact samples of ``prior.posterior(op, y, sigma_y)``:

- ``mean err``: ``|mean(x) - E[x | y]|`` (exact posterior mean);
- ``SW2``: sliced 2-Wasserstein distance to the exact samples, beside the ``floor`` (SW2 between
  two independent exact sample sets of the same size: the Monte Carlo noise of the metric);
- ``|Ax - y|``: mean residual (exact posterior samples: ``~ sigma_y sqrt(m)``);
- ``NFE``: network evaluations per sample (a DPS/PiGDM evaluation also backpropagates once);
- ``s``: seconds for all ``n`` samples.

PiGDM and DDNM get ``data_var`` = the prior's mean per-coordinate variance; RePaint treats ``y``
as noiseless (so on blur, whose row space is everything, it inverts the blur of a noisy ``y``);
RED-diff (default ``lam``, ``lr``) returns estimates, not samples, so its SW2 measures the
collapse of the spread. All but RED-diff use the default sampler (DDPM ancestral) on the
``logsnr`` grid.
"""

from __future__ import annotations

import time

import torch

import interpolant as ip
from interpolant.inverse import Blur, Downsample, Inpaint, Linear, mixture_moments, restore

STEPS = 100
N = 1000
METHODS = [("dps", {}), ("pigdm", {}), ("ddnm", {}), ("repaint", {}),
           ("repaint r=4", {"jump": 5, "resample": 4}), ("red-diff", {}), ("gdp", {})]


def _gauss4d() -> ip.oracle.GaussianMixture:
    return ip.oracle.GaussianMixture(torch.tensor([[0.3, -0.2, 0.5, 0.1]]),
                                     0.5 * torch.eye(4, dtype=torch.float64)[None])


def _cases() -> list[tuple[str, ip.oracle.GaussianMixture, ip.inverse.Operator, float]]:
    g = torch.Generator().manual_seed(0)
    preset = ip.oracle.GaussianMixture.preset
    mix8d, aniso = preset("mix8d"), preset("aniso2d")
    return [
        ("gauss4d N(m, 0.5 I), Linear 2x4, sigma_y 0.2", _gauss4d(),
         Linear(torch.randn(2, 4, generator=g)), 0.2),
        ("aniso2d, Linear 1x2, sigma_y 0.1", aniso, Linear(torch.tensor([[0.8, 0.6]])), 0.1),
        ("mix8d, Inpaint 4 of 8, sigma_y 0.05", mix8d,
         Inpaint(torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])), 0.05),
        ("mix8d, Downsample x2, sigma_y 0", mix8d, Downsample(2), 0.0),
        ("mix8d, Blur(3, 1.0) circular, sigma_y 0.1", mix8d, Blur(3, 1.0), 0.1),
        ("mix8d, Linear 3x8, sigma_y 0.1", mix8d, Linear(torch.randn(3, 8, generator=g)), 0.1),
    ]


def table(label: str, prior: ip.oracle.GaussianMixture, op: ip.inverse.Operator,
          sigma_y: float, n: int = N, steps: int = STEPS) -> str:
    g = torch.Generator().manual_seed(1)
    x_true = prior.sample(1, g)
    y = op(x_true)[0] + sigma_y * torch.randn(op.output_shape((prior.dim,)), generator=g,
                                              dtype=torch.float64)
    post = prior.posterior(op, y, sigma_y)
    mean, _ = mixture_moments(post)
    ref, ref2 = post.sample(n, g), post.sample(n, g)
    floor = ip.metrics.sliced_wasserstein(ref, ref2)
    data_var = float(mixture_moments(prior)[1].diagonal().mean())
    resid_ref = (op(ref) - y).flatten(1).norm(dim=1).mean()
    lines = [f"{label}: n = {n}, {steps} steps; SW2 floor {floor:.3f}, exact |Ax - y| "
             f"{resid_ref:.3f}, prior mean err {(mixture_moments(prior)[0] - mean).norm():.3f}",
             "| method | mean err | SW2 | |Ax - y| | NFE | s |", "|---|---|---|---|---|---|"]
    for name, opts in METHODS:
        method = name.split()[0]
        opts = {**opts, "data_var": data_var} if method in ("pigdm", "ddnm", "gdp") else opts
        if method == "dps" and sigma_y == 0:
            opts = {**opts, "zeta": 30.0}
        den = prior.denoiser(ip.paths.VPLinear())
        restore(den, op, y, sigma_y, method=method, n=2, steps=2, **opts)  # warm-up (imports)
        den.nfe = 0
        start = time.perf_counter()
        x = restore(den, op, y, sigma_y, method=method, n=n, steps=steps,
                    generator=torch.Generator().manual_seed(2), **opts)
        secs = time.perf_counter() - start
        if not torch.isfinite(x).all():
            lines.append(f"| {name} | diverged | | | {den.nfe} | {secs:.1f} |")
            continue
        resid = (op(x) - y).flatten(1).norm(dim=1).mean()
        lines.append(f"| {name} | {(x.mean(0) - mean).norm():.3f} | "
                     f"{ip.metrics.sliced_wasserstein(x, ref):.3f} | {resid:.3g} | {den.nfe} | "
                     f"{secs:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of the cases numbered in ``argv`` (all by default)."""
    cases = _cases()
    for i in argv or [str(i) for i in range(len(cases))]:
        print(table(*cases[int(i)]), "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
