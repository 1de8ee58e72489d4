"""Token runs: ``interpolant train --process masked|uniform --data text|digits|digits-binary``.

A token run is a run directory like a Gaussian one (``config.json``, ``checkpoints/``,
``metrics.jsonl``) whose :class:`~.runs.RunConfig` has ``process`` set to a discrete process
of :mod:`interpolant.discrete` and ``path`` naming its noise schedule (``cosine``,
``linear``, ``polynomial``). The network is the token transformer
(:class:`interpolant.models.TokenTransformer`), trained on the process's own bound
(:func:`interpolant.discrete.train_tokens`) and saved with the library's atomic checkpoints.

Data sets (all offline, see :mod:`interpolant.discrete.data`):

    text           characters of Python's bundled documentation, 96 tokens, sequences of 64
    digits         the 8x8 digits' 17 intensity levels, 64 tokens per image, with labels
    digits-binary  the digits thresholded at intensity 8 (2 tokens), with labels
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .. import discrete, models
from ..errors import InterpolantError, unknown_name
from .runs import CONFIG_FILE, RunConfig, open_run, write_json

TOKEN_PROCESSES = {"masked": discrete.Masked, "uniform": discrete.Uniform}
TOKEN_DATA = ("text", "digits", "digits-binary")
TEXT_LENGTH = 64
# Settings of the token trainer (the rest of TrainConfig does not apply to it).
TRAIN_KEYS = {"steps", "batch_size", "lr", "label_dropout", "checkpoint_every", "log_every"}
TRAIN_DEFAULTS = {"steps": 2000, "batch_size": 64, "lr": 1e-3, "label_dropout": 0.1,
                  "checkpoint_every": 500, "log_every": 50}
MODEL_DEFAULTS = {"hidden": 128, "depth": 4, "heads": 4}


def is_token_config(config: RunConfig) -> bool:
    return config.process in TOKEN_PROCESSES


def token_defaults(config: RunConfig) -> None:
    """Give a token run the token network and a discrete schedule where the Gaussian defaults
    (``unet``, ``vp-cosine``) were left in place; the default data, ``digits``, becomes the
    digits' 17 intensity levels."""
    if config.model == RunConfig.model:
        config.model = "tokens"
    if config.path == RunConfig.path:
        config.path = "cosine"


def check_token_config(config: RunConfig) -> None:
    """One-line errors for a token run that cannot work (called by ``RunConfig.check``)."""
    if config.process not in TOKEN_PROCESSES:
        raise unknown_name("process", config.process, ("gaussian", *TOKEN_PROCESSES))
    if config.data not in TOKEN_DATA:
        raise InterpolantError(
            f"the {config.process} process works on tokens ({', '.join(TOKEN_DATA)}); data "
            f"{config.data!r} is continuous: train it with --process gaussian")
    if config.model != "tokens":
        raise InterpolantError(
            f"a {config.process} process needs the token transformer (--model tokens); "
            f"{config.model!r} is a network for continuous data")
    discrete.schedule(config.path)
    bad = sorted(set(config.train) - TRAIN_KEYS)
    if bad:
        raise InterpolantError(f"unknown option(s) {bad} for a token run; known: "
                               f"{sorted(TRAIN_KEYS)}")


def load_tokens(config: RunConfig, split: str = "train") -> tuple[Tensor, Tensor | None, int]:
    """``(tokens (N, L), labels or None, K)`` of the run's data set."""
    if config.data == "text":
        return discrete.text_tokens(TEXT_LENGTH, split), None, len(discrete.TEXT_VOCAB)
    tokens, labels = discrete.digit_tokens(split, config.seed)
    if config.data == "digits-binary":
        return (tokens >= 8).long(), labels, 2
    return tokens, labels, discrete.DIGIT_LEVELS


def process_of(config: RunConfig, num_tokens: int) -> discrete.Process:
    return TOKEN_PROCESSES[config.process](config.path, num_tokens)


@dataclass
class TokenRun:
    """A trained token run: config, network, process, and the checkpoint it came from."""

    config: RunConfig
    model: torch.nn.Module
    process: discrete.Process
    checkpoint: Path
    skipped: list[str]

    @property
    def num_classes(self) -> int | None:
        return self.model.num_classes


