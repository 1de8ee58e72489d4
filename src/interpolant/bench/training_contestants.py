"""What the training benchmark trains: the command line's default run, the plain diffusers
recipe, and every training recipe, each as a :class:`Contestant` that steps and samples.

- ``default``: ``interpolant train``'s run on the digits, trained here without labels: the
  default network (:data:`interpolant.app.runs.IMAGE_MODEL` U-Net), path (cosine VP), target
  (``v``) and the training defaults of :data:`interpolant.app.workflows.TRAIN_DEFAULTS`.
- ``diffusers``: the standard loop of diffusers' ``train_unconditional`` example,
  ``UNet2DModel`` + ``DDPMScheduler.add_noise`` on integer timesteps, eps MSE, AdamW with the
  same lr, warm-up, batch and clipping; sampled as an ``eps`` Denoiser on the scheduler's own
  ``alphas_cumprod`` (the network sees ``k = 1000 t - 1``).
- a recipe name (or ``a+b`` for several composed): the default run with the recipe's
  overrides, from :func:`interpolant.training.recipes` where that registry exists, else from
  :data:`LOCAL_RECIPES` (the networks and REPA of this package).

Every contestant trains on the same 1500 training digits with the same batch size and seed
and is sampled from its current raw weights (no EMA: the budgets are short, and an EMA lags).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import interpolant as ip

from ..app.runs import RunConfig, build_model
from ..app.workflows import TRAIN_DEFAULTS
from ..errors import InterpolantError
from ..training import Objective, TrainConfig, Trainer

__all__ = ["LOCAL_RECIPES", "Contestant", "DiffusersRecipe", "RunContestant", "contestant",
           "recipe_names"]

# name -> RunConfig overrides ("model", "model_options", "path", "target", "train") and an
# optional "objective": (base objective, net, data) -> objective
LOCAL_RECIPES: dict[str, dict[str, Any]] = {
    # magnitude-preserving weights have unit-RMS rows (elements ~1, not ~1/sqrt(fan_in)), so
    # Adam needs a larger step: the paper's reference rate is 0.01
    "edm2": {"model": "edm2", "train": {"lr": 1e-2}},
    "mmdit": {"model": "mmdit", "model_options": {"hidden": 96, "depth": 4, "heads": 4}},
    "repa": {"objective": lambda base, net, data: _repa(base, net, data)},
    "dtr": {"model": "dtr"},
    "switch-dit": {"model": "switch-dit"},
}


def _repa(base: Any, net: nn.Module, data: Tensor) -> nn.Module:
    from ..training.repa import REPA

    return REPA(base, net, data[:2])


class Contestant:
    """One training run: ``step()`` trains one batch; ``denoiser()`` samples its weights."""

    name: str
    model: nn.Module

    def step(self) -> None:
        raise NotImplementedError

    def denoiser(self) -> ip.Denoiser:
        raise NotImplementedError


class RunContestant(Contestant):
    """A run of :class:`interpolant.training.Trainer` from a :class:`RunConfig` (no labels)."""

    def __init__(self, name: str, config: RunConfig, data: Tensor, batch_size: int,
                 objective: Callable[..., Any] | None = None) -> None:
        self.name, self.config = name, config
        self.model = build_model(config, data, None)
        self.path = ip.paths.get(config.path)
        options = {**TRAIN_DEFAULTS, "checkpoint_every": None, **config.train,
                   "batch_size": batch_size, "target": config.target, "seed": config.seed,
                   "progress": False, "ema_halflife": None, "label_dropout": 0.0}
        cfg = TrainConfig(**options)
        loss = None
        if objective is not None:
            loss = objective(Objective(self.path, cfg.target, cfg.density, cfg.weight),
                             self.model, data)
        self.trainer = Trainer(self.model, self.path, data, config=cfg, objective=loss)

    def step(self) -> None:
        self.trainer.step()

    def denoiser(self) -> ip.Denoiser:
        return ip.Denoiser(self.model, self.path, prediction=self.config.target)


def diffusers_model() -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))


class DiffusersRecipe(Contestant):
    """The plain loop: sample k, add noise, predict, MSE, AdamW with warm-up, clip at 1."""

    def __init__(self, data: Tensor, batch_size: int, lr: float, warmup: int, seed: int) -> None:
        try:
            from diffusers import DDPMScheduler
        except ImportError:
            raise InterpolantError("the 'diffusers' contestant needs the diffusers package "
                                   "(pip install diffusers), or leave it out of --recipes"
                                   ) from None
        torch.manual_seed(seed)
        self.name = "diffusers"
        self.model = diffusers_model()
        self.scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / warmup))
        self.data, self.batch_size, self.g = data, batch_size, torch.Generator().manual_seed(seed)
        self.path = ip.paths.VPDiscrete(self.scheduler.alphas_cumprod.double())

    def step(self) -> None:
        idx = torch.randint(0, len(self.data), (self.batch_size,), generator=self.g)
        x0 = self.data[idx]
        noise = torch.randn(x0.shape, generator=self.g)
        k = torch.randint(0, 1000, (self.batch_size,), generator=self.g)
        loss = F.mse_loss(self.model(self.scheduler.add_noise(x0, noise, k), k).sample, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()

    def denoiser(self) -> ip.Denoiser:
        n = self.scheduler.config.num_train_timesteps
        return ip.Denoiser(lambda x, t, cond=None: self.model(x, t).sample, self.path,
                           prediction="eps", time_scale=n, time_shift=-1)


def _registry() -> dict[str, Any]:
    try:
        from ..training import recipes
    except ImportError:
        return {}
    return dict(getattr(recipes, "RECIPES", {}))


def recipe_names() -> list[str]:
    """Every name the benchmark accepts: ``default``, ``diffusers`` and the recipes."""
    return ["default", "diffusers", *sorted(set(_registry()) | set(LOCAL_RECIPES))]


def _recipe_config(names: list[str]) -> tuple[RunConfig, Callable[..., Any] | None]:
    """The default run with the overrides of ``names`` applied in order."""
    registry = _registry()
    config, objective = RunConfig(), None
    for name in names:
        spec = LOCAL_RECIPES.get(name) if name in LOCAL_RECIPES else registry.get(name)
        if spec is None:
            from ..errors import unknown_name

            raise unknown_name("training recipe", name, recipe_names())
        if hasattr(spec, "apply"):  # the training registry's own recipe objects
            config = spec.apply(config)
            continue
        for key in ("model", "path", "target"):
            if key in spec:
                setattr(config, key, spec[key])
        config.model_options = {**config.model_options, **spec.get("model_options", {})}
        config.train = {**config.train, **spec.get("train", {})}
        objective = spec.get("objective", objective)
    return config, objective


def contestant(name: str, data: Tensor, batch_size: int, lr: float, seed: int = 0
               ) -> Contestant:
    """The contestant called ``name`` (see the module docstring)."""
    if name == "diffusers":
        return DiffusersRecipe(data, batch_size, lr, TRAIN_DEFAULTS["warmup"], seed)
    config, objective = _recipe_config([] if name == "default" else name.split("+"))
    config.seed = seed
    config.train = {"lr": lr, **config.train}
    return RunContestant(name, config, data, batch_size, objective)
