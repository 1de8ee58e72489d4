"""``interpolant train --recipe NAME[,NAME]``: a run's training recipes.

See :mod:`interpolant.training.recipes` for the registry.

The recipe's name is stored in the run's ``config.json`` (``recipe``) together with the
settings it resolved to, so ``--resume`` and ``sample`` rebuild the same run: its ``run``
settings (``path``, ``target``, ``model``...) apply unless given on the command line, its
``train`` settings unless the run's ``train`` table sets them; the network wrapper and the
objective are rebuilt from the name when training and loading.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from torch import nn

from ..errors import InterpolantError
from ..paths import GaussianPath
from ..training import TrainConfig
from ..training.recipes import build_objective, run_overrides, train_overrides
from ..training.recipes import wrap_network
from .runs import RunConfig

__all__ = ["apply_recipe", "recipe_parts"]

_RUN_FLAGS = ("data", "model", "path", "target", "process", "source")


def apply_recipe(config: RunConfig, args: argparse.Namespace) -> None:
    """Put ``args.recipe`` into ``config`` (a new run), or check it against a resumed one."""
    spec = getattr(args, "recipe", None)
    if spec is None:
        return
    if getattr(args, "resume", False):
        if spec != config.recipe:
            raise InterpolantError(f"{args.run_dir} was trained with recipe "
                                   f"{config.recipe or 'none'!r}, not {spec!r}; resume it "
                                   "without --recipe")
        return
    config.recipe = spec
    explicit = {key for key in _RUN_FLAGS if getattr(args, key, None) is not None}
    for key, value in run_overrides(spec).items():
        if key not in explicit:
            setattr(config, key, copy.deepcopy(value))
    from .workflows import TRAIN_DEFAULTS

    options = {**TRAIN_DEFAULTS, **config.train}
    for key, value in train_overrides(spec, options).items():
        config.train.setdefault(key, value)


def recipe_parts(config: RunConfig, net: nn.Module, path: GaussianPath, train: TrainConfig,
                 objective: Any = None) -> tuple[nn.Module, Any]:
    """The run's network through its recipe's wrapper, and its recipe's objective (or
    ``objective`` when the recipe has none)."""
    if not config.recipe:
        return net, objective
    net = wrap_network(config.recipe, net)
    own = build_objective(config.recipe, path, train, net)
    if own is not None and objective is not None:
        raise InterpolantError(f"recipe {config.recipe} replaces the loss, which a "
                               f"{config.process} run defines itself; train it without it")
    return net, own if own is not None else objective
