"""Training recipes: named, composable bundles of settings from the papers.

``RECIPES`` is a plain dict ``name -> Recipe``; a run names one or several, ``"sd3,p2"``.
A :class:`Recipe` may set

* ``train``: :class:`~.config.TrainConfig` fields (time density, loss weight, EMA...); a value
  may be a callable of the run's other training options (e.g. a snapshot interval from
  ``steps``);
* ``run``: settings of the run itself (``path``, ``target``, ``model``, ``model_options``);
* ``objective``: a factory ``(path, train_config, net) -> objective`` for the trainer's
  ``objective`` hook (e.g. EDM2's learned uncertainty weighting);
* ``wrap``: a network transform ``net -> net`` applied for training and sampling alike
  (e.g. E-TSDM's shared time condition);
* ``finish``: ``(run_dir, net, path, target, data, labels) -> None`` after training, on the
  trained (EMA) network, e.g. to estimate and save a calibration;
* ``load``: ``(run_dir, net, path, target) -> net`` when a trained run is loaded for sampling;
* ``models``: the networks it works with (``None``: any).

Recipes compose when they set different things; two that set the same key to different values,
two objectives, or a recipe beside a network it does not support are refused in one line.
Settings the user gives explicitly win over a recipe's ``run`` and ``train`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import InterpolantError, unknown_name
from ..paths import GaussianPath
from .config import TrainConfig

__all__ = ["Recipe", "RECIPES", "resolve", "train_overrides", "run_overrides", "check_model",
           "build_objective", "wrap_network", "finish_run", "load_network"]

ObjectiveFactory = Callable[[GaussianPath, TrainConfig, nn.Module], Any]


@dataclass(frozen=True)
class Recipe:
    """One recipe: what it sets (see the module docstring) and its paper in ``summary``."""

    summary: str
    train: Mapping[str, Any] = field(default_factory=dict)
    run: Mapping[str, Any] = field(default_factory=dict)
    objective: ObjectiveFactory | None = None
    wrap: Callable[[nn.Module], nn.Module] | None = None
    models: tuple[str, ...] | None = None
    finish: Callable[..., None] | None = None
    load: Callable[..., nn.Module] | None = None


def _uncertainty(path: GaussianPath, config: TrainConfig, net: nn.Module) -> Any:
    from .uncertainty import UncertaintyObjective

    return UncertaintyObjective(path, config.target, config.density, config.weight)


def _ant_uw(path: GaussianPath, config: TrainConfig, net: nn.Module) -> Any:
    from .ant import ant_uw

    return ant_uw(path, config.target, config.density, config.weight)


def _smooth(path: GaussianPath, config: TrainConfig, net: nn.Module) -> Any:
    from .smooth import SmoothObjective

    return SmoothObjective(path, config.target, config.density, config.weight)


def _etsdm(net: nn.Module) -> nn.Module:
    from .etsdm import SharedTimeNet

    return SharedTimeNet(net)


def _repa(path: GaussianPath, config: TrainConfig, net: nn.Module) -> Any:
    from .objectives import Objective
    from .repa import REPA

    return REPA(Objective(path, config.target, config.density, config.weight), net)


def _switch_prior(path: GaussianPath, config: TrainConfig, net: nn.Module) -> Any:
    from .objectives import Objective
    from .switch_prior import SwitchPrior

    return SwitchPrior(Objective(path, config.target, config.density, config.weight), net)


def _calibrate(run_dir: Any, net: nn.Module, path: GaussianPath, target: str, data: Any,
               labels: Any) -> None:
    from .calibration import estimate_calibration, save_calibration

    net.eval()
    save_calibration(run_dir, estimate_calibration(net, path, data, target, labels=labels,
                                                   times=32, samples=min(len(data), 2048)))


def _calibrated(run_dir: Any, net: nn.Module, path: GaussianPath, target: str) -> nn.Module:
    from .calibration import CalibratedNet, load_calibration

    return CalibratedNet(net, path, target, load_calibration(run_dir))


def _snapshots(options: Mapping[str, Any]) -> int:
    """About 20 post-hoc EMA snapshots over the run."""
    return max(1, int(options.get("steps", 1000)) // 20)


RECIPES: dict[str, Recipe] = {
    "sd3": Recipe("SD3 (Esser et al. 2024): rectified flow, velocity target, logit-normal(0, 1) "
                  "times", train={"density": "logit-normal"},
                  run={"path": "linear", "target": "velocity"}),
    "min-snr": Recipe("Min-SNR-5 weighting (Hang et al. 2023)", train={"weight": "min-snr"}),
    "p2": Recipe("P2 weighting, k = 1, gamma = 1 (Choi et al. 2022)", train={"weight": "p2"}),
    "edm2-loss": Recipe(
        "EDM2's loss (Karras et al. 2024): log-normal(-0.4, 1) noise levels, EDM weight divided "
        "by a learned uncertainty e^u(sigma), power-function EMAs (sigma_rel 0.05, 0.10) with "
        "post-hoc EMA snapshots", objective=_uncertainty,
        train={"density": "edm2", "weight": "edm", "ema_halflife": None,
               "ema_sigma_rels": [0.05, 0.10], "ema_snapshot_every": _snapshots}),
    "ant-uw": Recipe("ANT-UW (Go et al. 2023): uncertainty weighting over 5 log-SNR interval "
                     "clusters of the times", objective=_ant_uw),
    "etsdm": Recipe("E-TSDM (Yang et al. 2023): the time condition shared over 5 intervals of "
                    "[0, 0.1)", wrap=_etsdm),
    "smooth": Recipe("Smooth Diffusion (Guo et al. 2024): step-wise variation regularisation, "
                     "lambda = 1", objective=_smooth),
    "calibrate": Recipe("score calibration (Pan et al. 2023): after training, the mean eps "
                        "prediction per time on the training data is estimated (saved as "
                        "calibration.safetensors) and subtracted when sampling",
                        finish=_calibrate, load=_calibrated),
    # networks and alignment (helper 2): a network recipe sets the run's model
    "edm2": Recipe("EDM2's magnitude-preserving U-Net (Karras et al. 2024) at the paper's "
                   "reference learning rate 0.01", run={"model": "edm2"}, train={"lr": 1e-2}),
    "repa": Recipe("REPA (Yu et al. 2025): align an early block with the digits classifier's "
                   "features, lambda 0.5", objective=_repa,
                   models=("unet", "edm2", "dit", "mmdit", "dtr", "switch-dit", "diffussm",
                           "ode-unet")),
    "mmdit": Recipe("SD3's MM-DiT: label tokens and image patches in joint attention",
                    run={"model": "mmdit"}),
    "dtr": Recipe("DTR (Park et al. 2024): a DiT routed by sliding channel masks over time",
                  run={"model": "dtr"}),
    "switch-dit": Recipe("Switch-DiT (Park et al. 2024): a DiT with time-gated sparse experts",
                         run={"model": "switch-dit"}),
    "switch-dit-prior": Recipe("Switch-DiT with its diffusion prior loss on the gates: DTR's "
                               "sliding window over the gate units, Jensen-Shannon, lambda 1",
                               run={"model": "switch-dit"}, objective=_switch_prior,
                               models=("switch-dit",)),
    "diffussm": Recipe("DiffuSSM (Yan et al. 2024): a DiT whose attention is a gated "
                       "bidirectional state-space model", run={"model": "diffussm"}),
    "beyond-u": Recipe("Beyond U (Calvo-Ordonez et al. 2024): the U-Net with continuous-depth "
                       "(ODE, 2 RK4 steps) blocks", run={"model": "ode-unet"}),
    "spectral": Recipe("Spectral Diffusion (Yang et al. 2023): the U-Net with wavelet-gated "
                       "down/up-sampling (Haar subbands)", run={"model": "spectral-unet"}),
}


def resolve(spec: str) -> list[tuple[str, Recipe]]:
    """The recipes of ``"a,b,..."`` in order, refused when they conflict."""
    if not isinstance(spec, str) or not spec.strip():
        raise InterpolantError(f"a recipe is a name or names joined by commas, got {spec!r}")
    names = [name.strip() for name in spec.split(",")]
    for name in names:
        if name not in RECIPES:
            raise unknown_name("recipe", name, RECIPES)
    chosen = [(name, RECIPES[name]) for name in dict.fromkeys(names)]
    for kind in ("train", "run"):
        owner: dict[str, tuple[str, Any]] = {}
        for name, recipe in chosen:
            for key, value in getattr(recipe, kind).items():
                if key in owner and owner[key][1] != value:
                    raise InterpolantError(
                        f"recipes {owner[key][0]} and {name} both set {key} "
                        f"({owner[key][1]!r} vs {value!r}); use one of them")
                owner[key] = (name, value)
    losses = [name for name, r in chosen if r.objective is not None]
    if len(losses) > 1:
        raise InterpolantError(f"recipes {' and '.join(losses)} both replace the loss; "
                               "use one of them")
    return chosen


def train_overrides(spec: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The recipes' training settings, callables evaluated on ``options`` (the run's others)."""
    out: dict[str, Any] = {}
    for _, recipe in resolve(spec):
        for key, value in recipe.train.items():
            out[key] = value(options) if callable(value) else value
    return out


