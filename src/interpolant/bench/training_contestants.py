"""What the training benchmark trains: the command line's default run, the plain diffusers
recipe, and every training recipe, each as a :class:`Contestant` that steps and samples.

- ``default``: ``interpolant train``'s run on the digits, trained here without labels: the
  default network (:data:`interpolant.app.runs.IMAGE_MODEL` U-Net), path (cosine VP), target
  (``v``) and the training defaults of :data:`interpolant.app.workflows.TRAIN_DEFAULTS`.
- ``diffusers``: the standard loop of diffusers' ``train_unconditional`` example,
  ``UNet2DModel`` + ``DDPMScheduler.add_noise`` on integer timesteps, eps MSE, AdamW with the
  same lr, warm-up, batch and clipping; sampled as an ``eps`` Denoiser on the scheduler's own
  ``alphas_cumprod`` (the network sees ``k = 1000 t - 1``).
- a recipe name of :data:`interpolant.training.recipes.RECIPES` (or ``a+b`` for several
  composed): the default run with the recipe applied as ``interpolant train --recipe a,b``
  applies it (its run and training settings, network wrapper and objective).

Every contestant trains on the same 1500 training digits with the same batch size and seed.
It is sampled from its EMA weights (``denoiser(ema=True)``, what ``interpolant sample`` uses
and what the field reports; the diffusers loop gets the same half-life, as its example's
``--use_ema`` keeps one) or from its current raw weights (``ema=False``); a run pays for its
EMA in its training time either way. A recipe without a classic EMA is sampled raw.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import weakref

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import interpolant as ip

from ..app.runs import RunConfig, build_model
from ..app.workflows import TRAIN_DEFAULTS
from ..errors import InterpolantError
from ..training import TrainConfig, Trainer
from ..training.ema import EMA

__all__ = ["Contestant", "DiffusersRecipe", "RunContestant", "contestant", "recipe_names"]


class Contestant:
    """One training run: ``step()`` trains one batch; ``denoiser()`` samples its weights."""

    name: str
    model: nn.Module

    def step(self) -> None:
        raise NotImplementedError

    def denoiser(self, ema: bool = True) -> ip.Denoiser:
        raise NotImplementedError


class RunContestant(Contestant):
    """A run of :class:`interpolant.training.Trainer` from a :class:`RunConfig` (no labels),
    with its recipe's network wrapper and objective if it has a recipe."""

    def __init__(self, name: str, config: RunConfig, data: Tensor, batch_size: int,
                 lr: float) -> None:
        from ..app.recipe_run import recipe_parts

        self.name, self.config = name, config
        self.path = ip.paths.get(config.path)
        options = {**TRAIN_DEFAULTS, "checkpoint_every": None, "lr": lr, **config.train,
                   "batch_size": batch_size, "target": config.target, "seed": config.seed,
                   "progress": False, "label_dropout": 0.0}
        cfg = TrainConfig(**options)
        net = build_model(config, data, None)
        self.model, objective = recipe_parts(config, net, self.path, cfg)
        # a scratch run directory, for recipes that write as they train (post-hoc EMA
        # snapshots); removed with the contestant
        self.run_dir, self.data = tempfile.mkdtemp(prefix="interpolant-bench-training-"), data
        weakref.finalize(self, shutil.rmtree, self.run_dir, True)
        self.trainer = Trainer(self.model, self.path, data, config=cfg, run_dir=self.run_dir,
                               objective=objective)

    def step(self) -> None:
        self.trainer.step()

    def denoiser(self, ema: bool = True) -> ip.Denoiser:
        """The EMA (if ``ema`` and the run keeps one) or current weights, through the recipe's
        after-training step and load-time transform (e.g. score calibration, estimated anew
        at each evaluation, unclocked)."""
        spec = self.config.recipe
        net = self.trainer.ema.model if ema and self.trainer.ema is not None else self.model
        if spec:
            from ..training import recipes

            recipes.finish_run(spec, self.run_dir, net, self.path, self.config.target,
                               self.data)
            net = recipes.load_network(spec, self.run_dir, net, self.path, self.config.target)
        return ip.Denoiser(net, self.path, prediction=self.config.target)


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
        self.ema, self.seen = EMA(self.model, halflife=TRAIN_DEFAULTS["ema_halflife"]), 0

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
        self.seen += self.batch_size
        self.ema.update(self.model, self.batch_size, self.seen)

    def denoiser(self, ema: bool = True) -> ip.Denoiser:
        n, net = self.scheduler.config.num_train_timesteps, self.ema.model if ema else self.model
        return ip.Denoiser(lambda x, t, cond=None: net(x, t).sample, self.path,
                           prediction="eps", time_scale=n, time_shift=-1)


def recipe_names() -> list[str]:
    """Every name the benchmark accepts: ``default``, ``diffusers`` and the recipes."""
    from ..training.recipes import RECIPES

    return ["default", "diffusers", *RECIPES]


def contestant(name: str, data: Tensor, batch_size: int, lr: float, seed: int = 0
               ) -> Contestant:
    """The contestant called ``name`` (see the module docstring)."""
    from ..training import recipes

    known = recipe_names()
    for part in name.split("+"):
        if part not in known or (part in ("default", "diffusers") and part != name):
            from ..errors import unknown_name

            raise unknown_name("training recipe", part, known)
    if name == "diffusers":
        return DiffusersRecipe(data, batch_size, lr, TRAIN_DEFAULTS["warmup"], seed)
    config = RunConfig(seed=seed)
    if name != "default":
        spec = name.replace("+", ",")
        for key, value in recipes.run_overrides(spec).items():
            setattr(config, key, copy.deepcopy(value))
        config.train = recipes.train_overrides(spec, {**TRAIN_DEFAULTS, "lr": lr})
        config.recipe = spec
        recipes.check_model(spec, config.model)
    return RunContestant(name, config, data, batch_size, lr)
