"""``interpolant posthoc-ema``: choose the EMA length after training (EDM2's post-hoc EMA).

A run trained with power-function EMA snapshots (``--recipe edm2-loss``, or ``ema_sigma_rels``
and ``ema_snapshot_every`` in its ``train`` table) holds ``ema_snapshots/``; this command
reconstructs the average of relative width ``--sigma-rel`` from them
(:func:`interpolant.training.power_ema.posthoc_ema`) and writes it as a new run directory
(``--out``: its ``config.json`` and one checkpoint whose EMA weights are the reconstruction;
the recipes' after-training steps, such as the calibration, are redone for these weights),
which ``sample`` and ``eval`` then use like any run.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any


def add_parser(sub: Any, fmt: type) -> None:
    p = sub.add_parser("posthoc-ema", formatter_class=fmt,
                       help="rebuild a run's EMA of any length from its saved snapshots")
    p.add_argument("--run-dir", required=True, type=Path, help="the trained run")
    p.add_argument("--sigma-rel", required=True, type=float,
                   help="relative width of the EMA profile (EDM2: 0.05-0.15)")
    p.add_argument("--out", required=True, type=Path, help="the new run directory")


def run(args: argparse.Namespace) -> int:
    from .. import models, paths
    from ..errors import InterpolantError
    from ..training.checkpoint import newest_valid, save_checkpoint
    from ..training.power_ema import posthoc_ema
    from ..training.recipes import finish_run, wrap_network
    from .runs import CONFIG_FILE, load_data, open_run

    config = open_run(args.run_dir)
    if Path(args.out).exists():
        raise InterpolantError(f"{args.out} already exists; give --out a new directory")
    ckpt, _ = newest_valid(Path(args.run_dir) / "checkpoints")
    options = None if ckpt is None else ckpt.config.get("model")
    if not isinstance(options, dict):
        raise InterpolantError(f"{args.run_dir} holds no checkpoint with its network's "
                               "arguments; train it first")
    net = models.build(config.model, **options)
    if config.recipe:
        net = wrap_network(config.recipe, net)
    net.load_state_dict(ckpt.tensors["model"])  # buffers and structure; weights replaced below
    ema = posthoc_ema(net, args.run_dir, args.sigma_rel)
    out = Path(args.out)
    out.mkdir(parents=True)
    shutil.copyfile(Path(args.run_dir) / CONFIG_FILE, out / CONFIG_FILE)
    save_checkpoint(out / "checkpoints", ckpt.step, ema, ema=ema,
                    config={**ckpt.config, "posthoc_ema": {"sigma_rel": args.sigma_rel,
                                                           "from": str(args.run_dir)}})
    if config.recipe:  # the recipes' after-training steps, for these weights (calibration)
        x, labels = load_data(config)
        finish_run(config.recipe, out, ema, paths.get(config.path), config.target, x, labels)
    print(f"post-hoc EMA sigma_rel={args.sigma_rel}: {out} (sample it like any run)")
    return 0
