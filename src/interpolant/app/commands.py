"""The command-line jobs of guidance, restoration and editing: ``interpolant sample --guidance``,
``interpolant restore`` and ``interpolant edit``.

Every request is checked (names, counts, labels, the run's kind) before anything is sampled or
written, so a refused one leaves nothing behind.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import images
from ..errors import InterpolantError, unknown_name
from . import pages
from ..training.distributed import is_main
from .draw import batches_here, check_count, draw
from .evaluate import save_picture
from .runs import TrainedRun, load_data, load_trained, write_json
from .guide import GUIDANCE, build

# exact inversions (bdia, edit-friendly) reconstruct the image; ode within its DDIM error
EDIT_METHODS = ("ode", "bdia", "edit-friendly", "sdedit")


def _positive(value: int, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InterpolantError(f"{option} must be a positive integer, got {value!r}")
    return value


def _image_run(run: TrainedRun, command: str) -> None:
    if len(run.shape) != 3:
        raise InterpolantError(f"{command} works on image runs (shape C x H x W); this run's "
                               f"samples have shape {run.shape}")


def sample_guided(args: argparse.Namespace, run: TrainedRun) -> int:
    """``interpolant sample`` with ``--label`` and/or ``--guidance``: every sample of label
    ``--label`` (default: labels in turn), guided by ``--guidance`` at ``--scale``.

    CFG evaluates the network twice per solver call, so the solver gets half the ``--nfe``
    budget; the NFE printed are network passes."""
    den = run.denoiser
    if args.guidance is not None and args.guidance not in GUIDANCE:
        raise unknown_name("guidance", args.guidance, GUIDANCE)
    option = "--label" if args.label is not None else "--guidance"
    k = pages.num_classes(den)
    label = pages.check_label(den, 0 if args.label is None else args.label, option)
    if not math.isfinite(args.scale):
        raise InterpolantError(f"--scale must be a finite number, got {args.scale}")
    labels = torch.full((args.n,), label) if args.label is not None else torch.arange(args.n) % k
    sampler, passes = build(args, run)
    if args.nfe // passes < 1:
        raise InterpolantError(f"--nfe {args.nfe} is too small for {args.guidance} (two "
                               f"network passes per step); give --nfe {2 * passes} or more")
    before = getattr(sampler, "nfe", 0)
    samples, calls, steps, seconds = draw(sampler, args.solver, args.nfe // passes, args.n,
                                          args.seed, run.shape, k, labels,
                                          batch=args.batch)
    mine = batches_here(args.n, args.batch)  # the denoiser counted this rank's batches
    spent = (getattr(sampler, "nfe", before + calls * mine) - before) // mine
    if not is_main():
        return 0
    what = f"{args.guidance}{args.scale:g}" if args.guidance else "cond"
    tag = f"label{args.label}" if args.label is not None else "labels"
    out = args.out or args.run_dir / "samples"
    if out.is_dir() or args.out is None:
        out = out / f"{args.solver}_{what}_{tag}.png"
    picture = save_picture(samples, run.config, Path(out))
    save_file({"samples": samples.contiguous(), "labels": labels},
              str(Path(picture).with_suffix(".safetensors")))
    accuracy = pages.label_accuracy(samples, labels)
    read = "" if accuracy is None else f", the digits classifier reads the label in {accuracy:.0%}"
    print(f"{args.n} samples, {args.solver}, {steps} steps, {spent} NFE (budget {args.nfe}), "
          f"{what}{read}, {seconds:.2f} s -> {picture}")
    return 0


def restore(args: argparse.Namespace) -> int:
    """``interpolant restore``: ``--n`` held-out images degraded by ``--task``, restored by
    ``--method``; writes ``restore_TASK_METHOD.png`` (rows: measurement, restoration, truth)
    and ``restore_TASK_METHOD.json`` (PSNR, label accuracy, NFE and seconds per sample)."""
    if args.task not in pages.TASKS:
        raise unknown_name("restoration task", args.task, pages.TASKS)
    if args.method not in pages.RESTORE_METHODS:
        raise unknown_name("restoration method", args.method, pages.RESTORE_METHODS)
    check_count(args.n)
    _positive(args.steps, "--steps")
    if not (math.isfinite(args.sigma_y) and args.sigma_y >= 0):
        raise InterpolantError(f"--sigma-y must be a non-negative number, got {args.sigma_y}")
    if args.sigma_y == 0 and args.method == "dps":
        raise InterpolantError("dps needs measurement noise; give --sigma-y > 0 (e.g. 0.05)")
    run = load_trained(args.run_dir)
    _image_run(run, "restore")
    done = pages.restorations(run.denoiser, run.config, args.task, args.method, args.n,
                              args.steps, args.sigma_y, args.seed, args.estimate_sigma)
    out = args.out or args.run_dir / "restore"
    name = f"restore_{args.task}_{args.method}"
    rows = torch.cat([done["measurement"], done["restored"], done["truth"]])
    picture = images.save_grid(rows, out / f"{name}.png", nrow=args.n, clip=True)
    write_json(out / f"{name}.json", {"rows": [done["row"]], "n": args.n, "steps": args.steps,
                                      "sigma_y": args.sigma_y, "seed": args.seed,
                                      "picture_rows": ["measurement", "restoration", "truth"]})
    row = done["row"]
    accuracy = "" if row["label_accuracy"] is None else (
        f", label accuracy {row['label_accuracy']:.0%}")
    if "sigma_y_estimated" in row:
        accuracy += f", sigma_y estimated {row['sigma_y_estimated']:.3g}"
    print(f"{args.task} / {args.method}: PSNR {row['psnr']:.2f} dB{accuracy}, {row['nfe']} NFE "
          f"and {row['seconds']:.2f} s per sample -> {picture}, {out / (name + '.json')}")
    return 0


def edit(args: argparse.Namespace) -> int:
    """``interpolant edit``: held-out image ``--index`` inverted with its label and
    regenerated with ``--to-label``; writes a picture (original, reconstruction, edit)."""
    if args.method not in EDIT_METHODS:
        raise unknown_name("edit method", args.method, EDIT_METHODS)
    _positive(args.steps, "--steps")
    if args.out is not None:
        images.check_picture_name(args.out)
    run = load_trained(args.run_dir)
    _image_run(run, "edit")
    to_label = pages.check_label(run.denoiser, args.to_label, "--to-label")
    test_x, test_labels = load_data(run.config, "test")
    if isinstance(args.index, bool) or not 0 <= args.index < len(test_x):
        raise InterpolantError(f"--index {args.index} is not a held-out image: give 0.."
                               f"{len(test_x) - 1}")
    x0 = test_x[args.index: args.index + 1]
    label = test_labels[args.index: args.index + 1] if test_labels is not None else None
    if label is None:
        raise InterpolantError("edit needs labelled data (the image's own class)")
    done = pages.edits(run.denoiser, run.config, args.method, x0, label,
                       torch.tensor([to_label]), args.steps, args.seed)
    out = args.out or (args.run_dir / "edits" /
                       f"edit_{args.index}_to{to_label}_{args.method}.png")
    picture = images.save_grid(torch.cat([x0, done["reconstruction"], done["edit"]]), out,
                               nrow=3, clip=True)
    row = done["row"]
    read = "" if row["edit_accuracy"] is None else (
        f"; the classifier reads {to_label}: {'yes' if row['edit_accuracy'] == 1 else 'no'}")
    print(f"held-out image {args.index} (label {int(label[0])}) -> {to_label} by "
          f"{args.method}: reconstruction PSNR {row['reconstruction_psnr']:.2f} dB{read}, "
          f"{row['nfe']} NFE -> {picture} (original, reconstruction, edit)", file=sys.stdout)
    return 0


__all__ = ["EDIT_METHODS", "GUIDANCE", "edit", "restore", "sample_guided"]
