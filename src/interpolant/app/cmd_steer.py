"""``interpolant sample --steer REWARD --particles K``: reward-steered samples of a digits run
and the reward bought by compute.

Rewards (higher is better) on 8x8 grey images in ``[-1, 1]``:

- ``confidence``: the bundled digits classifier's log-probability of ``--label``;
- ``stroke``: stroke mass, the mean ink ``(x + 1) / 2`` of the picture.

The steering method (``--steer-method``, any of :data:`interpolant.guidance.STEERING_METHODS`,
default FK steering) runs with 1, 2, 4, ... up to ``--particles`` particles per sample on the
same starting noise; ``--nfe`` is the ancestral steps of one chain. Written next to the samples
(drawn with ``--particles``): ``steer_REWARD.json`` (particles, NFE per sample, mean reward,
seconds) and ``steer_REWARD.png`` (mean reward against NFE per sample).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import guidance, images, metrics, plots
from ..errors import InterpolantError, unknown_name
from ..guidance.steering_base import check_count
from . import pages
from .runs import TrainedRun, write_json

REWARDS = ("confidence", "stroke")


def reward_function(name: str, label: int | None) -> Callable[[Tensor], Tensor]:
    """The reward ``name`` as ``r(x) -> (n,)`` on digit images."""
    if name not in REWARDS:
        raise unknown_name("reward", name, REWARDS)
    if name == "stroke":
        return lambda x: ((x.clamp(-1, 1) + 1) / 2).flatten(1).mean(1)
    if label is None:
        raise InterpolantError("--steer confidence needs --label (the digit to be confident "
                               "of), e.g. --label 3")
    if isinstance(label, bool) or not 0 <= label < 10:
        raise InterpolantError(f"--label {label!r} is not a digit: give 0..9")

    def confidence(x: Tensor) -> Tensor:
        logits = metrics.digits_logits(x.clamp(-1, 1).float())
        return torch.log_softmax(logits, 1)[:, label].to(x.dtype)

    return confidence


class _Rows:
    """The denoiser, counting the rows it evaluates (network passes for one sample each)."""

    def __init__(self, den: Any) -> None:
        self.den, self.path, self.nfe, self.rows = den, den.path, 0, 0

    def __call__(self, x: Tensor, t: Any, cond: Any = None, target: str = "x0") -> Tensor:
        self.nfe += 1
        self.rows += x.shape[0]
        return self.den(x, t, cond, target)


def sample_steered(args: argparse.Namespace, run: TrainedRun) -> int:
    """The ``--steer`` branch of ``interpolant sample`` (module docstring)."""
    if args.steer_method not in guidance.STEERING_METHODS:
        raise unknown_name("steering method", args.steer_method, guidance.STEERING_METHODS)
    k_max = check_count(args.particles, "--particles")
    reward = reward_function(args.steer, args.label)
    if tuple(run.shape) != (1, 8, 8):
        raise InterpolantError(f"--steer rewards read 8x8 grey digits; this run's samples have "
                               f"shape {run.shape}")
    den = _Rows(run.denoiser)
    cond = None
    if pages.num_classes(run.denoiser) is not None and args.label is not None:
        label = pages.check_label(run.denoiser, args.label)
        cond = torch.full((args.n,), label, dtype=torch.long)
    x1 = torch.randn(args.n, *run.shape, generator=torch.Generator().manual_seed(args.seed))
    counts = sorted({min(2**i, k_max) for i in range(k_max.bit_length() + 1)})
    rows, samples = [], x1
    for k in counts:
        before, start = den.rows, time.perf_counter()
        samples = guidance.steer(den, x1, reward, args.steer_method, particles=k,
                                 steps=args.nfe, cond=cond,
                                 generator=torch.Generator().manual_seed(args.seed + 1)).detach()
        rows.append({"particles": k, "nfe": (den.rows - before) // args.n,
                     "reward": float(reward(samples).mean()),
                     "seconds": round((time.perf_counter() - start) / args.n, 3)})
    out = Path(args.out or args.run_dir / "samples")
    out = out if out.suffix == "" else out.parent
    name = f"steer_{args.steer}"
    picture = images.save_grid(samples.clamp(-1, 1), out / f"{name}_{args.steer_method}_"
                               f"{k_max}.png", clip=True)
    write_json(out / f"{name}.json", {"reward": args.steer, "method": args.steer_method,
                                      "label": args.label, "steps": args.nfe, "rows": rows})
    fig, ax = plots.new_figure()
    ax.plot([r["nfe"] for r in rows], [r["reward"] for r in rows], "o-")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="NFE per sample", ylabel=f"mean {args.steer} reward",
           title=f"{args.steer_method}: reward against compute")
    plot = plots.save_figure(fig, out / f"{name}.png")
    first, last = rows[0], rows[-1]
    print(f"{args.steer} reward {first['reward']:.3f} at {first['nfe']} NFE -> "
          f"{last['reward']:.3f} at {last['nfe']} NFE per sample ({args.steer_method}, "
          f"{k_max} particles) -> {picture}, {plot}, {out / (name + '.json')}")
    return 0
