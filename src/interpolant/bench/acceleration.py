"""Acceleration of a digits U-Net: seconds per sample and Digits-FD of every method, as ratios
to the plain model in the same run.

A U-Net (the demo's: ``UNet()``, unconditional here) is trained briefly on the 1500 training
digits (cosine VP path, v-prediction, :class:`interpolant.training.Trainer`). Every method then
draws ``--samples`` digits from the same start noise with DPM-Solver++(2M) at ``--nfe``
evaluations (log-SNR grid) unless its row says otherwise; Digits-FD is against the 297 test
digits. Methods (all from :mod:`interpolant.acceleration`):

- DeepCache with interval 2 and 3 (level 0: only the full-resolution level runs at cached calls);
- encoder propagation (Faster Diffusion) with interval 2: the decoder alone at cached calls;
- DeepCache with a learned schedule (``learn_schedule`` on the 16 search starts, as many full
  calls as interval 3: HarmoniCa's objective);
- fake 8-bit weights, and 8-bit weights and activations calibrated across the trajectory
  (accuracy only: fake quantization runs at float speed);
- fake 4-bit weights, plain and time-aware (TFMQ-DM: the time embedding and its projections
  kept exact); 4-bit weights and activations, calibrated across the trajectory (PTQ4DM) and
  by EDA-DM (64 calibration inputs allotted to the steps by density and diversity, rounding
  learned block by block);
- int8 dynamic quantization (real kernels, Linear layers only);
- bf16 inference; ``torch.compile`` (inductor; compile time excluded, ``--no-compile`` skips);
- combinations: DeepCache 3 with int8, DeepCache 2 with bf16, the searched choice with bf16;
- DPM-Solver-v3 with statistics of the trained model (``model_statistics`` on 128 training
  digits, 12 log-SNRs, pooled over pixels: per-pixel estimates from 128 digits are too noisy
  and made the solver worse than DPM-Solver++ in our runs);
- the solver and grid chosen by ``search`` (among ``SEARCHED`` on ``SEARCH_GRIDS``, 16 starts,
  one refinement sweep) for half the
  budget (``--nfe / 2``), beside plain DPM-Solver++(2M) at that budget, and with the
  Time-Shift Sampler (window 0.03, cutoff 0.3, the paper's DPM-Solver setting; data variance
  of the training digits), and with DC-Solver's compensation (ratios fitted on the 16 search
  starts).

Digits-FD comes from one run of ``--samples`` digits per method (which also warms it up); the
time per sample (CPU time of the process) is the best of ``--repeats`` rounds on a batch of
``--time-batch``, the methods
taking turns in every round so that background load falls on all alike. The per-call error
(:func:`interpolant.acceleration.step_errors`, 32 samples) is the largest relative error of a
method's network output against the plain one along its own trajectory.

    python -m interpolant.bench.acceleration            # ~10 min (one core of a shared machine)
    python -m interpolant.bench.acceleration --quick    # ~5 min
    interpolant bench acceleration --report DIR         # also DIR/index.html (acceleration_page)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import interpolant as ip
from interpolant import acceleration as acc
from interpolant.data import digits
from interpolant.metrics import digits_fd
from interpolant.models import UNet
from interpolant.training import TrainConfig, Trainer

from interpolant.bench.acceleration_page import markdown, summarise, write_page

SEARCHED = (("dpm++2m", {}), ("unipc", {}), ("dpm-v3", {}))
SEARCH_GRIDS = {"grid_names": ("logsnr", "uniform"), "rhos": (2.0, 5.0, 10.0)}


def train(seconds: float, seed: int = 0, steps: int | None = None) -> ip.Denoiser:
    """A U-Net trained for ``seconds`` of wall time (or exactly ``steps`` steps, the same on a
    loaded machine) on the training digits (v-prediction)."""
    x, _ = digits("train")
    torch.manual_seed(seed)
    net = UNet()
    path = ip.paths.VPCosine()
    cfg = TrainConfig(target="v", steps=10**9, batch_size=32, lr=2e-3, warmup=100, seed=seed,
                      progress=False, label_dropout=0.0)
    trainer = Trainer(net, path, x, config=cfg)
    start, done = time.perf_counter(), 0
    while (done < steps) if steps is not None else (time.perf_counter() - start < seconds):
        trainer.step()
        done += 1
    seconds = time.perf_counter() - start
    print(f"trained UNet ({sum(p.numel() for p in net.parameters()):,} parameters) for "
          f"{done} steps in {seconds:.0f} s", flush=True)
    return ip.Denoiser(net.eval(), path, prediction="v")


def seconds(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(CPU, wall)`` seconds of ``fn()``: the CPU time of this process (less sensitive than
    wall time to other processes on a shared machine; with one torch thread it is the compute
    time) and the wall-clock time."""
    tick, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - tick, time.perf_counter() - wall


