"""A model saved by diffusers as a run: ``interpolant sample --diffusers DIR --run-dir RUN``.

``DIR`` is a folder written by ``save_pretrained`` (a pipeline with ``unet/`` or
``transformer/`` beside ``scheduler/``, or a model folder with its ``scheduler_config.json``);
nothing is downloaded. The first ``sample`` writes ``RUN/config.json``::

    model = "diffusers", model_options = {"folder": DIR}   the network, loaded from DIR
    path = "diffusers"                                     the scheduler's own path
    target = eps | v | x0 | velocity                       read from the scheduler
    data = REF ("" without --data)                         reference data for `eval`

and ``eval``, ``report`` and later ``sample`` calls read ``RUN`` like a trained run
(:func:`interpolant.app.runs.load_trained` loads it through :func:`load_run`): the denoiser is
:func:`interpolant.interop.load_diffusers`, so every solver of the library samples it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InterpolantError

if TYPE_CHECKING:
    from .runs import RunConfig, TrainedRun

MODEL = PATH = "diffusers"


def _model_config(folder: Path) -> dict:
    """The network's ``config.json`` of a diffusers folder (pipeline or model)."""
    for sub in (folder / "unet", folder / "transformer", folder):
        if (sub / "config.json").is_file():
            return json.loads((sub / "config.json").read_text())
    raise InterpolantError(f"{folder} holds no diffusers model (config.json in unet/, "
                           "transformer/ or itself); write one with save_pretrained")


def check_config(config: RunConfig) -> None:
    """Refuse a diffusers run whose folder, path or reference data is wrong."""
    from .. import data as datasets

    folder = config.model_options.get("folder")
    if not isinstance(folder, str) or not Path(folder).is_dir():
        raise InterpolantError(f"the diffusers model folder {folder!r} of this run does not "
                               "exist; make the run again with `interpolant sample --diffusers "
                               "DIR --run-dir RUN`")
    if config.path != PATH:
        raise InterpolantError(f"a diffusers run samples on its scheduler's own path; its path "
                               f"is {PATH!r}, got {config.path!r}")
    if config.data:
        datasets.check_source(config.data)


def _shape(model_config: dict, folder: Path) -> tuple[int, int, int]:
    """``(C, H, W)`` of one sample from the network's config."""
    if model_config.get("cross_attention_dim") or model_config.get("_class_name") == (
            "UNet2DConditionModel"):
        raise InterpolantError(
            f"{folder} is a text-conditioned network (encoder_hidden_states), which the "
            "command line cannot condition; in Python, pass the embeddings as cond to "
            "ip.sample(ip.interop.load_diffusers(DIR), ...)")
    size, channels = model_config.get("sample_size"), model_config.get("in_channels")
    h, w = (size, size) if isinstance(size, int) else tuple(size or (None, None))
    if not all(isinstance(v, int) and v > 0 for v in (channels, h, w)):
        raise InterpolantError(f"{folder}: cannot read the sample shape (in_channels "
                               f"{channels!r}, sample_size {size!r}) from the model's config")
    return channels, h, w


def load_run(config: RunConfig) -> TrainedRun:
    """The run's denoiser, loaded from its diffusers folder (eval mode, on the CPU)."""
    from ..interop import load_diffusers
    from .runs import TrainedRun

    check_config(config)
    folder = Path(config.model_options["folder"])
    shape = _shape(_model_config(folder), folder)
    return TrainedRun(config, load_diffusers(folder), shape, folder, [])


def prepare(args: argparse.Namespace) -> None:
    """``sample --diffusers DIR --run-dir RUN [--data REF]``: make ``RUN`` a run of the model
    in ``DIR`` (or check that it is one already; ``--data`` replaces its reference data)."""
    from .runs import CONFIG_FILE, RunConfig, open_run, write_json

    if args.diffusers is None:
        if args.data is not None:
            raise InterpolantError("--data of `interpolant sample` gives the reference data of "
                                   "a diffusers model: use it with --diffusers DIR (a trained "
                                   "run keeps its own data)")
        return
    folder = args.diffusers.expanduser().resolve()
    if not folder.is_dir():
        raise InterpolantError(f"--diffusers {args.diffusers}: no such folder; give a folder "
                               "written by diffusers' save_pretrained")
    model_config = _model_config(folder)
    _shape(model_config, folder)
    run_dir: Path = args.run_dir
    old = None
    if (run_dir / CONFIG_FILE).is_file():
        old = open_run(run_dir)
        if old.model != MODEL or old.model_options.get("folder") != str(folder):
            raise InterpolantError(f"{run_dir} already holds another run; give --run-dir a new "
                                   f"folder for the diffusers model {folder}")
    elif run_dir.exists() and not run_dir.is_dir():
        raise InterpolantError(f"{run_dir} is a file; give --run-dir a folder")
    data = args.data if args.data is not None else (old.data if old is not None else "")
    config = RunConfig(data=data, model=MODEL, model_options={"folder": str(folder)},
                       path=PATH, target=_target(folder))
    config.check()
    if data:
        _check_reference(config, _shape(model_config, folder))
    write_json(run_dir / CONFIG_FILE, config.to_json())


def _target(folder: Path) -> str:
    from ..interop import PREDICTIONS, is_flow_matching

    for file in (folder / "scheduler" / "scheduler_config.json",
                 folder / "scheduler_config.json"):
        if file.is_file():
            if is_flow_matching(file):
                return "velocity"
            kind = json.loads(file.read_text()).get("prediction_type", "epsilon")
            return PREDICTIONS.get(kind, kind)
    raise InterpolantError(f"{folder} holds no scheduler_config.json (nor scheduler/ with "
                           "one); save the pipeline, or the scheduler beside the model")


def _check_reference(config: RunConfig, shape: tuple[int, ...]) -> None:
    """The reference data must have the samples' shape (else eval compares apples and pears)."""
    from .runs import load_data

    x, _ = load_data(config, "test")
    if tuple(x.shape[1:]) != tuple(shape):
        raise InterpolantError(
            f"--data {config.data} holds samples of shape {tuple(x.shape[1:])}, the model "
            f"draws {tuple(shape)}; give reference data of the model's shape (for a folder of "
            "images, e.g. 'DIR:size=32,channels=3')")
