"""The guided samplers of ``interpolant sample --guidance``, built from a run and checked
before anything is sampled.

- ``cfg``: classifier-free guidance (Ho & Salimans 2022); ``rescale``: CFG with the rescale of
  Lin et al. (2024), ``--rescale`` (default 0.7, the paper's); ``interval``: CFG only inside
  ``--interval T_LO T_HI`` (Kynkäänniemi et al. 2024; default the paper's EDM2 interval
  ``sigma in (0.28, 5.42]`` placed on the run's path by log-SNR, ``sigma = exp(-lam)``);
  ``adaptive``: CFG that drops the unconditional pass once the branches agree.
- ``auto``: autoguidance (Karras et al. 2024) by ``--guide-checkpoint``, an earlier checkpoint
  of the run (a ``checkpoints/step_*`` folder) or another run directory; with ``--interval``
  only inside it.
- ``classifier``: classifier guidance (Dhariwal & Nichol 2021) with a noise-aware classifier
  trained on the run's data and path on first use and kept in ``RUN/classifier/``.

The CFG family needs a model trained with label dropout (``train.label_dropout > 0``).
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import guidance
from ..errors import InterpolantError, unknown_name
from .runs import TrainedRun, load_data, load_trained

__all__ = ["GUIDANCE", "build", "default_interval", "load_guide"]

GUIDANCE = ("cfg", "rescale", "interval", "adaptive", "auto", "classifier")
CFG_FAMILY = ("cfg", "rescale", "interval", "adaptive")
EDM2_INTERVAL = (0.28, 5.42)  # Kynkäänniemi et al. 2024, EDM2-XXL: guide for sigma in (lo, hi]


def default_interval(path: Any) -> tuple[float, float]:
    """The paper's sigma interval as times of ``path`` (equal log-SNR ``lam = -log sigma``)."""
    lo, hi = (float(path.t_of_lam(torch.tensor(-math.log(s), dtype=torch.float64)))
              for s in EDM2_INTERVAL)
    return lo, hi


def _check_dropout(run: TrainedRun, name: str) -> None:
    dropout = float(run.config.train.get("label_dropout", 0.1))
    if dropout <= 0.0:
        raise InterpolantError(
            f"--guidance {name} needs a model trained with label dropout (its unconditional "
            f"branch); this run has label_dropout = {dropout:g}. Retrain with "
            "label_dropout = 0.1 in [train], or use --guidance auto")


def load_guide(spec: Path, run: TrainedRun) -> Any:
    """The weaker denoiser of autoguidance: a ``step_*`` checkpoint folder (of this run: the
    run's network with that checkpoint's weights) or another run directory."""
    from ..training.checkpoint import load_checkpoint

    spec = Path(spec)
    if (spec / "config.json").is_file():
        return load_trained(spec).denoiser
    if not (spec / "manifest.json").is_file():
        raise InterpolantError(
            f"--guide-checkpoint {spec} is neither a run directory nor a checkpoint folder "
            f"(RUN/checkpoints/step_*); list them with `ls {run.checkpoint.parent}`")
    ckpt = load_checkpoint(spec)
    weights = ckpt.tensors.get("ema", ckpt.tensors.get("model"))
    den = copy.copy(run.denoiser)
    den.model = copy.deepcopy(run.denoiser.model)
    try:
        den.model.load_state_dict(weights)
    except RuntimeError:
        raise InterpolantError(
            f"checkpoint {spec} holds another network than this run's; give its run "
            "directory instead") from None
    den.nfe = 0
    return den


def _classifier(args: argparse.Namespace, run: TrainedRun) -> Any:
    """The run's noise-aware classifier, trained once (``RUN/classifier/``)."""
    folder = Path(args.run_dir) / "classifier"
    x, labels = load_data(run.config)
    if labels is None:
        raise InterpolantError("--guidance classifier needs a labelled run")
    k = int(labels.max()) + 1
    net = guidance.NoiseAwareClassifier(x[0].numel(), k)
    file = folder / "classifier.safetensors"
    if file.is_file():
        net.load_state_dict(load_file(str(file)))
    else:
        guidance.train_classifier(net, x, labels, run.denoiser.path,
                                  generator=torch.Generator().manual_seed(args.seed))
        folder.mkdir(exist_ok=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(file))
    return net.eval()


def build(args: argparse.Namespace, run: TrainedRun) -> tuple[Any, int]:
    """``(sampler, network passes per solver call)`` for ``args.guidance`` (``None``: the
    run's denoiser); every option is checked first."""
    den, name = run.denoiser, args.guidance
    if name is None:
        return den, 1
    if name not in GUIDANCE:
        raise unknown_name("guidance", name, GUIDANCE)
    if not math.isfinite(args.scale):
        raise InterpolantError(f"--scale must be a finite number, got {args.scale}")
    if name in CFG_FAMILY:
        _check_dropout(run, name)
    if name == "cfg":
        return guidance.CFG(den, args.scale), 2
    if name == "rescale":
        return guidance.CFG(den, args.scale, rescale=args.rescale), 2
    if name == "interval":
        interval = args.interval or default_interval(den.path)
        return guidance.CFG(den, args.scale, interval=interval), 2
    if name == "adaptive":
        return guidance.AdaptiveCFG(den, args.scale), 2
    if name == "auto":
        if args.guide_checkpoint is None:
            raise InterpolantError("--guidance auto needs --guide-checkpoint: an earlier "
                                   "checkpoint (RUN/checkpoints/step_*) or another run directory")
        weak = load_guide(args.guide_checkpoint, run)
        return guidance.AutoGuidance(den, weak, args.scale, interval=args.interval), 2
    return guidance.ClassifierGuidance(den, _classifier(args, run), args.scale,
                                       conditional=True), 1
