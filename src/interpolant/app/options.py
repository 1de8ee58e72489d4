"""Options of the guidance, restoration and edit commands (kept apart from their handlers in
:mod:`.commands`, so building the parser imports nothing heavy)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_guidance_options(p: argparse.ArgumentParser) -> None:
    """``--label``, ``--guidance``, ``--scale`` and guidance options of ``interpolant sample``."""
    p.add_argument("--label", type=int, help="class of every sample (class-conditional runs)")
    p.add_argument("--guidance", help="guidance: cfg, rescale, interval, adaptive, auto "
                   "(with --guide-checkpoint) or classifier (class-conditional runs)")
    p.add_argument("--scale", type=float, default=2.0, help="guidance scale (1: none)")
    p.add_argument("--interval", type=float, nargs=2, metavar=("T_LO", "T_HI"),
                   help="--guidance interval: guide only for T_LO < t <= T_HI (default: the "
                   "paper's sigma in (0.28, 5.42] on the run's path)")
    p.add_argument("--rescale", type=float, default=0.7, help="--guidance rescale: phi")
    p.add_argument("--guide-checkpoint", type=Path, help="--guidance auto: the weaker model, "
                   "an earlier checkpoint (RUN/checkpoints/step_*) or another run directory")


def add_steer_options(p: argparse.ArgumentParser) -> None:
    """``--steer``, ``--particles`` and ``--steer-method`` of ``interpolant sample`` (run by
    :mod:`.cmd_steer`)."""
    p.add_argument("--steer", help="steer toward a reward: confidence (the digits classifier's "
                   "log-probability of --label) or stroke (mean ink)")
    p.add_argument("--particles", type=int, default=8, help="--steer: particles (or search "
                   "candidates) per sample, the most compute compared")
    p.add_argument("--steer-method", default="fk", help="--steer: fk, smc, best-of-n, "
                   "zero-order or paths")


def add_restore_edit_parsers(sub: argparse._SubParsersAction, fmt: type) -> None:
    """The ``restore`` and ``edit`` commands."""
    p = sub.add_parser("restore", formatter_class=fmt, help="restore degraded held-out "
                       "images (inpaint, sr, blur) with a trained run as the prior")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--task", default="inpaint", help="inpaint (top half), sr (2x), blur, cs "
                   "(random projections, half as many as pixels)")
    p.add_argument("--method", default="ddnm", help="dps, pigdm, ddnm, repaint, gdp")
    p.add_argument("--n", type=int, default=10, help="held-out images to restore")
    p.add_argument("--steps", type=int, default=20, help="sampling steps")
    p.add_argument("--sigma-y", type=float, default=0.05, help="measurement noise std")
    p.add_argument("--estimate-sigma", action="store_true", help="restore with the noise std "
                   "estimated from each measurement (not the true --sigma-y)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="folder (default RUN/restore)")

    p = sub.add_parser("edit", formatter_class=fmt, help="invert a held-out image and "
                       "regenerate it with another label")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--index", type=int, required=True, help="held-out image to edit")
    p.add_argument("--to-label", type=int, required=True, help="the new class")
    p.add_argument("--method", default="ode", help="ode (DDIM inversion), bdia or edit-friendly (exact "
                   "inversions) or sdedit")
    p.add_argument("--steps", type=int, default=20, help="steps each way")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="picture (default RUN/edits/edit_I_toL_METHOD.png)")