def methods(den: ip.Denoiser, x1: torch.Tensor, args: argparse.Namespace
            ) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(label, denoiser, sampling arguments)`` for every row of the table."""
    base = {"solver": "dpm++2m", "steps": args.nfe, "grid": "logsnr"}
    half = args.nfe // 2
    cal = acc.calibration_inputs(den, x1[:32], per_call=8, **base)
    rows = [
        ("plain", den, base),
        ("deepcache interval 2", acc.accelerate(den, cache="deepcache", interval=2), base),
        ("deepcache interval 3", acc.accelerate(den, cache="deepcache", interval=3), base),
        ("encoder propagation interval 2", acc.accelerate(den, cache="encoder", interval=2),
         base),
        ("fake 8-bit weights", acc.accelerate(den, quantize="fake8"), base),
        ("fake 8-bit weights+activations", acc.accelerate(den, quantize="fake8a",
                                                           calibration=cal), base),
        ("fake 4-bit weights", acc.accelerate(den, quantize="fake4"), base),
        ("fake 4-bit weights, time-aware", acc.rewrap(den, acc.fake_quantize(
            den.model, 4, calibration=cal, time_aware=True)), base),
        ("fake 4-bit weights+activations", acc.accelerate(den, quantize="fake4a",
                                                           calibration=cal), base),
        ("EDA-DM 4-bit weights+activations", acc.accelerate(
            den, quantize="eda4", calibration=acc.eda_calibration(den, x1[:32], 64, **base)),
         base),
        ("int8 dynamic (Linear)", acc.accelerate(den, quantize="int8"), base),
        ("bf16", acc.accelerate(den, dtype=torch.bfloat16), base),
        ("deepcache 3 + int8", acc.accelerate(den, cache="deepcache", interval=3,
                                             quantize="int8"), base),
        ("deepcache 2 + bf16", acc.accelerate(den, cache="deepcache", interval=2,
                                             dtype=torch.bfloat16), base),
    ]
    if args.compile:
        rows.append(("torch.compile", acc.accelerate(den, compile=True), base))
    train_x, _ = digits("train")
    tick = time.perf_counter()
    stats = acc.model_statistics(den, train_x[:128], n_lams=12, per_dimension=False,
                                 generator=torch.Generator().manual_seed(7))
    print(f"dpm-v3 statistics: {time.perf_counter() - tick:.1f} s", flush=True)
    rows.append(("dpm-v3 (model statistics)", den, {**base, "solver": "dpm-v3",
                                                   "statistics": stats}))
    tick = time.perf_counter()
    starts = torch.randn((16, *x1.shape[1:]), generator=torch.Generator().manual_seed(11))
    found = acc.search(den, starts, nfe=half, candidates=SEARCHED, refine=1, reference_steps=100,
                       **SEARCH_GRIDS)
    print(f"search for {half} NFE: {found.solver} {found.options} grid "
          f"{[round(t, 4) for t in found.grid.tolist()]}, error {found.error:.4f} vs default "
          f"{found.default_error:.4f} ({time.perf_counter() - tick:.1f} s)", flush=True)
    tick = time.perf_counter()
    learned = acc.learn_schedule(den, starts, full=len(range(0, args.nfe, 3)), **base)
    print(f"learned DeepCache schedule: full calls {learned.full_calls}, error "
          f"{learned.error:.2e} vs uniform {learned.uniform_error:.2e} "
          f"({time.perf_counter() - tick:.1f} s)", flush=True)
    rows.append(("deepcache, learned schedule (as many full calls as interval 3)",
                 acc.accelerate(den, cache="deepcache", full_calls=learned.full_calls), base))
    rows.append((f"dpm++2m at {half} NFE", den, {**base, "steps": half}))
    shifted = acc.TimeShift(den, window=0.03, cutoff=0.3,
                            data_variance=acc.TimeShift.variance_of(train_x))
    rows.append((f"time-shift dpm++2m at {half} NFE", shifted, {**base, "steps": half}))
    tick = time.perf_counter()
    grid = ip.grids.make("logsnr", den.path, half, 1.0, None)
    ratios = acc.fit_ratios(den, starts, grid, solver="dpm++2m", refine=10)
    print(f"dc-solver ratios for {half} NFE: {[round(r, 3) for r in ratios]} "
          f"({time.perf_counter() - tick:.1f} s)", flush=True)
    rows.append((f"dc-solver dpm++2m at {half} NFE", acc.DynamicCompensation(den, ratios),
                 {"solver": "dpm++2m", "grid": grid}))
    rows.append((f"searched at {half} NFE ({found.solver})", den, found.sample_kwargs()))
    rows.append((f"searched at {half} NFE + bf16", acc.accelerate(den, dtype=torch.bfloat16),
                 found.sample_kwargs()))
    return rows


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nfe", type=int, default=20, help="the budget of the compared runs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: no OpenMP stalls on a shared machine)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--report", help="folder for the report page (index.html, results.json)")
    p.add_argument("--quick", action="store_true",
                   help="20 s of training, 150 samples, 1 timing round, no compile")
    p.add_argument("--train-steps", type=int, help="train this many steps instead of "
                   "--train-seconds (the same model on a loaded machine)")
    for name, default, text in (("train-seconds", None, "default 75, quick 20"),
                                ("samples", None, "for Digits-FD (300, quick 150)"),
                                ("repeats", None, "timing rounds (2, quick 1)"),
                                ("time-batch", 100, "batch of the timed runs")):
        p.add_argument(f"--{name}", type=float if name == "train-seconds" else int,
                       default=default, help=text)
    args = p.parse_args(argv)
    args.compile = args.compile and not args.quick
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    den = train(args.train_seconds or (20.0 if args.quick else 75.0), steps=args.train_steps)
    n = args.samples or (150 if args.quick else 300)
    test_x, _ = digits("test")
    x1 = torch.randn((n, *test_x.shape[1:]), generator=torch.Generator().manual_seed(4321))
    xt = x1[: args.time_batch]
    with torch.no_grad():
        rows = methods(den, x1, args)
        fds, nfes, errors, shown = [], [], [], {}
        for label, d, kw in rows:
            drawn = ip.sample(d, x1, **kw).clamp(-1, 1)
            shown[label] = drawn[:36]
            fds.append(digits_fd(drawn, test_x))
            nfes.append(list(ip.trajectory(d, x1[:1], **kw))[-1].nfe)
            errors.append(max(acc.step_errors(den, d, x1[:32], **kw)) if d is not den else None)
            print(f"  {label}: Digits-FD {fds[-1]:.3f}", flush=True)
        best, walls = [float("inf")] * len(rows), [float("inf")] * len(rows)
        for _ in range(args.repeats or (1 if args.quick else 2)):
            for i, (_, d, kw) in enumerate(rows):
                cpu, wall = seconds(lambda: ip.sample(d, xt, **kw))
                best[i], walls[i] = min(best[i], cpu / len(xt)), min(walls[i], wall / len(xt))
    floor = digits_fd(digits("train")[0][:n], test_x)
    note = (f"Digits-FD of {n} samples vs the {len(test_x)} test digits (noise floor, train vs "
            f"test: {floor:.3f}); CPU time per sample on batches of {len(xt)}, {args.threads} "
            "thread(s) (wall-clock speed-up beside); per-call error: max |D_method - D_plain| / |D_plain| along the method's "
            "own trajectory (32 samples; '-' for the plain network)")
    measured = [{"method": label, "nfe": nfe, "seconds": sec, "wall": wall, "fd": fd,
                 "error": err} for (label, _, _), nfe, sec, wall, fd, err
                in zip(rows, nfes, best, walls, fds, errors)]
    print(f"\n{note}\n\n{markdown(summarise(measured))}")
    if args.report:
        page = write_page(args.report, measured, shown, [note, f"Arguments: {vars(args)}"])
        print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
