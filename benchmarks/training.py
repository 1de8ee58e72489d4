"""Training speed on the 8x8 digits: interpolant's trainer vs a plain diffusers recipe.

Both train an eps-predicting U-Net on the DDPM linear schedule (1000 steps, betas 1e-4..0.02)
with AdamW (same lr, warm-up, batch size, gradient clipping at 1), on the same 1500 training
digits. The diffusers side is the standard loop of diffusers' ``train_unconditional`` example:
``UNet2DModel`` + ``DDPMScheduler.add_noise`` with integer timesteps and ``F.mse_loss``. Ours is
:class:`interpolant.training.Trainer` on ``VPDiscrete.from_betas("linear")`` (uniform continuous
``t``; index ``k`` sits at ``t = (k + 1) / 1000``) with :class:`interpolant.models.UNet` sized to
the diffusers model's parameter count.

Quality is the held-out denoising loss: eps-MSE on a fixed set of ``(x0, k, eps)`` triples from
the 297 test digits (``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` is the same tensor for both
models). The two runs are interleaved in chunks of steps so that background load on the machine
falls on both alike; only training time is clocked (evaluation is not). Reported: the time to
reach the loss threshold, the loss after equal training time, and their ratios.

    python benchmarks/training.py            # full: 150 s of training per model
    python benchmarks/training.py --quick    # 15 s per model

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="15 s of training per model")
    p.add_argument("--seconds", type=float, default=None, help="training time per model")
    p.add_argument("--threshold", type=float, default=0.10, help="held-out eps-MSE to reach")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--chunk", type=int, default=20, help="steps per turn when interleaving")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 avoids OpenMP stalls on a shared machine)")
    args = p.parse_args(argv)
    seconds = args.seconds or (15.0 if args.quick else 150.0)
    torch.set_num_threads(args.threads)

    train_x, _ = digits("train")
    test_x, _ = digits("test")
    g = torch.Generator().manual_seed(1234)
    x0 = test_x.repeat(2, 1, 1, 1)  # 594 fixed triples
    k = torch.randint(0, 1000, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)

    theirs = DiffusersRecipe(train_x, args.batch_size, args.lr, 100, 0)
    n_theirs = count_parameters(theirs.model)
    ours = Ours(train_x, args.batch_size, args.lr, 100, 0, n_theirs)
    runs = {"interpolant": ours, "diffusers": theirs}
    clock = {name: 0.0 for name in runs}
    steps = {name: 0 for name in runs}
    reached: dict[str, float | None] = {name: None for name in runs}
    curve: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    by_step: dict[str, dict[int, float]] = {name: {} for name in runs}
    print(f"parameters: interpolant UNet {count_parameters(ours.model):,} "
          f"(base_channels={ours.model.config['base_channels']}), diffusers UNet2DModel "
          f"{n_theirs:,}; batch {args.batch_size}, lr {args.lr}, {seconds:.0f} s each, "
          f"threshold {args.threshold}", flush=True)
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
    final = {name: curve[name][-1][1] for name in runs}
    best = {name: min(v for _, v in curve[name]) for name in runs}
    print(f"\n| run | steps | steps/s | held-out eps-MSE at {seconds:.0f} s | best | "
          f"time to {args.threshold} |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        when = "not reached" if reached[name] is None else f"{reached[name]:.1f} s"
        print(f"| {name} | {steps[name]} | {steps[name] / clock[name]:.1f} | {final[name]:.4f} "
              f"| {best[name]:.4f} | {when} |")
    marks = [seconds * f for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
    print("\n| training time | " + " | ".join(f"{m:.0f} s" for m in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for name in runs:
        at = [min((v for c, v in curve[name] if c <= m), default=float("nan")) for m in marks]
        print(f"| {name} best eps-MSE | " + " | ".join(f"{v:.4f}" for v in at) + " |")
    common = min(steps.values())
    print(f"\nheld-out eps-MSE at equal steps ({common}): " + ", ".join(
        f"{name} {by_step[name][common]:.4f}" for name in runs))
    if reached["interpolant"] and reached["diffusers"]:
        print(f"\ntime-to-threshold ratio (diffusers / interpolant): "
              f"{reached['diffusers'] / reached['interpolant']:.2f}")
    print(f"loss ratio at equal time (diffusers / interpolant): "
          f"{final['diffusers'] / final['interpolant']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
