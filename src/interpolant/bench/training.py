"""Training speed on the 8x8 digits: interpolant's trainer vs a plain diffusers recipe.

Both train an eps-predicting U-Net on the DDPM linear schedule (1000 steps, betas 1e-4..0.02)
with AdamW (same lr, warm-up, batch size, gradient clipping at 1), on the same 1500 training
digits. The diffusers side is the standard loop of diffusers' ``train_unconditional`` example:
``UNet2DModel`` + ``DDPMScheduler.add_noise`` with integer timesteps and ``F.mse_loss``. Ours is
:class:`interpolant.training.Trainer` on ``VPDiscrete.from_betas("linear")`` (uniform continuous
``t``; index ``k`` sits at ``t = (k + 1) / 1000``) with :class:`interpolant.models.UNet` sized to
the diffusers model's parameter count.

Quality is the Digits-FD (issue #4): :func:`interpolant.metrics.digits_fd` between samples of
each model and the 297 held-out test digits. At evenly spaced marks of the training-time budget
(``--fd-evals``, plus one at step 0) each model's current raw weights (no EMA on either side;
neither run keeps one) draw ``--fd-samples`` digits with the same sampler, ``interpolant.sample(...,
solver="dpm++2m", steps=20)``, from the same start noise (one fixed generator). Both networks are
wrapped as ``interpolant.Denoiser(..., prediction="eps")`` on the same path,
``VPDiscrete(scheduler.alphas_cumprod.double())``: the diffusers model was trained on integer
indices ``k`` and sees ``k = 1000 t - 1`` (``time_scale=1000, time_shift=-1``); ours was trained by
the Trainer on the continuous ``t`` itself (the objective calls ``model(x_t, t)``) and sees ``t``
unchanged. Samples are clamped to ``[-1, 1]``. The noise floor, ``digits_fd(train[:n], test)``
at the same ``n``, is computed and printed; the headline is the time to reach ``--fd-threshold``
(default 3x that floor), interpolated linearly in training time between evaluations.

The held-out denoising loss is kept: eps-MSE on a fixed set of ``(x0, k, eps)`` triples from the
test digits (``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` is the same tensor for both models),
measured after every chunk. The two runs are interleaved in chunks of steps so that background
load on the machine falls on both alike; only training time is clocked (no evaluation, neither
eps-MSE nor sampling nor FD, is). Reported: time to the FD threshold and to the loss threshold,
the loss after equal training time, and their ratios.

    python benchmarks/training.py            # full: 150 s of training per model, 10 FD evals
    python benchmarks/training.py --quick    # 10 s per model, 2 FD evals of 200 samples

The loss table gives the best held-out loss reached by each time mark.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.nn import functional as F

import interpolant as ip
from interpolant.data import digits
from interpolant.metrics import digits_fd
from interpolant.models import UNet, count_parameters
from interpolant.training import TrainConfig, Trainer


def diffusers_model():
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))


def matched_unet(target_count: int) -> UNet:
    """Our UNet (two levels, attention at the second) with the closest parameter count."""
    best = min(range(4, 65, 2), key=lambda b: abs(count_parameters(
        UNet(1, base_channels=b, channel_mults=(1, 2), num_res_blocks=1)) - target_count))
    return UNet(1, base_channels=best, channel_mults=(1, 2), num_res_blocks=1)


class DiffusersRecipe:
    """The plain loop: sample k, add noise, predict, MSE, AdamW with warm-up, clip."""

    def __init__(self, data: torch.Tensor, batch_size: int, lr: float, warmup: int, seed: int):
        from diffusers import DDPMScheduler

        torch.manual_seed(seed)
        self.model = diffusers_model()
        self.scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / warmup))
        self.data, self.batch_size, self.g = data, batch_size, torch.Generator().manual_seed(seed)

    def step(self) -> float:
        idx = torch.randint(0, len(self.data), (self.batch_size,), generator=self.g)
        x0 = self.data[idx]
        noise = torch.randn(x0.shape, generator=self.g)
        k = torch.randint(0, 1000, (self.batch_size,), generator=self.g)
        loss = F.mse_loss(self.model(self.scheduler.add_noise(x0, noise, k), k).sample, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        return float(loss.detach())

    @torch.no_grad()
    def eval_loss(self, x0, k, noise) -> float:
        self.model.eval()
        pred = torch.cat([self.model(xk, kk).sample for xk, kk in
                          zip(self.scheduler.add_noise(x0, noise, k).split(512), k.split(512))])
        self.model.train()
        return float(F.mse_loss(pred, noise))

    def denoiser(self, path: ip.paths.GaussianPath) -> ip.Denoiser:
        """Trained on integer indices ``k``: the network sees ``k = N t - 1``."""
        n = self.scheduler.config.num_train_timesteps
        return ip.Denoiser(lambda x, t, cond=None: self.model(x, t).sample, path,
                           prediction="eps", time_scale=n, time_shift=-1)


class Ours:
    def __init__(self, data, batch_size, lr, warmup, seed, target_count):
        torch.manual_seed(seed)
        self.model = matched_unet(target_count)
        self.path = ip.paths.VPDiscrete.from_betas("linear", 1000)
        cfg = TrainConfig(target="eps", steps=10**9, batch_size=batch_size, lr=lr, warmup=warmup,
                          clip_grad=1.0, seed=seed, progress=False, label_dropout=0.0)
        self.trainer = Trainer(self.model, self.path, data, config=cfg)

    def step(self) -> float:
        return self.trainer.step()["loss"]

    @torch.no_grad()
    def eval_loss(self, x0, k, noise) -> float:
        self.model.eval()
        t = (k + 1).float() / 1000
        xt = self.path.sample(x0, t.double(), noise).float()
        pred = torch.cat([self.model(a, b) for a, b in zip(xt.split(512), t.split(512))])
        self.model.train()
        return float(F.mse_loss(pred, noise))

    def denoiser(self, path: ip.paths.GaussianPath) -> ip.Denoiser:
        """Trained by the Trainer on the path's own continuous ``t``: the network sees ``t``."""
        return ip.Denoiser(self.model, path, prediction="eps")


