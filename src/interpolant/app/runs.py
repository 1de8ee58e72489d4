"""Run directories: what ``interpolant train / sample / eval / report`` read and write.

A run directory holds::

    config.json          the run's configuration (RunConfig), written by ``train``
    checkpoints/         model, EMA, optimizer and RNG states (safetensors + JSON manifest)
    metrics.jsonl        training metrics, one JSON object per logged step
    samples/             PNG grids (images) or scatter plots (2-D data) and sample tensors
    eval.json            evaluation results of ``interpolant eval``
    report/index.html    the static report of ``interpolant report``

Configuration files are JSON (``.json``) or TOML (``.toml``) with the fields of
:class:`RunConfig`; unknown keys are refused with the list of known ones, other formats by name.

A run's denoiser is rebuilt from its checkpoint alone: the checkpoint's manifest holds the
network's constructor arguments (``model``) and the shape of one sample (``data_shape``), so
sampling and evaluating never read the training data to infer them.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import data as datasets
from .. import models, paths
from ..errors import InterpolantError, unknown_name
from ..predictions import Denoiser

CONFIG_FILE = "config.json"
CONFIG_FORMATS = {".json": "JSON", ".toml": "TOML"}

# Defaults per kind of data: a small U-Net for 8x8 digits, an MLP for points.
IMAGE_MODEL = {"base_channels": 32, "channel_mults": [1, 2], "attention_levels": [1]}
POINT_MODEL = {"hidden": 256, "depth": 4}


@dataclass
class RunConfig:
    """Everything needed to rebuild a run's data, network, path and training.

    ``train`` holds :class:`interpolant.training.TrainConfig` fields (``steps``,
    ``batch_size``, ``lr``, ``ema_halflife``, ``density``, ``weight``, ``coupling``...).
    ``model_options`` are the network's constructor arguments beyond the data's shape.
    ``process`` is the kind of forward process: ``gaussian`` (a path of
    :mod:`interpolant.paths`, named by ``path``) or a discrete one over tokens (``masked``,
    ``uniform``: see :mod:`.tokens`, where ``path`` names the noise schedule), or
    ``interpolant``, a stochastic interpolant from ``source`` (see :mod:`.interpolant_run`).

    The default target is ``v`` (Salimans & Ho 2022): on paths with ``alpha(1) = 0`` (cosine,
    rectified flow) ``x0 = alpha x - sigma v`` stays finite at the noise end, while an
    ``eps`` network gives ``x0 = (x - sigma eps) / alpha``, which is undefined there.
    """

    data: str = "digits"
    n: int | None = None
    model: str = "unet"
    model_options: dict[str, Any] = field(default_factory=dict)
    path: str = "vp-cosine"
    target: str = "v"
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    process: str = "gaussian"
    source: str = "noise"
    recipe: str = ""  # training recipe(s), e.g. "sd3,p2" (interpolant.training.recipes)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InterpolantError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        config = cls(**raw)
        config.check()
        return config

    @classmethod
    def read(cls, file: str | os.PathLike[str]) -> RunConfig:
        """Read a JSON (``.json``) or TOML (``.toml``) configuration file."""
        file = Path(file)
        if not file.is_file():
            raise InterpolantError(f"config file {file} does not exist")
        if file.suffix.lower() not in CONFIG_FORMATS:
            raise InterpolantError(f"config file {file}: configurations are JSON (.json) or "
                                   "TOML (.toml) files; write it in one of those")
        text = file.read_text()
        try:
            raw = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            kind = CONFIG_FORMATS[file.suffix.lower()]
            raise InterpolantError(f"{file} is not valid {kind}: {exc}") from None
        if not isinstance(raw, dict):
            raise InterpolantError(f"{file} must hold a table of settings at the top level")
        return cls.from_dict(raw, str(file))

    def check(self) -> None:
        """Refuse unknown names early, before any work is done."""
        from ..training import TrainConfig

        if self.process == "interpolant" or self.source != "noise":
            from .interpolant_run import check_config

            check_config(self)  # then the checks below
        elif self.process != "gaussian":
            from .tokens import check_token_config

            check_token_config(self)
            return
        if self.model == "diffusers":  # a model saved by diffusers (app/diffusers_run.py)
            from .diffusers_run import check_config as check_diffusers

            return check_diffusers(self)
        datasets.check_source(self.data)  # a bundled name or a path to the user's data
        if self.model not in models.available():
            raise unknown_name("model", self.model, models.available())
        paths.get(self.path)
        bad = sorted(set(self.train) - TrainConfig.field_names() - {"target"})
        if bad:
            raise InterpolantError(
                f"unknown training option(s) {bad}; known: {sorted(TrainConfig.field_names())}"
            )
        if "target" in self.train:
            raise InterpolantError("set the prediction target with 'target', not in 'train'")
        if self.recipe:
            from ..training.recipes import check_model

            check_model(self.recipe, self.model)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_json(file: Path, payload: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_data(config: RunConfig, split: str = "train") -> tuple[Tensor, Tensor | None]:
    """The run's training data (``split="train"``) or held-out data (``"test"``)."""
    if not config.data:  # a diffusers run made without --data
        raise InterpolantError("this run has no data to compare with (it samples a diffusers "
                               "model); give it reference data with `interpolant sample "
                               "--diffusers DIR --run-dir RUN --data PATH`")
    if config.data == "digits":
        return datasets.digits(split, seed=config.seed)
    seed = config.seed if split == "train" else config.seed + 1
    x, labels = datasets.load(config.data, config.n, seed=seed)
    return x.float(), labels


