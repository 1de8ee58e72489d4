"""Solvers side by side with diffusers: accuracy per NFE and sampler overhead per step.

(a) Endpoint error (RMS over points) against the exact probability flow of an oracle mixture on
Stable Diffusion's discrete schedule (``VPDiscrete.from_betas("scaled_linear", 1000, 0.00085,
0.012)``), from the same exact draws of ``p_1``, at NFE budgets 5, 10, 20, 50: every
deterministic solver of ``ip.solvers.available()`` (steps chosen so NFE <= budget; best of
three grids) and every deterministic diffusers scheduler (``timestep_spacing="trailing"``, so
every timestep is an integer training index) driven by the exact noise prediction, the
multistep ones also with their Karras/exponential/``lu_lambdas`` spacings and
``final_sigmas_type="sigma_min"`` (diffusers at its best, as ours is best of three grids).
Diffusers' DDIM/PNDM and its ``sigma_min`` variants end at ``alphas_cumprod[0]`` (``t = 1/N``,
like ours); its other sigma schedulers end at ``sigma = 0`` and are compared with the exact flow
to ``sigma = 0``. Stochastic samplers have no
pathwise reference and are left out of (a).

(b) Microseconds of sampler overhead per step with a trivial network: see :mod:`.overhead`.

Run: ``python benchmarks/solvers.py [--quick]`` (also ``interpolant bench solvers``).
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable

import torch

import interpolant as ip

F64 = torch.float64
N_TRAIN = 1000
BUDGETS = (5, 10, 20, 50)
GRIDS = ("logsnr", "uniform", "karras")


def sd_path() -> ip.paths.VPDiscrete:
    return ip.paths.VPDiscrete.from_betas("scaled_linear", N_TRAIN, 0.00085, 0.012)


# -- (a) accuracy ------------------------------------------------------------------------------
def references(gmm, path, x1):
    """Exact flow from t = 1 to t = 1/N and to sigma = 0 (via a VE path with the same log-SNR)."""
    to_tmin = gmm.flow(path, x1, 1.0, path.t_min)
    st1 = path.sigma(1.0) / path.alpha(1.0)
    ve = ip.paths.VE(sigma_min=1e-9, sigma_max=2.0 * st1)
    t_from = math.log(st1 / ve.sigma_min) / math.log(ve.sigma_max / ve.sigma_min)
    to_zero = gmm.flow(ve, x1 / path.alpha(1.0), t_from, 0.0)
    return to_tmin, to_zero


def _rms(a, b) -> float:
    return float((a - b).pow(2).sum(1).mean().sqrt())


def ours_for_budget(name: str, den, x1, budget: int, ref) -> tuple[float, int, int, str] | None:
    """Best error over grids with the most steps whose NFE fits the budget."""
    best = None
    for grid in GRIDS:
        for steps in range(budget, 0, -1):
            try:
                *_, last = ip.trajectory(den, x1[:1], name, steps, grid)
            except ip.InterpolantError:
                continue
            if last.nfe <= budget:
                break
        else:
            continue
        *_, last = ip.trajectory(den, x1, name, steps, grid)
        err = _rms(last.x, ref)
        if math.isfinite(err) and (best is None or err < best[0]):
            best = (err, last.nfe, steps, grid)
    return best


def _config(cls, **options):
    """``cls`` on the SD schedule with trailing spacing where the scheduler has that option
    (``DPMSolverSinglestepScheduler`` has not; its timesteps are integers anyway)."""
    common = dict(num_train_timesteps=N_TRAIN, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear", **options)
    try:
        return cls(**common, timestep_spacing="trailing")
    except TypeError:
        return cls(**common)


def diffusers_schedulers() -> dict[str, Callable]:
    import diffusers as d

    return {
        "DDIM": lambda: _config(d.DDIMScheduler, set_alpha_to_one=False, clip_sample=False),
        "PNDM(PRK)": lambda: _config(d.PNDMScheduler, set_alpha_to_one=False),
        "PLMS": lambda: _config(d.PNDMScheduler, set_alpha_to_one=False, skip_prk_steps=True),
        "Euler": lambda: _config(d.EulerDiscreteScheduler),
        "Heun": lambda: _config(d.HeunDiscreteScheduler),
        "LMS": lambda: _config(d.LMSDiscreteScheduler),
        "KDPM2": lambda: _config(d.KDPM2DiscreteScheduler),
        "DPM++2M": lambda: _config(d.DPMSolverMultistepScheduler, solver_order=2),
        "DPM++3M": lambda: _config(d.DPMSolverMultistepScheduler, solver_order=3),
        "DPM++2S": lambda: _config(d.DPMSolverSinglestepScheduler, solver_order=2),
        "DPM-Solver-3S": lambda: _config(d.DPMSolverSinglestepScheduler, solver_order=3,
                                         algorithm_type="dpmsolver",
                                         final_sigmas_type="sigma_min"),
        "UniPC": lambda: _config(d.UniPCMultistepScheduler),
        "DEIS": lambda: _config(d.DEISMultistepScheduler),
        **_best_options(d),
    }


def _best_options(d) -> dict[str, Callable]:
    """diffusers' own options for the multistep solvers, so that it is compared at its best
    too: Karras or exponential (uniform log-SNR) sigmas, DPM-Solver's ``use_lu_lambdas``, and
    ending at the last training sigma (``final_sigmas_type="sigma_min"``) instead of 0."""
    sigmas = {"karras": dict(use_karras_sigmas=True), "exp": dict(use_exponential_sigmas=True),
              "trailing": {}}
    makers: dict[str, Callable] = {}
    for label, cls, extra in (
        ("DPM++2M", d.DPMSolverMultistepScheduler, dict(solver_order=2)),
        ("DPM++3M", d.DPMSolverMultistepScheduler, dict(solver_order=3)),
        ("UniPC", d.UniPCMultistepScheduler, {}),
        ("UniPC-bh1", d.UniPCMultistepScheduler, dict(solver_type="bh1")),
    ):
        options = {f"{name}/{end}": dict(**sig, final_sigmas_type=end)
                   for name, sig in sigmas.items() for end in ("zero", "sigma_min")}
        if cls is d.DPMSolverMultistepScheduler:
            options.update({f"lu/{end}": dict(use_lu_lambdas=True, final_sigmas_type=end)
                            for end in ("zero", "sigma_min")})
        for name, opts in options.items():
            if name == "trailing/zero" and label != "UniPC-bh1":
                continue  # the default row above
            makers[f"{label} {name}"] = lambda cls=cls, o={**extra, **opts}: _config(cls, **o)
    for name, sig in sigmas.items():
        if sig:
            makers[f"DEIS {name}"] = lambda sig=sig: _config(d.DEISMultistepScheduler, **sig)
    return makers


def run_diffusers(make, steps: int, den, x1):
    """Run a diffusers scheduler on the exact eps; returns (x, nfe, ends at sigma = 0)."""
    sched = make()
    sched.set_timesteps(steps)
    x = x1 * float(sched.init_noise_sigma)
    nfe = 0
    for k in sched.timesteps:
        x_in = sched.scale_model_input(x, k)
        eps = den(x_in.to(F64), (float(k) + 1.0) / N_TRAIN, None, "eps")
        nfe += 1
        x = sched.step(eps, k, x).prev_sample.to(F64)
    sigmas = getattr(sched, "sigmas", None)
    to_zero = sigmas is not None and float(sigmas[-1]) == 0.0
    return x, nfe, to_zero


def diffusers_for_budget(make, den, x1, budget: int, refs):
    for steps in range(budget, 0, -1):
        try:
            sched = make()
            sched.set_timesteps(steps)
        except Exception:  # noqa: BLE001 - some schedulers reject short grids
            continue
        if len(sched.timesteps) <= budget:
            break
    else:
        return None
    try:
        x, nfe, to_zero = run_diffusers(make, steps, den, x1)
    except Exception:  # noqa: BLE001
        return None
    err = _rms(x, refs[1] if to_zero else refs[0])
    return (err, nfe, steps, "sigma=0" if to_zero else "t=1/N") if math.isfinite(err) else None


def accuracy(quick: bool) -> None:
    path = sd_path()
    budgets = (5, 10, 20) if quick else BUDGETS
    n = 100 if quick else 200
    # stochastic samplers have no pathwise reference; adaptive ones pick their own NFE
    ours = [s for s in ip.solvers.available()
            if not ip.solvers.get(s).stochastic and ip.solvers.get(s).max_nfe(1) is not None]
    for preset in ("aniso2d", "mix8d"):
        gmm = ip.oracle.GaussianMixture.preset(preset)
        x1 = gmm.marginal(path, 1.0).sample(n, torch.Generator().manual_seed(0))
        refs = references(gmm, path, x1)
        den = gmm.denoiser(path)
        print(f"\n(a) endpoint RMS error vs exact flow: {preset}, SD scaled_linear schedule, "
              f"{n} points, start t=1 (k=999)")
        header = "".join(f" | {'NFE<=' + str(b):>22}" for b in budgets)
        print(f"{'solver':<28}{header}")
        rows: dict[str, dict] = {}
        warnings.simplefilter("ignore")
        runs = [("ip:" + name, lambda b, name=name: ours_for_budget(name, den, x1, b, refs[0]))
                for name in ours]
        runs += [("diffusers:" + label, lambda b, make=make: diffusers_for_budget(
            make, den, x1, b, refs)) for label, make in diffusers_schedulers().items()]
        for label, fn in runs:
            try:
                row = rows[label] = {b: fn(b) for b in budgets}
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"{label:<28} failed: {type(exc).__name__}: {exc}")
                continue
            cells = "".join(
                f" | {'-':>22}" if row[b] is None
                else f" | {row[b][0]:9.2e} nfe{row[b][1]:>3} st{row[b][2]:>3}"
                for b in budgets
            )
            print(f"{label:<28}{cells}", flush=True)
        for b in budgets:
            best = {}
            for lib in ("ip:", "diffusers:"):
                cands = [(r[b], k) for k, r in rows.items() if k.startswith(lib) and r[b]]
                best[lib] = min(cands, key=lambda c: c[0][0]) if cands else None
            o, d = best["ip:"], best["diffusers:"]
            ratio = o[0][0] / d[0][0] if o and d else float("nan")
            print(f"  NFE<={b:<3} ours {o[1][3:]} ({o[0][3]}, {o[0][1]} NFE, {o[0][2]} steps) "
                  f"{o[0][0]:.2e} | diffusers {d[1][10:]} ({d[0][1]} NFE, {d[0][2]} steps, ends "
                  f"{d[0][3]}) {d[0][0]:.2e} | ratio ours/diffusers {ratio:.3f} "
                  f"({'meets' if ratio <= 0.5 else 'misses'} the <= 0.5 goal)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, budgets and repeats")
    parser.add_argument("--only", choices=("accuracy", "overhead"), help="run one part")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.only != "overhead":
        accuracy(args.quick)
    if args.only != "accuracy":
        from .overhead import overhead

        overhead(args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