@torch.no_grad()
def sample_fd(run, path, x1: torch.Tensor, reference: torch.Tensor, steps: int) -> float:
    """Digits-FD of ``len(x1)`` samples (dpm++2m from the start noise ``x1``, current raw weights,
    clamped to [-1, 1]) against ``reference``."""
    run.model.eval()
    try:
        x = ip.sample(run.denoiser(path), x1, solver="dpm++2m", steps=steps)
    finally:
        run.model.train()
    return digits_fd(x.clamp(-1.0, 1.0), reference)


def crossing(points: list[tuple[float, float]], threshold: float) -> tuple[float, float] | None:
    """First ``(time, value)`` at or below ``threshold`` in ``points`` (time-ordered), and the time
    interpolated linearly between it and the previous point: ``(interpolated, first_at)``."""
    for i, (c, v) in enumerate(points):
        if v <= threshold:
            if i == 0:
                return c, c
            c0, v0 = points[i - 1]
            return c0 + (c - c0) * (v0 - threshold) / (v0 - v), c
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="10 s of training per model, 2 FD evaluations of 200 samples")
    p.add_argument("--seconds", type=float, default=None, help="training time per model")
    p.add_argument("--threshold", type=float, default=0.10, help="held-out eps-MSE to reach")
    p.add_argument("--fd-threshold", type=float, default=None,
                   help="Digits-FD to reach (default: 3x the noise floor at --fd-samples)")
    p.add_argument("--fd-evals", type=int, default=None,
                   help="FD evaluations, evenly spaced in training time, the last at the end "
                        "(plus one at step 0; default 10, quick 2)")
    p.add_argument("--fd-samples", type=int, default=None,
                   help="samples per FD evaluation (default 500, quick 200)")
    p.add_argument("--fd-steps", type=int, default=20, help="dpm++2m steps per sample")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--chunk", type=int, default=20, help="steps per turn when interleaving")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 avoids OpenMP stalls on a shared machine)")
    args = p.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 150.0)
    n_evals = args.fd_evals or (2 if args.quick else 10)
    n_fd = args.fd_samples or (200 if args.quick else 500)
    torch.set_num_threads(args.threads)

    train_x, _ = digits("train")
    test_x, _ = digits("test")
    g = torch.Generator().manual_seed(1234)
    x0 = test_x.repeat(2, 1, 1, 1)  # 594 fixed triples
    k = torch.randint(0, 1000, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x1 = torch.randn((n_fd, *test_x.shape[1:]), generator=torch.Generator().manual_seed(4321))
    floor = digits_fd(train_x[:n_fd], test_x)
    fd_threshold = args.fd_threshold if args.fd_threshold is not None else 3.0 * floor

    theirs = DiffusersRecipe(train_x, args.batch_size, args.lr, 100, 0)
    n_theirs = count_parameters(theirs.model)
    ours = Ours(train_x, args.batch_size, args.lr, 100, 0, n_theirs)
    # the sampling path for both: diffusers' own alphas_cumprod (agrees with ours to ~2e-7)
    path = ip.paths.VPDiscrete(theirs.scheduler.alphas_cumprod.double())
    runs = {"interpolant": ours, "diffusers": theirs}
    clock = {name: 0.0 for name in runs}
    steps = {name: 0 for name in runs}
    reached: dict[str, float | None] = {name: None for name in runs}
    curve: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    by_step: dict[str, dict[int, float]] = {name: {} for name in runs}
    marks = [seconds * (i + 1) / n_evals for i in range(n_evals)]
    # per run: (mark, training seconds, steps, eps-MSE, Digits-FD)
    fd_rows: dict[str, list[tuple[float, float, int, float, float]]] = {name: [] for name in runs}
    marks_done = {name: 0 for name in runs}
    print(f"parameters: interpolant UNet {count_parameters(ours.model):,} "
          f"(base_channels={ours.model.config['base_channels']}), diffusers UNet2DModel "
          f"{n_theirs:,}; batch {args.batch_size}, lr {args.lr}, {seconds:.0f} s each, "
          f"eps-MSE threshold {args.threshold}", flush=True)
    print(f"Digits-FD: {n_fd} samples per evaluation, dpm++2m {args.fd_steps} steps, raw weights "
          f"(no EMA) for both, fixed start noise; noise floor digits_fd(train[:{n_fd}], test) = "
          f"{floor:.3f}; FD threshold {fd_threshold:.3f}"
          + (" (3x floor)" if args.fd_threshold is None else ""), flush=True)

    def evaluate(name: str, mark: float) -> None:
        fd = sample_fd(runs[name], path, x1, test_x, args.fd_steps)
        eps = runs[name].eval_loss(x0, k, noise)
        fd_rows[name].append((mark, clock[name], steps[name], eps, fd))
        print(f"  {name:>11}: {clock[name]:6.1f} s, {steps[name]:6d} steps, eps-MSE {eps:.4f}, "
              f"Digits-FD {fd:8.3f}", flush=True)

    for name in runs:
        evaluate(name, 0.0)
    while min(clock.values()) < seconds:
        for name, run in runs.items():
            if clock[name] >= seconds:
                continue
            tick = time.perf_counter()
            for _ in range(args.chunk):
                run.step()
            clock[name] += time.perf_counter() - tick
            steps[name] += args.chunk
            loss = run.eval_loss(x0, k, noise)
            curve[name].append((clock[name], loss))
            by_step[name][steps[name]] = loss
            if reached[name] is None and loss <= args.threshold:
                reached[name] = clock[name]
            done = [m for m in marks if m <= clock[name]]
            if len(done) > marks_done[name]:  # at most one evaluation per chunk
                marks_done[name] = len(done)
                evaluate(name, done[-1])

    names = list(runs)
    print(f"\nDigits-FD during training ({n_fd} samples vs the {len(test_x)} test digits; "
          f"noise floor {floor:.3f}); eps-MSE is the held-out loss at that moment")
    print("\n| mark | " + " | ".join(f"{n} s | {n} steps | {n} eps-MSE | {n} Digits-FD"
                                      for n in names) + " |")
    print("|---|" + "---|" * (4 * len(names)))
    for i in range(min(len(fd_rows[n]) for n in names)):
        cells = []
        for n in names:
            _, c, st, eps, fd = fd_rows[n][i]
            cells += [f"{c:.1f}", f"{st}", f"{eps:.4f}", f"{fd:.3f}"]
        print(f"| {fd_rows[names[0]][i][0]:.0f} s | " + " | ".join(cells) + " |")

    fd_cross = {n: crossing([(c, fd) for _, c, _, _, fd in fd_rows[n]], fd_threshold)
                for n in names}
    final = {name: curve[name][-1][1] for name in runs}
    best = {name: min(v for _, v in curve[name]) for name in runs}
    print(f"\n| run | steps | steps/s | Digits-FD at {seconds:.0f} s | best Digits-FD | "
          f"time to FD {fd_threshold:.2f} (interpolated; first eval at/below) | "
          f"held-out eps-MSE at {seconds:.0f} s | best | time to eps-MSE {args.threshold} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in runs:
        when = "not reached" if reached[name] is None else f"{reached[name]:.1f} s"
        fds = [r[4] for r in fd_rows[name]]
        cr = fd_cross[name]
        fd_when = "not reached" if cr is None else f"{cr[0]:.1f} s ({cr[1]:.1f} s)"
        print(f"| {name} | {steps[name]} | {steps[name] / clock[name]:.1f} | {fds[-1]:.3f} | "
              f"{min(fds):.3f} | {fd_when} | {final[name]:.4f} | {best[name]:.4f} | {when} |")
    loss_marks = [seconds * f for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
    print("\n| training time | " + " | ".join(f"{m:.0f} s" for m in loss_marks) + " |")
    print("|---|" + "---|" * len(loss_marks))
    for name in runs:
        at = [min((v for c, v in curve[name] if c <= m), default=float("nan"))
              for m in loss_marks]
        print(f"| {name} best eps-MSE | " + " | ".join(f"{v:.4f}" for v in at) + " |")
    common = min(steps.values())
    print(f"\nheld-out eps-MSE at equal steps ({common}): " + ", ".join(
        f"{name} {by_step[name][common]:.4f}" for name in runs))
    a, b = fd_cross["interpolant"], fd_cross["diffusers"]
    if a and b and a[1] > 0:
        print(f"\ntime-to-FD-threshold ratio (diffusers / interpolant; headline): "
              f"{b[0] / a[0]:.2f} interpolated, {b[1] / a[1]:.2f} at evaluation points")
    else:
        print(f"\ntime-to-FD-threshold ratio: threshold {fd_threshold:.2f} not reached by "
              + ", ".join(n for n in names if fd_cross[n] is None))
    ladder = sorted({round(m * floor, 2) for m in (2, 3, 5, 10, 20)} | {round(fd_threshold, 2)})
    print("\n| time to Digits-FD <= (interpolated) | " + " | ".join(f"{x:.2f}" for x in ladder)
          + " |")
    print("|---|" + "---|" * len(ladder))
    ladder_cross = {n: [crossing([(c, fd) for _, c, _, _, fd in fd_rows[n]], x) for x in ladder]
                    for n in names}
    for n in names:
        print(f"| {n} | " + " | ".join("-" if cr is None else f"{cr[0]:.1f} s"
                                       for cr in ladder_cross[n]) + " |")
    print("| ratio (diffusers / interpolant) | " + " | ".join(
        f"{b_[0] / a_[0]:.2f}" if a_ and b_ and a_[0] > 0 else "-"
        for a_, b_ in zip(ladder_cross["interpolant"], ladder_cross["diffusers"])) + " |")
    print(f"\nDigits-FD ratio at equal time (diffusers / interpolant): "
          f"{fd_rows['diffusers'][-1][4] / fd_rows['interpolant'][-1][4]:.2f}")
    if reached["interpolant"] and reached["diffusers"]:
        print(f"time-to-eps-MSE-threshold ratio (diffusers / interpolant): "
              f"{reached['diffusers'] / reached['interpolant']:.2f}")
    print(f"eps-MSE ratio at equal time (diffusers / interpolant): "
          f"{final['diffusers'] / final['interpolant']:.2f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
