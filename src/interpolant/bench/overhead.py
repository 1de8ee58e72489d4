"""Part (b) of ``interpolant bench solvers``: microseconds of sampler overhead per step with a
trivial network (``eps = 0.1 x``), ours against the same algorithm in diffusers and against a
bare Python loop doing the same tensor operations with precomputed coefficients (the floor; see
:func:`floor_loop`). Ours is timed through ``ip.sample`` (per-run setup included), diffusers
with its scheduler made and set per run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

import interpolant as ip

from .solvers import _config, sd_path


def _net(x, t, cond=None):
    return 0.1 * x


def _time(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best time of each function over ``repeats`` rounds, the functions interleaved in every
    round (so that a slow spell of a shared machine hits all of them alike)."""
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def floor_loop(kind: str, path, x, steps: int) -> Callable[[], object]:
    """A bare loop with precomputed coefficients and time inputs, nothing else: per step the
    same network call as ours (a ``(B,)`` time tensor), the same two-op conversion of its
    ``eps`` (``x0 = (x - sigma eps) / alpha``; for Euler the velocity ``p x + q eps``) and
    the update as one multiply plus one fused add per term."""
    ts = ip.grids.make("logsnr", path, steps)
    alpha, sigma, lam = path.alpha(ts).tolist(), path.sigma(ts).tolist(), path.lam(ts).tolist()
    d_alpha, d_sigma = path.d_alpha(ts).tolist(), path.d_sigma(ts).tolist()
    t_in = [torch.full((x.shape[0],), t, dtype=x.dtype) for t in ts.tolist()]
    c1 = [sigma[i + 1] / sigma[i] for i in range(steps)]
    c2 = [-alpha[i + 1] * math.expm1(-(lam[i + 1] - lam[i])) for i in range(steps)]
    c3 = [0.5 * c for c in c2]
    # Euler on dx/dt = u with u = (d_alpha / alpha) x + (d_sigma - d_alpha sigma / alpha) eps
    p = [d_alpha[i] / alpha[i] for i in range(steps)]
    q = [d_sigma[i] - d_alpha[i] * sigma[i] / alpha[i] for i in range(steps)]
    dt = (ts[1:] - ts[:-1]).tolist()

    def ddim():
        y = x
        for i in range(steps):
            d = torch.sub(y, _net(y, t_in[i]), alpha=sigma[i]).div_(alpha[i])
            y = torch.mul(y, c1[i]).add_(d, alpha=c2[i])
        return y

    def multistep():  # DPM++2M / UniPC-like: one extra history term
        y, d_old = x, None
        for i in range(steps):
            d = torch.sub(y, _net(y, t_in[i]), alpha=sigma[i]).div_(alpha[i])
            y = torch.mul(y, c1[i])
            if d_old is None:
                y.add_(d, alpha=c2[i])
            else:
                y.add_(d, alpha=c2[i] + c3[i]).add_(d_old, alpha=-c3[i])
            d_old = d
        return y

    def euler():
        y = x
        for i in range(steps):
            u = torch.mul(y, p[i]).add_(_net(y, t_in[i]), alpha=q[i])
            y = torch.add(y, u, alpha=dt[i])
        return y

    table = ip.solvers.get("unipc").table(ts, path)

    def unipc():  # UniPC-2 (bh2): corrector of the last step, then predictor; our table's rows
        y, y_prev, outs = x, x, []
        for i, (_, _, (c_x, pred, _)) in enumerate(table):
            m = torch.sub(y, _net(y, t_in[i]), alpha=sigma[i]).div_(alpha[i])
            if i > 0 and table[i - 1][2][2]:
                c_xc, _, corr = table[i - 1][2]
                y = torch.mul(y_prev, c_xc)
                for w, out in zip(corr, [m] + outs):
                    y.add_(out, alpha=w)
            outs = [m] + outs[:1]
            y_prev = y
            y = torch.mul(y, c_x)
            for w, out in zip(pred, outs):
                y.add_(out, alpha=w)
        return y

    return {"ddim": ddim, "multistep": multistep, "euler": euler, "unipc": unipc}[kind]


def overhead(quick: bool) -> None:
    import diffusers as d

    path = sd_path()
    steps, repeats = (20, 5) if quick else (50, 15)
    pairs = [  # ours, diffusers scheduler, floor kind
        ("ddim", lambda: _config(d.DDIMScheduler, set_alpha_to_one=False, clip_sample=False),
         "ddim"),
        ("dpm++2m", lambda: _config(d.DPMSolverMultistepScheduler, solver_order=2), "multistep"),
        ("euler", lambda: _config(d.EulerDiscreteScheduler), "euler"),
        ("unipc", lambda: _config(d.UniPCMultistepScheduler), "unipc"),
    ]
    print(f"\n(b) sampler overhead per step, trivial network eps = 0.1 x, {steps} steps, "
          f"best of {repeats}; microseconds")
    print(f"{'solver':<10} {'batch':>9} | {'ours':>8} {'diffusers':>10} {'floor':>8} | "
          f"{'ours/diffusers':>14} {'ours/floor':>10}")
    den = ip.Denoiser(_net, path, prediction="eps")
    for shape in ((1, 2), (64, 16)):
        x = torch.randn(*shape, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
        for ours, make, kind in pairs:
            if ours not in ip.solvers.available():
                print(f"{ours:<10} (not registered)")
                continue

            def run_diffusers(make=make):
                sched = make()
                sched.set_timesteps(steps)
                y = x
                for k in sched.timesteps:
                    y_in = sched.scale_model_input(y, k)
                    y = sched.step(_net(y_in, k), k, y).prev_sample
                return y

            run_ours = lambda ours=ours: ip.sample(den, x, ours, steps, "logsnr")  # noqa: E731
            times = _time([run_ours, run_diffusers, floor_loop(kind, path, x, steps)], repeats)
            us = [1e6 * t / steps for t in times]
            print(f"{ours:<10} {str(shape):>9} | {us[0]:8.1f} {us[1]:10.1f} {us[2]:8.1f} | "
                  f"{us[0] / us[1]:14.3f} {us[0] / us[2]:10.2f}")
    print("goals: ours/diffusers <= 0.25 and ours/floor <= 2")