def run_overrides(spec: str) -> dict[str, Any]:
    """The recipes' settings of the run (``path``, ``target``, ``model``, ``model_options``)."""
    out: dict[str, Any] = {}
    for _, recipe in resolve(spec):
        out.update(recipe.run)
    return out


def check_model(spec: str, model: str) -> None:
    """Refuse a recipe beside a network it does not support."""
    for name, recipe in resolve(spec):
        if recipe.models is not None and model not in recipe.models:
            raise InterpolantError(f"recipe {name} needs the network {' or '.join(recipe.models)}"
                                   f", but the run uses {model}; drop --model or that recipe")


def build_objective(spec: str, path: GaussianPath, config: TrainConfig,
                    net: nn.Module) -> Any:
    """The objective a recipe puts in the trainer's hook, or ``None``."""
    for _, recipe in resolve(spec):
        if recipe.objective is not None:
            return recipe.objective(path, config, net)
    return None


def finish_run(spec: str, run_dir: Any, net: nn.Module, path: GaussianPath, target: str,
               data: Any, labels: Any = None) -> None:
    """Every recipe's after-training step, on the trained (EMA) network (rank 0 only)."""
    from .distributed import rank_world

    if rank_world()[0] != 0:
        return
    for _, recipe in resolve(spec):
        if recipe.finish is not None:
            recipe.finish(run_dir, net, path, target, data, labels)


def load_network(spec: str, run_dir: Any, net: nn.Module, path: GaussianPath,
                 target: str) -> nn.Module:
    """``net`` (its weights loaded) through every recipe's load-time transform."""
    for _, recipe in resolve(spec):
        if recipe.load is not None:
            net = recipe.load(run_dir, net, path, target)
    return net


def wrap_network(spec: str, net: nn.Module) -> nn.Module:
    """``net`` through every recipe's ``wrap``, in order (training and sampling alike)."""
    for _, recipe in resolve(spec):
        if recipe.wrap is not None:
            net = recipe.wrap(net)
    return net
