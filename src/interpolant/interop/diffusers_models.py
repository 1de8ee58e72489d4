"""diffusers models and schedulers as :class:`~interpolant.Denoiser` s on the scheduler's path.

``from_diffusers(model, scheduler_or_config)`` reads three things from the scheduler:

- **the path.** DDPM-family schedulers (DDPM, DDIM, PNDM, Euler, DPM-Solver, UniPC, ...):
  ``VPDiscrete(alphas_cumprod)`` with the scheduler's own ``alphas_cumprod`` (the float32
  values diffusers trains with, whatever the beta schedule, ``trained_betas`` or
  ``rescale_betas_zero_snr``). Flow-matching schedulers (``FlowMatchEulerDiscreteScheduler``,
  ``FlowMatchHeunDiscreteScheduler``): the rectified-flow path ``Linear``,
  ``x = (1 - sigma) x0 + sigma noise`` with our ``t`` equal to diffusers' ``sigma``.
- **the time.** Training index ``k`` of a discrete schedule sits at ``t = (k + 1) / N``
  (``VPDiscrete``'s convention), so the network is called with ``timestep = t N - 1``, a
  float; where float32 cannot tell ``t`` from ``(k + 1) / N`` the integer ``k`` is passed,
  as diffusers does. Flow matching: ``timestep = sigma N = t N``.
- **the target.** ``prediction_type`` ``epsilon`` -> ``eps``, ``v_prediction`` -> ``v``,
  ``sample`` -> ``x0``. Flow-matching networks predict ``noise - x0`` (``FlowMatchEuler``'s
  step is ``x + (sigma_next - sigma) out``): that is ``dx/dsigma = dx/dt`` on ``Linear``,
  our ``velocity``, with the same sign.

**Shift.** A flow-matching scheduler's ``shift`` does not change the path or the network's
time: the network was trained at ``timestep = sigma N`` on ``x = (1 - sigma) x0 + sigma
noise``. It only places the sampling grid: diffusers takes evenly spaced ``s`` and samples at
``sigma = shift s / (1 + (shift - 1) s)`` (:func:`shift_time`). So with ``t = sigma`` the
solvers (Euler included) step exactly as diffusers does; pass the shifted times as the grid:
:func:`diffusers_grid` (the scheduler's own times) or :func:`shift_time` of a uniform grid.

Conditioning arrives in ``cond``: a float tensor is ``encoder_hidden_states`` (text
embeddings of ``UNet2DConditionModel``), an int64 tensor ``class_labels`` (class-conditional
``UNet2DModel``, ``DiTTransformer2DModel``; ``NULL_LABEL`` becomes DiT's null class), a dict
passes its entries as keyword arguments (``"labels"`` as ``class_labels``). A network with
twice the input channels out (DiT's learned variance) gives its first half.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import grids
from ..errors import InterpolantError, unknown_name
from ..labels import NULL_LABEL
from ..paths import GaussianPath, Linear, VPDiscrete
from ..predictions import Denoiser

__all__ = [
    "PREDICTIONS", "DiffusersNet", "diffusers_grid", "from_diffusers", "is_flow_matching",
    "load_diffusers", "scheduler_path", "shift_time",
]

PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
CONFIG_NAME = "scheduler_config.json"


class DiffusersNet(nn.Module):
    """A diffusers network called the library's way: ``net(x, t, cond)`` with our ``t``.

    ``timestep = t * num_train_timesteps + offset`` (``offset = -1`` for DDPM indices, ``0``
    for flow matching), computed in float64 and handed over in float32.
    """

    def __init__(self, model: nn.Module, num_train_timesteps: int, offset: float) -> None:
        super().__init__()
        if not callable(model):
            raise InterpolantError(f"model must be a diffusers model, got {type(model).__name__}")
        self.model = model
        self.num_train_timesteps = int(num_train_timesteps)
        self.offset = float(offset)
        config = getattr(model, "config", {})
        config = config if isinstance(config, Mapping) else {}
        # class-conditional networks: DiT keeps a null class after its num_embeds_ada_norm
        # classes (label dropout in training), UNet2DModel(num_class_embeds=K) has none
        dit = "DiT" in type(model).__name__
        self.null_class = config.get("num_embeds_ada_norm") if dit else None
        self.num_classes = self.null_class if dit else config.get("num_class_embeds")
        # what the library reads from a network (app/draw.py: labels for class-conditional ones)
        self.config = {"num_classes": self.num_classes} if self.num_classes else {}
        self.train(getattr(model, "training", False))  # the wrapper keeps the model's mode

    def timestep(self, t: Tensor) -> Tensor:
        """diffusers' ``timestep`` for our times ``t`` (shape ``(B,)``)."""
        k = t.to(torch.float64) * self.num_train_timesteps + self.offset
        if self.offset != 0.0:  # integer training indices, up to the resolution of t
            tol = 4 * self.num_train_timesteps * torch.finfo(t.dtype).eps
            k = torch.where((k - k.round()).abs() <= tol, k.round(), k)
        return k.to(torch.float32)

    def forward(self, x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
        out = self.model(x, timestep=self.timestep(t).to(x.device), return_dict=False,
                         **self.keywords(cond))[0]
        if out.ndim == x.ndim and out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]  # learned variance (DiT, improved DDPM): the mean part
        return out

    def keywords(self, cond: Any) -> dict[str, Any]:
        """The keyword arguments that carry ``cond`` to the diffusers network."""
        if cond is None:
            return {}
        if isinstance(cond, Mapping):
            kw = dict(cond)
            if "labels" in kw:
                kw["class_labels"] = kw.pop("labels")
        elif isinstance(cond, Tensor):
            key = "encoder_hidden_states" if cond.is_floating_point() else "class_labels"
            kw = {key: cond}
        else:
            raise InterpolantError(
                "cond for a diffusers model must be a tensor (float: encoder_hidden_states, "
                f"int64: class labels) or a dict of keyword arguments, got {type(cond).__name__}"
            )
        labels = kw.get("class_labels")
        if isinstance(labels, Tensor) and bool((labels == NULL_LABEL).any()):
            if self.null_class is None:
                raise InterpolantError(
                    f"{type(self.model).__name__} has no 'no label' class for NULL_LABEL; "
                    "classifier-free guidance needs a model trained with label dropout"
                )
            kw["class_labels"] = torch.where(labels == NULL_LABEL, self.null_class, labels)
        return kw


