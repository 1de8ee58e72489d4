"""Spectral Diffusion's slim student with and without spectrum-aware distillation, on digits.

A slim wavelet-gated :class:`interpolant.models.SpectralUNet` (``--base-channels``, 51k
parameters at 8) trains on the 1500 training digits for ``--steps`` steps (batch 64, Adam,
same seed and batches for all) with the data loss alone and with the distillation terms of
:class:`interpolant.training.spectral_distill.SpectralDistillation` at each
``lambda_s = lambda_f`` of ``--lambdas`` (the paper's 0.1), from the trained run ``--teacher``
(its network, unconditional: ``cond=None``; its path and target). Reported per row: the CPU
seconds of training, the student's mean squared distance to the teacher on noisy held-out test
digits (``t ~ U[0.05, 0.95]``), and the Digits-FD of 500 samples (DPM-Solver++(2M), 20 steps)
against the test digits, beside the teacher's own.

    interpolant bench spectral_distill --teacher runs/demo          # make demo trains one
    interpolant bench spectral_distill --teacher RUN --steps 400 --lambdas 0,0.1,1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import interpolant as ip

from ..data import digits
from ..errors import InterpolantError
from ..metrics import digits_fd
from ..models import build, count_parameters
from ..training.objectives import Objective
from ..training.spectral_distill import SpectralDistillation


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="interpolant bench spectral_distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="runs/demo", help="a trained digits run (the teacher)")
    p.add_argument("--steps", type=int, default=200, help="training steps per student")
    p.add_argument("--lambdas", default="0,0.1,1", help="comma-separated lambda_s = lambda_f")
    p.add_argument("--base-channels", type=int, default=8, help="the student's width")
    args = p.parse_args(argv)
    try:
        from ..app.runs import load_denoiser

        if not (Path(args.teacher) / "config.json").is_file():
            raise InterpolantError(f"--teacher {args.teacher} is not a trained run; train one "
                                   "(make demo writes runs/demo) or name another")
        lambdas = [float(v) for v in args.lambdas.split(",")]
        if args.steps < 1 or args.base_channels < 1 or min(lambdas) < 0:
            raise InterpolantError("--steps and --base-channels must be positive and "
                                   "--lambdas >= 0")
        config, teacher = load_denoiser(args.teacher)
        if config.data != "digits":
            raise InterpolantError(f"--teacher {args.teacher} was trained on {config.data}, "
                                   "not on the digits")
    except (InterpolantError, ValueError) as exc:
        print(f"interpolant: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    net_t, path, target = teacher.model, teacher.path, teacher.prediction
    t_fn = lambda x, t, cond=None: net_t(x, t, None)  # noqa: E731
    train_x, _ = digits("train")
    test_x, _ = digits("test")
    g = torch.Generator().manual_seed(7)
    t_eval = 0.05 + 0.9 * torch.rand(len(test_x), generator=g, dtype=torch.float64)
    x_eval = path.sample(test_x, t_eval, torch.randn(test_x.shape, generator=g)).float()
    x1 = torch.randn((500, *test_x.shape[1:]), generator=torch.Generator().manual_seed(4321))

    def fd(model) -> float:
        with torch.no_grad():
            x = ip.sample(ip.Denoiser(model, path, prediction=target), x1, steps=20)
        return digits_fd(x.clamp(-1, 1), test_x)

    print(f"teacher {args.teacher}: {count_parameters(net_t)} parameters, Digits-FD "
          f"{fd(t_fn):.2f}")
    print("| lambda_s = lambda_f | parameters | steps | CPU s | mean sq. distance to teacher "
          "| Digits-FD |\n|---|---|---|---|---|---|")
    for lam in lambdas:
        torch.manual_seed(0)
        net = build("spectral-unet", in_channels=1, base_channels=args.base_channels)
        obj = SpectralDistillation(Objective(path, target), t_fn, lam, lam)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        g = torch.Generator().manual_seed(1)
        tic = time.process_time()
        for _ in range(args.steps):
            x0 = train_x[torch.randint(0, len(train_x), (64,), generator=g)]
            loss = obj(net, x0, torch.randn(x0.shape, generator=g), obj.sample_time(64, g))
            opt.zero_grad()
            loss.backward()
            opt.step()
        cpu = time.process_time() - tic
        net.eval()
        with torch.no_grad():
            gap = float((net(x_eval, t_eval.float()) - t_fn(x_eval, t_eval.float())).pow(2).mean())
        print(f"| {lam:g} | {count_parameters(net)} | {args.steps} | {cpu:.0f} | {gap:.4f} | "
              f"{fd(net):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
