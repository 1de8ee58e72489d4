"""Command-line options for the user's own data and models and for more than one process.

- ``sample`` / ``eval --batch B``: samples per network batch, the unit that the processes of
  ``torchrun --nproc-per-node N -m interpolant ...`` share (:mod:`.draw`); rank 0 writes.
- ``sample --diffusers DIR``: sample a model saved by diffusers' ``save_pretrained`` into
  ``--run-dir``, which then works with ``eval`` and ``report`` like a trained run.
- ``train --size S``: resize the images of a folder given by ``--data`` (shorter side to
  ``S``, centre crop; or ``HxW``).
- ``train --fsdp``: under torchrun, shard parameters, gradients and optimizer state over the
  processes (:mod:`interpolant.training.fsdp`) instead of replicating them (DDP).

Building the parser imports nothing heavy; the handlers import what they need.
"""

from __future__ import annotations

import argparse
from pathlib import Path

BATCH = 256  # = draw.BATCH (not imported from there: the parser imports nothing heavy)


def add_sample_options(p: argparse.ArgumentParser) -> None:
    """``--batch``, ``--diffusers`` and ``--data`` of ``interpolant sample``."""
    add_eval_options(p)
    p.add_argument("--diffusers", type=Path, metavar="DIR",
                   help="a model or pipeline folder written by diffusers' save_pretrained: "
                   "sample it into --run-dir, which eval and report then read like a run")
    p.add_argument("--data", help="with --diffusers: reference data for `interpolant eval` "
                   "(a path, with options, e.g. 'images/:size=32')")


def is_main() -> bool:
    """Whether this process is rank 0 (or the only one): the one that prints."""
    from ..training.distributed import is_main as main_rank

    return main_rank()


def prepare_sample(args: argparse.Namespace) -> None:
    """``--diffusers DIR``: make ``--run-dir`` a run of that model (:mod:`.diffusers_run`)."""
    from .diffusers_run import prepare

    prepare(args)


def add_eval_options(p: argparse.ArgumentParser) -> None:
    """``--batch`` of ``interpolant sample`` and ``eval``."""
    p.add_argument("--batch", type=int, default=BATCH, help="samples per network batch; "
                   "under torchrun the processes share the batches, and the result equals "
                   "one process's with the same --batch")


def add_train_options(p: argparse.ArgumentParser) -> None:
    """``--size`` and ``--fsdp`` of ``interpolant train``."""
    p.add_argument("--size", help="resize the images of a --data folder: S (shorter side to S, "
                   "centre crop) or HxW")
    p.add_argument("--fsdp", action="store_true",
                   help="under torchrun: fully sharded data parallel (parameters, gradients "
                   "and optimizer state split over the processes) instead of DDP")


def apply_train_options(args: argparse.Namespace, config: object) -> None:
    """``--size`` into the run's data string (``DIR:size=S``), so that ``sample`` and
    ``eval`` reload the same images; ``--fsdp`` into its training options."""
    if getattr(args, "size", None) is not None:
        from ..data.sources import with_size

        config.data = with_size(config.data, args.size)  # type: ignore[attr-defined]
    if getattr(args, "fsdp", False):
        config.train["fsdp"] = True  # type: ignore[attr-defined]
