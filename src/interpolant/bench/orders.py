"""Error-vs-NFE tables of the exponential-integrator solvers (ours only; see ``solvers.py``
for the side-by-side comparison with diffusers).

Run ``interpolant bench orders [CASE ...]``: RMS endpoint error against the exact
probability-flow solution (``GaussianMixture.flow``) of 256 start points, per solver and NFE, on
the aniso2d and mix8d presets with VPLinear/logsnr and EDM/karras grids.
"""

from __future__ import annotations

import math

import torch

import interpolant as ip

NFES = (5, 10, 20, 50)
SOLVERS = [  # (label, solver, options, NFE per step)
    ("ddim", "ddim", {}, 1),
    ("dpm1", "dpm1", {}, 1),
    ("dpm2", "dpm2", {}, 2),
    ("dpm3", "dpm3", {}, 3),
    ("dpm-fast", "dpm-fast", {}, 0),
    ("dpm++2s", "dpm++2s", {}, 2),
    ("dpm++2m", "dpm++2m", {}, 1),
    ("dpm++3m consistent", "dpm++3m", {"third_order": "consistent"}, 1),
    ("dpm++3m published", "dpm++3m", {"third_order": "published"}, 1),
    ("unipc-2 bh2", "unipc", {"order": 2}, 1),
    ("unipc-3 bh2", "unipc", {"order": 3}, 1),
    ("unipc-3 bh1", "unipc", {"order": 3, "variant": "bh1"}, 1),
    ("deis-2", "deis", {"order": 2}, 1),
    ("deis-3", "deis", {"order": 3}, 1),
]


def table(preset: str, path: ip.paths.GaussianPath, grid: str, n: int = 256) -> str:
    gmm = ip.oracle.GaussianMixture.preset(preset)
    x1 = path.sigma(1.0) * torch.randn(n, gmm.dim, dtype=torch.float64,
                                       generator=torch.Generator().manual_seed(1))
    ref = gmm.flow(path, x1, 1.0, path.t_min, rtol=1e-11, atol=1e-11)
    den = gmm.denoiser(path)
    scale = ref.pow(2).sum(1).mean().sqrt().item()
    lines = [f"{preset} / {type(path).__name__} / {grid}: RMS error / RMS |x| ({scale:.2f})",
             "| solver | " + " | ".join(f"NFE {k}" for k in NFES) + " |",
             "|---|" + "---|" * len(NFES)]
    for label, name, opts, per in SOLVERS:
        cells = []
        for nfe in NFES:
            steps = nfe if per == 0 else nfe // per
            if steps < 1:
                cells.append("-")
                continue
            state = None
            for state in ip.trajectory(den, x1, name, steps=steps, grid=grid, **opts):
                pass
            err = (state.x - ref).pow(2).sum(1).mean().sqrt().item() / scale
            cells.append(f"{err:.2e}" if math.isfinite(err) else "nan")
            cells[-1] += f" ({state.nfe})" if state.nfe != nfe else ""
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for order in (2, 3):  # dpm-adaptive picks its own steps: report (NFE, error) per tolerance
        cells = []
        for tol in ((0.05, 0.0078), (1e-3, 1e-3), (1e-4, 1e-4)):
            state = None
            for state in ip.trajectory(den, x1, "dpm-adaptive", grid=grid, order=order,
                                       rtol=tol[0], atol=tol[1]):
                pass
            err = (state.x - ref).pow(2).sum(1).mean().sqrt().item() / scale
            cells.append(f"rtol {tol[0]:g}, atol {tol[1]:g}: {err:.2e} ({state.nfe} NFE)")
        lines.append(f"| dpm-adaptive order {order} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of the cases numbered in ``argv`` (all four by default)."""
    configs = [("aniso2d", ip.paths.VPLinear(), "logsnr"), ("mix8d", ip.paths.VPLinear(), "logsnr"),
               ("aniso2d", ip.paths.EDM(), "karras"), ("mix8d", ip.paths.EDM(), "karras")]
    for i in argv or [str(i) for i in range(len(configs))]:
        print(table(*configs[int(i)]), "\n", flush=True)
    return 0