def _config_of(scheduler_or_config: Any) -> tuple[dict[str, Any], Any]:
    """``(config, scheduler or None)`` from a scheduler, a config or a saved config's path."""
    if isinstance(scheduler_or_config, (str, os.PathLike)):
        path = Path(scheduler_or_config)
        for file in (path, path / CONFIG_NAME, path / "scheduler" / CONFIG_NAME):
            if file.is_file():
                return json.loads(file.read_text()), None
        raise InterpolantError(f"no {CONFIG_NAME} at {path} (nor in {path}/scheduler)")
    config = getattr(scheduler_or_config, "config", None)
    if isinstance(config, Mapping):
        return dict(config), scheduler_or_config
    if isinstance(scheduler_or_config, Mapping):
        return dict(scheduler_or_config), None
    raise InterpolantError(
        "give a diffusers scheduler, its config (a dict) or the path of its "
        f"{CONFIG_NAME}, got {type(scheduler_or_config).__name__}"
    )


def is_flow_matching(scheduler_or_config: Any) -> bool:
    """Whether the scheduler (or config) is a flow-matching one."""
    config, scheduler = _config_of(scheduler_or_config)
    name = type(scheduler).__name__ if scheduler is not None else config.get("_class_name", "")
    if name:
        return name.startswith("FlowMatch")
    return "shift" in config and "beta_schedule" not in config


def _scheduler(config: dict[str, Any], scheduler: Any) -> Any:
    """The scheduler itself, built from its config by diffusers when only the config is given."""
    if scheduler is not None:
        return scheduler
    import diffusers

    cls = getattr(diffusers, config.get("_class_name") or "DDPMScheduler", None)
    if cls is None or not hasattr(cls, "from_config"):
        raise InterpolantError(f"unknown diffusers scheduler {config.get('_class_name')!r}")
    return cls.from_config(config)


def scheduler_path(scheduler_or_config: Any) -> GaussianPath:
    """The Gaussian path of a diffusers scheduler (see the module docstring)."""
    if is_flow_matching(scheduler_or_config):
        return Linear()
    sched = _scheduler(*_config_of(scheduler_or_config))
    ac = getattr(sched, "alphas_cumprod", None)
    if not isinstance(ac, Tensor):
        raise InterpolantError(f"{type(sched).__name__} has no alphas_cumprod to build a path on")
    return VPDiscrete(ac.detach().to("cpu", torch.float64))