def is_image_data(config: RunConfig) -> bool:
    return config.data.startswith("digits") or config.data.startswith("photos")


def build_model(config: RunConfig, x: Tensor, labels: Tensor | None) -> torch.nn.Module:
    """The network for this data: channels or dimension from ``x``, classes from ``labels``."""
    options = dict(IMAGE_MODEL if x.ndim == 4 else POINT_MODEL)
    if config.model in ("dit", "mmdit", "dtr", "switch-dit", "diffussm") and x.ndim == 4:
        options = {"image_size": x.shape[-1]}
    options.update(config.model_options)
    if x.ndim == 4:
        options.setdefault("in_channels", x.shape[1])
    else:
        options.setdefault("dim", x.shape[1])
    if labels is not None:
        options.setdefault("num_classes", int(labels.max()) + 1)
    torch.manual_seed(config.seed)
    try:
        return models.build(config.model, **options)
    except TypeError as exc:
        raise InterpolantError(f"model {config.model!r}: {exc}") from None


def open_run(run_dir: str | os.PathLike[str]) -> RunConfig:
    """The configuration of an existing run directory, with clear errors if it is not one."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InterpolantError(f"{run_dir} is a file, not a run directory; give the folder "
                               "that `interpolant train --run-dir` made")
    if not run_dir.is_dir():
        raise InterpolantError(
            f"run directory {run_dir} does not exist; create one with `interpolant train "
            f"--run-dir {run_dir}`"
        )
    file = run_dir / CONFIG_FILE
    if not file.is_file():
        raise InterpolantError(f"{run_dir} is not a run directory (no {CONFIG_FILE} in it)")
    return RunConfig.read(file)


@dataclass
class TrainedRun:
    """A run loaded for sampling: its config, denoiser, the shape of one sample, the
    checkpoint it came from and why newer checkpoints (if any) were skipped."""

    config: RunConfig
    denoiser: Denoiser
    shape: tuple[int, ...]
    checkpoint: Path
    skipped: list[str]


def load_trained(run_dir: str | os.PathLike[str], use_ema: bool = True,
                 interpolant: bool = False) -> TrainedRun:
    """The trained network of a run (its EMA weights when present) from the newest checkpoint
    that verifies; the network's arguments and the sample shape come from the checkpoint
    (runs older than that record read their data for them). A stochastic-interpolant run
    (``process = "interpolant"``) loads, as an :class:`interpolant.interpolants.InterpolantModel`,
    only for callers that pass ``interpolant=True``; the others refuse it in one line."""
    from ..training.checkpoint import newest_valid

    config = open_run(run_dir)
    if config.process == "interpolant" and not interpolant:
        raise InterpolantError(
            f"{run_dir} is a stochastic-interpolant run (from {config.source}); this command "
            "needs a Gaussian-path run. Sample it with `interpolant sample --run-dir "
            f"{run_dir} --solver heun`")
    if config.model == "diffusers":
        from .diffusers_run import load_run

        return load_run(config)
    ckpt, skipped = newest_valid(Path(run_dir) / "checkpoints")
    if ckpt is None:
        raise InterpolantError(f"{run_dir} holds no checkpoint yet; train it first")
    options, shape = ckpt.config.get("model"), ckpt.config.get("data_shape")
    if isinstance(options, dict) and ckpt.config.get("arch", config.model) == config.model:
        net = models.build(config.model, **options)
    else:
        x, labels = load_data(config)
        net = build_model(config, x[:2], labels)
    if not (isinstance(shape, list) and all(isinstance(d, int) and d > 0 for d in shape)):
        shape = list(load_data(config, "test")[0].shape[1:])
    if config.recipe:  # a recipe's network wrapper (E-TSDM's shared time) holds the weights
        from ..training.recipes import wrap_network

        net = wrap_network(config.recipe, net)
    weights = ckpt.tensors.get("ema") if use_ema else None
    net.load_state_dict(weights if weights is not None else ckpt.tensors["model"])
    net.eval()
    if config.recipe:  # load-time steps of the recipes (e.g. a saved calibration)
        from ..training.recipes import load_network

        net = load_network(config.recipe, run_dir, net, paths.get(config.path), config.target)
    if config.process == "interpolant":
        from .interpolant_run import model_of

        den = model_of(net, config)
    else:
        den = Denoiser(net, paths.get(config.path), prediction=config.target)
    student = ckpt.config.get("student")
    if isinstance(student, dict):  # a few-step student of `interpolant distill`
        from .distill import student_denoiser

        den = student_denoiser(net, den.path, config.target, student)
    return TrainedRun(config, den, tuple(shape), ckpt.path, skipped)


def load_denoiser(run_dir: str | os.PathLike[str], use_ema: bool = True) -> tuple[
    RunConfig, Denoiser
]:
    """``(config, denoiser)`` of :func:`load_trained`."""
    run = load_trained(run_dir, use_ema)
    return run.config, run.denoiser
