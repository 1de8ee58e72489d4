"""Acceleration of a digits DiT: block caching, its searched schedule and HarmoniCa's trained
router, and early exit (calibrated depths, DeeDiff's trained uncertainty heads), as ratios to
the plain model of the same run.

A DiT (hidden 64, 4 blocks, 4 heads, 2x2 patches of the 8x8 digits) is trained for a fixed
number of steps (cosine VP path, v-prediction). Every method draws ``--samples`` digits from
the same start noise with DPM-Solver++(2M) at ``--nfe`` evaluations (log-SNR grid):

- FORA block caching with interval 2 (attention and MLP outputs reused at every other call);
- the same number of full calls placed by ``learn_schedule`` (16 search starts);
- HarmoniCa's router (``train_router``, lambda 0, from that schedule, cut to the same block
  evaluations: equal compute), trained on the 16 search starts;
- early exit with depths calibrated per time (``calibrate_exits``, thresholds ``--exit``);
- DeeDiff's uncertainty heads (``train_heads`` on a plain run of 64 starts; each sample
  leaves when its predicted error is under ``--exit``).

Columns: CPU and wall time per sample (best of ``--repeats`` rounds on the whole batch, the
methods taking turns), the block evaluations spent (fraction of the plain run's), Digits-FD
against the 297 test digits, and the final samples' relative error against the plain ones.

    interpolant bench acceleration_dit            # ~3 min on one core
    interpolant bench acceleration_dit --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

import interpolant as ip
from interpolant import acceleration as acc
from interpolant.data import digits
from interpolant.metrics import digits_fd
from interpolant.models import DiT
from interpolant.training import TrainConfig, Trainer


def train(steps: int, seed: int = 0) -> ip.Denoiser:
    """A DiT trained ``steps`` steps on the training digits (v-prediction)."""
    x, _ = digits("train")
    torch.manual_seed(seed)
    net = DiT(hidden=64, depth=4, heads=4)
    cfg = TrainConfig(target="v", steps=steps, batch_size=64, lr=1e-3, warmup=50, seed=seed,
                      progress=False, label_dropout=0.0)
    trainer = Trainer(net, ip.paths.VPCosine(), x, config=cfg)
    for _ in range(steps):
        trainer.step()
    return ip.Denoiser(net.eval(), ip.paths.VPCosine(), prediction="v")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nfe", type=int, default=10)
    p.add_argument("--train-steps", type=int, default=None, help="default 1500, quick 400")
    p.add_argument("--samples", type=int, default=None, help="default 300, quick 150")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--exit", default="0.2,0.4", help="early-exit error thresholds, "
                   "comma-separated")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    steps = args.train_steps or (400 if args.quick else 1500)
    tick = time.process_time()
    den = train(steps)
    print(f"trained DiT for {steps} steps ({time.process_time() - tick:.0f} s CPU)", flush=True)
    n = args.samples or (150 if args.quick else 300)
    test_x, _ = digits("test")
    train_x, _ = digits("train")
    x1 = torch.randn((n, *test_x.shape[1:]), generator=torch.Generator().manual_seed(4321))
    starts = torch.randn((16, *test_x.shape[1:]), generator=torch.Generator().manual_seed(11))
    kw = {"solver": "dpm++2m", "steps": args.nfe, "grid": "logsnr"}
    depth = len(den.model.blocks)
    tick = time.process_time()
    found = acc.learn_schedule(den, starts, full=args.nfe // 2, cache="block", **kw)
    init = torch.zeros(found.calls, depth, dtype=torch.bool)
    init[found.full_calls] = True
    router = acc.train_router(den, starts, lam=0.0, init=init,
                              budget=len(found.full_calls) * depth, **kw)
    print(f"schedule {found.full_calls} (error {found.error:.2e}), router error "
          f"{router.error:.2e} at compute {router.compute:.2f} "
          f"({time.process_time() - tick:.0f} s CPU)", flush=True)
    tick = time.process_time()
    heads = acc.train_heads(den, torch.randn((64, *test_x.shape[1:]), generator=torch
                                             .Generator().manual_seed(12)), per_call=64, **kw)
    print(f"uncertainty heads trained ({time.process_time() - tick:.0f} s CPU)", flush=True)
    rows = [
        ("plain", den),
        ("block cache interval 2 (FORA)", acc.accelerate(den, cache="block", interval=2)),
        (f"block cache, searched {len(found.full_calls)} full calls",
         acc.accelerate(den, cache="block", full_calls=found.full_calls)),
        ("HarmoniCa router (equal compute)", acc.rewrap(den, acc.RoutedDiT(den.model,
                                                                           router.logits))),
    ]
    for threshold in [float(v) for v in args.exit.split(",")]:
        rows += [(f"early exit, calibrated ({threshold:g})",
                  acc.calibrate_exits(den, starts, threshold, **kw)),
                 (f"DeeDiff heads ({threshold:g})", acc.uncertain_exits(den, heads, threshold))]
    with torch.no_grad():
        plain = ip.sample(den, x1, **kw)
        results = []
        for label, d in rows:
            out = ip.sample(d, x1, **kw)
            used = _evaluations(d, den.model.blocks, x1[:8], kw)
            results.append([label, used, digits_fd(out.clamp(-1, 1), test_x),
                            float((out - plain).norm() / plain.norm())])
            print(f"  {label}: Digits-FD {results[-1][2]:.3f}", flush=True)
        cpu, wall = [float("inf")] * len(rows), [float("inf")] * len(rows)
        for _ in range(args.repeats):
            for i, (_, d) in enumerate(rows):
                t0, w0 = time.process_time(), time.perf_counter()
                ip.sample(d, x1, **kw)
                cpu[i] = min(cpu[i], (time.process_time() - t0) / n)
                wall[i] = min(wall[i], (time.perf_counter() - w0) / n)
    floor = digits_fd(train_x[:n], test_x)
    print(f"\nDigits-FD of {n} samples (noise floor, train vs test: {floor:.3f}); "
          f"{args.nfe} NFE dpm++2m; CPU and wall time per sample, 1 thread\n")
    print("| method | block evals | CPU ms | speed-up | wall speed-up | Digits-FD | FD ratio "
          "| error vs plain |\n|---|---|---|---|---|---|---|---|")
    for (label, used, fd, err), c, w in zip(results, cpu, wall):
        print(f"| {label} | {used:.2f} | {1e3 * c:.3f} | {cpu[0] / c:.2f}x | {wall[0] / w:.2f}x "
              f"| {fd:.3f} | {fd / results[0][2]:.2f} | {err:.2e} |")
    return 0


def _evaluations(den: Any, blocks: Any, x: torch.Tensor, kw: dict[str, Any]) -> float:
    """Fraction of the plain run's block evaluations (per sample) that ``den`` spends sampling
    from ``x``, counted by hooks on the MLPs of the plain network's ``blocks`` (every wrapper
    shares them: a hook fires only when an MLP is computed, not when its output is reused or
    skipped, and sees only the samples still going)."""
    counted = [0]

    def count(module: Any, args: Any, out: torch.Tensor) -> None:
        counted[0] += out.shape[0]

    handles = [b.mlp.register_forward_hook(count) for b in blocks]
    try:
        calls = list(ip.trajectory(den, x, **kw))[-1].nfe
    finally:
        for h in handles:
            h.remove()
    return counted[0] / (calls * len(blocks) * len(x))


if __name__ == "__main__":
    sys.exit(main())
