"""DisBack vs plain score distillation: a one-step generator's distance to the data along
training, with the exact teacher of a 1-D mixture.

Data: ``0.3 N(-1.5, 0.3^2) + 0.7 N(1.5, 0.3^2)`` on ``VPLinear``; the teacher is the exact
mixture denoiser; the fake score starts as the teacher (the exact denoiser plus an MLP
correction whose output layer is zero-initialised, what a copy of a teacher network is). The
generator is a 3-layer MLP of the noise (random initialisation, the same for both methods).
Plain score distillation (:func:`interpolant.fewstep.disback.score_distillation`) and DisBack
(:func:`interpolant.fewstep.disback.disback`: degradation recording of ``--record`` fake steps
and ``--snapshots`` checkpoints, then backtracking) run the same number of generator steps on
the same random streams; the table gives the exact 1-D ``W2`` to fresh data after every
``--every`` generator steps (mean over ``--seeds`` seeds, with the spread), and the CPU
seconds (DisBack's include its recording).

    interpolant bench disback            # 600 generator steps, 3 seeds
    interpolant bench disback --quick    # 200 steps, 2 seeds
"""

from __future__ import annotations

import argparse
import time

import torch

import interpolant as ip
from interpolant.bench.fewstep import TeacherPlus
from interpolant.fewstep.disback import disback, score_distillation

F64 = torch.float64


class Generator(torch.nn.Module):
    """``G(z, t) = net(z)``: a one-step generator in 1-D."""

    def __init__(self, seed: int, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(1, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, 1)).double()

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def w2_1d(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((x.sort(0).values - ref.sort(0).values) ** 2).mean().sqrt())


def curve(method: str, teacher: ip.Denoiser, seed: int, steps: int, every: int, record: int,
          snapshots: int, lr: float, fake_steps: int, z: torch.Tensor, ref: torch.Tensor
          ) -> tuple[list[float], float]:
    gen = Generator(seed)
    torch.manual_seed(seed + 1000)
    fake = ip.Denoiser(TeacherPlus(teacher, ip.models.MLP(1, hidden=32, depth=2).double()),
                       teacher.path, "x0")
    out = [w2_1d(gen(z, None).detach(), ref)]

    def after(k: int) -> None:
        if (k + 1) % every == 0:
            with torch.no_grad():
                out.append(w2_1d(gen(z, None), ref))

    g = torch.Generator().manual_seed(seed)
    start = time.process_time()
    common = dict(steps=steps, fake=fake, lr=lr, fake_lr=lr, fake_steps=fake_steps,
                  generator=g, dtype=F64, after=after)
    if method == "sd":
        score_distillation(teacher, gen, (128, 1), **common)
    else:
        disback(teacher, gen, (128, 1), record_steps=record, snapshots=snapshots, **common)
    return out, time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200 generator steps, 2 seeds")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--every", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--record", type=int, default=40, help="DisBack's recording steps")
    p.add_argument("--snapshots", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--fake-steps", type=int, default=4, help="fake-score steps per "
                   "generator step")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    steps = args.steps or (200 if args.quick else 600)
    every = args.every or max(steps // 6, 1)
    seeds = args.seeds or (2 if args.quick else 3)
    path = ip.paths.VPLinear()
    gmm = ip.oracle.GaussianMixture(torch.tensor([[-1.5], [1.5]], dtype=F64),
                                    torch.full((2, 1, 1), 0.09, dtype=F64),
                                    torch.tensor([0.3, 0.7], dtype=F64))
    g = torch.Generator().manual_seed(0)
    ref, floor_ref = gmm.sample(4000, generator=g), gmm.sample(4000, generator=g)
    z = torch.randn(4000, 1, dtype=F64, generator=g)
    teacher = gmm.denoiser(path)
    print(f"1-D mixture, exact teacher; {steps} generator steps (batch 128, lr {args.lr}, "
          f"{args.fake_steps} fake steps each), "
          f"DisBack: {args.record} recording steps, {args.snapshots} snapshots; {seeds} seeds; "
          f"floor W2 (two exact sets) {w2_1d(floor_ref, ref):.4f}")
    rows = {}
    for method in ("sd", "disback"):
        runs = [curve(method, teacher, s, steps, every, args.record, args.snapshots, args.lr,
                      args.fake_steps, z, ref) for s in range(seeds)]
        rows[method] = (torch.tensor([r[0] for r in runs]), sum(r[1] for r in runs) / seeds)
    print(f"\n{'gen steps':>10}" + "".join(f"{m + ' W2':>22}" for m in rows))
    for i in range(rows["sd"][0].shape[1]):
        cells = "".join(f"{float(c[:, i].mean()):>12.4f} ({float(c[:, i].min()):.2f}-"
                        f"{float(c[:, i].max()):.2f})" for c, _ in rows.values())
        print(f"{i * every:>10}{cells}")
    print(f"{'CPU s/run':>10}" + "".join(f"{cost:>22.1f}" for _, cost in rows.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