def train_token_run(config: RunConfig, run_dir: Path, progress: bool = True) -> None:
    """Train the token transformer of ``config`` into ``run_dir``: checkpoints every
    ``checkpoint_every`` steps and at the end, the bound per token (nats) in ``metrics.jsonl``."""
    from ..training.checkpoint import save_checkpoint

    if (run_dir / CONFIG_FILE).exists():
        raise InterpolantError(f"{run_dir} already holds a run; choose another --run-dir")
    options = {**TRAIN_DEFAULTS, **config.train}
    for key in ("steps", "batch_size", "checkpoint_every", "log_every"):
        if isinstance(options[key], bool) or not isinstance(options[key], int) or options[key] < 1:
            raise InterpolantError(f"{key} must be a positive integer, got {options[key]!r}")
    tokens, labels, k = load_tokens(config)
    process = process_of(config, k)
    model_options = {**MODEL_DEFAULTS, **config.model_options, "num_tokens": k,
                     "length": tokens.shape[1], "mask": config.process == "masked",
                     "num_classes": None if labels is None else int(labels.max()) + 1}
    torch.manual_seed(config.seed)
    try:
        net = models.build("tokens", **model_options)
    except TypeError as exc:
        raise InterpolantError(f"model options {config.model_options}: {exc}") from None
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config.to_json())
    manifest = {"arch": "tokens", "model": net.config, "data_shape": [tokens.shape[1]]}
    start, log = time.perf_counter(), run_dir / "metrics.jsonl"

    def on_step(step: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise InterpolantError(f"non-finite loss at step {step}; training stopped, the last "
                                   "checkpoint is untouched (lower --lr)")
        if step % options["log_every"] == 0 or step == options["steps"]:
            record = {"step": step, "loss": loss, "bits": float(discrete.bits(loss)),
                      "seconds": time.perf_counter() - start}
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            if progress:
                print(f"step {step}/{options['steps']}  bound {record['bits']:.3f} bits/token")
        if step % options["checkpoint_every"] == 0 or step == options["steps"]:
            save_checkpoint(run_dir / "checkpoints", step, net, config=manifest)

    discrete.train_tokens(net, process, tokens, steps=options["steps"],
                          batch_size=options["batch_size"], lr=options["lr"], labels=labels,
                          label_dropout=options["label_dropout"], seed=config.seed,
                          on_step=on_step)


def load_token_run(run_dir: str | Path) -> TokenRun:
    """The newest checkpoint of a token run that verifies, as a :class:`TokenRun`."""
    from ..training.checkpoint import newest_valid

    config = open_run(run_dir)
    if not is_token_config(config):
        raise InterpolantError(f"{run_dir} is a {config.process} run, not a token run")
    ckpt, skipped = newest_valid(Path(run_dir) / "checkpoints")
    if ckpt is None:
        raise InterpolantError(f"{run_dir} holds no checkpoint yet; train it first")
    # a checkpoint written before TokenTransformer had its token convolution has no "local":
    # its network had none
    net = models.build("tokens", **{"local": 0, **ckpt.config["model"]})
    net.load_state_dict(ckpt.tensors["model"])
    net.eval()
    return TokenRun(config, net, process_of(config, net.num_tokens), ckpt.path, skipped)


def check_samplers(run: TokenRun, samplers: Sequence[str]) -> None:
    """Refuse unknown discrete samplers, and first-hitting on a process without a mask."""
    for name in samplers:
        if name not in discrete.SAMPLERS:
            raise unknown_name("discrete sampler", name, discrete.SAMPLERS)
        if name == "first-hitting" and run.config.process != "masked":
            raise InterpolantError("the first-hitting sampler is for the masked process; use "
                                   "ancestral or tau-leaping on a uniform one")


def draw_tokens(run: TokenRun, sampler: str, steps: int | None, n: int, seed: int,
                label: int | None = None, guidance: float | None = None
                ) -> discrete.Samples:
    """``n`` sequences from a token run with ``sampler`` (``ancestral``, ``tau-leaping``,
    ``first-hitting``), seeded; with ``label`` (and CFG ``guidance``) class-conditional."""
    check_samplers(run, [sampler])
    cond = None
    if label is not None:
        if run.num_classes is None or not 0 <= label < run.num_classes:
            classes = "no labels" if run.num_classes is None else f"{run.num_classes} classes"
            raise InterpolantError(f"--label {label}: this run has {classes}")
        cond = torch.full((n,), label, dtype=torch.int64)
    elif guidance is not None:
        raise InterpolantError("--guidance needs --label")
    g = torch.Generator().manual_seed(seed)
    return discrete.sample(run.model, run.process, n, run.model.length, sampler=sampler,
                           steps=steps, generator=g, cond=cond, guidance=guidance)


def as_images(run: TokenRun | RunConfig, tokens: Tensor) -> Tensor:
    """Digit tokens as images in ``[-1, 1]`` (binary ones at 0 and 16 intensity)."""
    config = run if isinstance(run, RunConfig) else run.config
    if config.data == "digits-binary":
        tokens = tokens * 16
    return discrete.digit_images(tokens)