def from_diffusers(model: nn.Module, scheduler_or_config: Any) -> Denoiser:
    """A Denoiser for a diffusers ``model`` on the path of ``scheduler_or_config``.

    ``scheduler_or_config``: a diffusers scheduler, its ``config`` (dict), or the path of a
    saved ``scheduler_config.json`` (or of the folder holding it, or ``scheduler/`` in it).
    """
    config, _ = _config_of(scheduler_or_config)
    n = int(config.get("num_train_timesteps", 1000))
    path = scheduler_path(scheduler_or_config)
    if isinstance(path, Linear):
        return Denoiser(DiffusersNet(model, n, 0.0), path, prediction="velocity")
    kind = config.get("prediction_type", "epsilon")
    if kind not in PREDICTIONS:
        raise unknown_name("diffusers prediction_type", kind, PREDICTIONS)
    return Denoiser(DiffusersNet(model, n, -1.0), path, prediction=PREDICTIONS[kind])


def load_diffusers(directory: str | os.PathLike[str]) -> Denoiser:
    """A Denoiser from a folder written by diffusers' ``save_pretrained``: a pipeline folder
    (``unet/`` or ``transformer/`` beside ``scheduler/``) or a model folder holding its
    ``config.json`` and weights together with a ``scheduler_config.json``. Nothing is
    downloaded; the model comes back in eval mode."""
    import diffusers

    root = Path(directory)
    folders = [root / "unet", root / "transformer", root]
    folder = next((f for f in folders if (f / "config.json").is_file()), None)
    if folder is None:
        raise InterpolantError(
            f"{root} holds no diffusers model (config.json in unet/, transformer/ or itself); "
            "write one with save_pretrained"
        )
    name = json.loads((folder / "config.json").read_text()).get("_class_name", "")
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise InterpolantError(f"{folder}/config.json names no diffusers model ({name!r})")
    model = cls.from_pretrained(folder, local_files_only=True).eval()
    return from_diffusers(model, root)


def shift_time(s: Tensor | float, shift: float) -> Tensor | float:
    """diffusers' timestep shift ``sigma = shift s / (1 + (shift - 1) s)`` (SD3, Esser et al.
    2024): maps evenly spaced ``s`` to the flow-matching times (our ``t``) it samples at."""
    return grids.shift(s, shift)


def diffusers_grid(scheduler: Any, steps: int | None = None) -> Tensor:
    """The times (float64, decreasing) at which ``scheduler`` evaluates the network, as our
    ``t``, then the time it ends at: ready for ``ip.sample(den, x, solver, grid=...)``.
    ``steps`` calls its ``set_timesteps`` first.

    Flow matching: its ``sigmas`` (ending at ``0``). DDPM family: ``(k + 1) / N`` for its
    timesteps ``k``, then the end: the time of its last noise level, e.g. ``1 / N``
    (``alphas_cumprod[0]``) for DDIM with ``set_alpha_to_one=False`` or DPM-Solver with
    ``final_sigmas_type="sigma_min"``. Schedulers whose last step goes to zero noise (Euler,
    ``final_sigmas_type="zero"``, ``set_alpha_to_one=True``) return the data prediction at
    their last time: the grid then ends there, and ``denoise_to_zero=True`` takes that step.
    Timesteps between training indices (``timestep_spacing="linspace"`` with a step count
    that does not divide ``N - 1``) are exact times here, while diffusers' sigma schedulers
    interpolate ``sigma`` linearly in the index there: a small difference of schedule, not
    of method ("leading" and "trailing" spacings give integer timesteps).
    """
    if steps is not None:
        scheduler.set_timesteps(steps)
    if getattr(scheduler, "timesteps", None) is None:
        raise InterpolantError("the scheduler has no timesteps yet: pass steps")
    if is_flow_matching(scheduler):
        return scheduler.sigmas.detach().to("cpu", torch.float64).clone()
    n = scheduler.config.num_train_timesteps
    ts = (scheduler.timesteps.detach().to("cpu", torch.float64) + 1) / n
    if not bool(torch.all(ts[1:] < ts[:-1])):
        raise InterpolantError(
            f"{type(scheduler).__name__} revisits timesteps (multi-stage steps); its grid "
            "is not one decreasing list of times"
        )
    end = _end_time(scheduler)
    return ts if end is None else torch.cat([ts, ts.new_tensor([end])])


def _end_time(scheduler: Any) -> float | None:
    """Our time of the scheduler's last noise level; ``None`` where that is zero noise."""
    sigmas = getattr(scheduler, "sigmas", None)  # sigma / alpha of the sigma schedulers
    if isinstance(sigmas, Tensor):
        last = float(sigmas[-1])
        lam = -math.log(last) if last > 0 else None
    else:  # DDIM, DDPM, PNDM: alphas_cumprod of the last step's target
        a = float(getattr(scheduler, "final_alpha_cumprod", 1.0))
        lam = 0.5 * math.log(a / (1 - a)) if a < 1 else None
    return None if lam is None else float(scheduler_path(scheduler).t_of_lam(lam))
